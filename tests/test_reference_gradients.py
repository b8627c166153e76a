"""The NumPy reference's gradients against central finite differences and PyTorch autograd.

The loss is L = Σ_t <dh_t, h_t> + <dc_last, c_T>, whose gradient with respect to
the outside inputs of backward is exactly (dh, dc_last).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradlab
from conftest import make_problem
from torch_cells import run as torch_run

CELLS = gradlab.CELL_NAMES
FIELDS = ("W_x", "W_h", "b", "b_hn", "x", "h0", "c0")


def loss(cell, p, x, h0, c0, dh, dc_last):
    tr = gradlab.forward(cell, p, x, h0, c0, backend="numpy")
    value = float(np.sum(dh * tr.h))
    if dc_last is not None:
        value += float(np.sum(dc_last * tr.c[-1]))
    return value


def finite_difference(cell, field, p, x, h0, c0, dh, dc_last, eps=1e-6):
    """Central differences of the loss with respect to every element of one field."""
    inputs = {"x": x, "h0": h0, "c0": c0}
    target = inputs[field] if field in inputs else getattr(p, field)
    grad = np.zeros_like(target)
    for idx in np.ndindex(target.shape):
        old = target[idx]
        target[idx] = old + eps
        up = loss(cell, p, inputs["x"], inputs["h0"], inputs["c0"], dh, dc_last)
        target[idx] = old - eps
        down = loss(cell, p, inputs["x"], inputs["h0"], inputs["c0"], dh, dc_last)
        target[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


def relative_error(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("cell", CELLS)
def test_finite_differences(cell):
    p, x, h0, c0, dh, dc_last = make_problem(cell, T=5, B=2, D=3, H=4, seed=3)
    if cell == "rnn_relu":
        a = gradlab.forward(cell, p, x, h0).h  # no pre-activation within the FD step of the kink
        pre = np.concatenate([h0[None], a[:-1]]) @ p.W_h.T + x @ p.W_x.T + p.b
        assert np.abs(pre).min() > 1e-4
    tr = gradlab.forward(cell, p, x, h0, c0, backend="numpy")
    g = gradlab.backward(cell, p, tr, dh, dc_last, backend="numpy")
    checked = 0
    for field in FIELDS:
        analytic = getattr(g, field)
        present = getattr(p, field, None) if field not in ("x", "h0", "c0") else {"x": x, "h0": h0, "c0": c0}[field]
        if present is None:
            assert analytic is None, field
            continue
        fd = finite_difference(cell, field, p, x, h0, c0, dh, dc_last)
        err = relative_error(analytic, fd)
        assert err <= 1e-6, f"{cell}.{field}: relative error {err:.2e}"
        checked += 1
    assert checked == 5 + gradlab.CELLS[cell].has_b_hn + gradlab.CELLS[cell].has_cell_state


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("clip_step", [None, 0.3])
def test_torch_autograd_equations(cell, clip_step):
    """Forward states, every gradient and the per-step norms against the same equations in torch."""
    p, x, h0, c0, dh, dc_last = make_problem(cell, T=6, B=3, D=4, H=5, seed=7, scale=1.3)
    tr = gradlab.forward(cell, p, x, h0, c0, backend="numpy")
    g = gradlab.backward(cell, p, tr, dh, dc_last, backend="numpy", clip_step=clip_step)
    ref = torch_run(cell, p, x, h0, c0, dh, dc_last, clip_step=clip_step)
    np.testing.assert_allclose(tr.h, ref["h"], rtol=1e-10, atol=1e-13)
    if ref["c"] is not None:
        np.testing.assert_allclose(tr.c, ref["c"], rtol=1e-10, atol=1e-13)
    for field in FIELDS:
        ours = getattr(g, field)
        if field in ref:
            np.testing.assert_allclose(ours, ref[field], rtol=1e-10, atol=1e-12, err_msg=f"{cell}.{field}")
        else:
            assert ours is None
    np.testing.assert_allclose(g.dh_norm, ref["dh_norm"], rtol=1e-10, atol=1e-13)
    if gradlab.CELLS[cell].has_cell_state:
        np.testing.assert_allclose(g.dc_norm, ref["dc_norm"], rtol=1e-10, atol=1e-13)
    else:
        assert g.dc_norm is None


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru_cudnn", "lstm"])
def test_clip_step_changes_gradients_only_when_it_binds(cell):
    p, x, h0, c0, dh, dc_last = make_problem(cell, T=8, B=2, D=3, H=4, seed=11, scale=1.5)
    tr = gradlab.forward(cell, p, x, h0, c0)
    free = gradlab.backward(cell, p, tr, dh, dc_last)
    loose = gradlab.backward(cell, p, tr, dh, dc_last, clip_step=1e6)
    tight = gradlab.backward(cell, p, tr, dh, dc_last, clip_step=0.05)
    for field in ("W_x", "W_h", "b", "x", "h0"):
        np.testing.assert_array_equal(getattr(free, field), getattr(loose, field))
    assert not np.allclose(free.W_h, tight.W_h)
    # the recorded norm at the last step is taken before the clip, so it is unchanged by it
    np.testing.assert_allclose(tight.dh_norm[-1], np.linalg.norm(dh[-1], axis=1), rtol=1e-14)
    # h0 receives a gradient that flowed through clipped totals: its size is bounded accordingly
    assert np.abs(tight.h0).max() < np.abs(free.h0).max()


TORCH_MODULES = {
    "rnn_tanh": lambda D, H: torch.nn.RNN(D, H, nonlinearity="tanh"),
    "rnn_relu": lambda D, H: torch.nn.RNN(D, H, nonlinearity="relu"),
    "gru_cudnn": lambda D, H: torch.nn.GRU(D, H),
    "lstm": lambda D, H: torch.nn.LSTM(D, H),
}


@pytest.mark.parametrize("cell", list(TORCH_MODULES))
def test_torch_nn_modules(cell):
    """torch.nn.RNN / GRU / LSTM, mapped through gradlab.interop, agree to 1e-10."""
    T, B, D, H = 7, 3, 4, 5
    torch.manual_seed(0)
    module = TORCH_MODULES[cell](D, H).double()
    p = gradlab.interop.params_from_torch(module.state_dict(), cell)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(T, B, D))
    h0 = rng.normal(size=(B, H))
    c0 = rng.normal(size=(B, H)) if cell == "lstm" else None
    dh = rng.normal(size=(T, B, H))
    dc_last = rng.normal(size=(B, H)) if cell == "lstm" else None

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0[None], requires_grad=True)
    if cell == "lstm":
        c0t = torch.tensor(c0[None], requires_grad=True)
        out, (hT, cT) = module(xt, (h0t, c0t))
        L = (out * torch.tensor(dh)).sum() + (cT[0] * torch.tensor(dc_last)).sum()
    else:
        out, hT = module(xt, h0t)
        L = (out * torch.tensor(dh)).sum()
    L.backward()
    grads_torch = gradlab.interop.params_from_torch(
        {k: v.grad for k, v in module.named_parameters()}, cell
    )

    tr = gradlab.forward(cell, p, x, h0, c0)
    g = gradlab.backward(cell, p, tr, dh, dc_last)
    np.testing.assert_allclose(tr.h, out.detach().numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(g.x, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g.h0, h0t.grad.numpy()[0], rtol=1e-10, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(tr.c[-1], cT.detach().numpy()[0], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(g.c0, c0t.grad.numpy()[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g.W_x, grads_torch.W_x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g.W_h, grads_torch.W_h, rtol=1e-10, atol=1e-12)
    # bias_ih alone carries ∂L/∂b (bias_hh gets the same, except gru_cudnn's n block: ∂L/∂b_hn)
    bias_ih = gradlab.interop.params_from_torch(
        {"weight_ih_l0": module.weight_ih_l0.grad, "weight_hh_l0": module.weight_hh_l0.grad,
         "bias_ih_l0": module.bias_ih_l0.grad}, cell
    )
    np.testing.assert_allclose(g.b, bias_ih.b, rtol=1e-10, atol=1e-12)
    if cell == "gru_cudnn":
        np.testing.assert_allclose(g.b_hn, module.bias_hh_l0.grad.numpy()[2 * H :], rtol=1e-10, atol=1e-12)
