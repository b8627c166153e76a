"""How cost grows with the work: time and peak memory of forward + BPTT, and the sweep engine's throughput.

Full backpropagation through time (Werbos 1990) visits every step twice,
once forward and once backward, and keeps every step's state for the
backward sweep: its time and its memory should both be linear in the
sequence length T (Williams & Zipser 1995; Gruslys et al. 2016 trade that
memory for recomputation). The study measures, for ``rnn_tanh`` (G = 1) and
``lstm`` (G = 4) with D = 16 inputs and a many-to-one loss (∂L/∂h_t zero
except at the last step):

* the wall and CPU time of one ``gradlab.forward`` + ``gradlab.backward``
  against T (10² … 10⁴), the batch B and the hidden size H, each swept
  through one base point with the other two fixed, on every backend (``cpu``:
  Numba, parallel over batch chunks; ``numpy``: the reference, on the smaller
  sizes; ``cuda`` when a GPU is present) and next to PyTorch's
  ``torch.nn.RNN``/``LSTM`` (forward + ``autograd.grad`` of the same loss)
  when PyTorch is installed. Every implementation is called once untimed
  (Numba's compilation or cache load, reported as the first call), then the
  repeats (fewer for the slow NumPy reference and PyTorch) go round-robin
  over the implementations in the same process, so that a change of machine
  load hits them alike, and the median is kept (SPEC §9). Numba, BLAS and torch threads are all set to one (a per-core
  comparison that the load of a shared machine cannot turn into stalls of a
  parallel region); along B the Numba backend is also timed on every core
  (``cpu-parallel``). The timing points run one after another in this
  process (a serial executor), never beside other points;
* the peak memory of the same call, traced by :mod:`tracemalloc` (NumPy
  reports its array buffers to it) in a fresh process that runs nothing
  else, against the documented formula of :mod:`gradlab.kernels.cpu`
  (section *Memory*): exactly, for the arrays the call returns, and to
  leading order for the peak;
* exponents fitted by least squares on log-log axes with 95 % confidence
  intervals, and whether the T-exponent's interval contains 1;
* the first call in a fresh process (importing gradlab, loading Numba's
  cached kernels or compiling them), apart from the timings;
* the throughput of :func:`gradlab.sweep.run_sweep` on a fixed grid of
  identical single-threaded points, without Dask and on local Dask clusters
  of 1, 2, … workers, against ideal linear scaling, with the cluster's
  start-up cost measured separately.

Memory, the first call and the throughput are measured in fresh Python
processes (:func:`in_fresh_process`), one at a time: tracemalloc counts the
allocations of every thread, and the process that runs the study may hold a
Dask client whose event loop allocates and competes for the interpreter.

The study measures every backend whatever ``--backend`` says; ``--dtype``
applies. It starts its own clusters for the throughput measurement, so
``--scheduler`` does not change it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from .. import api
from ..initializers import init_params
from ..kernels.cells import CELLS as CELL_SPECS

TITLE = "How cost grows with the work: time and memory of forward + BPTT"
QUESTION = ("How do the wall time and the peak memory of one forward pass plus full backpropagation through time "
            "grow with the sequence length T (10² … 10⁴), the batch B and the hidden size H on each backend and "
            "next to PyTorch — is the time linear in T, and does the memory match the documented formula — and "
            "how does the sweep engine's throughput grow with the number of Dask workers?")

CELLS = ("rnn_tanh", "lstm")
INPUT_SIZE = 16
AXES = ("T", "B", "H")
#: Implementations whose peak memory tracemalloc sees (NumPy buffers); torch's allocator and the GPU it does not.
TRACED = ("cpu", "numpy")
#: Implementations too slow per step for the longest sequences (Python or autograd overhead per step).
SLOW = ("numpy", "torch")
TORCH_MODULES = {"rnn_tanh": ("RNN", {"nonlinearity": "tanh"}), "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
                 "gru_cudnn": ("GRU", {}), "lstm": ("LSTM", {})}
#: Threads of every timed call but ``cpu-parallel``'s: one core each, a per-core comparison that a shared
#: machine's load cannot turn into stalls of a parallel region.
THREADS = 1
#: The Numba backend on every core (parallel over batch chunks), timed along B beside the one-thread runs.
PARALLEL = "cpu-parallel"
#: The fixed problem of one throughput point: ``calls`` forward + BPTT of this LSTM on one thread.
WORK = {"cell": "lstm", "T": 100, "B": 1, "H": 32}


def sizes(quick: bool) -> dict:
    """The grid's sizes: the default run and the reduced one of ``--quick``."""
    if quick:
        return dict(T=(100, 316, 1000, 3162), B=(1, 4, 16), H=(8, 16, 32), base=dict(T=100, B=4, H=16),
                    slow_max_T=1000, repeats=5, slow_repeats=3, traced=1, work_points=6, work_calls=40, rounds=2)
    return dict(T=(100, 316, 1000, 3162, 10000), B=(1, 3, 8, 24, 64), H=(8, 16, 32, 64, 128),
                base=dict(T=316, B=8, H=32), slow_max_T=1000, repeats=5, slow_repeats=3, traced=1, work_points=8,
                work_calls=60, rounds=5)


# ---------------------------------------------------------------------- environment

def available_cores() -> int:
    """The cores this process may run on."""
    from ..sweep import available_cores as cores

    return cores()


def parallel_threads() -> int:
    """Threads of the ``cpu-parallel`` measurement: the available cores (at most Numba's maximum)."""
    import numba

    return max(1, min(available_cores(), numba.config.NUMBA_NUM_THREADS))


def impl_threads(impl: str, config: dict) -> int:
    """The Numba, BLAS and torch threads an implementation is timed with in a timing point."""
    return config["parallel_threads"] if impl == PARALLEL else config["threads"]


def torch_installed() -> bool:
    """Whether PyTorch can be imported (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def cuda_available() -> bool:
    """Whether the ``cuda`` backend runs on a real GPU (the simulator is not timed)."""
    try:
        from ..kernels import cuda

        return cuda.available() and not cuda.simulating()
    except Exception:
        return False


def implementations(cell: str, T: int, slow_max_T: int, *, torch: bool, cuda: bool) -> list[str]:
    """What one timing point measures: every backend, the slow ones only up to ``slow_max_T`` steps."""
    impls = ["cpu"] + (["cuda"] if cuda else []) + ["numpy"] + (["torch"] if torch and cell in TORCH_MODULES else [])
    return [i for i in impls if i not in SLOW or T <= slow_max_T]


def worker_counts(cores: int) -> list[int]:
    """Dask workers of the throughput measurement: 0 (in this process, no Dask), then 1, 2, 4, … up to the cores."""
    counts, n = [0, 1], 2
    while n <= max(2, min(cores, 8)):
        counts.append(n)
        n *= 2
    return counts


# ---------------------------------------------------------------------- models of the cost

def returned_bytes_formula(cell: str, T: int, B: int, D: int, H: int, itemsize: int) -> int:
    """Bytes of the arrays one forward + backward returns: the Trace's own and every Grads field.

    Trace: h, the gate activations (G·H per step), c (LSTM) and hn
    (``gru_cudnn``); Grads: ∂x (T, B, D), the per-step norms (T, B) (two for
    the LSTM), ∂h₀ (and ∂c₀), and the weight gradients G·H·(D + H + 1) (+ H
    for b_hn). The inputs x, h₀, c₀ the Trace refers to are not counted. See
    the *Memory* section of :mod:`gradlab.kernels.cpu`.
    """
    spec = CELL_SPECS[cell]
    G, c, hn = spec.num_gates, int(spec.has_cell_state), int(spec.has_b_hn)
    words = (T * B * (H * (1 + c + hn) + G * H + D + 1 + c)
             + B * H * (1 + c) + G * H * (D + H + 1) + H * hn)
    return int(words * itemsize)


def peak_bytes_formula(cell: str, T: int, B: int, D: int, H: int, itemsize: int) -> int:
    """The documented peak of forward + backward beyond its inputs, to leading order.

    The returned arrays plus the backward pass's working array of gate
    gradients, T·B·G·H words (twice for ``gru_cudnn`` on the CPU backend);
    scratch of O(B·G·H + G·H·H) words is left out. For ``rnn_tanh`` that is
    itemsize · (T·B·(3H + D + 1) + …), for the LSTM itemsize · (T·B·(10H + D + 2) + …).
    """
    spec = CELL_SPECS[cell]
    extra = T * B * spec.num_gates * H * (1 + int(spec.has_b_hn))
    return returned_bytes_formula(cell, T, B, D, H, itemsize) + int(extra * itemsize)


def flops(cell: str, T: int, B: int, D: int, H: int) -> float:
    """SPEC §9's count for forward + backward: 3 × 2·B·G·H·(D + H) per step."""
    return 6.0 * B * CELL_SPECS[cell].num_gates * H * (D + H) * T


def array_bytes(arrays) -> int:
    """Bytes of the distinct buffers behind ``arrays`` (None skipped; views counted once)."""
    seen = {}
    for a in arrays:
        if a is None:
            continue
        base = a
        while getattr(base, "base", None) is not None:
            base = base.base
        seen[id(base)] = int(base.nbytes)
    return sum(seen.values())


def fit_exponent(x, y, level: float = 0.95) -> dict:
    """Least-squares fit of log y = a + k log x: the exponent k, its standard error and confidence interval.

    The interval is k ± t_{(1+level)/2, n−2} · se (Student's t with n − 2
    degrees of freedom); NaN with fewer than three points. Non-positive or
    non-finite values are dropped.
    """
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    n = int(ok.sum())
    out = {"exponent": math.nan, "stderr": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": n, "r2": math.nan}
    if n < 2 or np.ptp(lx) == 0:
        return out
    fit = stats.linregress(lx, ly)
    out.update(exponent=float(fit.slope), r2=float(fit.rvalue ** 2) if n > 2 else math.nan)
    if n > 2:
        half = float(stats.t.ppf(0.5 + level / 2, n - 2) * fit.stderr)
        out.update(stderr=float(fit.stderr), ci_low=float(fit.slope - half), ci_high=float(fit.slope + half))
    return out


# ---------------------------------------------------------------------- measuring

def blas_controller():
    """A threadpoolctl controller of the BLAS libraries loaded now (SciPy's, which the Numba kernels call, included).

    Building one scans the loaded libraries (milliseconds); :func:`threads`
    reuses the one it is given.
    """
    from threadpoolctl import ThreadpoolController

    with contextlib.suppress(ImportError):
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS the Numba kernels call, so that it is limited too)
    return ThreadpoolController().select(user_api="blas")


@contextlib.contextmanager
def threads(n: int, controller=None):
    """Numba, BLAS and (if loaded) torch threads set to ``n`` inside, restored after."""
    import numba

    controller = blas_controller() if controller is None else controller
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(int(n))
    try:
        with controller.limit(limits=int(n)):
            yield
    finally:
        numba.set_num_threads(old)
        if torch is not None:
            torch.set_num_threads(old_torch)


def problem(cell: str, T: int, B: int, H: int, D: int, dtype: str, seed: int):
    """Weights, inputs and the many-to-one ∂L/∂h (a unit vector per sequence at the last step, zero before)."""
    params = init_params(cell, D, H, dtype=np.dtype(dtype), seed=seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    x = rng.standard_normal((T, B, D)).astype(dtype)
    v = rng.standard_normal((B, H))
    dh = np.zeros((T, B, H), dtype)
    dh[-1] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return params, x, dh


def gradlab_call(cell: str, params, x, dh, backend: str):
    """One forward + full BPTT on ``backend``; returns (trace, grads)."""
    def call():
        trace = api.forward(cell, params, x, backend=backend)
        return trace, api.backward(cell, params, trace, dh, backend=backend)
    return call


def torch_call(cell: str, params, x, dh):
    """The same loss, L = Σ_b ⟨h_T, ∂L/∂h_T⟩, with ``torch.nn.RNN``/``LSTM``: forward and ``autograd.grad``."""
    import torch

    from ..interop import params_to_torch

    name, kwargs = TORCH_MODULES[cell]
    T, B, D = x.shape
    H = dh.shape[2]
    dtype = getattr(torch, str(x.dtype))
    module = getattr(torch.nn, name)(D, H, dtype=dtype, **kwargs)
    module.load_state_dict(params_to_torch(params, cell))
    xt = torch.from_numpy(x).requires_grad_()
    states = [torch.zeros(1, B, H, dtype=dtype, requires_grad=True) for _ in range(2 if cell == "lstm" else 1)]
    state = tuple(states) if cell == "lstm" else states[0]
    v = torch.from_numpy(np.ascontiguousarray(dh[-1]))
    leaves = [xt, *states, *module.parameters()]

    def call():
        out, _ = module(xt, state)
        return torch.autograd.grad((out[-1] * v).sum(), leaves)
    return call


def traced_peak(call):
    """Run ``call`` under tracemalloc: (its result, the peak bytes allocated above what was allocated before)."""
    was = tracemalloc.is_tracing()
    gc_on = gc.isenabled()
    gc.disable()
    if not was:
        tracemalloc.start()
    else:
        tracemalloc.reset_peak()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out = call()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was:
            tracemalloc.stop()
        if gc_on:
            gc.enable()
    return out, int(peak)


def _returned(trace, grads) -> int:
    return array_bytes([trace.h, trace.c, trace.gates, trace.hn, grads.W_x, grads.W_h, grads.b, grads.b_hn,
                        grads.x, grads.h0, grads.c0, grads.dh_norm, grads.dc_norm])


# ---------------------------------------------------------------------- grid points

def timing_point(config: dict, seed: int) -> list[dict]:
    """Time and first call of forward + BPTT of every implementation at one (cell, T, B, H).

    One row per implementation and timed repeat: ``seconds`` (wall time,
    ``time.perf_counter``) and ``cpu_seconds`` (CPU time, which the waits of
    a busy machine do not inflate: ``time.thread_time`` of the calling thread
    for the one-thread runs, which do all their work on it, so that other
    threads of the process, such as a Dask client's or idle thread pools
    spinning, are not counted; ``time.process_time`` for ``cpu-parallel``);
    the point's other measurements repeat on each row. Each implementation
    runs with its own threads (:func:`impl_threads`), set outside the timed
    region.
    """
    cell, T, B, H, D = config["cell"], config["T"], config["B"], config["H"], config["D"]
    dtype, impls = config["dtype"], list(config["impls"])
    repeats = {i: config["slow_repeats"] if i in SLOW else config["repeats"] for i in impls}
    params, x, dh = problem(cell, T, B, H, D, dtype, seed)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    if "torch" in impls:
        import torch  # noqa: F401  (loaded before its threads are set)
    backend = {PARALLEL: "cpu"}
    calls = {i: torch_call(cell, params, x, dh) if i == "torch"
             else gradlab_call(cell, params, x, dh, backend.get(i, i)) for i in impls}
    blas = blas_controller()
    first = {}
    for impl, call in calls.items():  # compile / cache load / allocator warm-up, timed on its own
        with threads(impl_threads(impl, config), blas):
            start = time.perf_counter()
            call()
            first[impl] = time.perf_counter() - start
    times = {i: [] for i in impls}
    gc_on = gc.isenabled()
    gc.disable()  # no collection inside a timed call (a full gc.collect() here would cost more than most calls)
    try:
        for r in range(max(repeats.values())):  # round-robin, starting one further each repeat
            for impl in [i for i in impls[r % len(impls):] + impls[: r % len(impls)] if r < repeats[i]]:
                n = impl_threads(impl, config)
                clock = time.thread_time if n == 1 else time.process_time
                with threads(n, blas):
                    start, cpu = time.perf_counter(), clock()
                    calls[impl]()
                    times[impl].append((time.perf_counter() - start, clock() - cpu))
    finally:
        if gc_on:
            gc.enable()
    common = {"flops": flops(cell, T, B, D, H), "load_1min": load}
    return [{"impl": impl, "repeat": r, "seconds": wall, "cpu_seconds": cpu, "first_call_s": first[impl],
             "impl_threads": impl_threads(impl, config), **common}
            for impl in impls for r, (wall, cpu) in enumerate(times[impl])]


def memory_rows(config: dict, seed: int) -> list[dict]:
    """Traced peak and returned bytes at every shape, on each host backend (run in a fresh process).

    ``config["shapes"]``: ``[cell, T, B, H]``; the NumPy reference only up
    to ``slow_max_T``. The Numba backend is called once untraced first (its
    kernels load or compile); each implementation is then traced
    ``config["traced"]`` times and the smallest peak kept.
    """
    D, dtype = config["D"], config["dtype"]
    itemsize = np.dtype(dtype).itemsize
    rows = []
    with threads(config["threads"]):
        for cell, T, B, H in config["shapes"]:
            params, x, dh = problem(cell, T, B, H, D, dtype, seed)
            for impl in TRACED:
                if impl == "numpy" and T > config["slow_max_T"]:
                    continue
                call = gradlab_call(cell, params, x, dh, impl)
                if impl == "cpu":
                    call()
                peaks = []
                for _ in range(config["traced"]):
                    (trace, grads), peak = traced_peak(call)
                    peaks.append(peak)
                    returned = _returned(trace, grads)
                    del trace, grads
                rows.append({"impl": impl, "cell": cell, "T": T, "B": B, "H": H, "peak_bytes": min(peaks),
                             "peak_bytes_max": max(peaks), "returned_bytes": returned,
                             "formula_returned_bytes": returned_bytes_formula(cell, T, B, D, H, itemsize),
                             "formula_peak_bytes": peak_bytes_formula(cell, T, B, D, H, itemsize)})
    return rows


def first_calls(config: dict, seed: int) -> list[dict]:
    """The first and the second forward + BPTT of each cell on ``cpu`` in this process (run in a fresh one).

    The first call loads the Numba kernels from the on-disk cache, or
    compiles them when the cache is empty or stale (``cache_misses`` > 0).
    The kernels take the cell as an argument, so the second cell reuses them.
    """
    from ..kernels import cpu

    rows = []
    with threads(config["threads"]):
        for k, cell in enumerate(config["cells"]):
            params, x, dh = problem(cell, config["T"], config["B"], config["H"], config["D"], config["dtype"], seed)
            call = gradlab_call(cell, params, x, dh, "cpu")
            times = []
            for _ in range(2):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            rows.append({"order": k + 1, "cell": cell, "first_call_s": times[0], "second_call_s": times[1]})
    kernels = (cpu._forward_chunk, cpu._backward_chunk, cpu._forward_parallel, cpu._backward_parallel)
    hits = sum(sum(k.stats.cache_hits.values()) for k in kernels)
    misses = sum(sum(k.stats.cache_misses.values()) for k in kernels)
    return [{**r, "cache_hits": hits, "cache_misses": misses} for r in rows]


_FRESH = r"""
import json, sys, time
start = time.perf_counter()
from gradlab.studies import scaling
imported = time.perf_counter() - start
rows = getattr(scaling, sys.argv[1])(json.loads(sys.argv[2]), int(sys.argv[3]))
print(json.dumps([{**r, "import_s": imported} for r in rows]))
"""


def in_fresh_process(name: str, config: dict, seed: int, timeout: float = 3600) -> list[dict]:
    """Run ``gradlab.studies.scaling.<name>(config, seed)`` in a new Python process and return its rows.

    A fresh process has loaded nothing yet (the first call's cost is
    visible) and runs no other threads that allocate (tracemalloc counts every
    thread's allocations, a Dask client's event loop included). Each row
    gains ``import_s`` (importing gradlab there) and ``process_s`` (the whole
    process, start to exit).
    """
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _FRESH, name, json.dumps(config), str(int(seed))],
                          capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{name} in a fresh process failed (exit {proc.returncode}): {proc.stderr[-3000:]}")
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    return [{**r, "process_s": wall} for r in rows]


def memory_point(config: dict, seed: int) -> list[dict]:
    """:func:`memory_rows`, in a fresh process."""
    return in_fresh_process("memory_rows", config, seed)


def first_call_point(config: dict, seed: int) -> list[dict]:
    """:func:`first_calls`, in a fresh process: the import, then the first and second call of each cell."""
    return in_fresh_process("first_calls", config, seed)


def work_point(config: dict, seed: int) -> dict:
    """The throughput measurement's unit of work: ``calls`` forward + BPTT of a small LSTM on one thread."""
    params, x, dh = problem(WORK["cell"], WORK["T"], WORK["B"], WORK["H"], INPUT_SIZE, "float64", seed)
    call = gradlab_call(WORK["cell"], params, x, dh, "cpu")
    with threads(1):
        start = time.perf_counter()
        for _ in range(config["calls"]):
            call()
        seconds = time.perf_counter() - start
    return {"compute_s": seconds, "pid": os.getpid()}


def _warm_worker(calls: int = 2) -> int:
    """Run on every worker before a throughput round: imports and the Numba cache load, untimed."""
    work_point({"calls": calls}, 0)
    return os.getpid()


def throughput_rows(config: dict, seed: int) -> list[dict]:
    """Points per second of :func:`gradlab.sweep.run_sweep` for each of ``config["worker_counts"]``.

    0 workers: this process, no Dask; n > 0: a local Dask cluster of n
    single-threaded workers. For each, the cluster is started (``startup_s``)
    and every worker warmed (imports and Numba's cache, ``warm_s``), then
    ``rounds`` times a fresh grid of ``points`` identical :func:`work_point`
    points runs into an empty results store, timed from submission to the
    last point on disk (``wall_s``), then once more on the full store
    (``resume_s``: the sweep call's own cost, every point skipped); the
    cluster's shutdown is ``close_s``.
    """
    from .. import sweep as sweeplib

    rows = []
    grid = [{"point": i, "calls": config["calls"]} for i in range(config["points"])]
    for workers in config["worker_counts"]:
        start = time.perf_counter()
        ex = sweeplib.connect("serial") if workers == 0 else sweeplib.connect(None, workers=workers)
        startup = time.perf_counter() - start
        found = []
        try:
            start = time.perf_counter()
            if ex.client is None:
                _warm_worker()
            else:
                ex.client.run(_warm_worker)
            warm = time.perf_counter() - start
            for r in range(config["rounds"]):
                with tempfile.TemporaryDirectory(prefix="gradlab-throughput-") as store:
                    start = time.perf_counter()
                    df = sweeplib.run_sweep(work_point, grid, store=store, root_seed=seed + r, executor=ex,
                                            progress=False)
                    wall = time.perf_counter() - start
                    # the same sweep again: every point is on disk, so this is the cost of a sweep call itself
                    start = time.perf_counter()
                    sweeplib.run_sweep(work_point, grid, store=store, root_seed=seed + r, executor=ex, progress=False)
                    fixed = time.perf_counter() - start
                found.append({"workers": workers, "round": r, "startup_s": startup, "warm_s": warm, "wall_s": wall,
                              "resume_s": fixed,
                              "points_done": len(df), "points_per_s": len(df) / wall,
                              "compute_s": float(df["compute_s"].sum()),
                              "point_s_median": float(df["compute_s"].median()), "pids": int(df["pid"].nunique())})
        finally:
            start = time.perf_counter()
            ex.close()
            close = time.perf_counter() - start
        rows += [{**row, "close_s": close} for row in found]
    return rows


def throughput_point(config: dict, seed: int) -> list[dict]:
    """:func:`throughput_rows` in a fresh process: no other Dask client or scheduler shares its interpreter."""
    return in_fresh_process("throughput_rows", config, seed)


# ---------------------------------------------------------------------- the study

def timing_configs(s: dict, dtype: str, *, torch: bool, cuda: bool, cores: int) -> list[dict]:
    """Every (cell, T, B, H) of the three axes through the base point, once each.

    Every implementation runs on :data:`THREADS` thread(s); along B (base
    point included) the Numba backend is also timed on every core
    (:data:`PARALLEL`) when there is more than one.
    """
    base, out, seen = s["base"], [], set()
    n_par = min(parallel_threads(), cores)
    for cell in CELLS:
        for axis in AXES:
            for v in s[axis]:
                shape = {**base, axis: v}
                key = (cell, shape["T"], shape["B"], shape["H"])
                if key in seen:
                    continue
                seen.add(key)
                impls = implementations(cell, shape["T"], s["slow_max_T"], torch=torch, cuda=cuda)
                if n_par > 1 and shape["T"] == base["T"] and shape["H"] == base["H"]:
                    impls.insert(1, PARALLEL)
                out.append({"cell": cell, **shape, "D": INPUT_SIZE, "dtype": dtype, "threads": THREADS,
                            "parallel_threads": n_par, "repeats": s["repeats"], "slow_repeats": s["slow_repeats"],
                            "impls": impls})
    return out


def grids(quick: bool, dtype: str = "float64", *, torch: bool | None = None, cuda: bool | None = None,
          cores: int | None = None) -> dict[str, tuple[list[dict], int]]:
    """Every sweep of the study: label -> (configs, replicates).

    ``torch``, ``cuda`` and ``cores`` default to what this machine has.
    """
    s = sizes(quick)
    torch = torch_installed() if torch is None else torch
    cuda = cuda_available() if cuda is None else cuda
    cores = available_cores() if cores is None else cores
    timing = timing_configs(s, dtype, torch=torch, cuda=cuda, cores=cores)
    memory = [{"shapes": [[c["cell"], c["T"], c["B"], c["H"]] for c in timing], "D": INPUT_SIZE, "dtype": dtype,
               "threads": THREADS, "traced": s["traced"], "slow_max_T": s["slow_max_T"]}]
    first = [{"cells": list(CELLS), **s["base"], "D": INPUT_SIZE, "dtype": dtype, "threads": THREADS}]
    through = [{"worker_counts": worker_counts(cores), "points": s["work_points"], "calls": s["work_calls"],
                "rounds": s["rounds"]}]
    return {"timing": (timing, 1), "memory": (memory, 1), "first_call": (first, 1), "throughput": (through, 1)}


def run(ctx) -> None:
    """Run the sweeps (all on a serial executor: timings never share the cores) and write ``reports/scaling/``."""
    from .. import sweep as sweeplib
    from . import scaling_report as report

    g = grids(ctx.quick, ctx.dtype)
    serial = sweeplib.connect("serial")
    results = {label: ctx.sweep(label, fn, *g[label], with_backend=False, executor=serial)
               for label, fn in (("timing", timing_point), ("memory", memory_point),
                                 ("first_call", first_call_point), ("throughput", throughput_point))}
    rep = ctx.report(title=TITLE, question=QUESTION)
    report.write(rep, results, sizes(ctx.quick), torch=torch_installed(), cuda=cuda_available())
    counts = ", ".join(str(w) for w in worker_counts(available_cores()) if w)
    ctx.finish(rep, executors={"timing": "serial, in this process, one point at a time",
                               "memory, first call and throughput": "a fresh Python process per point, one at a time",
                               "throughput": f"local Dask clusters of {counts} workers started in that process, "
                                             "and that process alone"},
               timing_threads=f"Numba, BLAS and torch threads {THREADS}; {PARALLEL}: {parallel_threads()}")
