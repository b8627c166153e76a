"""The Numba CPU backend against the NumPy reference: every cell, dtype, record and option."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradlab
from conftest import make_problem
from gradlab.kernels import cpu

CELLS = gradlab.CELL_NAMES
FIELDS = ("W_x", "W_h", "b", "b_hn", "x", "h0", "c0", "dh_norm", "dc_norm")
TOL = {np.float64: 1e-10, np.float32: 2e-4}


def run(cell, backend, problem, clip_step=None):
    p, x, h0, c0, dh, dc_last = problem
    tr = gradlab.forward(cell, p, x, h0, c0, backend=backend)
    return tr, gradlab.backward(cell, p, tr, dh, dc_last, backend=backend, clip_step=clip_step)


def assert_agree(cell, problem, dtype, clip_step=None):
    t_ref, g_ref = run(cell, "numpy", problem, clip_step)
    t_cpu, g_cpu = run(cell, "cpu", problem, clip_step)
    assert t_cpu.backend == "cpu"
    tol = TOL[dtype]
    for name in ("h", "c", "gates", "hn"):
        a, b = getattr(t_cpu, name), getattr(t_ref, name)
        assert (a is None) == (b is None), name
        if b is not None:
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max(), err_msg=name)
    for name in FIELDS:
        a, b = getattr(g_cpu, name), getattr(g_ref, name)
        assert (a is None) == (b is None), name
        if b is not None:
            assert a.dtype == dtype and a.shape == b.shape, name
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max(), err_msg=f"{cell}.{name}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("clip_step", [None, 0.25])
def test_agrees_with_reference(cell, dtype, clip_step):
    problem = make_problem(cell, T=9, B=3, D=4, H=5, dtype=dtype, seed=4, scale=1.2)
    assert_agree(cell, problem, dtype, clip_step)


@pytest.fixture
def threads():
    """Set Numba's thread count for one test and restore it afterwards."""
    import numba

    before = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(before)


@pytest.mark.parametrize("cell", CELLS)
def test_parallel_chunks_agree_with_serial_bit_for_bit(cell, threads):
    """Batch chunks on two threads give the reference's results and the one-thread results exactly."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.fail("the parallel kernels need at least two Numba threads to be tested")
    problem = make_problem(cell, T=6, B=5, D=3, H=6, seed=9)
    threads(2)
    assert len(cpu._chunks(5)) == 3
    assert_agree(cell, problem, np.float64, clip_step=0.5)
    parallel = run(cell, "cpu", problem, clip_step=0.5)
    threads(1)
    assert len(cpu._chunks(5)) == 2
    serial = run(cell, "cpu", problem, clip_step=0.5)
    for name in ("h", "c", "gates"):
        a, b = getattr(parallel[0], name), getattr(serial[0], name)
        assert a is None or np.array_equal(a, b), name
    for name in FIELDS:
        a, b = getattr(parallel[1], name), getattr(serial[1], name)
        assert a is None or np.array_equal(a, b), name


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_deterministic(cell, dtype):
    """Two runs on the same inputs give bit-identical results."""
    problem = make_problem(cell, T=12, B=4, D=3, H=7, dtype=dtype, seed=5)
    g1 = run(cell, "cpu", problem, clip_step=0.3)[1]
    g2 = run(cell, "cpu", problem, clip_step=0.3)[1]
    for name in FIELDS:
        a, b = getattr(g1, name), getattr(g2, name)
        if a is not None:
            assert a.tobytes() == b.tobytes(), name


@given(cell=st.sampled_from(CELLS), shape=st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 5), st.integers(1, 6)),
       seed=st.integers(0, 2**16))
def test_agrees_on_any_shape(cell, shape, seed):
    T, B, D, H = shape
    assert_agree(cell, make_problem(cell, T, B, D, H, seed=seed), np.float64)


def test_default_backend_is_cpu():
    assert gradlab.default_backend() == "cpu"
    p, x, h0, c0, dh, dc = make_problem("rnn_tanh")
    assert gradlab.forward("rnn_tanh", p, x).backend == "cpu"


@pytest.mark.parametrize("cell", CELLS)
def test_explosion_gives_inf_and_nan_records(cell):
    """Exploding runs produce inf/nan records, exactly where the reference does, never an exception."""
    p, x, h0, c0, dh, dc_last = make_problem(cell, T=60, B=2, D=3, H=4, seed=2, scale=60.0)
    with np.errstate(all="ignore"):
        tr_ref = gradlab.forward(cell, p, x * 100, h0, c0, backend="numpy")
        g_ref = gradlab.backward(cell, p, tr_ref, dh, dc_last, backend="numpy")
        tr = gradlab.forward(cell, p, x * 100, h0, c0, backend="cpu")
        g = gradlab.backward(cell, p, tr, dh, dc_last, backend="cpu")
    np.testing.assert_array_equal(np.isfinite(g.dh_norm), np.isfinite(g_ref.dh_norm))
    if cell == "rnn_relu":
        assert not np.isfinite(g.dh_norm[0]).all() or g.dh_norm[0].max() > 1e50


EDGES = np.array([0.0, -0.0, 1e-300, -1e-300, 1e-8, -1e-8, 0.1, -0.1, 0.2499, 0.25, -0.25, 0.2501, 1.0, -1.0,
                  5.0, -19.0, 20.0, 36.0, -36.0, 300.0, -300.0, 700.0, -700.0, 708.0, -708.0, 709.5, -709.5,
                  710.0, -710.0, 745.0, -745.0, 800.0, -800.0, 1e300, -1e300, np.inf, -np.inf, np.nan])


def _apply(fn, values):
    from numba import njit

    @njit(**cpu.JIT)
    def loop(a, out):  # the same vectorised setting the kernels compile with
        for i in range(a.size):
            out[i] = fn(a[i])

    out = np.empty_like(values)
    loop(values, out)
    return out


def _sigmoid_exact(z):
    with np.errstate(all="ignore"):
        return np.where(z >= 0, 1 / (1 + np.exp(-z)), np.exp(z) / (1 + np.exp(z)))


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_pointwise_transcendentals(name):
    """Within a few ulp of NumPy everywhere, signs of zero aside; inf and nan handled like NumPy."""
    from gradlab.kernels import pointwise

    rng = np.random.default_rng(0)
    values = np.concatenate([EDGES, rng.uniform(-30, 30, 20000), rng.uniform(-0.5, 0.5, 20000),
                             10.0 ** rng.uniform(-12, 2.5, 5000) * rng.choice([-1, 1], 5000)])
    got = _apply(getattr(pointwise, name), values)
    want = np.tanh(values) if name == "tanh" else _sigmoid_exact(values)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    ok = ~nan
    big = np.abs(want[ok]) > 1e-300  # σ(z) for z < -708 is flushed to zero: absolute error < 1e-307
    rel = np.abs(got[ok][big] - want[ok][big]) / np.abs(want[ok][big])
    assert rel.max() <= 1e-15, values[ok][big][rel.argmax()]  # under 5 ulp
    assert np.abs(got[ok][~big] - want[ok][~big]).max(initial=0.0) <= 1e-307


def test_exp_nonpos():
    from gradlab.kernels import pointwise

    x = np.concatenate([-np.abs(EDGES[np.isfinite(EDGES)]), -np.random.default_rng(1).uniform(0, 708, 50000)])
    got = _apply(pointwise.exp_nonpos, x)
    want = np.exp(x)
    normal = want >= np.finfo(np.float64).tiny
    assert (np.abs(got[normal] - want[normal]) / want[normal]).max() <= 4e-16
    assert np.all(got[~normal] == 0.0)
    assert np.isnan(_apply(pointwise.exp_nonpos, np.array([np.nan])))[0]
    assert _apply(pointwise.exp_nonpos, np.array([-np.inf]))[0] == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pointwise_clip_and_constants_keep_the_data_precision(dtype):
    """clip: [-bound, bound], nan kept, ±inf to the bound; the gate equations return the data's dtype."""
    from numba import njit

    from gradlab.kernels import pointwise

    v = np.array([-np.inf, -3.0, -0.5, -0.0, 0.25, 0.5, 0.75, 3.0, np.inf, np.nan], dtype)
    bound = dtype(0.5)
    clip = njit(lambda v, b: pointwise.clip(v, b))
    got = np.array([clip(x, bound) for x in v], dtype)
    want = np.clip(v, -bound, bound)
    np.testing.assert_array_equal(got, want)  # (np.clip keeps nan too)
    assert clip(v[3], bound) == 0.0 and clip(v[4], bound) == v[4]
    x = dtype(0.3)
    for fn, args in ((pointwise.tanh_backward, 2), (pointwise.gru_mix, 3), (pointwise.relu_backward, 2),
                     (pointwise.lstm_backward, 8), (pointwise.gru_cudnn_backward, 6)):
        fn(*[x] * args)
        name = np.dtype(dtype).name  # (numba hands scalars back as Python floats: ask it for the return type)
        ret = next(s.return_type for s in fn.nopython_signatures if all(str(a) == name for a in s.args))
        types = ret.types if hasattr(ret, "types") else (ret,)
        assert all(str(t) == name for t in types), (fn.__name__, ret)


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "lstm"])
def test_recording_does_not_change_gradients(cell):
    """The benchmark-only ``record=False`` path computes exactly the same gradients."""
    p, x, h0, c0, dh, dc_last = make_problem(cell, T=7, B=3, D=4, H=5, seed=8)
    spec = gradlab.CELLS[cell]
    tr = gradlab.forward(cell, p, x, h0, c0, backend="cpu")
    with_records = cpu.backward(spec, p, tr, dh, dc_last, None)
    without = cpu.backward(spec, p, tr, dh, dc_last, None, record=False)
    for name in ("W_x", "W_h", "b", "x", "h0", "c0"):
        a, b = getattr(with_records, name), getattr(without, name)
        assert a is None or np.array_equal(a, b), name


@pytest.mark.parametrize("shape", [(1, 32, 128), (3, 5, 7), (64, 128, 512), (1, 1, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_small_loops_and_blas(shape, dtype):
    """The kernels' product: loops below SMALL_MATMUL multiply-adds, BLAS above; both equal a @ b."""
    m, n, p = shape
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(m, n)).astype(dtype), rng.normal(size=(n, p)).astype(dtype)
    out = np.full((m, p), np.nan, dtype)
    cpu.matmul(a, b, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 7, 33])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sum_squares(n, dtype):
    """The norm records' reduction equals the sum of squares, in float64, and propagates inf and nan."""
    v = np.random.default_rng(n).normal(size=n).astype(dtype)
    np.testing.assert_allclose(cpu.sum_squares(v), np.sum(v.astype(np.float64) ** 2), rtol=1e-14)
    if n:
        v[n // 2] = np.inf
        assert cpu.sum_squares(v) == np.inf
        v[0] = np.nan
        assert np.isnan(cpu.sum_squares(v))
