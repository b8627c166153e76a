"""gradlab.Network: loss_and_grads against central finite differences, the record, modes, persistence."""

from __future__ import annotations

import numpy as np
import pytest

import gradlab
from gradlab import Network

CELLS = gradlab.CELL_NAMES


def make_net(cell, mode="many_to_many", head="softmax", bidirectional=True, layers=2, D=2, H=2, K=3, seed=0):
    """A small network with non-zero biases and head, so every gradient entry is exercised."""
    net = Network(cell, D, H, K, num_layers=layers, bidirectional=bidirectional, head=head, mode=mode,
                  scale=1.1, seed=seed, backend="numpy")
    rng = np.random.default_rng(seed + 100)
    for k, a in net.params.items():
        if k.endswith((".b", ".b_hn", "b_y")):
            a[...] = rng.normal(0, 0.5, a.shape)
    return net


def make_data(net, T=4, B=2, Ty=3, seed=1, masked=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, B, net.input_size))
    K = net.output_size
    steps = Ty if net.mode == "seq2seq" else T
    if net.mode == "many_to_one":
        y = rng.integers(0, K, B) if net.head == "softmax" else rng.normal(size=(B, K))
        return x, y, None
    y = rng.integers(0, K, (steps, B)) if net.head == "softmax" else rng.normal(size=(steps, B, K))
    mask = None
    if masked:
        mask = (rng.random((steps, B)) < 0.6).astype(np.float64)
        mask[-1] = 1.0
        mask[0, 0] = 0.0
    return x, y, mask


def finite_differences(net, x, y, mask, eps=1e-6):
    grads = {}
    for key, a in net.params.items():
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = net.loss(x, y, mask)
            a[idx] = old - eps
            down = net.loss(x, y, mask)
            a[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads[key] = g
    return grads


def assert_grads_match(net, x, y, mask, zero=()):
    """Relative error below 1e-6, above an absolute floor of 2e-9 (the differences' rounding noise)."""
    res = net.loss_and_grads(x, y, mask)
    assert res.loss == net.loss(x, y, mask)
    fd = finite_differences(net, x, y, mask)
    assert res.grads.keys() == net.params.keys()
    for key in net.params:
        err = np.linalg.norm(res.grads[key] - fd[key])
        assert err <= 1e-6 * np.linalg.norm(fd[key]) + 2e-9, f"{key}: error {err:.2e}, |grad| {np.linalg.norm(fd[key]):.2e}"
        assert (np.linalg.norm(fd[key]) > 0) != (key in zero), f"{key}: zero gradient expected only for {zero}"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("head", ["softmax", "linear"])
def test_bidirectional_two_layer_finite_differences(cell, head):
    """Every parameter of a 2-layer bidirectional network, head included, each loss, with a mask."""
    net = make_net(cell, head=head)
    x, y, mask = make_data(net)
    assert_grads_match(net, x, y, mask)


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru_cudnn", "lstm"])
@pytest.mark.parametrize("head", ["softmax", "linear"])
def test_many_to_one_finite_differences(cell, head):
    net = make_net(cell, mode="many_to_one", head=head)
    x, y, _ = make_data(net, T=5)
    # the top reversed pass reads only x_T before the head: its W_h meets h_0 = 0 alone
    assert_grads_match(net, x, y, None, zero=("layer1.reverse.W_h",))


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "lstm"])
def test_seq2seq_finite_differences_reach_the_encoder(cell):
    """Tx ≠ Ty; the decoder's loss trains the encoder through its final h (and c)."""
    net = make_net(cell, mode="seq2seq", bidirectional=False)
    x, y, mask = make_data(net, T=4, Ty=3)
    assert_grads_match(net, x, y, mask)
    res = net.loss_and_grads(x, y, mask)
    assert res.record.dh_norm.shape == (2, 1, 4 + 3, 2)
    assert res.record.encoder_steps == 4
    # the encoder's last step carries exactly the decoder's ∂L/∂h_0 (no head on the encoder)
    assert np.all(res.record.dh_norm[:, 0, 3] > 0)


def test_seq2seq_linear_head_finite_differences():
    net = make_net("gru_simple", mode="seq2seq", head="linear", bidirectional=False, layers=1)
    x, y, mask = make_data(net, T=3, Ty=5)
    assert_grads_match(net, x, y, mask)


def test_record_shapes_and_reversed_direction_in_real_time():
    """Many-to-one bidirectional: the loss sits at t = T, which the reversed pass reads first.

    So in real time the reversed direction's ‖∂L/∂h_t‖ is non-zero only at t = T,
    and the forward direction's is non-zero all the way back.
    """
    net = make_net("gru", mode="many_to_one", bidirectional=True, layers=1, H=4)
    x, y, _ = make_data(net, T=6, B=3)
    rec = net.loss_and_grads(x, y).record
    assert rec.dh_norm.shape == (1, 2, 6, 3)
    assert rec.dc_norm is None
    assert np.all(rec.dh_norm[0, 1, -1] > 0)
    np.testing.assert_array_equal(rec.dh_norm[0, 1, :-1], 0.0)
    assert np.all(rec.dh_norm[0, 0] > 0)
    lstm = make_net("lstm", mode="many_to_one", layers=3)
    rec = lstm.loss_and_grads(*make_data(lstm, T=5)[:2]).record
    assert rec.dh_norm.shape == rec.dc_norm.shape == (3, 2, 5, 2)


def test_bidirectional_outputs_match_a_manual_reversal():
    net = make_net("lstm", layers=1, mode="many_to_many", head="linear")
    x, _, _ = make_data(net, T=5, B=2)
    fwd = gradlab.forward("lstm", net.layer_params(0, "forward"), x, backend="numpy").h
    rev = gradlab.forward("lstm", net.layer_params(0, "reverse"), np.ascontiguousarray(x[::-1]), backend="numpy").h[::-1]
    a = np.concatenate([fwd, rev], axis=-1)
    expected = a @ net.params["head.W_y"].T + net.params["head.b_y"]
    np.testing.assert_allclose(net.predict(x), expected, rtol=1e-14)


def test_mask_zero_removes_steps_from_loss_and_gradients():
    net = make_net("rnn_tanh", bidirectional=False, layers=1)
    x, y, _ = make_data(net, T=5, masked=False)
    mask = np.ones((5, 2))
    mask[2:] = 0
    full = net.loss_and_grads(x[:2], y[:2])
    masked = net.loss_and_grads(x, y, mask)
    assert masked.loss == pytest.approx(full.loss, rel=1e-13)
    for k in net.params:
        np.testing.assert_allclose(masked.grads[k], full.grads[k], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(masked.record.dh_norm[..., 2:, :], 0.0)


def test_loss_is_sum_over_steps_mean_over_batch():
    net = make_net("gru", bidirectional=False, layers=1)
    x, y, _ = make_data(net, T=4, B=3, masked=False)
    z = net.predict(x)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    expected = -np.take_along_axis(logp, y[..., None], -1).sum() / 3
    assert net.loss_and_grads(x, y).loss == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru_cudnn", "lstm"])
def test_backends_agree(cell):
    net = make_net(cell, layers=2, H=3)
    x, y, mask = make_data(net, T=6, B=3)
    ref = net.loss_and_grads(x, y, mask, backend="numpy")
    cpu = net.loss_and_grads(x, y, mask, backend="cpu")
    assert cpu.loss == pytest.approx(ref.loss, rel=1e-12)
    for k in net.params:
        np.testing.assert_allclose(cpu.grads[k], ref.grads[k], rtol=1e-10, atol=1e-13, err_msg=k)
    np.testing.assert_allclose(cpu.record.dh_norm, ref.record.dh_norm, rtol=1e-10, atol=1e-13)


def test_float32_network():
    net = Network("lstm", 2, 4, 3, num_layers=2, bidirectional=True, dtype=np.float32, backend="numpy")
    x = np.random.default_rng(0).normal(size=(5, 2, 2)).astype(np.float32)
    y = np.zeros((5, 2), np.int64)
    res = net.loss_and_grads(x, y)
    assert all(g.dtype == np.float32 for g in res.grads.values())
    ref = Network("lstm", 2, 4, 3, num_layers=2, bidirectional=True, backend="numpy")
    assert res.loss == pytest.approx(ref.loss_and_grads(x.astype(np.float64), y).loss, rel=1e-4)


def test_clip_step_reaches_every_layer():
    net = make_net("rnn_tanh", layers=2, H=3)
    x, y, mask = make_data(net, T=8)
    free = net.loss_and_grads(x, y, mask)
    tight = net.loss_and_grads(x, y, mask, clip_step=1e-3)
    for k in net.params:
        if not k.startswith("head"):
            assert np.abs(tight.grads[k]).max() < np.abs(free.grads[k]).max(), k
    np.testing.assert_array_equal(tight.grads["head.W_y"], free.grads["head.W_y"])


@pytest.mark.parametrize("mode", ["many_to_many", "many_to_one"])
def test_truncated_bptt(mode):
    """tbptt >= T is full BPTT; tbptt = k sums windows with the state carried and the gradients cut."""
    net = make_net("lstm", mode=mode, bidirectional=False, layers=2, H=3)
    x, y, mask = make_data(net, T=7)
    full = net.loss_and_grads(x, y, mask)
    same = net.loss_and_grads(x, y, mask, tbptt=7)
    assert same.loss == full.loss
    cut = net.loss_and_grads(x, y, mask, tbptt=3)
    assert cut.loss == pytest.approx(full.loss, rel=1e-12)  # the forward pass is the same
    assert not np.allclose(cut.grads["layer0.forward.W_h"], full.grads["layer0.forward.W_h"])
    # by hand: windows [0,3), [3,6), [6,7)
    state, total = None, {k: 0.0 for k in net.params}
    norms = np.zeros_like(full.record.dh_norm)
    for t0, t1 in [(0, 3), (3, 6), (6, 7)]:
        if mode == "many_to_one" and t1 < 7:
            state = net.final_state(x[t0:t1], state)
            continue
        yw = y if mode == "many_to_one" else y[t0:t1]
        r = net.loss_and_grads(x[t0:t1], yw, None if mask is None else mask[t0:t1], state=state)
        total = {k: total[k] + r.grads[k] for k in net.params}
        norms[..., t0:t1, :] = r.record.dh_norm
        state = r.record.final_state
    for k in net.params:
        np.testing.assert_allclose(cut.grads[k], total[k], rtol=1e-13, atol=1e-15)
    # the record is the windows' records side by side: no gradient crosses a window edge
    np.testing.assert_allclose(cut.record.dh_norm, norms, rtol=1e-13)
    assert not np.allclose(cut.record.dh_norm, full.record.dh_norm)
    if mode == "many_to_one":
        np.testing.assert_array_equal(cut.record.dh_norm[..., :6, :], 0.0)


def test_state_is_carried():
    net = make_net("gru", bidirectional=False, layers=2, H=3)
    x, y, _ = make_data(net, T=6, masked=False)
    whole = net.predict(x)
    state = net.final_state(x[:4])
    np.testing.assert_allclose(net.predict(x[4:], state), whole[4:], rtol=1e-13)
    out, s = net.step(x[4], state)
    np.testing.assert_allclose(out, whole[4], rtol=1e-13)


def test_overflow_gives_nan_loss_and_gradients_not_an_exception():
    net = Network("rnn_relu", 1, 4, 1, head="linear", mode="many_to_one", init="identity", scale=50.0, backend="numpy")
    x = np.ones((400, 2, 1))
    net.params["layer0.forward.W_x"][:] = 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        res = net.loss_and_grads(x, np.zeros((2, 1)))
    assert np.isnan(res.loss) and np.isnan(res.record.dh_norm).all()
    assert all(np.isnan(g).all() for g in res.grads.values())


def test_save_and_load(tmp_path):
    net = make_net("gru_cudnn", mode="many_to_one", head="linear")
    path = tmp_path / "net.npz"
    net.save(path)
    back = Network.load(path, backend="numpy")
    assert back.config() == net.config()
    assert back.params.keys() == net.params.keys()
    for k in net.params:
        np.testing.assert_array_equal(back.params[k], net.params[k])
    x, y, _ = make_data(net)
    assert back.loss_and_grads(x, y).loss == net.loss_and_grads(x, y).loss
    with pytest.raises(ValueError, match="params"):
        make_net("lstm").set_params(back.params)


def test_seeds_reproduce_and_differ():
    a, b, c = (Network("lstm", 3, 4, 2, num_layers=2, seed=s) for s in (1, 1, 2))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["layer1.forward.W_h"], c.params["layer1.forward.W_h"])
    assert np.all(a.params["layer0.forward.b"][4:8] == 1.0)  # the LSTM's forget bias defaults to 1


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"cell": "elman"}, "cell"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"num_layers": 0}, "num_layers"),
        ({"head": "sigmoid"}, "head"),
        ({"mode": "one_to_one"}, "mode"),
        ({"mode": "seq2seq", "bidirectional": True}, "bidirectional"),
        ({"backend": "gpu"}, "backend"),
        ({"dtype": np.int32}, "dtype"),
    ],
)
def test_bad_constructor_arguments(kwargs, arg):
    args = {"cell": "lstm", "input_size": 2, "hidden_size": 3, "output_size": 2, **kwargs}
    with pytest.raises((ValueError, TypeError), match=arg):
        Network(**args)


def test_bad_call_arguments():
    net = make_net("lstm", bidirectional=False, layers=1)
    x, y, mask = make_data(net, T=4, B=2)
    with pytest.raises(ValueError, match="y: expected shape"):
        net.loss_and_grads(x, y[:3])
    with pytest.raises(ValueError, match=r"y: class targets must lie in \[0, 3\)"):
        net.loss_and_grads(x, y + 3)
    with pytest.raises(TypeError, match="y: class targets must have an integer dtype"):
        net.loss_and_grads(x, y.astype(float))
    with pytest.raises(ValueError, match="mask: expected shape"):
        net.loss_and_grads(x, y, mask[:2])
    with pytest.raises(TypeError, match="x: dtype float32 does not match"):
        net.loss_and_grads(x.astype(np.float32), y)
    with pytest.raises(ValueError, match="x: expected 3 dimensions"):
        net.loss_and_grads(x[0], y)
    with pytest.raises(ValueError, match="tbptt"):
        net.loss_and_grads(x, y, tbptt=0)
    with pytest.raises(ValueError, match="state"):
        net.loss_and_grads(x, y, state=[])
    m2o = make_net("gru", mode="many_to_one", head="linear", bidirectional=False)
    with pytest.raises(ValueError, match="mask"):
        m2o.loss_and_grads(x, np.zeros((2, 3)), np.ones((4, 2)))
    with pytest.raises(TypeError, match="y: dtype float32 does not match"):
        m2o.loss_and_grads(x, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="bidirectional"):
        make_net("gru").step(x[0])
