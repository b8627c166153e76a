"""Argument checking of gradlab.forward and gradlab.backward (gradlab.validate).

Shapes and names raise ValueError, wrong types and dtypes raise TypeError, and
every message names the argument. Non-contiguous inputs are read correctly and
inputs are never modified.
"""

from __future__ import annotations

import copy
import re

import sys

import numpy as np
import pytest

import gradlab
from gradlab.kernels.cells import CELLS

T, B, D, H = 4, 3, 2, 3
BK = "numpy"
NON_LSTM = [c for c in gradlab.CELL_NAMES if c != "lstm"]



@pytest.fixture(autouse=True, params=gradlab.available_backends())
def each_backend(request, monkeypatch):
    """Every bad-input test runs against every backend: validation happens before dispatch."""
    monkeypatch.setattr(sys.modules[__name__], "BK", request.param)
    return request.param


def setup(cell, dtype=np.float64, seed=0):
    """params, x, h0, c0 (None except LSTM), dh, dc_last (None except LSTM)."""
    rng = np.random.default_rng(seed)
    p = gradlab.init_params(cell, D, H, init="uniform", scale=1.2, dtype=dtype, seed=seed)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    lstm = CELLS[cell].has_cell_state
    c0 = rng.standard_normal((B, H)).astype(dtype) if lstm else None
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    dc_last = rng.standard_normal((B, H)).astype(dtype) if lstm else None
    return p, x, h0, c0, dh, dc_last


def fwd(cell, p, x, h0=None, c0=None, **kw):
    return gradlab.forward(cell, p, x, h0, c0, backend=BK, **kw)


def bwd(cell, p, trace, dh, dc_last=None, **kw):
    return gradlab.backward(cell, p, trace, dh, dc_last, backend=BK, **kw)


def with_param(p, **changes):
    a = p.arrays()
    a.setdefault("b_hn", None)
    a.update(changes)
    return gradlab.Params(**a)


def m(name):
    """A match pattern: the message starts with / names the argument."""
    return re.escape(name)


# ---------------------------------------------------------------------------
# Names: cell and backend
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["elman", "LSTM", "gru-cudnn", "", None, 1])
def test_unknown_cell_lists_valid_names(bad):
    p, x, *_ = setup("rnn_tanh")
    with pytest.raises(ValueError, match="cell") as err:
        fwd(bad, p, x)
    for name in gradlab.CELL_NAMES:
        assert name in str(err.value)
    tr = fwd("rnn_tanh", p, x)
    with pytest.raises(ValueError, match="cell") as err:
        bwd(bad, p, tr, np.zeros_like(tr.h))
    for name in gradlab.CELL_NAMES:
        assert name in str(err.value)


@pytest.mark.parametrize("bad", ["torch", "NUMPY", "", 0])
def test_unknown_backend_lists_valid_names(bad):
    p, x, *_ = setup("lstm")
    with pytest.raises(ValueError, match="backend") as err:
        gradlab.forward("lstm", p, x, backend=bad)
    for name in gradlab.available_backends():
        assert name in str(err.value)
    assert "numpy" in str(err.value)
    tr = fwd("lstm", p, x)
    with pytest.raises(ValueError, match="backend") as err:
        gradlab.backward("lstm", p, tr, np.zeros_like(tr.h), backend=bad)
    assert "numpy" in str(err.value)


def test_default_backend_works():
    p, x, h0, c0, dh, dc = setup("lstm")
    tr = gradlab.forward("lstm", p, x, h0, c0)
    ref = fwd("lstm", p, x, h0, c0)
    assert gradlab.default_backend() in gradlab.available_backends()
    np.testing.assert_allclose(tr.h, ref.h, rtol=1e-10, atol=0)


# ---------------------------------------------------------------------------
# Ranks and shapes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_x_wrong_rank(cell):
    p, x, *_ = setup(cell)
    for bad in (x[0], x[None], x.reshape(-1)):
        with pytest.raises(ValueError, match=r"^x: expected 3 dimensions"):
            fwd(cell, p, bad)


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_h0_wrong_rank(cell):
    p, x, h0, c0, *_ = setup(cell)
    for bad in (h0[0], h0[None]):
        with pytest.raises(ValueError, match=r"^h0: expected 2 dimensions"):
            fwd(cell, p, x, bad, c0)


def test_c0_wrong_rank():
    p, x, h0, c0, *_ = setup("lstm")
    for bad in (c0[0], c0[None]):
        with pytest.raises(ValueError, match=r"^c0: expected 2 dimensions"):
            fwd("lstm", p, x, h0, bad)


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_dh_wrong_rank(cell):
    p, x, h0, c0, dh, dc = setup(cell)
    tr = fwd(cell, p, x, h0, c0)
    for bad in (dh[-1], dh[None]):
        with pytest.raises(ValueError, match=r"^dh: expected 3 dimensions"):
            bwd(cell, p, tr, bad, dc)


def test_dc_last_wrong_rank():
    p, x, h0, c0, dh, dc = setup("lstm")
    tr = fwd("lstm", p, x, h0, c0)
    for bad in (dc[0], dc[None]):
        with pytest.raises(ValueError, match=r"^dc_last: expected 2 dimensions"):
            bwd("lstm", p, tr, dh, bad)


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_x_wrong_input_size(cell):
    p, x, *_ = setup(cell)
    rng = np.random.default_rng(1)
    for d in (D - 1, D + 1):
        with pytest.raises(ValueError, match=rf"^x: expected shape .*axis 2 should be {D}"):
            fwd(cell, p, rng.standard_normal((T, B, d)))


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_h0_wrong_batch_or_hidden(cell):
    p, x, h0, c0, *_ = setup(cell)
    with pytest.raises(ValueError, match=r"^h0: .*axis 0 should be 3"):
        fwd(cell, p, x, np.zeros((B + 1, H)), c0)
    with pytest.raises(ValueError, match=r"^h0: .*axis 1 should be 3"):
        fwd(cell, p, x, np.zeros((B, H - 1)), c0)


def test_c0_wrong_shape():
    p, x, h0, c0, *_ = setup("lstm")
    with pytest.raises(ValueError, match=r"^c0: .*axis 0"):
        fwd("lstm", p, x, h0, np.zeros((B - 1, H)))
    with pytest.raises(ValueError, match=r"^c0: .*axis 1"):
        fwd("lstm", p, x, h0, np.zeros((B, H + 1)))


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_dh_wrong_shape(cell):
    p, x, h0, c0, dh, dc = setup(cell)
    tr = fwd(cell, p, x, h0, c0)
    with pytest.raises(ValueError, match=r"^dh: .*axis 2 should be 3"):
        bwd(cell, p, tr, np.zeros((T, B, H + 1)), dc)
    with pytest.raises(ValueError, match=r"^dh: .*axis 0 should be 4"):
        bwd(cell, p, tr, np.zeros((T - 1, B, H)), dc)
    with pytest.raises(ValueError, match=r"^dh: .*axis 0 should be 4"):
        bwd(cell, p, tr, np.zeros((T + 1, B, H)), dc)
    with pytest.raises(ValueError, match=r"^dh: .*axis 1 should be 3"):
        bwd(cell, p, tr, np.zeros((T, B - 1, H)), dc)


def test_dc_last_wrong_shape():
    p, x, h0, c0, dh, dc = setup("lstm")
    tr = fwd("lstm", p, x, h0, c0)
    with pytest.raises(ValueError, match=r"^dc_last: .*axis 0"):
        bwd("lstm", p, tr, dh, np.zeros((B + 1, H)))
    with pytest.raises(ValueError, match=r"^dc_last: .*axis 1"):
        bwd("lstm", p, tr, dh, np.zeros((B, H - 1)))


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_params_wrong_shapes(cell):
    p, x, *_ = setup(cell)
    G = CELLS[cell].num_gates
    cases = {
        "params.W_h": [np.zeros((G * H + 1, H)), np.zeros((G * H, H + 1)), np.zeros(G * H * H), np.zeros((G * H, H, 1))],
        "params.W_x": [np.zeros((G * H - 1, D)), np.zeros((G * H + H, D)), np.zeros(G * H), np.zeros((G * H, D, 1))],
        "params.b": [np.zeros(G * H + 1), np.zeros(H) if G > 1 else np.zeros(2 * H), np.zeros((1, G * H))],
    }
    for name, bads in cases.items():
        field = name.split(".")[1]
        for bad in bads:
            with pytest.raises(ValueError, match=m(name)):
                fwd(cell, with_param(p, **{field: bad}), x)
    # W_x with a different D is fine on its own, but then x must follow it
    with pytest.raises(ValueError, match=r"^x: "):
        fwd(cell, with_param(p, W_x=np.zeros((G * H, D + 1))), x)


def test_b_hn_wrong_shape():
    p, x, *_ = setup("gru_cudnn")
    for bad in (np.zeros(H + 1), np.zeros((1, H))):
        with pytest.raises(ValueError, match=m("params.b_hn")):
            fwd("gru_cudnn", with_param(p, b_hn=bad), x)


def test_hidden_size_zero():
    p, x, *_ = setup("rnn_tanh")
    with pytest.raises(ValueError, match=m("params.W_h")):
        fwd("rnn_tanh", gradlab.Params(np.zeros((0, D)), np.zeros((0, 0)), np.zeros(0)), x)


def test_b_hn_missing_for_gru_cudnn():
    p, x, *_ = setup("gru_cudnn")
    with pytest.raises(ValueError, match=m("params.b_hn")):
        fwd("gru_cudnn", with_param(p, b_hn=None), x)
    tr = fwd("gru_cudnn", p, x)
    with pytest.raises(ValueError, match=m("params.b_hn")):
        bwd("gru_cudnn", with_param(p, b_hn=None), tr, np.zeros_like(tr.h))


@pytest.mark.parametrize("cell", [c for c in gradlab.CELL_NAMES if c != "gru_cudnn"])
def test_b_hn_given_for_other_cells(cell):
    p, x, *_ = setup(cell)
    with pytest.raises(ValueError, match=m("params.b_hn")):
        fwd(cell, with_param(p, b_hn=np.zeros(H)), x)
    tr = fwd(cell, p, x)
    with pytest.raises(ValueError, match=m("params.b_hn")):
        bwd(cell, with_param(p, b_hn=np.zeros(H)), tr, np.zeros_like(tr.h))


@pytest.mark.parametrize("cell", NON_LSTM)
def test_c0_for_non_lstm(cell):
    p, x, h0, *_ = setup(cell)
    with pytest.raises(ValueError, match=r"^c0: "):
        fwd(cell, p, x, h0, np.zeros((B, H)))


@pytest.mark.parametrize("cell", NON_LSTM)
def test_dc_last_for_non_lstm(cell):
    p, x, h0, c0, dh, _ = setup(cell)
    tr = fwd(cell, p, x, h0)
    with pytest.raises(ValueError, match=r"^dc_last: "):
        bwd(cell, p, tr, dh, np.zeros((B, H)))


def test_params_not_a_params():
    p, x, *_ = setup("rnn_tanh")
    with pytest.raises(TypeError, match="params"):
        fwd("rnn_tanh", p.arrays(), x)


# ---------------------------------------------------------------------------
# dtypes and types
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_mixed_dtypes_forward(cell):
    p, x, h0, c0, *_ = setup(cell, np.float64)
    with pytest.raises(TypeError, match=r"^x: dtype float32 does not match"):
        fwd(cell, p, x.astype(np.float32), h0, c0)
    with pytest.raises(TypeError, match=r"^h0: dtype float32"):
        fwd(cell, p, x, h0.astype(np.float32), c0)
    p32, x32, h032, c032, *_ = setup(cell, np.float32)
    with pytest.raises(TypeError, match=r"^x: dtype float64"):
        fwd(cell, p32, x32.astype(np.float64), h032, c032)
    if c0 is not None:
        with pytest.raises(TypeError, match=r"^c0: dtype float32"):
            fwd(cell, p, x, h0, c0.astype(np.float32))
    # mixed dtypes inside params
    with pytest.raises(TypeError, match=m("params.W_x")):
        fwd(cell, with_param(p, W_x=p.W_x.astype(np.float32)), x)
    with pytest.raises(TypeError, match=m("params.b")):
        fwd(cell, with_param(p, b=p.b.astype(np.float32)), x)
    if p.b_hn is not None:
        with pytest.raises(TypeError, match=m("params.b_hn")):
            fwd(cell, with_param(p, b_hn=p.b_hn.astype(np.float32)), x)


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_mixed_dtypes_backward(cell):
    p, x, h0, c0, dh, dc = setup(cell, np.float64)
    tr = fwd(cell, p, x, h0, c0)
    with pytest.raises(TypeError, match=r"^dh: dtype float32 does not match"):
        bwd(cell, p, tr, dh.astype(np.float32), dc)
    if dc is not None:
        with pytest.raises(TypeError, match=r"^dc_last: dtype float32"):
            bwd(cell, p, tr, dh, dc.astype(np.float32))
    # a float32 trace with float64 params
    p32 = gradlab.Params(**{k: v.astype(np.float32) for k, v in p.arrays().items()})
    tr32 = fwd(cell, p32, x.astype(np.float32))
    with pytest.raises((TypeError, ValueError), match="trace"):
        bwd(cell, p, tr32, dh, dc)


@pytest.mark.parametrize("int_dtype", [np.int64, np.int32, np.bool_])
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm"])
def test_integer_dtypes(cell, int_dtype):
    p, x, h0, c0, dh, dc = setup(cell)
    with pytest.raises(TypeError, match=r"^x: expected dtype float32 or float64"):
        fwd(cell, p, x.astype(int_dtype), h0, c0)
    with pytest.raises(TypeError, match=r"^h0: expected dtype"):
        fwd(cell, p, x, h0.astype(int_dtype), c0)
    with pytest.raises(TypeError, match=m("params.W_h")):
        fwd(cell, with_param(p, W_h=p.W_h.astype(int_dtype)), x)
    with pytest.raises(TypeError, match=m("params.W_x")):
        fwd(cell, with_param(p, W_x=p.W_x.astype(int_dtype)), x)
    with pytest.raises(TypeError, match=m("params.b")):
        fwd(cell, with_param(p, b=p.b.astype(int_dtype)), x)
    tr = fwd(cell, p, x, h0, c0)
    with pytest.raises(TypeError, match=r"^dh: expected dtype"):
        bwd(cell, p, tr, dh.astype(int_dtype), dc)
    if dc is not None:
        with pytest.raises(TypeError, match=r"^c0: expected dtype"):
            fwd(cell, p, x, h0, c0.astype(int_dtype))
        with pytest.raises(TypeError, match=r"^dc_last: expected dtype"):
            bwd(cell, p, tr, dh, dc.astype(int_dtype))


@pytest.mark.parametrize("bad_dtype", [np.float16, np.complex128])
def test_other_float_dtypes(bad_dtype):
    p, x, *_ = setup("gru")
    with pytest.raises(TypeError, match=r"^x: expected dtype"):
        fwd("gru", p, x.astype(bad_dtype))
    with pytest.raises(TypeError, match=m("params.W_h")):
        fwd("gru", gradlab.Params(**{k: v.astype(bad_dtype) for k, v in p.arrays().items()}), x.astype(bad_dtype))


@pytest.mark.parametrize("cell", ["rnn_relu", "lstm"])
def test_python_lists(cell):
    p, x, h0, c0, dh, dc = setup(cell)
    with pytest.raises(TypeError, match=r"^x: expected a NumPy array, got list"):
        fwd(cell, p, x.tolist(), h0, c0)
    with pytest.raises(TypeError, match=r"^h0: expected a NumPy array"):
        fwd(cell, p, x, h0.tolist(), c0)
    with pytest.raises(TypeError, match=m("params.b")):
        fwd(cell, with_param(p, b=p.b.tolist()), x)
    tr = fwd(cell, p, x, h0, c0)
    with pytest.raises(TypeError, match=r"^dh: expected a NumPy array"):
        bwd(cell, p, tr, dh.tolist(), dc)
    if dc is not None:
        with pytest.raises(TypeError, match=r"^c0: expected a NumPy array"):
            fwd(cell, p, x, h0, c0.tolist())
        with pytest.raises(TypeError, match=r"^dc_last: expected a NumPy array"):
            bwd(cell, p, tr, dh, dc.tolist())
    with pytest.raises(TypeError, match="trace"):
        bwd(cell, p, {"h": tr.h}, dh, dc)


@pytest.mark.parametrize("field", ["W_h", "W_x"])
def test_python_list_weights_raise_type_error(field):
    p, x, *_ = setup("rnn_tanh")
    with pytest.raises(TypeError, match=m(f"params.{field}")):
        fwd("rnn_tanh", with_param(p, **{field: getattr(p, field).tolist()}), x)


# ---------------------------------------------------------------------------
# Empty sizes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_zero_timesteps(cell):
    p, *_ = setup(cell)
    with pytest.raises(ValueError, match=r"^x: expected at least one timestep"):
        fwd(cell, p, np.zeros((0, B, D)))


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_zero_batch(cell):
    p, *_ = setup(cell)
    with pytest.raises(ValueError, match=r"^x: expected at least one sequence"):
        fwd(cell, p, np.zeros((T, 0, D)))


# ---------------------------------------------------------------------------
# Non-finite values
# ---------------------------------------------------------------------------


def _poison(a, value, index=1):
    a = a.copy()
    a.flat[index] = value
    return a


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_non_finite_params(cell, bad):
    p, x, h0, c0, dh, dc = setup(cell)
    tr = fwd(cell, p, x, h0, c0)
    names = ["W_x", "W_h", "b"] + (["b_hn"] if p.b_hn is not None else [])
    for field in names:
        bad_p = with_param(p, **{field: _poison(getattr(p, field), bad)})
        with pytest.raises(ValueError, match=m(f"params.{field}: expected finite values")):
            fwd(cell, bad_p, x, h0, c0)
        with pytest.raises(ValueError, match=m(f"params.{field}: expected finite values")):
            bwd(cell, bad_p, tr, dh, dc)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_non_finite_inputs(cell, bad):
    p, x, h0, c0, dh, dc = setup(cell)
    with pytest.raises(ValueError, match=r"^x: expected finite values"):
        fwd(cell, p, _poison(x, bad, index=x.size - 1), h0, c0)
    with pytest.raises(ValueError, match=r"^h0: expected finite values"):
        fwd(cell, p, x, _poison(h0, bad), c0)
    tr = fwd(cell, p, x, h0, c0)
    with pytest.raises(ValueError, match=r"^dh: expected finite values"):
        bwd(cell, p, tr, _poison(dh, bad, index=0), dc)
    if c0 is not None:
        with pytest.raises(ValueError, match=r"^c0: expected finite values"):
            fwd(cell, p, x, h0, _poison(c0, bad))
        with pytest.raises(ValueError, match=r"^dc_last: expected finite values"):
            bwd(cell, p, tr, dh, _poison(dc, bad))


def test_non_finite_message_says_where():
    p, x, *_ = setup("rnn_tanh")
    xb = x.copy()
    xb[2, 1, 0] = np.nan
    xb[3, 0, 1] = np.inf
    with pytest.raises(ValueError, match=r"^x: .*found 2 non-finite .*\(2, 1, 0\)"):
        fwd("rnn_tanh", p, xb)


# ---------------------------------------------------------------------------
# clip_step and trace
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, -1e-12, float("nan"), float("inf"), np.float64(-2)])
def test_clip_step_bad_value(bad):
    p, x, h0, c0, dh, dc = setup("lstm")
    tr = fwd("lstm", p, x, h0, c0)
    with pytest.raises(ValueError, match=r"^clip_step: "):
        bwd("lstm", p, tr, dh, dc, clip_step=bad)


@pytest.mark.parametrize("bad", ["1.0", [1.0], True, np.ones(1)])
def test_clip_step_bad_type(bad):
    p, x, h0, c0, dh, dc = setup("rnn_tanh")
    tr = fwd("rnn_tanh", p, x, h0, c0)
    with pytest.raises(TypeError, match=r"^clip_step: "):
        bwd("rnn_tanh", p, tr, dh, clip_step=bad)


def test_clip_step_int_and_numpy_scalars_accepted():
    p, x, h0, c0, dh, dc = setup("rnn_tanh")
    tr = fwd("rnn_tanh", p, x, h0, c0)
    ref = bwd("rnn_tanh", p, tr, dh, clip_step=1.0)
    for v in (1, np.int64(1), np.float32(1.0)):
        g = bwd("rnn_tanh", p, tr, dh, clip_step=v)
        np.testing.assert_array_equal(g.W_h, ref.W_h)


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_trace_from_another_cell(cell):
    # a cell with the same parameter shapes, so only the trace's cell tells them apart
    same_shape = {"rnn_tanh": "rnn_relu", "rnn_relu": "rnn_tanh", "gru": "gru_simple"}
    other = same_shape.get(cell, "rnn_tanh" if cell != "rnn_tanh" else "gru")
    p, x, h0, c0, dh, dc = setup(cell)
    po = gradlab.init_params(other, D, H, seed=1)
    tr_other = fwd(other, po, x)
    with pytest.raises(ValueError, match=rf"^trace: .*'{other}'.*'{cell}'"):
        bwd(cell, p, tr_other, dh, dc)
    if cell == "rnn_tanh":  # identical params: still refused
        tr = fwd("rnn_relu", p, x)
        with pytest.raises(ValueError, match=r"^trace: "):
            bwd("rnn_tanh", p, tr, dh)


def test_trace_with_other_hidden_size():
    p, x, h0, c0, dh, dc = setup("gru")
    p_big = gradlab.init_params("gru", D, H + 1, seed=1)
    tr = fwd("gru", p_big, x)
    with pytest.raises(ValueError, match=r"^trace: "):
        bwd("gru", p, tr, dh)


def test_trace_not_a_trace():
    p, x, h0, c0, dh, dc = setup("gru")
    with pytest.raises(TypeError, match=r"^trace: "):
        bwd("gru", p, None, dh)


# ---------------------------------------------------------------------------
# Non-contiguous inputs give exactly the results of contiguous copies
# ---------------------------------------------------------------------------


def _assert_trace_equal(a, b):
    for f in ("h", "c", "gates", "hn"):
        va, vb = getattr(a, f), getattr(b, f)
        assert (va is None) == (vb is None), f
        if va is not None:
            np.testing.assert_array_equal(va, vb, err_msg=f)


def _assert_grads_equal(a, b):
    for f in ("W_x", "W_h", "b", "b_hn", "x", "h0", "c0", "dh_norm", "dc_norm"):
        va, vb = getattr(a, f), getattr(b, f)
        assert (va is None) == (vb is None), f
        if va is not None:
            np.testing.assert_array_equal(va, vb, err_msg=f)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_non_contiguous_inputs(cell, dtype):
    rng = np.random.default_rng(5)
    p, *_ = setup(cell, dtype)
    G = CELLS[cell].num_gates
    lstm = CELLS[cell].has_cell_state

    # views: x transposed from (B, T, D), a strided time slice, h0/c0 transposed, dh strided
    x_bt = rng.standard_normal((B, 2 * T, D)).astype(dtype)
    x_view = x_bt.transpose(1, 0, 2)[::2]
    h0_view = rng.standard_normal((H, B)).astype(dtype).T
    c0_view = rng.standard_normal((H, B)).astype(dtype).T if lstm else None
    dh_view = rng.standard_normal((T, B, 2 * H)).astype(dtype)[:, :, ::2]
    dc_view = rng.standard_normal((B, 2 * H)).astype(dtype)[:, 1::2] if lstm else None
    # Fortran-order params, and a strided b
    b_wide = np.zeros(2 * G * H, dtype)
    b_wide[::2] = p.b
    p_view = gradlab.Params(
        W_x=np.asfortranarray(p.W_x),
        W_h=np.asfortranarray(p.W_h),
        b=b_wide[::2],
        b_hn=None if p.b_hn is None else np.asfortranarray(p.b_hn[::-1])[::-1],
    )
    for a in (x_view, h0_view, dh_view, p_view.W_x, p_view.W_h, p_view.b):
        assert not a.flags.c_contiguous
    for a, shape in ((x_view, (T, B, D)), (h0_view, (B, H)), (dh_view, (T, B, H))):
        assert a.shape == shape

    def c(a):
        return None if a is None else np.ascontiguousarray(a).copy()

    p_c = gradlab.Params(**{k: c(v) for k, v in p_view.arrays().items()})
    for k, v in p_c.arrays().items():
        np.testing.assert_array_equal(v, p.arrays()[k])

    tr_v = fwd(cell, p_view, x_view, h0_view, c0_view)
    tr_c = fwd(cell, p_c, c(x_view), c(h0_view), c(c0_view))
    _assert_trace_equal(tr_v, tr_c)
    # sanity: the view was not read as if it were contiguous
    tr_wrong = fwd(cell, p_c, np.ascontiguousarray(x_bt[:, :T]).reshape(T, B, D), c(h0_view), c(c0_view))
    assert not np.array_equal(tr_wrong.h, tr_c.h)

    g_v = bwd(cell, p_view, tr_v, dh_view, dc_view, clip_step=0.5)
    g_c = bwd(cell, p_c, tr_c, c(dh_view), c(dc_view), clip_step=0.5)
    _assert_grads_equal(g_v, g_c)


# ---------------------------------------------------------------------------
# Inputs are never modified
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("clip_step", [None, 0.1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_inputs_not_modified(cell, dtype, clip_step):
    p, x, h0, c0, dh, dc = setup(cell, dtype, seed=3)
    saved = copy.deepcopy((p.arrays(), x, h0, c0, dh, dc))
    tr = fwd(cell, p, x, h0, c0)
    tr_saved = copy.deepcopy(tr)
    g = bwd(cell, p, tr, dh, dc, clip_step=clip_step)
    # and again with the defaults (h0, c0, dc_last None)
    tr0 = fwd(cell, p, x)
    bwd(cell, p, tr0, dh)

    params_now = p.arrays()
    assert params_now.keys() == saved[0].keys()
    for k in params_now:
        np.testing.assert_array_equal(params_now[k], saved[0][k], err_msg=k)
    for now, before, name in zip((x, h0, c0, dh, dc), saved[1:], ("x", "h0", "c0", "dh", "dc_last")):
        if before is None:
            assert now is None
        else:
            np.testing.assert_array_equal(now, before, err_msg=name)
    # backward does not modify the trace either
    for f in ("h", "c", "x", "h0", "c0", "gates", "hn"):
        va, vb = getattr(tr, f), getattr(tr_saved, f)
        if vb is None:
            assert va is None, f
        else:
            np.testing.assert_array_equal(va, vb, err_msg=f)
    # the results do not alias the inputs
    for a in (g.W_x, g.W_h, g.b, g.x, g.h0):
        for inp in (x, h0, dh, *p.arrays().values()):
            assert not np.shares_memory(a, inp)
    if dc is not None:
        assert not np.shares_memory(g.c0, dc)
        assert not np.shares_memory(g.c0, c0)
