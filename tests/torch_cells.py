"""The cell equations of SPEC §2 written again with torch tensors: the autograd oracle.

Independent of gradlab's code: only the equations are shared.
"""

from __future__ import annotations

import numpy as np
import torch


def _blocks(a, n):
    return torch.chunk(a, n, dim=-1)


def step(cell, x_t, h, c, W_x, W_h, b, b_hn):
    """One step of ``cell``; returns (h_t, c_t) (c_t None except for the LSTM)."""
    if cell == "rnn_tanh":
        return torch.tanh(x_t @ W_x.T + h @ W_h.T + b), None
    if cell == "rnn_relu":
        return torch.relu(x_t @ W_x.T + h @ W_h.T + b), None
    if cell == "gru_simple":
        a_u, a_n = _blocks(x_t @ W_x.T + h @ W_h.T + b, 2)
        u, n = torch.sigmoid(a_u), torch.tanh(a_n)
        return u * n + (1 - u) * h, None
    if cell == "gru":
        H = h.shape[1]
        ax_r, ax_u, ax_n = _blocks(x_t @ W_x.T + b, 3)
        r = torch.sigmoid(ax_r + h @ W_h[:H].T)
        u = torch.sigmoid(ax_u + h @ W_h[H : 2 * H].T)
        n = torch.tanh(ax_n + (r * h) @ W_h[2 * H :].T)
        return u * n + (1 - u) * h, None
    if cell == "gru_cudnn":
        ax_r, ax_u, ax_n = _blocks(x_t @ W_x.T + b, 3)
        ah_r, ah_u, ah_n = _blocks(h @ W_h.T, 3)
        r, u = torch.sigmoid(ax_r + ah_r), torch.sigmoid(ax_u + ah_u)
        n = torch.tanh(ax_n + r * (ah_n + b_hn))
        return u * n + (1 - u) * h, None
    if cell == "lstm":
        a_i, a_f, a_g, a_o = _blocks(x_t @ W_x.T + h @ W_h.T + b, 4)
        i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
        c = f * c + i * g
        return o * torch.tanh(c), c
    raise ValueError(cell)


def run(cell, p, x, h0, c0, dh, dc_last, clip_step=None):
    """Forward with torch, backprop L = Σ_t <dh_t, h_t> + <dc_last, c_T>.

    With ``clip_step``, hooks clamp the total gradient of every h_t and c_t, which
    is what SPEC §3 asks of per-step clipping. Returns a dict of the forward
    states, every gradient, and the total-gradient norms seen by the hooks.
    """
    leaves = {
        "W_x": torch.tensor(p.W_x, requires_grad=True),
        "W_h": torch.tensor(p.W_h, requires_grad=True),
        "b": torch.tensor(p.b, requires_grad=True),
        "x": torch.tensor(x, requires_grad=True),
        "h0": torch.tensor(h0, requires_grad=True),
    }
    if p.b_hn is not None:
        leaves["b_hn"] = torch.tensor(p.b_hn, requires_grad=True)
    if c0 is not None:
        leaves["c0"] = torch.tensor(c0, requires_grad=True)
    T = x.shape[0]
    dh_norm = [None] * T
    dc_norm = [None] * T

    def hook(store, t):
        def f(g):
            store[t] = g.norm(dim=1).detach().numpy().copy()
            return g.clamp(-clip_step, clip_step) if clip_step is not None else g

        return f

    h, c = leaves["h0"], leaves.get("c0")
    hs, cs = [], []
    for t in range(T):
        h, c = step(cell, leaves["x"][t], h, c, leaves["W_x"], leaves["W_h"], leaves["b"], leaves.get("b_hn"))
        h.register_hook(hook(dh_norm, t))
        if c is not None:
            c.register_hook(hook(dc_norm, t))
            cs.append(c)
        hs.append(h)
    loss = sum((torch.tensor(dh[t]) * hs[t]).sum() for t in range(T))
    if dc_last is not None:
        loss = loss + (torch.tensor(dc_last) * cs[-1]).sum()
    loss.backward()
    out = {k: v.grad.numpy() for k, v in leaves.items()}
    out["h"] = torch.stack(hs).detach().numpy()
    out["c"] = torch.stack(cs).detach().numpy() if cs else None
    out["dh_norm"] = np.stack(dh_norm)
    out["dc_norm"] = np.stack(dc_norm) if cs else None
    return out
