"""Numba's on-disk cache of the CPU kernels follows the gate math they compile in (gradlab.kernels._numba_cache)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from gradlab.kernels import _numba_cache as nc

ROOT = Path(__file__).resolve().parents[1]


def touch(d: Path, *names):
    for n in names:
        (d / n).write_bytes(b"x")


def test_drop_stale_removes_only_the_modules_kernels_and_only_when_the_sources_changed(tmp_path):
    touch(tmp_path, "cpu.matmul-78.py311.nbi", "cpu.matmul-78.py311.1.nbc", "other.f-1.py311.nbi", "cpu.py")
    assert nc.drop_stale(tmp_path, "cpu", "a" * 64)  # no stamp yet: whatever is there predates it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu.py", f"cpu{nc.STAMP_SUFFIX}", "other.f-1.py311.nbi"]
    touch(tmp_path, "cpu.matmul-78.py311.nbi")
    assert not nc.drop_stale(tmp_path, "cpu", "a" * 64)  # compiled with these sources: kept
    assert (tmp_path / "cpu.matmul-78.py311.nbi").exists()
    assert nc.drop_stale(tmp_path, "cpu", "b" * 64)  # the sources changed
    assert not (tmp_path / "cpu.matmul-78.py311.nbi").exists()
    assert (tmp_path / f"cpu{nc.STAMP_SUFFIX}").read_text().strip() == "b" * 64


def test_sources_digest_follows_the_contents(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    d = nc.sources_digest([a, b])
    assert d == nc.sources_digest([a, b]) and len(d) == 64
    b.write_text("y = 3\n")
    assert nc.sources_digest([a, b]) != d


def test_importing_the_cpu_backend_drops_kernels_cached_with_other_gate_math(tmp_path):
    """A kernel cached under NUMBA_CACHE_DIR, then a stamp from other sources (as after an upgrade that changed
    only pointwise.py): the next import of the CPU backend removes the cached kernels and records the digest
    of the sources it has."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    compile_one = textwrap.dedent("""
        import numpy as np
        from gradlab.kernels import _numba_cache, cpu
        a = np.ones((2, 2)); out = np.empty((2, 2))
        cpu.matmul(a, a, out)
        print(_numba_cache.cache_dir_of(cpu.matmul.py_func))
    """)
    out = subprocess.run([sys.executable, "-c", compile_one], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    cache_dir = Path(out.stdout.strip().splitlines()[-1])
    assert tmp_path in cache_dir.parents and list(cache_dir.glob("cpu.matmul-*.nbi"))
    stamp = cache_dir / f"cpu{nc.STAMP_SUFFIX}"
    digest = stamp.read_text().strip()
    stamp.write_text("0" * 64 + "\n")
    out = subprocess.run([sys.executable, "-c", "import gradlab.kernels.cpu"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not list(cache_dir.glob("cpu.*.nb[ic]")) and stamp.read_text().strip() == digest
