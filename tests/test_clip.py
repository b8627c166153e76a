"""gradlab.clip (SPEC §5): clip_norm, clip_value, global_norm, is_finite on Grads and dicts."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import gradlab
from gradlab.clip import NonFiniteGradientError, clip_norm, clip_value, global_norm, is_finite

T, B, D, H = 4, 2, 3, 4
PARAM_FIELDS = ("W_x", "W_h", "b", "b_hn")
OTHER_FIELDS = ("x", "h0", "c0", "dh_norm", "dc_norm")


def make_grads(cell: str, dtype=np.float64, seed: int = 0) -> gradlab.Grads:
    rng = np.random.default_rng(seed)
    params = gradlab.init_params(cell, D, H, init="uniform", scale=1.5, dtype=dtype, seed=seed)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype) if cell == "lstm" else None
    trace = gradlab.forward(cell, params, x, h0, c0, backend="numpy")
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    return gradlab.backward(cell, params, trace, dh, backend="numpy")


def make_dict(dtype=np.float64, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W": rng.standard_normal((3, 4)).astype(dtype),
        "v": rng.standard_normal(5).astype(dtype),
        "s": rng.standard_normal((2, 2, 2)).astype(dtype),
    }


def param_arrays(g) -> dict[str, np.ndarray]:
    if isinstance(g, gradlab.Grads):
        return {k: getattr(g, k) for k in PARAM_FIELDS if getattr(g, k) is not None}
    return dict(g)


def snapshot(g):
    """A deep copy to compare against after a call."""
    return copy.deepcopy(g)


def assert_same(a, b):
    """Two Grads or dicts hold equal arrays (None where None)."""
    assert type(a) is type(b)
    if isinstance(a, gradlab.Grads):
        for f in PARAM_FIELDS + OTHER_FIELDS:
            va, vb = getattr(a, f), getattr(b, f)
            assert (va is None) == (vb is None), f
            if va is not None:
                assert va.dtype == vb.dtype, f
                np.testing.assert_array_equal(va, vb, err_msg=f)
    else:
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype, k
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def manual_norm(g) -> float:
    return float(np.sqrt(sum(np.sum(np.asarray(a, np.float64) ** 2) for a in param_arrays(g).values())))


# one Grads per cell, and a dict, in both dtypes
KINDS = [f"grads-{c}" for c in gradlab.CELL_NAMES] + ["dict"]


def make(kind: str, dtype=np.float64):
    if kind == "dict":
        return make_dict(dtype)
    return make_grads(kind.removeprefix("grads-"), dtype)


# ---------------------------------------------------------------------------
# global_norm and is_finite
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_global_norm_of_grads_counts_only_parameter_gradients(cell):
    g = make_grads(cell)
    params = [g.W_x, g.W_h, g.b] + ([g.b_hn] if g.b_hn is not None else [])
    assert (g.b_hn is not None) == (cell == "gru_cudnn")
    expected = np.sqrt(sum(np.sum(a**2) for a in params))
    assert global_norm(g) == pytest.approx(expected, rel=1e-14)
    # x, h0, c0 and the records are not parameter gradients
    with_x = np.sqrt(expected**2 + np.sum(g.x**2) + np.sum(g.h0**2))
    assert global_norm(g) != pytest.approx(with_x, rel=1e-6)


def test_global_norm_includes_b_hn():
    g = make_grads("gru_cudnn")
    assert np.any(g.b_hn != 0)
    without = np.sqrt(np.sum(g.W_x**2) + np.sum(g.W_h**2) + np.sum(g.b**2))
    assert global_norm(g) > without
    assert global_norm(g) == pytest.approx(np.sqrt(without**2 + np.sum(g.b_hn**2)), rel=1e-14)


def test_global_norm_of_dict():
    d = make_dict()
    expected = np.sqrt(sum(np.sum(a**2) for a in d.values()))
    assert global_norm(d) == pytest.approx(expected, rel=1e-14)
    assert global_norm({"a": np.array([3.0, 4.0])}) == 5.0
    assert isinstance(global_norm(d), float)


def test_global_norm_float32_computed_in_float64():
    # 1e20**2 overflows float32 but not float64
    d = {"a": np.array([1e20, 1e20], np.float32)}
    assert global_norm(d) == pytest.approx(np.sqrt(2) * float(np.float32(1e20)), rel=1e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_is_finite(kind):
    g = make(kind)
    assert is_finite(g) is True
    for bad in (np.inf, -np.inf, np.nan):
        arrays = {k: a.copy() for k, a in param_arrays(g).items()}
        first = next(iter(arrays))
        arrays[first].flat[1] = bad
        broken = g.replace(**arrays) if isinstance(g, gradlab.Grads) else arrays
        assert is_finite(broken) is False


def test_is_finite_ignores_non_parameter_fields():
    g = make_grads("lstm")
    x = g.x.copy()
    x[0, 0, 0] = np.nan
    assert is_finite(g.replace(x=x)) is True


# ---------------------------------------------------------------------------
# clip_norm
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", KINDS)
def test_clip_norm_above_threshold(kind, dtype):
    g = make(kind, dtype)
    before = snapshot(g)
    norm0 = manual_norm(g)
    max_norm = 0.3 * norm0
    clipped, norm = clip_norm(g, max_norm)
    assert type(clipped) is type(g)
    assert isinstance(norm, float)
    # the returned norm is the pre-clip norm
    assert norm == pytest.approx(norm0, rel=1e-12)
    rtol = 1e-14 if dtype == np.float64 else 1e-6
    # after clipping the global norm is max_norm
    assert global_norm(clipped) == pytest.approx(max_norm, rel=10 * rtol)
    # the direction is preserved: every parameter gradient scaled by the same factor
    factor = max_norm / norm0
    for k, a in param_arrays(g).items():
        c = param_arrays(clipped)[k]
        assert c.dtype == np.dtype(dtype), k
        assert c.shape == a.shape, k
        np.testing.assert_allclose(c, a * factor, rtol=rtol, atol=0, err_msg=k)
        assert not np.shares_memory(c, a), k
    assert param_arrays(clipped).keys() == param_arrays(g).keys()
    # the input is not modified
    assert_same(g, before)


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_clip_norm_passes_non_parameter_fields_through(cell):
    g = make_grads(cell)
    clipped, _ = clip_norm(g, 1e-3 * global_norm(g))
    for f in OTHER_FIELDS:
        va, vb = getattr(g, f), getattr(clipped, f)
        assert (va is None) == (vb is None), f
        if va is not None:
            np.testing.assert_array_equal(vb, va, err_msg=f)
    assert (clipped.c0 is not None) == (cell == "lstm")
    assert (clipped.dc_norm is not None) == (cell == "lstm")
    assert (clipped.b_hn is not None) == (cell == "gru_cudnn")
    # while the parameter gradients did change
    assert not np.allclose(clipped.W_h, g.W_h)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ratio", [1.0, 2.0, 1e6])
def test_clip_norm_at_or_below_threshold_changes_nothing(kind, dtype, ratio):
    g = make(kind, dtype)
    before = snapshot(g)
    norm0 = global_norm(g)
    clipped, norm = clip_norm(g, ratio * norm0)
    assert norm == norm0
    assert_same(clipped, g)
    for k, a in param_arrays(g).items():
        assert not np.shares_memory(param_arrays(clipped)[k], a), k
    assert_same(g, before)


@pytest.mark.parametrize("kind", ["grads-lstm", "grads-gru_cudnn", "dict"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_clip_norm_non_finite_returns_unscaled(kind, bad):
    g = make(kind)
    arrays = {k: a.copy() for k, a in param_arrays(g).items()}
    last = list(arrays)[-1]
    arrays[last].flat[0] = bad
    broken = g.replace(**arrays) if isinstance(g, gradlab.Grads) else arrays
    before = snapshot(broken)
    clipped, norm = clip_norm(broken, 1e-3)
    assert not np.isfinite(norm)
    if np.isnan(bad):
        assert np.isnan(norm)
    else:
        assert norm == np.inf
    # unscaled, not turned into numbers
    assert_same(clipped, broken)
    assert is_finite(clipped) is False
    assert_same(broken, before)


@pytest.mark.parametrize("kind", ["grads-rnn_tanh", "dict"])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_clip_norm_non_finite_raises_when_asked(kind, bad):
    g = make(kind)
    arrays = {k: a.copy() for k, a in param_arrays(g).items()}
    arrays[next(iter(arrays))].flat[0] = bad
    broken = g.replace(**arrays) if isinstance(g, gradlab.Grads) else arrays
    before = snapshot(broken)
    with pytest.raises(NonFiniteGradientError, match="norm"):
        clip_norm(broken, 1.0, error_if_nonfinite=True)
    assert issubclass(NonFiniteGradientError, FloatingPointError)
    assert_same(broken, before)
    # finite gradients do not raise with the flag
    clipped, norm = clip_norm(g, 1.0, error_if_nonfinite=True)
    assert np.isfinite(norm)


def test_clip_norm_non_finite_outside_parameters_is_not_an_error():
    g = make_grads("rnn_tanh")
    x = g.x.copy()
    x[0, 0, 0] = np.inf
    g = g.replace(x=x)
    clipped, norm = clip_norm(g, 1e-3, error_if_nonfinite=True)
    assert np.isfinite(norm)
    assert global_norm(clipped) == pytest.approx(1e-3, rel=1e-12)


# ---------------------------------------------------------------------------
# clip_value
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", KINDS)
def test_clip_value_bounds_every_element(kind, dtype):
    g = make(kind, dtype)
    before = snapshot(g)
    arrays = param_arrays(g)
    biggest = max(np.abs(a).max() for a in arrays.values())
    v = 0.25 * float(biggest)
    clipped = clip_value(g, v)
    assert type(clipped) is type(g)
    out = param_arrays(clipped)
    assert out.keys() == arrays.keys()
    n_clipped = 0
    for k, a in arrays.items():
        c = out[k]
        assert c.dtype == np.dtype(dtype), k
        assert c.shape == a.shape, k
        assert np.abs(c).max() <= v, k
        np.testing.assert_array_equal(c, np.clip(a, -v, v), err_msg=k)
        # elements inside the range are untouched
        inside = np.abs(a) <= v
        np.testing.assert_array_equal(c[inside], a[inside], err_msg=k)
        n_clipped += int((~inside).sum())
        assert not np.shares_memory(c, a), k
    assert n_clipped > 0
    assert_same(g, before)


@pytest.mark.parametrize("cell", ["lstm", "gru_cudnn"])
def test_clip_value_passes_non_parameter_fields_through(cell):
    g = make_grads(cell)
    clipped = clip_value(g, 1e-6)
    for f in OTHER_FIELDS:
        va, vb = getattr(g, f), getattr(clipped, f)
        assert (va is None) == (vb is None), f
        if va is not None:
            np.testing.assert_array_equal(vb, va, err_msg=f)
    # x is larger than the clip value somewhere but was not clipped
    assert np.abs(clipped.x).max() > 1e-6


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_value_leaves_inf_and_nan(dtype):
    d = {"a": np.array([np.inf, -np.inf, np.nan, 5.0, -5.0, 0.5], dtype), "b": np.array([[3.0, -0.1]], dtype)}
    before = snapshot(d)
    out = clip_value(d, 1.0)
    a = out["a"]
    assert a.dtype == np.dtype(dtype)
    assert a[0] == np.inf  # NOT 1.0
    assert a[1] == -np.inf  # NOT -1.0
    assert np.isnan(a[2])
    np.testing.assert_array_equal(a[3:], np.array([1.0, -1.0, 0.5], dtype))
    np.testing.assert_array_equal(out["b"], np.array([[1.0, -0.1]], dtype))
    assert is_finite(out) is False
    assert_same(d, before)


def test_clip_value_leaves_inf_in_grads():
    g = make_grads("gru_cudnn")
    W_h = g.W_h.copy()
    W_h[0, 0] = np.inf
    b_hn = g.b_hn.copy()
    b_hn[0] = np.nan
    out = clip_value(g.replace(W_h=W_h, b_hn=b_hn), 1e-3)
    assert out.W_h[0, 0] == np.inf
    assert np.isnan(out.b_hn[0])
    assert np.abs(out.W_h[np.isfinite(out.W_h)]).max() <= 1e-3


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_clip_value_non_finite_raises_when_asked(bad):
    d = make_dict()
    d["v"][2] = bad
    before = snapshot(d)
    with pytest.raises(NonFiniteGradientError, match="'v'"):
        clip_value(d, 1.0, error_if_nonfinite=True)
    assert_same(d, before)
    # finite gradients pass with the flag
    out = clip_value(make_dict(), 0.1, error_if_nonfinite=True)
    assert max(np.abs(a).max() for a in out.values()) <= 0.1


# ---------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, -1e-12, float("nan"), float("inf")])
def test_bad_max_norm_value(bad):
    g = make_grads("rnn_tanh")
    with pytest.raises(ValueError, match="max_norm"):
        clip_norm(g, bad)
    with pytest.raises(ValueError, match="max_norm"):
        clip_norm(make_dict(), bad)


@pytest.mark.parametrize("bad", ["1.0", None, [1.0], True])
def test_bad_max_norm_type(bad):
    with pytest.raises(TypeError, match="max_norm"):
        clip_norm(make_dict(), bad)


@pytest.mark.parametrize("bad", [0, -2.0, float("nan"), float("-inf")])
def test_bad_clip_value_value(bad):
    with pytest.raises(ValueError, match="value"):
        clip_value(make_grads("lstm"), bad)
    with pytest.raises(ValueError, match="value"):
        clip_value(make_dict(), bad)


@pytest.mark.parametrize("bad", ["0.5", None, False])
def test_bad_clip_value_type(bad):
    with pytest.raises(TypeError, match="value"):
        clip_value(make_dict(), bad)


def test_numpy_scalars_accepted():
    d = make_dict()
    _, norm = clip_norm(d, np.float32(0.5))
    assert norm == pytest.approx(global_norm(d))
    out = clip_value(d, np.int64(1))
    assert max(np.abs(a).max() for a in out.values()) <= 1


@pytest.mark.parametrize("fn", [clip_norm, clip_value])
@pytest.mark.parametrize("bad", [[np.ones(3)], (np.ones(3),), np.ones(3), gradlab.Params(np.ones((1, 1)), np.ones((1, 1)), np.ones(1)), None])
def test_non_grads_non_dict_raises_type_error(fn, bad):
    with pytest.raises(TypeError, match="grads"):
        fn(bad, 1.0)


@pytest.mark.parametrize("fn", [global_norm, is_finite])
def test_non_grads_non_dict_raises_type_error_norm(fn):
    with pytest.raises(TypeError, match="grads"):
        fn([np.ones(3)])


def test_dict_with_non_array_value_raises():
    with pytest.raises(TypeError, match="'w'"):
        clip_norm({"w": [1.0, 2.0]}, 1.0)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_clip_norm_of_huge_but_finite_float64_gradients():
    d = {"a": np.array([1e200, -1e200]), "b": np.array([3e199])}
    assert is_finite(d) is True
    expected = np.sqrt(2 + 0.09) * 1e200
    assert global_norm(d) == pytest.approx(expected, rel=1e-12)
    clipped, norm = clip_norm(d, 1.0, error_if_nonfinite=True)
    assert norm == pytest.approx(expected, rel=1e-12)
    assert global_norm(clipped) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(clipped["a"], d["a"] / expected, rtol=1e-12)
