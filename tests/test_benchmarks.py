"""The benchmarks run: every asv benchmark once at a tiny size, and a quick peer comparison.

This is how CI catches a broken benchmark without running asv itself.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PREFIXES = ("time_", "peakmem_", "mem_", "track_", "timeraw_")
#: A shape smaller than any in the suite: the same code paths, a fraction of the time.
TINY_SHAPE = "4x2x8"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load("bench_kernels")


def benchmark_methods(cls):
    return [name for name in dir(cls) if name.startswith(PREFIXES)]


def test_every_benchmark_class_is_covered_here():
    classes = {name for name, obj in inspect.getmembers(bench, inspect.isclass)
               if obj.__module__ == bench.__name__ and benchmark_methods(obj)}
    assert classes == {"Kernels", "FirstCall"}


def test_shapes_parse():
    for label in bench.SHAPES:
        T, B, H = bench.parse_shape(label)
        assert min(T, B, H) >= 1


CASES = list(itertools.product(bench.CELLS, bench.BACKENDS, bench.DTYPES))


@pytest.mark.parametrize(("cell", "backend", "dtype"), CASES)
def test_kernels_benchmarks_run(cell, backend, dtype):
    case = bench.Kernels()
    args = (cell, backend, dtype, TINY_SHAPE)
    case.setup(*args)
    for name in benchmark_methods(bench.Kernels):
        getattr(case, name)(*args)


@pytest.mark.parametrize("dtype", bench.DTYPES)
def test_first_call_code_runs(dtype):
    code = bench.FirstCall().timeraw_import_and_first_call(dtype)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_compare_quick_writes_a_report(tmp_path):
    subprocess.run([sys.executable, str(BENCHMARKS / "compare.py"), "--quick", "--out", str(tmp_path)],
                   check=True, timeout=300, capture_output=True)
    assert {"README.md", "results.csv", "meta.json", "speed.png"} <= {p.name for p in tmp_path.iterdir()}
    df = pd.read_csv(tmp_path / "results.csv")
    assert {"gradlab-cpu", "gradlab-numpy", "torch", "gemm-floor"} <= set(df.impl)
    checked = df[df.impl.isin(["gradlab-cpu", "torch", "jax"])]
    tolerance = checked["dtype"].map({"float32": 1e-4, "float64": 1e-10})
    assert (checked.dx_rel_err <= tolerance).all(), checked[["cell", "dtype", "impl", "dx_rel_err"]]
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "## Environment" in readme and "Targets" in readme
