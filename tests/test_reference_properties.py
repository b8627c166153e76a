"""Properties of forward and BPTT that hold for every cell, shape, dtype and backend."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradlab
from conftest import make_problem

CELLS = gradlab.CELL_NAMES
BACKENDS = gradlab.available_backends()
backends = st.sampled_from(BACKENDS)
shapes = st.tuples(
    st.integers(1, 7), st.integers(1, 4), st.integers(1, 5), st.integers(1, 6)
)  # T, B, D, H


@given(cell=st.sampled_from(CELLS), shape=shapes, seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float32, np.float64]), backend=backends)
def test_shapes_dtypes_and_records(cell, shape, seed, dtype, backend):
    T, B, D, H = shape
    spec = gradlab.CELLS[cell]
    p, x, h0, c0, dh, dc_last = make_problem(cell, T, B, D, H, dtype=dtype, seed=seed)
    tr = gradlab.forward(cell, p, x, h0, c0, backend=backend)
    g = gradlab.backward(cell, p, tr, dh, dc_last, backend=backend)
    assert tr.h.shape == (T, B, H) and tr.h.dtype == dtype
    assert (tr.c is not None) == spec.has_cell_state
    expected = {"W_x": p.W_x.shape, "W_h": p.W_h.shape, "b": p.b.shape, "x": x.shape, "h0": h0.shape, "dh_norm": (T, B)}
    if spec.has_b_hn:
        expected["b_hn"] = (H,)
    if spec.has_cell_state:
        expected.update(c0=(B, H), dc_norm=(T, B))
    for name, shp in expected.items():
        a = getattr(g, name)
        assert a.shape == shp and a.dtype == dtype, (name, a.shape, a.dtype)
    for name in {"b_hn", "c0", "dc_norm"} - set(expected):
        assert getattr(g, name) is None
    # at the last step nothing flows back from the future: the total is the outside gradient
    np.testing.assert_allclose(g.dh_norm[-1], np.linalg.norm(dh[-1], axis=1), rtol=1e-5 if dtype == np.float32 else 1e-13)
    assert np.all(g.dh_norm >= 0)


@given(cell=st.sampled_from(CELLS), shape=shapes, seed=st.integers(0, 2**16), backend=backends)
def test_backward_is_linear_in_the_outside_gradient(cell, shape, seed, backend):
    """Without clipping, BPTT is linear in (dh, dc_last): g(2·dh1 - dh2) = 2·g(dh1) - g(dh2)."""
    T, B, D, H = shape
    p, x, h0, c0, dh1, dc1 = make_problem(cell, T, B, D, H, seed=seed)
    rng = np.random.default_rng(seed + 1)
    dh2 = rng.normal(size=dh1.shape)
    dc2 = None if dc1 is None else rng.normal(size=dc1.shape)
    tr = gradlab.forward(cell, p, x, h0, c0, backend=backend)
    g1 = gradlab.backward(cell, p, tr, dh1, dc1, backend=backend)
    g2 = gradlab.backward(cell, p, tr, dh2, dc2, backend=backend)
    g3 = gradlab.backward(cell, p, tr, 2 * dh1 - dh2, None if dc1 is None else 2 * dc1 - dc2, backend=backend)
    for name in ("W_x", "W_h", "b", "b_hn", "x", "h0", "c0"):
        a1, a2, a3 = getattr(g1, name), getattr(g2, name), getattr(g3, name)
        if a1 is not None:
            np.testing.assert_allclose(a3, 2 * a1 - a2, rtol=1e-9, atol=1e-11)


@given(cell=st.sampled_from(CELLS), shape=shapes, seed=st.integers(0, 2**16), backend=backends)
def test_directional_derivative(cell, shape, seed, backend):
    """<∇L, v> equals the central difference of L along a random direction v of every input at once."""
    T, B, D, H = shape
    p, x, h0, c0, dh, dc_last = make_problem(cell, T, B, D, H, seed=seed)
    rng = np.random.default_rng(seed + 2)
    tr = gradlab.forward(cell, p, x, h0, c0, backend=backend)
    g = gradlab.backward(cell, p, tr, dh, dc_last, backend=backend)
    point = {"W_x": p.W_x, "W_h": p.W_h, "b": p.b, "b_hn": p.b_hn, "x": x, "h0": h0, "c0": c0}
    point = {k: v for k, v in point.items() if v is not None}
    v = {k: rng.normal(size=a.shape) for k, a in point.items()}

    def L(eps):
        q = {k: a + eps * v[k] for k, a in point.items()}
        params = gradlab.Params(q["W_x"], q["W_h"], q["b"], q.get("b_hn"))
        t = gradlab.forward(cell, params, q["x"], q["h0"], q.get("c0"), backend=backend)
        out = np.sum(dh * t.h)
        return out + (np.sum(dc_last * t.c[-1]) if dc_last is not None else 0.0)

    eps = 1e-6
    fd = (L(eps) - L(-eps)) / (2 * eps)
    analytic = sum(float(np.sum(getattr(g, k) * v[k])) for k in point)
    if cell == "rnn_relu":
        # a kink inside the difference makes the central difference meaningless; skip such draws
        pre = np.concatenate([h0[None], tr.h[:-1]]) @ p.W_h.T + x @ p.W_x.T + p.b
        if np.abs(pre).min() < 1e-4:
            return
    assert abs(fd - analytic) <= 1e-6 * max(1.0, abs(analytic))


@given(cell=st.sampled_from(CELLS), shape=shapes, seed=st.integers(0, 2**16), split=st.integers(1, 6), backend=backends)
def test_forward_splits_in_time(cell, shape, seed, split, backend):
    """Running x[:k] then x[k:] from the carried state gives the states of one run over x."""
    T, B, D, H = shape
    T = T + 1
    k = min(split, T - 1)
    p, x, h0, c0, _, _ = make_problem(cell, T, B, D, H, seed=seed)
    full = gradlab.forward(cell, p, x, h0, c0, backend=backend)
    a = gradlab.forward(cell, p, x[:k], h0, c0, backend=backend)
    b = gradlab.forward(cell, p, x[k:], a.h[-1], a.c_last, backend=backend)
    # equal up to the rounding of the input projection, whose BLAS blocking may depend on T
    np.testing.assert_allclose(np.concatenate([a.h, b.h]), full.h, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_float32_matches_float64(cell, backend):
    """float32 states and gradients agree with float64 to what float32 allows, and stay float32."""
    p64, x, h0, c0, dh, dc_last = make_problem(cell, T=20, B=4, D=5, H=8, seed=1)
    args32 = [None if a is None else a.astype(np.float32) for a in (x, h0, c0, dh, dc_last)]
    p32 = gradlab.Params(*[None if a is None else a.astype(np.float32) for a in (p64.W_x, p64.W_h, p64.b, p64.b_hn)])
    t64 = gradlab.forward(cell, p64, x, h0, c0, backend=backend)
    g64 = gradlab.backward(cell, p64, t64, dh, dc_last, backend=backend)
    t32 = gradlab.forward(cell, p32, args32[0], args32[1], args32[2], backend=backend)
    g32 = gradlab.backward(cell, p32, t32, args32[3], args32[4], backend=backend)
    for arr in (t32.h, t32.gates, t32.c, t32.hn):
        assert arr is None or arr.dtype == np.float32
    np.testing.assert_allclose(t32.h, t64.h, rtol=1e-4, atol=1e-5)
    for name in ("W_x", "W_h", "b", "b_hn", "x", "h0", "c0", "dh_norm", "dc_norm"):
        a32, a64 = getattr(g32, name), getattr(g64, name)
        if a64 is None:
            assert a32 is None
            continue
        assert a32.dtype == np.float32, name
        scale = np.abs(a64).max()
        assert np.abs(a32 - a64).max() <= 1e-4 * scale, name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_exploding_relu_and_large_inputs_stay_ieee(cell, backend):
    """Huge weights give inf/nan or saturation, never an exception: explosion studies must see them."""
    p, x, h0, c0, dh, dc_last = make_problem(cell, T=50, B=2, D=3, H=4, seed=2, scale=40.0)
    with np.errstate(all="ignore"):
        tr = gradlab.forward(cell, p, x * 50, h0, c0, backend=backend)
        g = gradlab.backward(cell, p, tr, dh, dc_last, backend=backend)
    assert g.dh_norm.shape == (50, 2)
    if cell == "rnn_relu":
        assert not np.isfinite(g.dh_norm[0]).all() or g.dh_norm[0].max() > 1e30
