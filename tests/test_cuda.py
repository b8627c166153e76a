"""The CUDA backend against the NumPy reference: every cell, dtype, record and option.

By default these run on the CUDA simulator (tests/conftest.py sets
NUMBA_ENABLE_CUDASIM=1 unless it is already set), with the simulator's tiny
tiles and thread counts, so every time loop (register, persistent, one
launch per step, cooperative), partial tiles and several blocks are all exercised. On a
machine with an NVIDIA GPU, ``NUMBA_ENABLE_CUDASIM=0 pytest tests/test_cuda.py``
runs the same tests on the device, plus the ones marked ``gpu``
(scripts/gpu_check.sh does this).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradlab
from conftest import make_problem
from gradlab.kernels import cuda as gcuda
from gradlab.kernels.cells import get_cell

ROOT = Path(__file__).resolve().parents[1]
CELLS = gradlab.CELL_NAMES
FIELDS = ("W_x", "W_h", "b", "b_hn", "x", "h0", "c0", "dh_norm", "dc_norm")
TOL = {np.float64: 1e-10, np.float32: 1e-4}
STRATEGIES = ("register", "persistent", "stepwise", "cooperative")

AVAILABLE = gcuda.available()
SIM = AVAILABLE and gcuda.simulating()
needs_cuda = pytest.mark.skipif(not AVAILABLE, reason="backend 'cuda' unavailable: no CUDA driver and no simulator")
gpu = pytest.mark.skipif(not AVAILABLE or SIM, reason="needs a real NVIDIA GPU (running on the CUDA simulator or without one)")


@pytest.fixture
def strategy(request, monkeypatch):
    """Run one test with a given time-loop strategy of the cuda backend."""
    if request.param == "cooperative" and (why := cooperative_missing()):
        pytest.skip(why)
    monkeypatch.setattr(gcuda, "STRATEGY", request.param)
    return request.param


def cooperative_missing():
    """Why the cooperative loop cannot launch here (no CUDA device runtime library), or None."""
    return gcuda._cooperative_missing(gcuda._ker(np.float32)[0]) if AVAILABLE else "backend 'cuda' unavailable"


def run(cell, backend, problem, clip_step=None):
    p, x, h0, c0, dh, dc_last = problem
    tr = gradlab.forward(cell, p, x, h0, c0, backend=backend)
    return tr, gradlab.backward(cell, p, tr, dh, dc_last, backend=backend, clip_step=clip_step)


def to_host(a):
    return a.copy_to_host() if gcuda.is_device_array(a) else a


def assert_agree(cell, problem, dtype, clip_step=None):
    t_ref, g_ref = run(cell, "numpy", problem, clip_step)
    t_cu, g_cu = run(cell, "cuda", problem, clip_step)
    assert t_cu.backend == "cuda"
    tol = TOL[dtype]
    for name in ("h", "c", "gates", "hn"):
        a, b = to_host(getattr(t_cu, name)), getattr(t_ref, name)
        assert (a is None) == (b is None), name
        if b is not None:
            assert a.dtype == dtype and a.shape == b.shape, name
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max(), err_msg=f"{cell}.{name}")
    for name in FIELDS:
        a, b = to_host(getattr(g_cu, name)), getattr(g_ref, name)
        assert (a is None) == (b is None), name
        if b is not None:
            assert a.dtype == dtype and a.shape == b.shape, name
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max(), err_msg=f"{cell}.{name}")
    return g_cu


# Shapes that cut into several tiles of the simulator's kernels: 2 persistent
# blocks (the second one partial), several step tiles along H and along the batch,
# a power-of-two padding in the norm reductions.
SHAPE = dict(T=4, B=5, D=3, H=9)


@needs_cuda
@pytest.mark.parametrize("strategy", STRATEGIES, indirect=True)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
def test_agrees_with_reference(cell, dtype, strategy):
    assert_agree(cell, make_problem(cell, **SHAPE, dtype=dtype, seed=4, scale=1.2), dtype)


@needs_cuda
def test_register_loop_one_unit(monkeypatch):
    """The register loop at H = 1: one unit, its G lanes in the first warp."""
    monkeypatch.setattr(gcuda, "STRATEGY", "register")
    assert_agree("lstm", make_problem("lstm", 3, 2, 2, 1, dtype=np.float64, seed=1, scale=1.5), np.float64,
                 clip_step=0.4)


@needs_cuda
def test_register_plan(monkeypatch):
    """The register loop, one block per sequence, for the cells with one product a step: "auto" takes it up
    to AUTO_MAX_H, "register" up to MAX_H; elsewhere both plan as "persistent" does."""
    from gradlab.kernels import _cuda_register as R

    K_, _ = gcuda._ker(np.float32)
    for strategy, top in (("auto", R.AUTO_MAX_H), ("register", R.MAX_H)):
        monkeypatch.setattr(gcuda, "STRATEGY", strategy)
        for cell in CELLS:
            spec = get_cell(cell)
            for H in (1, 9, R.AUTO_MAX_H, R.AUTO_MAX_H + 1, R.MAX_H, R.MAX_H + 1):
                plan = gcuda._plan(K_, spec, 7, H, 4, backward=True)
                if cell != "gru" and H <= top:
                    pw, threads = R.layout(spec.num_gates, H)
                    assert plan == ("register", 7, threads, R.register_words(4, spec.num_gates, H)), (cell, H, plan)
                    assert threads % R.LANES == 0 and threads // R.LANES * pw >= H
                else:  # (persistent where it fits: the simulator's persistent blocks are small)
                    assert plan[0] == ("persistent" if H <= K_.PERSISTENT_MAX_THREADS else "stepwise"), (cell, H, plan)


@needs_cuda
def test_register_words_fit_the_register_file_and_shared_memory(monkeypatch):
    """A thread keeps all H words of W_h in registers where they fit in its share of the register file, else a
    multiple of 4 of them and the rest in shared memory; a shape whose rest does not fit the block's shared
    memory is not taken (float64 LSTM at H = 128: planned as "persistent" plans it)."""
    from gradlab.kernels import _cuda_register as R

    for size in (4, 8):
        for G in (1, 2, 3, 4):
            for H in (1, 5, 32, 64, 96, 128):
                threads = R.layout(G, H)[1]
                budget = R.register_budget(threads)
                assert budget % 8 == 0 or budget == R.THREAD_REGISTERS
                assert budget * threads <= R.REGISTER_FILE and budget <= R.THREAD_REGISTERS
                hr = R.register_words(size, G, H)
                assert hr == H or (4 <= hr < H and hr % 4 == 0), (size, G, H, hr)
                if hr < H:  # (the most words that leave the other registers free)
                    assert (hr + 4) * size > (budget - R.OTHER_REGISTERS[size]) * 4
                    for backward in (False, True):
                        grows = R.shared_bytes(size, G, H, hr, backward) - R.shared_bytes(size, G, H, H, backward)
                        assert grows == (H - hr) * threads * size
    assert not R.supports("lstm", 128, 4, 8, 227 * 1024)
    assert R.supports("lstm", 128, 4, 4, 227 * 1024) and not R.supports("lstm", 128, 4, 4, 48 * 1024)
    K_, _ = gcuda._ker(np.float64)
    plans = []
    for strategy in ("register", "persistent"):
        monkeypatch.setattr(gcuda, "STRATEGY", strategy)
        plans.append(gcuda._plan(K_, get_cell("lstm"), 2, 128, 8, backward=False))
    assert plans[0] == plans[1]
    monkeypatch.setattr(R, "REGISTER_WORDS", 6)
    assert [R.register_words(4, 4, H) for H in (5, 6, 7, 9)] == [5, 6, 4, 4]


@needs_cuda
@pytest.mark.parametrize(("cell", "dtype"), [(c, d) for c in ("rnn_tanh", "gru_simple", "gru_cudnn", "lstm")
                                             for d in (np.float64, np.float32)])
def test_register_loop_with_words_in_shared_memory(cell, dtype, monkeypatch):
    """Where a thread's words of W_h do not all fit in its registers, the rest come from shared memory (here
    with at most 4 in registers: 4 + 5 and 4 + 2 words, with and without a remainder past a multiple of 4)."""
    from gradlab.kernels import _cuda_register as R

    monkeypatch.setattr(gcuda, "STRATEGY", "register")
    monkeypatch.setattr(R, "REGISTER_WORDS", 4)
    K_, _ = gcuda._ker(dtype)
    size = np.dtype(dtype).itemsize
    for T, B, H in ((3, 2, 9), (2, 1, 6)):
        for backward in (False, True):
            assert gcuda._plan(K_, get_cell(cell), B, H, size, backward)[3] == 4
        assert_agree(cell, make_problem(cell, T, B, 3, H, dtype=dtype, seed=T + H, scale=1.5), dtype, clip_step=0.4)


@needs_cuda
@pytest.mark.parametrize(("cell", "dtype", "ahead"),
                         [(c, d, 1) for c in ("rnn_relu", "gru_simple", "gru_cudnn", "lstm")
                          for d in (np.float64, np.float32)] + [("gru_cudnn", np.float32, 2), ("lstm", np.float64, 2)])
def test_register_loop_edges(cell, dtype, ahead, monkeypatch):
    """The register loop at one, two and three steps, and with the initial states and ∂L/∂c_T given,
    loading one or two steps ahead (one hidden size a case: each compiles kernels of its own on a GPU)."""
    from gradlab.kernels import _cuda_register

    monkeypatch.setattr(gcuda, "STRATEGY", "register")
    monkeypatch.setattr(_cuda_register, "AHEAD", ahead)
    for T, B, H in ((1, 2, 5), (2, 1, 5), (3, 2, 5)):
        assert gcuda.time_loop(cell, B, H, dtype) == "register"
        assert_agree(cell, make_problem(cell, T, B, 2, H, dtype=dtype, seed=T + H, scale=1.5), dtype, clip_step=0.4)


@needs_cuda
@pytest.mark.parametrize("cell", CELLS)
def test_persistent_split_products(cell, monkeypatch):
    """Dot products split over several threads (uneven parts, one sequence per block) agree with the reference."""
    monkeypatch.setattr(gcuda, "STRATEGY", "persistent")
    T, B, D, H = (3, 2, 2, 5) if SIM else (20, 2, 8, 40)  # the simulator's blocks are far smaller
    K_, _ = gcuda._ker(np.float64)
    spec = get_cell(cell)
    plans = [gcuda._plan(K_, spec, B, H, 8, backward=bw) for bw in (False, True)]
    assert all(p[0] == "persistent" for p in plans)
    splits = [p[6] for p in plans] + ([plans[0][7], plans[1][7]] if cell == "gru" else [])
    assert max(splits) > 1, plans  # the shape does split some product
    assert_agree(cell, make_problem(cell, T, B, D, H, dtype=np.float64, seed=5, scale=1.3), np.float64, clip_step=0.3)


@needs_cuda
@pytest.mark.parametrize("strategy", ["cooperative"], indirect=True)
def test_cooperative_plan(strategy):
    """The cooperative loop runs where its slices fit, over several slices and k-chunks at SHAPE; elsewhere stepwise."""
    B, H = SHAPE["B"], SHAPE["H"]
    for cell in CELLS:
        for dtype in (np.float64, np.float32):
            assert gcuda.time_loop(cell, B, H, dtype) == "cooperative", (cell, dtype)
    K_, _ = gcuda._ker(np.float64)
    _, blocks, threads, nu, slices, kc, nbytes = gcuda._plan(K_, get_cell("lstm"), B, H, 8, backward=True)
    assert slices == -(-H // nu) > 1 and nbytes <= gcuda.SHARED_LIMIT
    if SIM:  # one block takes every slice, and the operand is staged in several chunks
        assert blocks == 1 and kc < 4 * H
    assert gcuda.time_loop("lstm", 100_000, H) == "stepwise"  # too many rows a thread


@needs_cuda
@pytest.mark.parametrize("strategy", ["cooperative"], indirect=True)
@pytest.mark.parametrize("cell", CELLS)
def test_cooperative_uneven_slices(cell, strategy):
    """A last slice with fewer units, several batch rows a thread, chunks that do not divide K: still the reference."""
    T, B, D, H = (3, 7, 2, 7) if SIM else (12, 40, 16, 263)  # H prime: partial whatever the slice size
    K_, _ = gcuda._ker(np.float64)
    for backward in (False, True):
        _, _, threads, nu, slices, kc, _ = gcuda._plan(K_, get_cell(cell), B, H, 8, backward)
        assert H % nu and slices * nu > H, (nu, slices)  # the last slice is partial
        if SIM:
            assert B > threads // (gradlab.CELLS[cell].num_gates * nu) and H % kc, (threads, kc)
    assert_agree(cell, make_problem(cell, T, B, D, H, dtype=np.float64, seed=8, scale=1.2), np.float64, clip_step=0.4)


@needs_cuda
def test_unknown_strategy(monkeypatch):
    monkeypatch.setattr(gcuda, "STRATEGY", "fastest")
    with pytest.raises(ValueError, match="STRATEGY must be one of .*'fastest'"):
        gcuda.time_loop("lstm", 2, 3)


@needs_cuda
@pytest.mark.parametrize(("cell", "strategy"), [(c, "persistent") for c in CELLS]
                         + [(c, "register") for c in CELLS if c != "gru"]
                         + [(c, s) for c in ("gru", "lstm") for s in ("stepwise", "cooperative")],
                         indirect=["strategy"])
def test_clip_step_and_records(cell, strategy):
    """clip_step acts inside BPTT (the norms are recorded before it), as in the reference."""
    problem = make_problem(cell, **SHAPE, seed=6, scale=2.0)
    g = assert_agree(cell, problem, np.float64, clip_step=0.05)
    g_free = run(cell, "cuda", problem)[1]
    assert not np.allclose(g.W_h, g_free.W_h)  # the clip changed something
    np.testing.assert_allclose(g.dh_norm[-1], g_free.dh_norm[-1], rtol=1e-12)  # the last step sees no clip yet
    assert (g.dc_norm is None) == (cell != "lstm")


@needs_cuda
@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "gru_cudnn", "lstm"])
def test_device_arrays_in_and_out(cell):
    """Device arrays in give device arrays out, with the values of the NumPy path; the trace stays on the device."""
    cuda = gcuda.cuda_module()
    p, x, h0, c0, dh, dc = problem = make_problem(cell, **SHAPE, seed=2)
    t_host, g_host = run(cell, "cuda", problem, clip_step=0.5)
    dev = lambda a: None if a is None else cuda.to_device(a)  # noqa: E731
    pd = gradlab.Params(**{k: dev(v) for k, v in p.arrays().items()})
    tr = gradlab.forward(cell, pd, dev(x), dev(h0), dev(c0), backend="cuda")
    for name in ("h", "gates") + (("c",) if cell == "lstm" else ()) + (("hn",) if cell == "gru_cudnn" else ()):
        assert gcuda.is_device_array(getattr(tr, name)), name
        np.testing.assert_array_equal(getattr(tr, name).copy_to_host(), getattr(t_host, name))
    g = gradlab.backward(cell, pd, tr, dev(dh), dev(dc), backend="cuda", clip_step=0.5)
    for name in FIELDS:
        a, b = getattr(g, name), getattr(g_host, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert gcuda.is_device_array(a), name
            np.testing.assert_array_equal(a.copy_to_host(), b, err_msg=name)
    # host data with device params, and a NumPy trace (from the cuda forward) with a device dh
    tr2 = gradlab.forward(cell, pd, x, h0, c0, backend="cuda")
    assert isinstance(tr2.h, np.ndarray) and tr2._cuda is not None
    g2 = gradlab.backward(cell, p, tr2, dev(dh), dev(dc), backend="cuda", clip_step=0.5)
    np.testing.assert_array_equal(g2.W_h.copy_to_host(), g_host.W_h)


@needs_cuda
@pytest.mark.parametrize("cell", ["rnn_tanh", "gru_cudnn", "lstm"])
def test_one_device_allocation_per_call(cell, monkeypatch):
    """With device inputs, after a first call of the shape, a forward pass allocates device memory once (the
    trace and the zero initial states) and a backward pass once (gradients and records), and what they return
    are separate arrays (views of that one allocation that do not overlap). On a GPU not even that: the
    warm-up call's outputs, dropped, left their memory to the pool."""
    cuda = gcuda.cuda_module()
    p, x, h0, c0, dh, dc = make_problem(cell, **SHAPE, seed=4)
    pd = gradlab.Params(**{k: None if v is None else cuda.to_device(v) for k, v in p.arrays().items()})
    xd, dhd = cuda.to_device(x), cuda.to_device(dh)
    gradlab.backward(cell, pd, gradlab.forward(cell, pd, xd, backend="cuda"), dhd, backend="cuda")  # warm-up
    made = []
    real = cuda.device_array
    monkeypatch.setattr(cuda, "device_array", lambda *a, **kw: made.append(a) or real(*a, **kw))
    per_call = 1 if SIM else 0
    tr = gradlab.forward(cell, pd, xd, backend="cuda")
    assert len(made) == per_call, made
    g = gradlab.backward(cell, pd, tr, dhd, backend="cuda")
    assert len(made) == 2 * per_call, made
    monkeypatch.undo()
    out = [tr.h, tr.gates, tr.h0, tr.c, tr.c0, tr.hn] + [getattr(g, name) for name in FIELDS]
    out = [a for a in out if a is not None]
    for i, a in enumerate(out):  # writing one output leaves the others as they were
        before = [b.copy_to_host() for b in out]
        a.copy_to_device(np.full(a.shape, np.nan))
        for j, b in enumerate(out):
            if j != i:
                np.testing.assert_array_equal(b.copy_to_host(), before[j])


@needs_cuda
@pytest.mark.parametrize("strategy", STRATEGIES, indirect=True)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_results_outlive_later_calls(cell, strategy):
    """Intermediates live in scratch buffers reused by the next call of the same shape; what a call hands
    out (device trace, device gradients, zero initial states made on the device) is never among them."""
    cuda = gcuda.cuda_module()
    dev = lambda a: None if a is None else cuda.to_device(a)  # noqa: E731
    calls = []
    for seed in (8, 9):
        p, x, h0, c0, dh, dc = problem = make_problem(cell, **SHAPE, seed=seed)
        pd = gradlab.Params(**{k: dev(v) for k, v in p.arrays().items()})
        tr = gradlab.forward(cell, pd, dev(x), backend="cuda")
        calls.append((problem, tr, gradlab.backward(cell, pd, tr, dev(dh), backend="cuda")))
    for (p, x, h0, c0, dh, dc), tr, g in calls:
        t_ref = gradlab.forward(cell, p, x, backend="numpy")
        g_ref = gradlab.backward(cell, p, t_ref, dh, backend="numpy")
        np.testing.assert_allclose(tr.h.copy_to_host(), t_ref.h, rtol=1e-10, atol=1e-12)
        assert not tr.h0.copy_to_host().any()
        for name in FIELDS:
            if getattr(g_ref, name) is not None:
                np.testing.assert_allclose(getattr(g, name).copy_to_host(), getattr(g_ref, name), rtol=1e-10,
                                           atol=1e-12, err_msg=name)


@needs_cuda
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_trace_from_another_backend(cell):
    """The cuda backward runs on a trace computed by the cpu backend (copied to the device once)."""
    p, x, h0, c0, dh, dc = make_problem(cell, **SHAPE, seed=3)
    tr = gradlab.forward(cell, p, x, h0, c0, backend="cpu")
    g = gradlab.backward(cell, p, tr, dh, dc, backend="cuda")
    g_ref = gradlab.backward(cell, p, tr, dh, dc, backend="numpy")
    for name in FIELDS:
        if getattr(g_ref, name) is not None:
            np.testing.assert_allclose(getattr(g, name), getattr(g_ref, name), rtol=1e-10, atol=1e-12, err_msg=name)


@needs_cuda
@pytest.mark.parametrize("cell", ["gru_cudnn", "lstm"])
def test_deterministic(cell):
    """Two runs give bit-identical results (fixed-order reductions, no atomics)."""
    problem = make_problem(cell, **SHAPE, dtype=np.float32, seed=5)
    g1 = run(cell, "cuda", problem, clip_step=0.3)[1]
    g2 = run(cell, "cuda", problem, clip_step=0.3)[1]
    for name in FIELDS:
        a, b = getattr(g1, name), getattr(g2, name)
        if a is not None:
            assert a.tobytes() == b.tobytes(), name


@needs_cuda
def test_explosion_gives_inf_and_nan_records():
    """Exploding runs produce inf/nan records where the reference does, never an exception."""
    cell = "rnn_relu"
    p, x, h0, c0, dh, dc = make_problem(cell, T=40, B=2, D=3, H=4, seed=2, scale=60.0)
    with np.errstate(all="ignore"):
        tr_ref = gradlab.forward(cell, p, x * 100, h0, c0, backend="numpy")
        g_ref = gradlab.backward(cell, p, tr_ref, dh, dc, backend="numpy")
        tr = gradlab.forward(cell, p, x * 100, h0, c0, backend="cuda")
        g = gradlab.backward(cell, p, tr, dh, dc, backend="cuda")
    np.testing.assert_array_equal(np.isfinite(g.dh_norm), np.isfinite(g_ref.dh_norm))


# ---------------------------------------------------------------------------
# Bad inputs given as device arrays (NumPy inputs: tests/test_validate.py, which
# runs every check on every backend, this one included)
# ---------------------------------------------------------------------------


@needs_cuda
def test_bad_device_arrays():
    cuda = gcuda.cuda_module()
    p, x, h0, c0, dh, dc = make_problem("lstm", **SHAPE, seed=1)
    pd = gradlab.Params(**{k: cuda.to_device(v) for k, v in p.arrays().items()})
    with pytest.raises(ValueError, match=r"^x: expected shape"):
        gradlab.forward("lstm", pd, cuda.to_device(np.ascontiguousarray(x[:, :, :2])), backend="cuda")
    with pytest.raises(TypeError, match=r"^x: dtype float32 does not match"):
        gradlab.forward("lstm", pd, cuda.to_device(x.astype(np.float32)), backend="cuda")
    with pytest.raises(TypeError, match=r"^params.W_x: dtype float32"):
        gradlab.forward("lstm", gradlab.Params(cuda.to_device(p.W_x.astype(np.float32)), pd.W_h, pd.b), x,
                        backend="cuda")
    with pytest.raises(ValueError, match=r"^h0: expected 2 dimensions"):
        gradlab.forward("lstm", pd, cuda.to_device(x), cuda.to_device(h0[0]), backend="cuda")
    with pytest.raises(ValueError, match=r"^h0: device arrays must be C-contiguous"):
        gradlab.forward("lstm", pd, cuda.to_device(x), cuda.to_device(np.repeat(h0, 2, axis=1))[:, ::2], backend="cuda")
    xb = x.copy()
    xb[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"^x: expected finite values, found 1 non-finite .*\(1, 2, 0\)"):
        gradlab.forward("lstm", pd, cuda.to_device(xb), backend="cuda")
    tr = gradlab.forward("lstm", pd, cuda.to_device(x), backend="cuda")
    with pytest.raises(ValueError, match=r"^dh: .*axis 1 should be 5"):
        gradlab.backward("lstm", pd, tr, cuda.to_device(np.ascontiguousarray(dh[:, :4])), backend="cuda")
    with pytest.raises(ValueError, match=r"^dc_last: expected finite"):
        bad = dc.copy()
        bad[0, 0] = np.inf
        gradlab.backward("lstm", pd, tr, cuda.to_device(dh), cuda.to_device(bad), backend="cuda")
    # device arrays are checked together: the error names the first bad one, in argument order
    W_bad = p.W_h.copy()
    W_bad[3, 1] = -np.inf
    pbad = gradlab.Params(pd.W_x, cuda.to_device(W_bad), pd.b)
    with pytest.raises(ValueError, match=r"^params.W_h: expected finite values, found 1 non-finite .*\(3, 1\)"):
        gradlab.forward("lstm", pbad, cuda.to_device(xb), backend="cuda")
    with pytest.raises(ValueError, match=r"^dh: expected finite values, found 2 non-finite"):
        dh_bad = dh.copy()
        dh_bad[0, 0, 0] = dh_bad[-1, -1, -1] = np.nan
        gradlab.backward("lstm", pd, tr, cuda.to_device(dh_bad), backend="cuda")


# ---------------------------------------------------------------------------
# Without a driver, without numba-cuda
# ---------------------------------------------------------------------------


def _python(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=300, cwd=ROOT)


NO_DRIVER = """
    import numpy as np, gradlab
    from numba import cuda
    if cuda.is_available():
        print("HAS-GPU")
        raise SystemExit(0)
    p = gradlab.init_params("gru", 2, 3)
    try:
        gradlab.forward("gru", p, np.zeros((2, 1, 2)), backend="cuda")
    except RuntimeError as err:
        print("RuntimeError:", err)
"""


def test_no_driver_raises_a_clear_error():
    """Without the simulator and without a GPU, backend='cuda' says why, and gradlab still imports."""
    out = _python(NO_DRIVER, NUMBA_ENABLE_CUDASIM="0")
    assert out.returncode == 0, out.stderr
    if "HAS-GPU" in out.stdout:
        pytest.skip("a CUDA GPU is present: the no-driver error cannot be provoked here")
    assert "RuntimeError: backend 'cuda' is not available: no CUDA driver or GPU found" in out.stdout, out.stdout
    assert "NUMBA_ENABLE_CUDASIM=1" in out.stdout


NO_NUMBA_CUDA = """
    import sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "numba.cuda" or name.startswith("numba.cuda.") or name.startswith("numba_cuda"):
                raise ImportError("blocked: " + name)
    sys.meta_path.insert(0, Block())
    import numpy as np, gradlab
    assert "cuda" in gradlab.available_backends()
    p = gradlab.init_params("rnn_tanh", 2, 3)
    try:
        gradlab.forward("rnn_tanh", p, np.zeros((2, 1, 2)), backend="cuda")
    except RuntimeError as err:
        print("RuntimeError:", err)
"""


def test_import_without_numba_cuda():
    out = _python(NO_NUMBA_CUDA)
    assert out.returncode == 0, out.stderr
    assert "RuntimeError: backend 'cuda' is not available: numba.cuda cannot be imported" in out.stdout, out.stdout
    assert "gradlab[cuda]" in out.stdout


# ---------------------------------------------------------------------------
# The GPU comparison script's code path, at a tiny size (so it cannot rot)
# ---------------------------------------------------------------------------


@needs_cuda
def test_gpu_check_script_tiny(tmp_path):
    """scripts/gpu_check.sh runs every step (tests, comparison, breakdown, step latency) at a tiny size."""
    if not SIM:
        pytest.skip("the tiny run is the simulator's; on a GPU run scripts/gpu_check.sh itself")
    measured = (ROOT / "reports" / "performance" / "gpu.md").read_bytes()
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_TINY": "1", "GPU_CHECK_BREAKDOWN": "1",
           "OUT": str(tmp_path / "out"), "GPU_CHECK_REPORTS": str(tmp_path / "reports")}
    out = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True, env=env,
                         timeout=900, cwd=ROOT)
    assert out.returncode == 0 and "done: tests 0, comparison 0" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
    assert (ROOT / "reports" / "performance" / "gpu.md").read_bytes() == measured  # the measured table stays
    md = (tmp_path / "reports" / "gpu.md").read_text(encoding="utf-8")
    assert "| cell |" in md and "gradlab-cuda" in md
    csv = (tmp_path / "reports" / "gpu.csv").read_text(encoding="utf-8")
    assert "gradlab-cuda" in csv and "gradlab-cpu" in csv
    assert re.search(r"\b4 passed\b", (tmp_path / "out" / "gpu_tests.log").read_text(encoding="utf-8"))
    breakdown, latency = (tmp_path / "out" / "gpu_breakdown.txt").read_text(encoding="utf-8").split("LSTM forward, ")
    check_breakdown(breakdown)
    check_step_latency(latency)


@needs_cuda
def test_gpu_compare_runs_the_time_loop_asked_for(tmp_path):
    """``gpu_compare.py --strategy`` times gradlab cuda under that loop and says so (the header, ``path``)."""
    if not SIM:
        pytest.skip("the tiny run is the simulator's")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_compare.py"), "--tiny", "--cells", "lstm",
                          "--dtypes", "float64", "--strategy", "stepwise", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    md = (tmp_path / "gpu.md").read_text(encoding="utf-8")
    assert "asked for: `stepwise`" in md
    assert re.search(r"\| lstm \| float64 \| 3 \| 2 \| 4 \| gradlab-cuda \| stepwise \| \d", md), md
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_compare.py"), "--strategy", "fastest"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode == 2 and "--strategy: invalid choice: 'fastest'" in bad.stderr


def check_breakdown(text):
    """The tables of ``gpu_breakdown.py --tiny``: every column measured (torch may be absent)."""
    tables = [[line for line in block.splitlines() if line.startswith("| ") and line[2:3].isalpha()][1:]
              for block in text.split("\n\n")]
    rows, loops, steps, prods = tables[0], tables[1], tables[2], tables[3]
    assert [r.split(" | ")[0][2:] for r in rows] == ["rnn_tanh", "lstm"], text
    for r in rows:
        cells = r.strip("| ").split(" | ")
        assert all(float(v) > 0 for v in cells[4:11]), r
    assert [r.split(" | ")[0][2:] for r in loops] == ["lstm"], text
    for r in loops:  # the tiny shape allows all four time loops
        cells = r.strip("| ").split(" | ")
        assert all(float(v) > 0 for v in cells[4:8]) and cells[8] == "register", r
        assert float(cells[9]) < 1e-5, r  # the loops agree
    plans = [r.strip("| ").split(" | ") for r in steps]  # two settings, the second cuts K into more parts
    assert len(plans) == 2 and plans[0][5] != plans[1][5] and all(float(c[7]) > 0 for c in plans), text
    assert float(plans[0][8]) == 0 and float(plans[1][8]) < 1e-5, text
    assert len(prods) == 5 and all(float(r.strip("| ").split(" | ")[5]) > 0 for r in prods), text
    assert "host time per launch" in text
    profile = [block for block in text.split("\n\n") if block.startswith("host profile of forward + backward")]
    assert len(profile) == 1, text
    calls = [line.strip("| ").split(" | ") for line in profile[0].splitlines()[3:]]
    assert len(calls) == 5 and all(float(c[2]) > 0 and float(c[3]) >= float(c[2]) for c in calls), profile


def check_step_latency(text):
    """The table of ``gpu_step_latency.py --tiny``: every piece of a step timed."""
    rows = dict(line.strip("| ").split(" | ") for line in text.splitlines() if line.startswith("| ")
                and not line.startswith("| piece") and not line.startswith("|---"))
    register = [f"register loop, {d} step, loads {n} ahead" for n in (1, 2) for d in ("forward", "backward")]
    assert list(rows) == ["barriers", "product", "gate math", "memory", "full step", *register], text
    assert all(float(v) > 0 for v in rows.values()), rows


# ---------------------------------------------------------------------------
# Real GPU only: realistic shapes, both strategies, bit-for-bit determinism
# ---------------------------------------------------------------------------


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("strategy", ["auto", *STRATEGIES], indirect=True)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
def test_gpu_agrees_at_real_shapes(cell, dtype, strategy):
    for T, B, D, H in ((30, 7, 20, 40), (6, 67, 33, 300)):
        if strategy in ("register", "persistent") and H > 256:
            continue
        assert_agree(cell, make_problem(cell, T, B, D, H, dtype=dtype, seed=7, scale=1.1), dtype, clip_step=0.5)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", [c for c in CELLS if c != "gru"])
def test_gpu_register_loop_at_h128(cell, dtype, monkeypatch):
    """The register loop at H = 128, past what "auto" gives it: in float32 the LSTM and cuDNN GRU keep part of
    W_h in opt-in shared memory (over 48 KB a block); where that does not fit (float64 LSTM and cuDNN GRU),
    "register" plans as "persistent" does."""
    from gradlab.kernels import _cuda_register as R

    T, B, D, H = 12, 5, 16, 128
    size = np.dtype(dtype).itemsize
    G = gradlab.CELLS[cell].num_gates
    K_, _ = gcuda._ker(dtype)
    monkeypatch.setattr(gcuda, "STRATEGY", "register")
    plan = gcuda._plan(K_, get_cell(cell), B, H, size, backward=True)
    if size == 8 and cell in ("lstm", "gru_cudnn"):
        assert plan[0] != "register"
    else:
        assert plan[0] == "register"
        if size == 4 and cell in ("lstm", "gru_cudnn"):
            assert plan[3] < H and R.shared_bytes(size, G, H, plan[3], True) > gcuda.SHARED_LIMIT
    assert_agree(cell, make_problem(cell, T, B, D, H, dtype=dtype, seed=9, scale=1.1), dtype, clip_step=0.5)


@gpu
@pytest.mark.gpu
def test_gpu_output_pool_reuses_only_dropped_outputs():
    """Outputs still held keep their memory (a later call gets other memory, and the held values stay); once
    dropped, their memory serves the next call of the size."""
    cuda = gcuda.cuda_module()
    p, x, h0, c0, dh, dc = make_problem("lstm", 5, 3, 4, 6, dtype=np.float32, seed=3)
    pd = gradlab.Params(**{k: None if v is None else cuda.to_device(v) for k, v in p.arrays().items()})
    xd, dhd = cuda.to_device(x), cuda.to_device(dh)
    addr = lambda a: a.gpu_data.owner.device_pointer_value  # noqa: E731 (the start of the buffer a lies in)

    def call():
        return gradlab.backward("lstm", pd, gradlab.forward("lstm", pd, xd, backend="cuda"), dhd, backend="cuda")

    held = call()
    before = {f: getattr(held, f).copy_to_host() for f in FIELDS if getattr(held, f) is not None}
    others = [call() for _ in range(3)]
    assert addr(held.W_h) not in {addr(g.W_h) for g in others}
    for f, v in before.items():
        np.testing.assert_array_equal(getattr(held, f).copy_to_host(), v, err_msg=f)
    spare = {addr(g.W_h) for g in others}
    del others
    assert addr(call().W_h) in spare


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("cell", CELLS)
def test_gpu_deterministic(cell):
    problem = make_problem(cell, 20, 33, 24, 130, dtype=np.float32, seed=1)
    for strategy in STRATEGIES:
        if strategy == "cooperative" and cooperative_missing():
            continue
        gcuda.STRATEGY = strategy
        try:
            g1 = run(cell, "cuda", problem, clip_step=0.3)[1]
            g2 = run(cell, "cuda", problem, clip_step=0.3)[1]
        finally:
            gcuda.STRATEGY = "auto"
        for name in FIELDS:
            a, b = getattr(g1, name), getattr(g2, name)
            if a is not None:
                assert a.tobytes() == b.tobytes(), (strategy, name)


@needs_cuda
@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_host_backends_reject_device_arrays(backend):
    """A device array handed to a host backend is a clear TypeError naming the argument."""
    cuda = gcuda.cuda_module()
    p, x, h0, c0, dh, dc = make_problem("lstm", **SHAPE, seed=2)
    with pytest.raises(TypeError, match="x: backend .* takes NumPy arrays"):
        gradlab.forward("lstm", p, cuda.to_device(x), backend=backend)
    pd = gradlab.Params(W_x=p.W_x, W_h=cuda.to_device(p.W_h), b=p.b)
    with pytest.raises(TypeError, match="params.W_h: backend"):
        gradlab.forward("lstm", pd, x, backend=backend)
    tr = gradlab.forward("lstm", p, x, h0, c0, backend=backend)
    with pytest.raises(TypeError, match="dh: backend"):
        gradlab.backward("lstm", p, tr, cuda.to_device(dh), backend=backend)



@needs_cuda
@pytest.mark.parametrize(("dtype", "steps"), [(np.float32, 3), (np.float64, 4)])
def test_reciprocal_without_division(dtype, steps):
    """The division-free 1/d of the GPU sigmoid, over [1, 2] in the argument's precision: within one ulp with
    the steps the sigmoid takes (here without the GPU's fused multiply-adds, which only round less), and
    not with one step fewer; nan propagates."""
    from gradlab.kernels._cuda_kernels import reciprocal_1_2

    tiny = np.finfo(dtype).smallest_subnormal
    e = np.concatenate([np.linspace(0, 1, 1_000_001), np.geomspace(tiny, 1, 10_000)]).astype(dtype)
    d = dtype(1) + e
    exact = 1 / d.astype(np.longdouble)
    args = (dtype(24 / 17), dtype(8 / 17), dtype(1))
    r = reciprocal_1_2(d, *args, steps)
    assert r.dtype == dtype
    assert np.abs((r - exact) / exact).max() < np.finfo(dtype).eps
    assert np.abs((reciprocal_1_2(d, *args, steps - 1) - exact) / exact).max() > 100 * np.finfo(dtype).eps
    assert np.isnan(reciprocal_1_2(dtype(np.nan), *args, steps))


@needs_cuda
def test_register_kernels_refuse_what_they_do_not_run():
    from gradlab.kernels import _cuda_register

    with pytest.raises(ValueError, match="register loop runs the cells .* got 'gru'"):
        _cuda_register.register_kernels(np.float32, "gru", 8, 3)
    with pytest.raises(ValueError, match="H = 129"):
        _cuda_register.register_kernels(np.float32, "lstm", 129, 4)
    for hr in (0, 6, 9):
        with pytest.raises(ValueError, match=f"hr: expected H = 8 or a multiple of 4 from 4 to H - 1, got {hr}"):
            _cuda_register.register_kernels(np.float32, "lstm", 8, 4, 1, hr)
    with pytest.raises(ValueError, match="ahead: expected 1 or 2, got 3"):
        _cuda_register.register_kernels(np.float32, "lstm", 8, 4, 3)
