"""gradlab.interop against torch.nn.RNN / GRU / LSTM (SPEC §2: "this mapping must be code ... tested against torch")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradlab
from gradlab.interop import TORCH_CELLS, params_from_torch, params_to_torch

T, B, D, H = 5, 3, 4, 3
LAYERS = 2

# gradlab cell -> (torch class, extra kwargs)
MODULES = {
    "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"}),
    "gru_cudnn": (torch.nn.GRU, {}),
    "lstm": (torch.nn.LSTM, {}),
}
CELLS = list(MODULES)


def make_module(cell, *, input_size=D, num_layers=LAYERS, bidirectional=True, seed=0, bias=True, dtype=torch.float64):
    cls, kw = MODULES[cell]
    torch.manual_seed(seed)
    m = cls(input_size, H, num_layers=num_layers, bidirectional=bidirectional, bias=bias, **kw)
    m = m.double() if dtype == torch.float64 else m.float()
    with torch.no_grad():  # larger weights than torch's default, so the gates are far from linear
        for p in m.parameters():
            p.mul_(2.0)
    return m.eval()


def make_inputs(cell, *, layers=LAYERS, dirs=2, input_size=D, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, input_size)).astype(dtype)
    h0 = rng.standard_normal((layers * dirs, B, H)).astype(dtype)
    c0 = rng.standard_normal((layers * dirs, B, H)).astype(dtype) if cell == "lstm" else None
    return x, h0, c0


def run_torch(module, cell, x, h0, c0):
    """Returns (output, h_n, c_n) as numpy arrays."""
    with torch.no_grad():
        hx = torch.from_numpy(h0) if c0 is None else (torch.from_numpy(h0), torch.from_numpy(c0))
        out, hn = module(torch.from_numpy(x), hx)
    if cell == "lstm":
        return out.numpy(), hn[0].numpy(), hn[1].numpy()
    return out.numpy(), hn.numpy(), None


def run_gradlab(cell, params, x, h0, c0, reverse):
    """One direction of one layer with gradlab; the reverse direction reads x backwards in time.

    Returns (h in the original time order, h_last, c_last).
    """
    xin = x[::-1] if reverse else x
    tr = gradlab.forward(cell, params, xin, h0, c0, backend="numpy")
    h = tr.h[::-1] if reverse else tr.h
    return h, tr.h_last, tr.c_last


# ---------------------------------------------------------------------------
# params_from_torch reproduces every layer and direction
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_layer0_both_directions_match_single_layer_module(cell):
    m = make_module(cell, num_layers=1)
    x, h0, c0 = make_inputs(cell, layers=1)
    out, hn, cn = run_torch(m, cell, x, h0, c0)
    sd = m.state_dict()
    for d, reverse in enumerate((False, True)):
        p = params_from_torch(sd, cell, 0, reverse)
        h, h_last, c_last = run_gradlab(cell, p, x, h0[d], None if c0 is None else c0[d], reverse)
        np.testing.assert_allclose(h, out[..., d * H : (d + 1) * H], rtol=0, atol=1e-12)
        np.testing.assert_allclose(h_last, hn[d], rtol=0, atol=1e-12)
        if cell == "lstm":
            np.testing.assert_allclose(c_last, cn[d], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_every_layer_and_direction_of_a_stacked_bidirectional_module(cell):
    """Chain gradlab through both layers and both directions; compare output, h_n and c_n."""
    m = make_module(cell)
    x, h0, c0 = make_inputs(cell)
    out, hn, cn = run_torch(m, cell, x, h0, c0)
    sd = m.state_dict()
    layer_in = x
    for layer in range(LAYERS):
        halves = []
        for d, reverse in enumerate((False, True)):
            k = 2 * layer + d
            p = params_from_torch(sd, cell, layer, reverse)
            assert p.input_size == (D if layer == 0 else 2 * H)
            h, h_last, c_last = run_gradlab(cell, p, layer_in, h0[k], None if c0 is None else c0[k], reverse)
            np.testing.assert_allclose(h_last, hn[k], rtol=0, atol=1e-12, err_msg=f"h_n layer {layer} dir {d}")
            if cell == "lstm":
                np.testing.assert_allclose(c_last, cn[k], rtol=0, atol=1e-12, err_msg=f"c_n layer {layer} dir {d}")
            halves.append(h)
        layer_in = np.concatenate(halves, axis=-1)
    # the top layer's outputs, both directions
    np.testing.assert_allclose(layer_in, out, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_layer1_via_single_layer_module_loaded_with_params_to_torch(cell, reverse):
    """Layer 1 of a stacked module, rebuilt as a one-layer module from params_to_torch."""
    m = make_module(cell)
    x, h0, c0 = make_inputs(cell)
    out, _, _ = run_torch(m, cell, x, h0, c0)
    sd = m.state_dict()
    # layer 0's output, from torch itself: a one-layer bidirectional module with layer 0's weights
    m0 = make_module(cell, num_layers=1, seed=99)
    m0.load_state_dict({k: v for k, v in sd.items() if "_l0" in k})
    out0, _, _ = run_torch(m0, cell, x, h0[:2], None if c0 is None else c0[:2])

    p1 = params_from_torch(sd, cell, 1, reverse)
    single = make_module(cell, input_size=2 * H, num_layers=1, bidirectional=False, seed=98)
    single.load_state_dict(params_to_torch(p1, cell))
    k = 2 + int(reverse)
    xin = out0[::-1].copy() if reverse else out0
    got, _, _ = run_torch(single, cell, xin, h0[k : k + 1], None if c0 is None else c0[k : k + 1])
    if reverse:
        got = got[::-1]
    want = out[..., H:] if reverse else out[..., :H]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # and gradlab agrees with the same layer
    h, _, _ = run_gradlab(cell, p1, out0, h0[k], None if c0 is None else c0[k], reverse)
    np.testing.assert_allclose(h, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_module(cell):
    m = make_module(cell, num_layers=1, bidirectional=False, dtype=torch.float32)
    x, h0, c0 = make_inputs(cell, layers=1, dirs=1, dtype=np.float32)
    out, _, _ = run_torch(m, cell, x, h0, c0)
    p = params_from_torch(m.state_dict(), cell)
    for name, a in p.arrays().items():
        assert a.dtype == np.float32, name
    h, _, _ = run_gradlab(cell, p, x, h0[0], None if c0 is None else c0[0], False)
    assert h.dtype == np.float32
    np.testing.assert_allclose(h, out, rtol=0, atol=2e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_module_without_bias(cell):
    m = make_module(cell, num_layers=1, bidirectional=False, bias=False)
    x, h0, c0 = make_inputs(cell, layers=1, dirs=1)
    out, _, _ = run_torch(m, cell, x, h0, c0)
    p = params_from_torch(m.state_dict(), cell)
    np.testing.assert_array_equal(p.b, 0.0)
    if cell == "gru_cudnn":
        np.testing.assert_array_equal(p.b_hn, 0.0)
    else:
        assert p.b_hn is None
    h, _, _ = run_gradlab(cell, p, x, h0[0], None if c0 is None else c0[0], False)
    np.testing.assert_allclose(h, out, rtol=0, atol=1e-12)


def test_params_from_torch_reads_numpy_state_dict_and_copies():
    m = make_module("lstm", num_layers=1, bidirectional=False)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    p = params_from_torch(sd, "lstm")
    np.testing.assert_array_equal(p.W_h, sd["weight_hh_l0"])
    np.testing.assert_array_equal(p.b, sd["bias_ih_l0"] + sd["bias_hh_l0"])
    assert not np.shares_memory(p.W_h, sd["weight_hh_l0"])
    p.W_h[0, 0] += 1.0
    assert p.W_h[0, 0] != m.state_dict()["weight_hh_l0"][0, 0].item()


# ---------------------------------------------------------------------------
# The GRU sign mapping: gradlab's u is torch's 1 - z
# ---------------------------------------------------------------------------


def test_gru_update_gate_is_one_minus_torch_z():
    m = make_module("gru_cudnn", num_layers=1, bidirectional=False)
    x, h0, _ = make_inputs("gru_cudnn", layers=1, dirs=1)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    p = params_from_torch(sd, "gru_cudnn")
    tr = gradlab.forward("gru_cudnn", p, x, h0[0], backend="numpy")

    W_ih, W_hh, b_ih, b_hh = sd["weight_ih_l0"], sd["weight_hh_l0"], sd["bias_ih_l0"], sd["bias_hh_l0"]
    rs, zs, ns = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)

    def sig(a):
        return 1.0 / (1.0 + np.exp(-a))

    # the weights: r and n blocks as they are, z block negated; b_hn is torch's n block of bias_hh
    np.testing.assert_array_equal(p.W_x[rs], W_ih[rs])
    np.testing.assert_array_equal(p.W_x[zs], -W_ih[zs])
    np.testing.assert_array_equal(p.W_x[ns], W_ih[ns])
    np.testing.assert_array_equal(p.W_h[rs], W_hh[rs])
    np.testing.assert_array_equal(p.W_h[zs], -W_hh[zs])
    np.testing.assert_array_equal(p.W_h[ns], W_hh[ns])
    np.testing.assert_allclose(p.b[rs], b_ih[rs] + b_hh[rs], rtol=0, atol=1e-15)
    np.testing.assert_allclose(p.b[zs], -(b_ih[zs] + b_hh[zs]), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(p.b[ns], b_ih[ns])
    np.testing.assert_array_equal(p.b_hn, b_hh[ns])

    # torch's gates (PyTorch docs' equations) along the trajectory
    h_prev = h0[0]
    for t in range(T):
        r = sig(x[t] @ W_ih[rs].T + b_ih[rs] + h_prev @ W_hh[rs].T + b_hh[rs])
        z = sig(x[t] @ W_ih[zs].T + b_ih[zs] + h_prev @ W_hh[zs].T + b_hh[zs])
        n = np.tanh(x[t] @ W_ih[ns].T + b_ih[ns] + r * (h_prev @ W_hh[ns].T + b_hh[ns]))
        h = (1 - z) * n + z * h_prev
        g_r, g_u, g_n = np.split(tr.gates[t], 3, axis=-1)
        np.testing.assert_allclose(g_u, 1 - z, rtol=0, atol=1e-12)
        np.testing.assert_allclose(g_r, r, rtol=0, atol=1e-12)
        np.testing.assert_allclose(g_n, n, rtol=0, atol=1e-12)
        np.testing.assert_allclose(tr.h[t], h, rtol=0, atol=1e-12)
        # the gate is non-trivial: u and z differ, so a missing negation would show
        assert np.abs(g_u - z).max() > 1e-3
        h_prev = tr.h[t]


# ---------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_round_trip_reproduces_module(cell):
    m = make_module(cell)
    sd = m.state_dict()
    rebuilt = {}
    for layer in range(LAYERS):
        for reverse in (False, True):
            p = params_from_torch(sd, cell, layer, reverse)
            part = params_to_torch(p, cell, layer, reverse)
            assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float64 for v in part.values())
            rebuilt.update(part)
    assert set(rebuilt) == set(sd)
    for k in sd:
        assert rebuilt[k].shape == sd[k].shape, k
        if k.startswith("weight"):
            assert torch.equal(rebuilt[k], sd[k]), k  # weights exactly equal (z rows negated twice)
    # biases are split differently (all in bias_ih, except gru's b_hn) but sum the same
    for layer in range(LAYERS):
        for sfx in (f"_l{layer}", f"_l{layer}_reverse"):
            old = (sd["bias_ih" + sfx] + sd["bias_hh" + sfx]).numpy()
            new = (rebuilt["bias_ih" + sfx] + rebuilt["bias_hh" + sfx]).numpy()
            np.testing.assert_allclose(new, old, rtol=0, atol=1e-15)
            if cell == "gru_cudnn":
                assert torch.equal(rebuilt["bias_hh" + sfx][2 * H :], sd["bias_hh" + sfx][2 * H :])
                assert torch.equal(rebuilt["bias_ih" + sfx][2 * H :], sd["bias_ih" + sfx][2 * H :])

    other = make_module(cell, seed=1)
    assert not torch.equal(other.state_dict()["weight_hh_l0"], sd["weight_hh_l0"])
    other.load_state_dict(rebuilt)
    x, h0, c0 = make_inputs(cell)
    out, hn, cn = run_torch(m, cell, x, h0, c0)
    out2, hn2, cn2 = run_torch(other, cell, x, h0, c0)
    np.testing.assert_allclose(out2, out, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hn2, hn, rtol=0, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(cn2, cn, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_gradlab_params_round_trip_through_torch(cell):
    """params_from_torch(params_to_torch(p)) == p for gradlab-initialised params."""
    p = gradlab.init_params(cell, D, H, init="uniform", seed=3)
    before = p.copy()
    back = params_from_torch(params_to_torch(p, cell, 1, True), cell, 1, True)
    assert back.arrays().keys() == p.arrays().keys()
    for k, a in p.arrays().items():
        np.testing.assert_allclose(back.arrays()[k], a, rtol=0, atol=1e-15, err_msg=k)
        np.testing.assert_array_equal(a, before.arrays()[k], err_msg=k)  # input not modified


@pytest.mark.parametrize("cell", CELLS)
def test_params_to_torch_numpy(cell):
    p = gradlab.init_params(cell, D, H, init="uniform", seed=4)
    d = params_to_torch(p, cell, 1, True, as_tensors=False)
    assert set(d) == {f"{w}_l1_reverse" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    G = gradlab.CELLS[cell].num_gates
    for k, v in d.items():
        assert isinstance(v, np.ndarray) and not isinstance(v, torch.Tensor), k
        assert v.dtype == np.float64, k
    assert d["weight_ih_l1_reverse"].shape == (G * H, D)
    assert d["weight_hh_l1_reverse"].shape == (G * H, H)
    assert d["bias_ih_l1_reverse"].shape == (G * H,)
    assert d["bias_hh_l1_reverse"].shape == (G * H,)
    for k, v in d.items():
        for a in p.arrays().values():
            assert not np.shares_memory(v, a), k
    t = params_to_torch(p, cell, 1, True)
    for k in d:
        np.testing.assert_array_equal(t[k].numpy(), d[k])


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_torch_cells():
    assert set(TORCH_CELLS) == set(CELLS)


@pytest.mark.parametrize("cell", ["gru", "gru_simple"])
def test_cells_without_torch_equivalent(cell):
    sd = make_module("gru_cudnn", num_layers=1, bidirectional=False).state_dict()
    with pytest.raises(ValueError, match=f"'{cell}'"):
        params_from_torch(sd, cell)
    p = gradlab.init_params(cell, D, H)
    with pytest.raises(ValueError, match=f"'{cell}'"):
        params_to_torch(p, cell)
    with pytest.raises(ValueError, match=f"'{cell}'"):
        params_to_torch(p, cell, as_tensors=False)


def test_unknown_cell():
    sd = make_module("lstm", num_layers=1, bidirectional=False).state_dict()
    with pytest.raises(ValueError, match="cell"):
        params_from_torch(sd, "LSTM")


@pytest.mark.parametrize("key", ["weight_ih_l0", "weight_hh_l0"])
def test_missing_weight_key(key):
    sd = dict(make_module("rnn_tanh", num_layers=1, bidirectional=False).state_dict())
    del sd[key]
    with pytest.raises(KeyError, match=key):
        params_from_torch(sd, "rnn_tanh")


def test_missing_layer_or_direction():
    sd = make_module("lstm", num_layers=1, bidirectional=False).state_dict()
    with pytest.raises(KeyError, match="weight_ih_l1"):
        params_from_torch(sd, "lstm", layer=1)
    with pytest.raises(KeyError, match="weight_ih_l0_reverse"):
        params_from_torch(sd, "lstm", reverse=True)


@pytest.mark.parametrize("layer", [-1, True, 1.0, "0"])
def test_bad_layer(layer):
    sd = make_module("lstm", num_layers=1, bidirectional=False).state_dict()
    with pytest.raises(ValueError, match="layer"):
        params_from_torch(sd, "lstm", layer=layer)


@pytest.mark.parametrize("cell, wrong", [("lstm", "gru_cudnn"), ("gru_cudnn", "rnn_tanh"), ("rnn_tanh", "lstm")])
def test_state_dict_of_another_cell(cell, wrong):
    sd = make_module(cell, num_layers=1, bidirectional=False).state_dict()
    with pytest.raises(ValueError, match="weight_hh_l0"):
        params_from_torch(sd, wrong)


def test_wrong_weight_ih_shape():
    sd = dict(make_module("gru_cudnn", num_layers=1, bidirectional=False).state_dict())
    sd["weight_ih_l0"] = sd["weight_ih_l0"][:-1]
    with pytest.raises(ValueError, match="weight_ih_l0"):
        params_from_torch(sd, "gru_cudnn")
    sd["weight_ih_l0"] = torch.zeros(3 * H)
    with pytest.raises(ValueError, match="weight_ih_l0"):
        params_from_torch(sd, "gru_cudnn")


@pytest.mark.parametrize("key", ["bias_ih_l0", "bias_hh_l0"])
def test_wrong_bias_shape(key):
    sd = dict(make_module("lstm", num_layers=1, bidirectional=False).state_dict())
    sd[key] = sd[key][:-1]
    with pytest.raises(ValueError, match=key):
        params_from_torch(sd, "lstm")


def test_wrong_weight_hh_shape():
    sd = dict(make_module("rnn_tanh", num_layers=1, bidirectional=False).state_dict())
    sd["weight_hh_l0"] = torch.zeros(H, H + 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="weight_hh_l0"):
        params_from_torch(sd, "rnn_tanh")


def test_non_float_state_dict_entry():
    sd = dict(make_module("rnn_tanh", num_layers=1, bidirectional=False).state_dict())
    sd["weight_hh_l0"] = torch.zeros(H, H, dtype=torch.int64)
    with pytest.raises(TypeError, match="weight_hh_l0"):
        params_from_torch(sd, "rnn_tanh")


def test_params_to_torch_wrong_shapes():
    p = gradlab.init_params("rnn_tanh", D, H)
    with pytest.raises(ValueError, match="W_h"):
        params_to_torch(p, "lstm")
    p = gradlab.init_params("lstm", D, H)
    with pytest.raises(ValueError, match="params.b"):
        params_to_torch(gradlab.Params(p.W_x, p.W_h, p.b[:-1]), "lstm")
    with pytest.raises(ValueError, match="b_hn"):
        params_to_torch(gradlab.init_params("gru", D, H), "gru_cudnn")
