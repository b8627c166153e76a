"""gradlab.init_params (SPEC §4): shapes, dtypes, seeding and what ``scale`` means per init."""

from __future__ import annotations

import numpy as np
import pytest

import gradlab
from gradlab.kernels.cells import CELLS

INITS = ("orthogonal", "normal", "identity", "xavier", "uniform")
DTYPES = (np.float32, np.float64)
D, H = 3, 4


def blocks(W_h: np.ndarray, H: int) -> list[np.ndarray]:
    """The H×H recurrent blocks of W_h, in gate order."""
    assert W_h.shape[0] % H == 0
    return [W_h[k * H : (k + 1) * H] for k in range(W_h.shape[0] // H)]


# ---------------------------------------------------------------------------
# Shapes, dtypes, seeding
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_shapes_and_dtype(cell, init, dtype):
    p = gradlab.init_params(cell, D, H, init=init, dtype=dtype, seed=1)
    G = CELLS[cell].num_gates
    assert isinstance(p, gradlab.Params)
    assert p.W_x.shape == (G * H, D)
    assert p.W_h.shape == (G * H, H)
    assert p.b.shape == (G * H,)
    if cell == "gru_cudnn":
        assert p.b_hn is not None and p.b_hn.shape == (H,)
    else:
        assert p.b_hn is None
    for name, a in p.arrays().items():
        assert isinstance(a, np.ndarray), name
        assert a.dtype == np.dtype(dtype), name
        assert a.flags.c_contiguous, name
        assert np.isfinite(a).all(), name
    assert p.hidden_size == H and p.input_size == D


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_params_run_forward(cell, init):
    """What init_params returns is accepted by forward as it is."""
    p = gradlab.init_params(cell, D, H, init=init, seed=2)
    x = np.random.default_rng(0).standard_normal((3, 2, D))
    trace = gradlab.forward(cell, p, x, backend="numpy")
    assert trace.h.shape == (3, 2, H)
    assert np.isfinite(trace.h).all()


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_same_seed_same_arrays(cell, init):
    a = gradlab.init_params(cell, D, H, init=init, seed=123)
    b = gradlab.init_params(cell, D, H, init=init, seed=123)
    assert a.arrays().keys() == b.arrays().keys()
    for k in a.arrays():
        np.testing.assert_array_equal(a.arrays()[k], b.arrays()[k], err_msg=k)
        assert a.arrays()[k] is not b.arrays()[k]


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_different_seed_different_arrays(cell, init):
    a = gradlab.init_params(cell, D, H, init=init, seed=1)
    b = gradlab.init_params(cell, D, H, init=init, seed=2)
    assert not np.array_equal(a.W_x, b.W_x)
    if init == "identity":
        # the recurrent blocks are deterministic: scale * I whatever the seed
        np.testing.assert_array_equal(a.W_h, b.W_h)
    else:
        assert not np.array_equal(a.W_h, b.W_h)
    if init in ("xavier", "uniform"):
        assert not np.array_equal(a.b, b.b)


def test_seed_sequence_accepted_and_deterministic():
    a = gradlab.init_params("lstm", D, H, seed=np.random.SeedSequence(7))
    b = gradlab.init_params("lstm", D, H, seed=np.random.SeedSequence(7))
    np.testing.assert_array_equal(a.W_h, b.W_h)
    np.testing.assert_array_equal(a.W_x, b.W_x)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_float32_is_rounded_float64(cell, init):
    p64 = gradlab.init_params(cell, D, H, init=init, scale=1.3, dtype=np.float64, seed=5)
    p32 = gradlab.init_params(cell, D, H, init=init, scale=1.3, dtype=np.float32, seed=5)
    assert p64.arrays().keys() == p32.arrays().keys()
    for k, a64 in p64.arrays().items():
        np.testing.assert_array_equal(p32.arrays()[k], a64.astype(np.float32), err_msg=k)


# ---------------------------------------------------------------------------
# What scale means
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.7])
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_orthogonal_singular_values_equal_scale(cell, scale):
    p = gradlab.init_params(cell, D, H, init="orthogonal", scale=scale, seed=3)
    bs = blocks(p.W_h, H)
    assert len(bs) == CELLS[cell].num_gates
    for block in bs:
        s = np.linalg.svd(block, compute_uv=False)
        np.testing.assert_allclose(s, scale, rtol=0, atol=1e-12)
        # scale times an orthogonal matrix: Q^T Q = I
        np.testing.assert_allclose(block.T @ block, scale**2 * np.eye(H), rtol=0, atol=1e-12)
    # blocks are drawn independently, not copies of each other
    if len(bs) > 1:
        assert not np.allclose(bs[0], bs[1])


@pytest.mark.parametrize("scale", [0.0, 1.0, 2.5])
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_identity_blocks_are_scaled_eye(cell, scale):
    p = gradlab.init_params(cell, D, H, init="identity", scale=scale, seed=0)
    for block in blocks(p.W_h, H):
        np.testing.assert_array_equal(block, scale * np.eye(H))
    # Le et al. 2015: small input weights
    assert np.abs(p.W_x).max() < 0.01


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("cell", ["rnn_tanh", "gru_cudnn", "lstm"])
@pytest.mark.parametrize("scale", [0.6, 1.4])
def test_normalize_sigma_max(cell, init, scale):
    p = gradlab.init_params(cell, D, H, init=init, scale=scale, seed=11, normalize="sigma_max")
    for block in blocks(p.W_h, H):
        assert np.linalg.norm(block, 2) == pytest.approx(scale, rel=0, abs=1e-12)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("cell", ["rnn_tanh", "gru_cudnn", "lstm"])
@pytest.mark.parametrize("scale", [0.6, 1.4])
def test_normalize_radius(cell, init, scale):
    p = gradlab.init_params(cell, D, H, init=init, scale=scale, seed=12, normalize="radius")
    for block in blocks(p.W_h, H):
        assert np.abs(np.linalg.eigvals(block)).max() == pytest.approx(scale, rel=0, abs=1e-12)


def test_normalize_changes_a_normal_block():
    """normalize really rescales: a normal block does not have σ_max = scale on its own."""
    raw = gradlab.init_params("rnn_tanh", D, H, init="normal", scale=1.0, seed=12)
    nrm = gradlab.init_params("rnn_tanh", D, H, init="normal", scale=1.0, seed=12, normalize="sigma_max")
    s_raw = np.linalg.norm(raw.W_h, 2)
    assert abs(s_raw - 1.0) > 1e-3
    np.testing.assert_allclose(nrm.W_h, raw.W_h / s_raw, rtol=1e-13, atol=0)


@pytest.mark.parametrize("scale", [0.5, 2.0])
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm"])
def test_normal_std(cell, scale):
    big_H = 256
    p = gradlab.init_params(cell, 2, big_H, init="normal", scale=scale, seed=4)
    for block in blocks(p.W_h, big_H):
        assert abs(block.mean()) < 0.05 * scale / np.sqrt(big_H)  # mean ≈ 0 (≈ 13 standard errors)
        assert block.std() == pytest.approx(scale / np.sqrt(big_H), rel=0.02)


@pytest.mark.parametrize("init", ["xavier", "uniform"])
@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_uniform_range(cell, init, scale):
    p = gradlab.init_params(cell, D, H, init=init, scale=scale, seed=6)
    bound = scale / np.sqrt(H)
    assert np.abs(p.W_h).max() <= bound
    # PyTorch's default range for the input weights and biases, whatever the scale
    assert np.abs(p.W_x).max() <= 1 / np.sqrt(H)
    assert np.abs(p.b).max() <= 1 / np.sqrt(H)
    if p.b_hn is not None:
        assert np.abs(p.b_hn).max() <= 1 / np.sqrt(H)


@pytest.mark.parametrize("init", ["xavier", "uniform"])
def test_uniform_fills_its_range(init):
    big_H = 64
    scale = 2.0
    p = gradlab.init_params("rnn_tanh", 2, big_H, init=init, scale=scale, seed=6)
    bound = scale / np.sqrt(big_H)
    assert np.abs(p.W_h).max() <= bound
    assert np.abs(p.W_h).max() > 0.95 * bound
    # U(-a, a) has std a / sqrt(3)
    assert p.W_h.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)


# ---------------------------------------------------------------------------
# Biases and the LSTM forget bias
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["orthogonal", "normal", "identity"])
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_biases_zero_for_non_uniform(cell, init):
    p = gradlab.init_params(cell, D, H, init=init, seed=0)
    np.testing.assert_array_equal(p.b, 0.0)
    if p.b_hn is not None:
        np.testing.assert_array_equal(p.b_hn, 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("forget_bias", [1.0, -0.5])
def test_lstm_forget_bias_lands_in_f_block_only(init, forget_bias, dtype):
    base = gradlab.init_params("lstm", D, H, init=init, dtype=dtype, seed=9)
    fb = gradlab.init_params("lstm", D, H, init=init, dtype=dtype, seed=9, forget_bias=forget_bias)
    # the weights are not affected
    np.testing.assert_array_equal(fb.W_x, base.W_x)
    np.testing.assert_array_equal(fb.W_h, base.W_h)
    # the bias changes by forget_bias in the f block (rows H:2H), and nowhere else
    expected = gradlab.init_params("lstm", D, H, init=init, seed=9).b.copy()  # float64
    expected[H : 2 * H] += forget_bias
    np.testing.assert_array_equal(fb.b, expected.astype(dtype))
    np.testing.assert_array_equal(fb.b[:H], base.b[:H])
    np.testing.assert_array_equal(fb.b[2 * H :], base.b[2 * H :])
    assert not np.array_equal(fb.b[H : 2 * H], base.b[H : 2 * H])


# ---------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------


def test_unknown_init():
    with pytest.raises(ValueError, match=r"init.*'glorot'"):
        gradlab.init_params("rnn_tanh", D, H, init="glorot")


def test_unknown_init_lists_valid_names():
    with pytest.raises(ValueError) as err:
        gradlab.init_params("rnn_tanh", D, H, init="glorot")
    for name in INITS:
        assert name in str(err.value)


@pytest.mark.parametrize("cell", ["elman", "LSTM", "", None, 3])
def test_unknown_cell(cell):
    with pytest.raises(ValueError, match="cell") as err:
        gradlab.init_params(cell, D, H)
    for name in gradlab.CELL_NAMES:
        assert name in str(err.value)


@pytest.mark.parametrize("hidden_size", [0, -1, 2.5, "4", True])
def test_bad_hidden_size(hidden_size):
    with pytest.raises(ValueError, match="hidden_size"):
        gradlab.init_params("rnn_tanh", D, hidden_size)


@pytest.mark.parametrize("input_size", [0, -3, 1.0])
def test_bad_input_size(input_size):
    with pytest.raises(ValueError, match="input_size"):
        gradlab.init_params("rnn_tanh", input_size, H)


@pytest.mark.parametrize("scale", [-1.0, -1e-9, float("nan"), float("inf")])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        gradlab.init_params("rnn_tanh", D, H, scale=scale)


@pytest.mark.parametrize("scale", ["abc", None])
def test_non_numeric_scale_names_the_argument(scale):
    with pytest.raises((TypeError, ValueError), match="scale"):
        gradlab.init_params("rnn_tanh", D, H, scale=scale)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, np.complex128, bool, "int8"])
def test_non_float_dtype(dtype):
    with pytest.raises(TypeError, match="dtype"):
        gradlab.init_params("rnn_tanh", D, H, dtype=dtype)


@pytest.mark.parametrize("cell", [c for c in gradlab.CELL_NAMES if c != "lstm"])
def test_forget_bias_on_non_lstm(cell):
    with pytest.raises(ValueError, match="forget_bias"):
        gradlab.init_params(cell, D, H, forget_bias=1.0)
    # zero is the default and allowed for every cell
    gradlab.init_params(cell, D, H, forget_bias=0.0)


@pytest.mark.parametrize("normalize", ["spectral", "SIGMA_MAX", "", 1])
def test_bad_normalize(normalize):
    with pytest.raises(ValueError, match="normalize"):
        gradlab.init_params("rnn_tanh", D, H, normalize=normalize)
