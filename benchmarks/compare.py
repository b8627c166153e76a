"""Peer comparison of gradlab's forward + full BPTT (SPEC §9).

The question: how fast is one forward pass plus full backpropagation through
time with gradlab's Numba backend, next to the NumPy reference, PyTorch's CPU
modules, JAX's ``lax.scan`` (when JAX is installed), and the time the matrix
products alone take at the same shapes (the "GEMM floor")?

Everything runs in one process, on the same inputs: weights from
``gradlab.init_params``, standard normal inputs, the loss L = sum of all
outputs (so ∂L/∂h_t = 1). Every implementation computes the gradients of the
weights, the inputs and the initial state. Each is called twice before timing
(gradlab's Numba compilation is measured beforehand and reported on its own);
the timed repeats then go round-robin over the implementations, so that a
change in machine load hits them all alike, and the median is reported.

Run it as ``make compare``: that unsets ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE``, which some machines set to force a slower OpenBLAS
kernel. Writes ``README.md``, ``results.csv``, ``meta.json`` and ``speed.png``
to ``--out`` (default ``reports/performance``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numba
import numpy as np
import pandas as pd

import gradlab
from gradlab.interop import TORCH_CELLS, params_to_torch

REPO = Path(__file__).resolve().parents[1]
DTYPES = ("float32", "float64")
IMPLS = ("gemm-floor", "gradlab-cpu", "gradlab-numpy", "torch", "jax")
PEERS = ("gradlab-numpy", "torch", "jax", "gemm-floor")
BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: Above this share of the machine's CPU time used by other processes, the report warns of noise.
BUSY_SHARE = 0.05
TORCH_MODULES = {
    "rnn_tanh": ("RNN", {"nonlinearity": "tanh"}),
    "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
    "gru_cudnn": ("GRU", {}),
    "lstm": ("LSTM", {}),
}


@dataclass(frozen=True)
class Config:
    """One problem size: T steps, batch B, input size D = hidden size H."""

    T: int
    B: int
    H: int

    @property
    def D(self) -> int:
        """The input size, equal to H."""
        return self.H

    @property
    def label(self) -> str:
        """``"T=…, B=…, D=H=…"``."""
        return f"T={self.T}, B={self.B}, D=H={self.H}"

    def flops(self, num_gates: int) -> float:
        """FLOPs of forward + BPTT: 2·B·G·H·(D+H) per forward step, backward twice that."""
        return 3.0 * self.T * 2 * self.B * num_gates * self.H * (self.D + self.H)


CONFIGS = {
    "small": (Config(1000, 1, 32),),
    "all": (Config(1000, 1, 32), Config(100, 64, 128), Config(200, 32, 256), Config(100, 64, 512)),
}
QUICK_CONFIGS = (Config(8, 2, 8),)


@dataclass(frozen=True)
class Target:
    """A performance goal: ``peer time / gradlab-cpu time >= threshold`` on the listed configs."""

    text: str
    peer: str
    threshold: float
    configs: tuple[Config, ...]
    dtypes: tuple[str, ...] = DTYPES
    only: tuple[tuple[str, str], ...] = ()
    exclude: tuple[tuple[str, str], ...] = ()

    def applies(self, cell: str, dtype: str) -> bool:
        """Whether the (cell, dtype) case is one this target speaks of."""
        if dtype not in self.dtypes or (cell, dtype) in self.exclude:
            return False
        return not self.only or (cell, dtype) in self.only


#: torch's fused oneDNN LSTM (float32 only) is held to "at least as fast", every per-step path to more.
ONEDNN = (("lstm", "float32"),)
SMALL, MID, WIDE = (Config(1000, 1, 32),), (Config(100, 64, 128), Config(200, 32, 256)), (Config(100, 64, 512),)
TARGETS = (
    Target("≥10× faster than torch at (1000, 1, 32) where torch takes its per-step path", "torch", 10.0, SMALL,
           exclude=ONEDNN),
    Target("at least as fast as torch's oneDNN-fused LSTM (float32) at (1000, 1, 32)", "torch", 1.0, SMALL,
           only=ONEDNN),
    Target("≥1.5× faster than torch in float64 at (100, 64, 128) and (200, 32, 256)", "torch", 1.5, MID,
           ("float64",)),
    Target("at least as fast as torch's oneDNN-fused LSTM (float32) at (100, 64, 128) and (200, 32, 256)", "torch",
           1.0, MID, only=ONEDNN),
    Target("≥80% of the GEMM floor at (100, 64, 512)", "gemm-floor", 0.8, WIDE),
    Target("at least as fast as torch at (100, 64, 512), every cell and dtype", "torch", 1.0, WIDE),
)


@dataclass
class Problem:
    """The shared inputs of one (config, cell, dtype) case."""

    config: Config
    cell: str
    dtype: str
    params: gradlab.Params = field(init=False)
    x: np.ndarray = field(init=False)
    dh: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        c = self.config
        self.params = gradlab.init_params(self.cell, c.D, c.H, dtype=np.dtype(self.dtype), seed=0)
        self.x = np.random.default_rng(0).standard_normal((c.T, c.B, c.D)).astype(self.dtype)
        self.dh = np.ones((c.T, c.B, c.H), self.dtype)

    @property
    def num_gates(self) -> int:
        """G of the cell."""
        return gradlab.CELLS[self.cell].num_gates


@dataclass
class Runner:
    """One forward + backward as a zero-argument callable, and how to read ∂L/∂x from its result."""

    run: Callable[[], Any]
    dx: Callable[[Any], np.ndarray | None] = lambda result: None


# %% Implementations


def gradlab_runner(problem: Problem, backend: str) -> Runner:
    """``gradlab.forward`` then ``gradlab.backward`` on one backend."""
    cell, params, x, dh = problem.cell, problem.params, problem.x, problem.dh

    def run():
        trace = gradlab.forward(cell, params, x, backend=backend)
        return gradlab.backward(cell, params, trace, dh, backend=backend)

    return Runner(run, lambda grads: grads.x)


def unrecorded_runner(problem: Problem) -> Runner:
    """gradlab-cpu with the per-step norm records switched off, to measure what recording costs.

    The same validation and kernels as :func:`gradlab_runner`; only the records are skipped.
    """
    from gradlab import api, validate

    cell, params, x, dh = problem.cell, problem.params, problem.x, problem.dh

    def run():  # gradlab.backward's steps, with record=False
        trace = gradlab.forward(cell, params, x, backend="cpu")
        module = api.get_backend("cpu")
        api._host_only("cpu", params=params, dh=dh, dc_last=None)
        spec, p, dh_, dc_last, clip_step = validate.check_backward(cell, params, trace, dh, None, None)
        return module.backward(spec, p, trace, dh_, dc_last, clip_step, record=False)

    return Runner(run, lambda grads: grads.x)


def torch_runner(problem: Problem) -> Runner:
    """``torch.nn.RNN/GRU/LSTM`` with gradlab's weights; gradients of L = sum of outputs."""
    import torch

    c, dtype = problem.config, getattr(torch, problem.dtype)
    name, kwargs = TORCH_MODULES[problem.cell]
    module = getattr(torch.nn, name)(c.D, c.H, dtype=dtype, **kwargs)
    module.load_state_dict(params_to_torch(problem.params, problem.cell))
    x = torch.from_numpy(problem.x).requires_grad_()
    lstm = problem.cell == "lstm"
    states = [torch.zeros(1, c.B, c.H, dtype=dtype, requires_grad=True) for _ in range(2 if lstm else 1)]
    state = tuple(states) if lstm else states[0]
    leaves = [x, *states, *module.parameters()]

    def run():
        out, _ = module(x, state)
        return torch.autograd.grad(out.sum(), leaves)

    return Runner(run, lambda grads: grads[0].numpy())


def jax_steps(jax, jnp) -> dict[str, Callable]:
    """One time step of every cell in JAX, ``(weights, a_x, h, c) -> (h, c)``, SPEC §2's equations."""
    sig = jax.nn.sigmoid

    def rnn_tanh(w, a, h, c):
        return jnp.tanh(a + h @ w["W_h"].T), c

    def rnn_relu(w, a, h, c):
        return jnp.maximum(a + h @ w["W_h"].T, 0), c

    def gru_simple(w, a, h, c):
        a_u, a_n = jnp.split(a + h @ w["W_h"].T, 2, axis=-1)
        u = sig(a_u)
        return u * jnp.tanh(a_n) + (1 - u) * h, c

    def gru(w, a, h, c):
        H = h.shape[-1]
        a_r, a_u, a_n = jnp.split(a, 3, axis=-1)
        ru = h @ w["W_h"][: 2 * H].T
        r, u = sig(a_r + ru[:, :H]), sig(a_u + ru[:, H:])
        n = jnp.tanh(a_n + (r * h) @ w["W_h"][2 * H :].T)
        return u * n + (1 - u) * h, c

    def gru_cudnn(w, a, h, c):
        a_r, a_u, a_n = jnp.split(a, 3, axis=-1)
        z_r, z_u, z_n = jnp.split(h @ w["W_h"].T, 3, axis=-1)
        r, u = sig(a_r + z_r), sig(a_u + z_u)
        n = jnp.tanh(a_n + r * (z_n + w["b_hn"]))
        return u * n + (1 - u) * h, c

    def lstm(w, a, h, c):
        a_i, a_f, a_g, a_o = jnp.split(a + h @ w["W_h"].T, 4, axis=-1)
        c = sig(a_f) * c + sig(a_i) * jnp.tanh(a_g)
        return sig(a_o) * jnp.tanh(c), c

    return {f.__name__: f for f in (rnn_tanh, rnn_relu, gru_simple, gru, gru_cudnn, lstm)}


def jax_runner(problem: Problem) -> Runner:
    """``jax.lax.scan`` over the cell's step, differentiated by ``jax.grad`` and jit-compiled."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    step = jax_steps(jax, jnp)[problem.cell]

    def loss(w, x, h0, c0):
        def body(carry, a):
            h, c = step(w, a, *carry)
            return (h, c), h

        _, hs = jax.lax.scan(body, (h0, c0), x @ w["W_x"].T + w["b"])
        return hs.sum()

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))
    weights = {k: jnp.asarray(v) for k, v in problem.params.arrays().items()}
    zeros = jnp.zeros((problem.config.B, problem.config.H), problem.dtype)
    x = jnp.asarray(problem.x)

    def run():
        return jax.block_until_ready(grad(weights, x, zeros, zeros))

    return Runner(run, lambda grads: np.asarray(grads[1]))


@numba.njit(nogil=True)
def recurrent_products(T, h, W_hT, R, da, W_h, dh):
    """The 2T per-step products of BPTT, called from compiled code as a compiled kernel calls them."""
    for _ in range(T):
        np.dot(h, W_hT, R)
    for _ in range(T):
        np.dot(da, W_h, dh)


def gemm_floor_runner(problem: Problem) -> Runner:
    """Exactly the matrix products an ideal BPTT needs, into preallocated outputs.

    The input projection (T·B × D)(D × GH), T recurrent products (B × H)(H × GH)
    forward and T products (B × GH)(GH × H) backward, then ∂L/∂x (T·B × GH)(GH × D),
    ∂L/∂W_x (GH × T·B)(T·B × D) and ∂L/∂W_h (GH × T·B)(T·B × H). The
    whole-sequence products use NumPy's ``matmul``; the per-step ones run in
    :func:`recurrent_products`, so that Python's cost per call (about 1 µs,
    more than the product itself at B = 1) is not counted.
    """
    c, GH = problem.config, problem.num_gates * problem.config.H
    rng = np.random.default_rng(1)

    def rand(*shape):
        return rng.standard_normal(shape).astype(problem.dtype)

    X, W_xT, W_x, W_hT, W_h = rand(c.T * c.B, c.D), rand(c.D, GH), rand(GH, c.D), rand(c.H, GH), rand(GH, c.H)
    Hs, DA, h, da = rand(c.T * c.B, c.H), rand(c.T * c.B, GH), rand(c.B, c.H), rand(c.B, GH)
    A, dX, R, dh = np.empty_like(DA), np.empty_like(X), np.empty_like(da), np.empty_like(h)
    dW_x, dW_h = np.empty_like(W_x), np.empty_like(W_h)
    matmul = np.matmul

    def run():
        matmul(X, W_xT, out=A)
        recurrent_products(c.T, h, W_hT, R, da, W_h, dh)
        matmul(DA, W_x, out=dX)
        matmul(DA.T, X, out=dW_x)
        matmul(DA.T, Hs, out=dW_h)

    return Runner(run)


def runners(problem: Problem, with_jax: bool) -> dict[str, Runner]:
    """Every implementation that exists for this cell, by name, in :data:`IMPLS` order."""
    out = {
        "gemm-floor": gemm_floor_runner(problem),
        "gradlab-cpu": gradlab_runner(problem, "cpu"),
        "gradlab-cpu-unrecorded": unrecorded_runner(problem),
        "gradlab-numpy": gradlab_runner(problem, "numpy"),
    }
    if problem.cell in TORCH_CELLS:
        out["torch"] = torch_runner(problem)
    if with_jax:
        out["jax"] = jax_runner(problem)
    return out


# %% Timing


def elapsed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one call of ``fn`` takes, and what it returned."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def relative_error(a: np.ndarray | None, ref: np.ndarray) -> float:
    """max |a − ref| / max |ref|, NaN when there is nothing to compare."""
    if a is None:
        return float("nan")
    return float(np.max(np.abs(np.asarray(a, np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-300))


def measure(problem: Problem, impls: dict[str, Runner], repeats: int) -> list[dict]:
    """Tidy rows, one per implementation: first call, median / min / max of ``repeats`` timed calls."""
    first, results = {}, {}
    for name, runner in impls.items():
        first[name], _ = elapsed(runner.run)
        _, results[name] = elapsed(runner.run)
    samples = {name: [] for name in impls}
    for _ in range(repeats):
        for name, runner in impls.items():
            samples[name].append(elapsed(runner.run)[0])
    reference = np.asarray(impls["gradlab-numpy"].dx(results["gradlab-numpy"]), np.float64)
    c, flops = problem.config, problem.config.flops(problem.num_gates)
    cpu_ms = 1e3 * statistics.median(samples["gradlab-cpu"])
    rows = []
    for name, times in samples.items():
        median_ms = 1e3 * statistics.median(times)
        rows.append({
            "T": c.T, "B": c.B, "D": c.D, "H": c.H, "cell": problem.cell, "dtype": problem.dtype,
            "impl": name, "repeats": repeats, "median_ms": median_ms, "min_ms": 1e3 * min(times),
            "max_ms": 1e3 * max(times), "first_call_ms": 1e3 * first[name], "gflops": flops / median_ms / 1e6,
            "ratio_to_gradlab_cpu": median_ms / cpu_ms,
            "dx_rel_err": relative_error(impls[name].dx(results[name]), reference),
        })
    return rows


def compile_costs(configs: tuple[Config, ...]) -> list[dict]:
    """gradlab-cpu's first call (Numba compile or cache load) against its second, per config and dtype.

    Numba compiles per argument types, not per shape: a config shows a cost
    only where it needs a kernel that no earlier config needed.
    """
    rows = []
    for config in configs:
        for dtype in DTYPES:
            run = gradlab_runner(Problem(config, "lstm", dtype), "cpu").run
            first, _ = elapsed(run)
            second, _ = elapsed(run)
            rows.append({"config": config.label, "dtype": dtype, "first_call_ms": 1e3 * first,
                         "second_call_ms": 1e3 * second, "compile_ms": 1e3 * (first - second)})
    return rows


# %% Environment


def cpu_seconds() -> tuple[float, float]:
    """CPU-seconds used so far by the whole machine (from /proc/stat) and by this process."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    own = os.times()
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"), own.user + own.system


def others_share(before: tuple[float, float], wall_s: float) -> float:
    """Fraction of the machine's CPU time that other processes used since ``before``: the noise in the timings."""
    machine, own = (now - then for now, then in zip(cpu_seconds(), before))
    return max(machine - own, 0.0) / (wall_s * os.cpu_count())


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, with the widest vector extension it reports."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}
    model, flags = fields.get("model name", "unknown"), fields.get("flags", "").split()
    vector = next((f for f in ("avx512f", "avx2", "avx") if f in flags), "no AVX")
    return f"{model} ({vector})"


def package_versions(with_jax: bool) -> dict[str, str]:
    """Versions of Python and every library in the comparison."""
    import scipy
    import threadpoolctl
    import torch

    versions = {"python": platform.python_version(), "gradlab": gradlab.__version__, "numpy": np.__version__,
                "scipy": scipy.__version__, "numba": numba.__version__, "torch": torch.__version__,
                "threadpoolctl": threadpoolctl.__version__}
    if with_jax:
        import jax

        versions["jax"] = jax.__version__
    return versions


def blas_libraries() -> list[dict]:
    """threadpoolctl's view of the process: each BLAS / OpenMP library, its kernel and its threads."""
    import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS, the one Numba's np.dot calls)
    import threadpoolctl
    import torch  # noqa: F401

    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
    return [{k: info.get(k) for k in keys} for info in threadpoolctl.threadpool_info()]


def git_commit() -> str:
    """The checked-out commit, with ``-dirty`` when the tree has changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    try:
        sha, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def environment(with_jax: bool, others: float) -> dict:
    """Everything a reader needs to judge the numbers: hardware, threads, BLAS kernels, versions."""
    import torch

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run in this process
        layer = f"not started (configured: {numba.config.THREADING_LAYER})"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "git_commit": git_commit(),
        "cpu": cpu_model(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "cpu_used_by_other_processes": f"{100 * others:.1f}% of the machine during the run",
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": layer,
        "torch_threads": torch.get_num_threads(),
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "blas_environment": {k: os.environ.get(k, "unset") for k in BLAS_VARIABLES},
        "blas": blas_libraries(),
        "versions": package_versions(with_jax),
    }


# %% Report


def fmt(value: float, digits: int = 3) -> str:
    """A number with ``digits`` significant figures, or an en dash for a missing value."""
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


def config_table(df: pd.DataFrame) -> str:
    """The Markdown table of one config: one row per cell and dtype."""
    impls = [i for i in IMPLS if i in set(df.impl)]
    peers = [p for p in PEERS if p in impls]
    head = (["cell", "dtype"] + [f"{i} ms" for i in impls] + ["gradlab-cpu GFLOP/s"]
            + [f"cpu vs {p}" for p in peers])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (cell, dtype), group in df.groupby(["cell", "dtype"], sort=False):
        ms = group.set_index("impl").median_ms
        gflops = group.set_index("impl").gflops["gradlab-cpu"]
        cells = [cell, dtype] + [fmt(ms.get(i)) for i in impls] + [fmt(gflops)]
        cells += [f"{fmt(ms.get(p) / ms['gradlab-cpu'])}×" if p in ms else "–" for p in peers]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_verdicts(df: pd.DataFrame) -> list[str]:
    """One paragraph per target: met or missed, with every case's ratio."""
    out = []
    for target in TARGETS:
        cases = []
        for config in target.configs:
            sel = df[(df["T"] == config.T) & (df.B == config.B) & (df.H == config.H) & df["dtype"].isin(target.dtypes)]
            for (cell, dtype), group in sel.groupby(["cell", "dtype"], sort=False):
                if not target.applies(cell, dtype):
                    continue
                ms = group.set_index("impl").median_ms
                if target.peer in ms:
                    cases.append((config, cell, dtype, ms[target.peer] / ms["gradlab-cpu"]))
        if not cases:
            out.append(f"- **{target.text}**: not measured in this run.")
            continue
        met = sum(ratio >= target.threshold for *_, ratio in cases)
        verdict = "met" if met == len(cases) else "missed"
        detail = "; ".join(f"{cell} {dtype} at ({c.T}, {c.B}, {c.H}): {fmt(ratio)}×"
                           + ("" if ratio >= target.threshold else " ✗") for c, cell, dtype, ratio in cases)
        measure_of = "of the floor's speed" if target.peer == "gemm-floor" else f"{target.peer} time / gradlab-cpu time"
        out.append(f"- **{target.text}**: {verdict}, {met} of {len(cases)} cases ({measure_of}, "
                   f"≥ {target.threshold:g} needed). {detail}.")
    return out


def reading(df: pd.DataFrame) -> list[str]:
    """A short summary of gradlab-cpu against each peer over all measured cases."""
    wide = df.pivot_table(index=["T", "B", "H", "cell", "dtype"], columns="impl", values="median_ms")
    out = []
    for peer in ("gradlab-numpy", "torch", "jax"):
        if peer not in wide:
            continue
        ratio = (wide[peer] / wide["gradlab-cpu"]).dropna()
        out.append(f"- Against {peer}: gradlab-cpu is faster in {int((ratio > 1).sum())} of {len(ratio)} cases; "
                   f"median speed-up {fmt(ratio.median())}× (range {fmt(ratio.min())}× to {fmt(ratio.max())}×).")
    if "gradlab-cpu-unrecorded" in wide:
        cost = 100 * (wide["gradlab-cpu"] / wide["gradlab-cpu-unrecorded"] - 1).dropna()
        verdict = "met" if cost.median() <= 5 else "missed"
        out.append(f"- Recording ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) at every step costs {fmt(cost.median())}% of forward + "
                   f"BPTT in the median case (range {fmt(cost.min())}% to {fmt(cost.max())}%; "
                   f"`gradlab-cpu` against `gradlab-cpu-unrecorded`); target ≤ 5% in the median: {verdict}. "
                   "Single cases within the run-to-run noise can come out negative.")
    floor = (wide["gemm-floor"] / wide["gradlab-cpu"]).dropna()
    out.append(f"- Against the GEMM floor: gradlab-cpu reaches {fmt(100 * floor.median())}% of the floor's speed "
               f"in the median case (range {fmt(100 * floor.min())}% to {fmt(100 * floor.max())}%).")
    return out


def environment_block(env: dict) -> str:
    """The environment as a fenced text block."""
    lines = [f"{k}: {v}" for k, v in env.items() if k not in ("blas", "versions")]
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    for lib in env["blas"]:
        lines.append(f"threadpool: {lib['internal_api']} {lib['version'] or ''} kernel={lib['architecture'] or '–'} "
                     f"threads={lib['num_threads']} layer={lib['threading_layer'] or '–'} "
                     f"({'/'.join(Path(lib['filepath']).parts[-2:])})")
    return "```text\n" + "\n".join(lines) + "\n```"


def warnings(env: dict, others: float) -> list[str]:
    """Warnings about the run: an OpenBLAS kernel forced by the environment, a busy machine."""
    out = []
    forced = {k: v for k, v in env["blas_environment"].items() if v != "unset"}
    if forced:
        out += [f"> **Warning**: {', '.join(f'{k}={v}' for k, v in forced.items())} was set for this run, which "
                "forces a slower OpenBLAS kernel. Rerun with `make compare`.", ""]
    if others > BUSY_SHARE:
        out += [f"> **Warning**: other processes used {100 * others:.0f}% of the machine's CPU time during this "
                "run; with every implementation using all cores, the timings are inflated and noisy. Rerun on an "
                "idle machine.", ""]
    return out


def rerun_command(args: argparse.Namespace) -> str:
    """The command line that produced this report, with the OpenBLAS variables unset."""
    options = "--quick" if args.quick else f"--repeats {args.repeats} --configs {args.configs}"
    return f"env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/compare.py {options}"


def write_readme(path: Path, df: pd.DataFrame, compile_rows: list[dict], env: dict, others: float,
                 args: argparse.Namespace) -> None:
    """``README.md``: the question, how to rerun, environment, tables, reading."""
    kernels = sorted({f"{lib['internal_api']} {lib['architecture']}" for lib in env["blas"] if lib["architecture"]})
    lines = [
        "# Performance: gradlab's forward + full BPTT against its peers", "",
        "**The question.** How long do one forward pass and full backpropagation through time take with "
        "gradlab's Numba backend (`gradlab-cpu`), next to the NumPy reference (`gradlab-numpy`), PyTorch's "
        "CPU `nn.RNN`/`nn.GRU`/`nn.LSTM` (`torch`, for the cells it has), JAX's `lax.scan` (`jax`, when "
        "installed), and the matrix products alone (`gemm-floor`)? All in one process, on the same inputs, "
        "with the loss L = sum of all outputs; every implementation computes the gradients of the weights, "
        "the inputs and the initial state.", "",
        *warnings(env, others),
        "**How to rerun.** `make compare` runs the full comparison; this report came from "
        f"`{rerun_command(args)}` (`--quick`: a smoke run into a temporary folder). "
        "Data: [`results.csv`](results.csv), one row per config, cell, dtype and implementation; "
        "[`meta.json`](meta.json) holds the environment. [`analysis.md`](analysis.md), written by hand, says what "
        "bounds each missed target.", "",
        "## Method", "",
        f"- Median of {args.repeats} timed calls per implementation, after two untimed calls; the repeats go "
        "round-robin over the implementations so that changes in machine load hit all of them alike.",
        "- FLOPs counted per step: forward 2·B·G·H·(D+H), backward twice that; "
        "GFLOP/s = 3 × forward FLOPs × T / time.",
        "- `gemm-floor`: exactly the matrix products an ideal BPTT needs at these shapes (input projection, T "
        "recurrent products forward and T backward, ∂L/∂x, ∂L/∂W_x, ∂L/∂W_h) into preallocated outputs: "
        "the "
        "whole-sequence products with NumPy's `matmul`, the 2T per-step products with `np.dot` inside a Numba "
        "loop (SciPy's OpenBLAS, the library gradlab-cpu calls), so that Python's cost per call is not counted. "
        "Each product runs on the BLAS's own threads, so the floor is not a strict bound: a kernel that splits "
        "the batch between threads can beat it. `cpu vs gemm-floor` is the fraction of the floor's speed "
        "gradlab-cpu reaches.",
        "- `cpu vs X` = time of X / time of gradlab-cpu: above 1 means gradlab-cpu is faster.",
        f"- Threads: Numba {env['numba_threads']}, torch {env['torch_threads']} (set to Numba's), BLAS as listed "
        f"below. OpenBLAS kernel seen by threadpoolctl: {', '.join(kernels) or 'none reported'}.",
        "- `dx_rel_err` in the CSV: max |∂L/∂x − reference| / max |reference| against `gradlab-numpy`, a check "
        "that every implementation computed the same gradients.", "",
        "## Environment", "", environment_block(env), "",
        "## Numba compilation (excluded from the timings)", "",
        "gradlab-cpu's first call in this process (compile, or load from Numba's on-disk cache) against its "
        "second, on the LSTM. Numba compiles per argument types, not per shape: a config shows a cost only where "
        "it needs a kernel that no earlier config needed.", "",
        "| config | dtype | first call ms | second call ms | difference ms |", "|---|---|---|---|---|",
        *[f"| {r['config']} | {r['dtype']} | {fmt(r['first_call_ms'])} | {fmt(r['second_call_ms'])} "
          f"| {fmt(r['compile_ms'])} |" for r in compile_rows], "",
        "## Results (median ms of forward + BPTT)", "",
        "![forward + BPTT time per implementation](speed.png)", "",
    ]
    for (T, B, H), group in df.groupby(["T", "B", "H"], sort=False):
        lines += [f"### {Config(T, B, H).label}", "", config_table(group), ""]
    lines += ["## Reading", "", *reading(df), "", "Targets:", "", *target_verdicts(df), ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def plot(path: Path, df: pd.DataFrame) -> None:
    """``speed.png``: per config and dtype, grouped bars of ms per cell and implementation, log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(df.groupby(["T", "B", "H"], sort=False).groups)
    impls = [i for i in IMPLS if i in set(df.impl)]
    fig, axes = plt.subplots(len(DTYPES), len(configs), figsize=(max(4.5 * len(configs) + 1, 9), 8), squeeze=False,
                             sharey="row")
    width = 0.8 / len(impls)
    for row, dtype in enumerate(DTYPES):
        for col, (T, B, H) in enumerate(configs):
            ax = axes[row, col]
            sel = df[(df["T"] == T) & (df.B == B) & (df.H == H) & (df["dtype"] == dtype)]
            cells = list(dict.fromkeys(sel.cell))
            for k, impl in enumerate(impls):
                ms = sel[sel.impl == impl].set_index("cell").median_ms.reindex(cells)
                ax.bar(np.arange(len(cells)) + (k - (len(impls) - 1) / 2) * width, ms, width, label=impl, color=f"C{k}")
            ax.set_yscale("log")
            ax.set_xticks(np.arange(len(cells)), cells, rotation=30, ha="right")
            ax.set_title(f"{Config(T, B, H).label}, {dtype}", fontsize=10)
            if col == 0:
                ax.set_ylabel("forward + BPTT time (ms, log scale)")
            ax.grid(axis="y", which="both", alpha=0.3)
    axes[-1, -1].set_xlabel("cell")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle("gradlab forward + full BPTT against its peers (median of repeats; lower is faster)")
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncols=len(impls), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# %% Command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per implementation (default 7)")
    parser.add_argument("--configs", choices=sorted(CONFIGS), default="all", help="small: (1000, 1, 32) only")
    parser.add_argument("--out", type=Path,
                        help="output folder (default reports/performance; a temporary one with --quick)")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run: one small config, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 2
        args.out = args.out or Path(tempfile.mkdtemp(prefix="gradlab-compare-"))
    args.out = args.out or REPO / "reports" / "performance"
    return args


def main(argv: list[str] | None = None) -> Path:
    """Run the comparison and write the report; returns the output folder."""
    args = parse_args(argv)
    configs = QUICK_CONFIGS if args.quick else CONFIGS[args.configs]
    start, cpu_before = time.perf_counter(), cpu_seconds()
    with_jax = importlib.util.find_spec("jax") is not None
    import torch

    torch.set_num_threads(numba.get_num_threads())
    compile_rows = compile_costs(configs)
    rows = []
    for config in configs:
        for dtype in DTYPES:
            for cell in gradlab.CELL_NAMES:
                print(f"{config.label} {dtype} {cell}", file=sys.stderr, flush=True)
                problem = Problem(config, cell, dtype)
                rows += measure(problem, runners(problem, with_jax), args.repeats)
    df = pd.DataFrame(rows)
    others = others_share(cpu_before, time.perf_counter() - start)
    env = environment(with_jax, others)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "results.csv", index=False)
    (args.out / "meta.json").write_text(json.dumps({**env, "compile": compile_rows, "repeats": args.repeats}, indent=2))
    plot(args.out / "speed.png", df)
    write_readme(args.out / "README.md", df, compile_rows, env, others, args)
    print(args.out)
    return args.out


if __name__ == "__main__":
    main()
