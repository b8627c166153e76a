"""The NumPy reference: forward and full BPTT for every cell, written to be read.

This is the oracle every faster backend is tested against. It favours clarity
over speed: one function per cell for the forward step and one for the
backward step, each with its equations. Arrays are time-major, ``(T, B, ·)``,
and the weights act on row vectors: ``a = x W_x^T + h W_h^T + b``.

Notation (SPEC §2): σ is the logistic sigmoid, ⊙ the elementwise product,
``a_x = x_t W_x^T + b`` the input part of a gate's pre-activation (computed for
all steps at once), ``a`` the full pre-activation. In the backward step ``dh``
is the total ∂L/∂h_t and ``da`` the gradient of the pre-activations.
"""

from __future__ import annotations

import numpy as np

from ..types import Grads, Params, Trace
from .cells import CellSpec


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1 / (1 + e^{-z}), without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def split(a: np.ndarray, n: int) -> list[np.ndarray]:
    """Split the last axis into ``n`` equal gate blocks."""
    return np.split(a, n, axis=-1)


# ----------------------------------------------------------------------------
# Forward steps. Each takes the input pre-activation a_x (B, G*H), the previous
# state and the parameters, and returns (h, c, gates, hn): the new hidden state,
# the new cell state (LSTM, else None), the gate activations (B, G*H) and the
# gru_cudnn recurrent candidate term (else None).
# ----------------------------------------------------------------------------


def rnn_tanh_forward_step(a_x, h_prev, c_prev, p: Params):
    """h_t = tanh(W_x x_t + W_h h_{t-1} + b)."""
    h = np.tanh(a_x + h_prev @ p.W_h.T)
    return h, None, h, None


def rnn_relu_forward_step(a_x, h_prev, c_prev, p: Params):
    """h_t = max(0, W_x x_t + W_h h_{t-1} + b)."""
    h = np.maximum(a_x + h_prev @ p.W_h.T, 0)
    return h, None, h, None


def gru_simple_forward_step(a_x, h_prev, c_prev, p: Params):
    """The notes' simplified GRU (no reset gate).

    u = σ(W_xu x_t + W_hu h_{t-1} + b_u),  n = tanh(W_xn x_t + W_hn h_{t-1} + b_n),
    h_t = u ⊙ n + (1 - u) ⊙ h_{t-1}.
    """
    a_u, a_n = split(a_x + h_prev @ p.W_h.T, 2)
    u, n = sigmoid(a_u), np.tanh(a_n)
    h = u * n + (1 - u) * h_prev
    return h, None, np.concatenate([u, n], axis=-1), None


def gru_forward_step(a_x, h_prev, c_prev, p: Params):
    """The full GRU of Cho et al. 2014 and the notes: reset BEFORE the recurrent product.

    r = σ(W_xr x_t + W_hr h_{t-1} + b_r),  u = σ(W_xu x_t + W_hu h_{t-1} + b_u),
    n = tanh(W_xn x_t + W_hn (r ⊙ h_{t-1}) + b_n),  h_t = u ⊙ n + (1 - u) ⊙ h_{t-1}.
    """
    H = h_prev.shape[1]
    ax_r, ax_u, ax_n = split(a_x, 3)
    W_hr, W_hu, W_hn = p.W_h[:H], p.W_h[H : 2 * H], p.W_h[2 * H :]
    r = sigmoid(ax_r + h_prev @ W_hr.T)
    u = sigmoid(ax_u + h_prev @ W_hu.T)
    n = np.tanh(ax_n + (r * h_prev) @ W_hn.T)
    h = u * n + (1 - u) * h_prev
    return h, None, np.concatenate([r, u, n], axis=-1), None


def gru_cudnn_forward_step(a_x, h_prev, c_prev, p: Params):
    """The cuDNN / PyTorch GRU: reset AFTER the recurrent product.

    hn = W_hn h_{t-1} + b_hn,  n = tanh(W_xn x_t + b_n + r ⊙ hn); r, u and h_t as in ``gru``.
    """
    ax_r, ax_u, ax_n = split(a_x, 3)
    ah_r, ah_u, ah_n = split(h_prev @ p.W_h.T, 3)
    r, u = sigmoid(ax_r + ah_r), sigmoid(ax_u + ah_u)
    hn = ah_n + p.b_hn
    n = np.tanh(ax_n + r * hn)
    h = u * n + (1 - u) * h_prev
    return h, None, np.concatenate([r, u, n], axis=-1), hn


def lstm_forward_step(a_x, h_prev, c_prev, p: Params):
    """The LSTM of Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al. 2000.

    i, f, o = σ(·), g = tanh(·), each of W_x x_t + W_h h_{t-1} + b (its block);
    c_t = f ⊙ c_{t-1} + i ⊙ g,  h_t = o ⊙ tanh(c_t).
    """
    a_i, a_f, a_g, a_o = split(a_x + h_prev @ p.W_h.T, 4)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return h, c, np.concatenate([i, f, g, o], axis=-1), None


# ----------------------------------------------------------------------------
# Backward steps. Each takes the total gradient dh = ∂L/∂h_t (and, for the
# LSTM, the total dc = ∂L/∂c_t), what the forward step kept, and returns
# (da_x, dW_h, db_hn, dh_prev, dc_prev): the gradient of the input
# pre-activation a_x (B, G*H), this step's contribution to ∂L/∂W_h and ∂L/∂b_hn,
# and the gradients flowing into h_{t-1} and c_{t-1} through this step.
# ----------------------------------------------------------------------------


def rnn_tanh_backward_step(dh, dc, gates, hn, h_prev, c_prev, c, p: Params):
    """da = dh ⊙ (1 - h_t²);  ∂L/∂W_h += da^T h_{t-1};  ∂L/∂h_{t-1} = da W_h."""
    h = gates
    da = dh * (1 - h * h)
    return da, da.T @ h_prev, None, da @ p.W_h, None


def rnn_relu_backward_step(dh, dc, gates, hn, h_prev, c_prev, c, p: Params):
    """da = dh ⊙ [h_t > 0];  ∂L/∂W_h += da^T h_{t-1};  ∂L/∂h_{t-1} = da W_h."""
    h = gates
    da = np.where(h > 0, dh, 0).astype(dh.dtype, copy=False)
    return da, da.T @ h_prev, None, da @ p.W_h, None


def gru_simple_backward_step(dh, dc, gates, hn, h_prev, c_prev, c, p: Params):
    """Simplified GRU.

    da_u = dh ⊙ (n - h_{t-1}) ⊙ u(1 - u),  da_n = dh ⊙ u ⊙ (1 - n²),
    ∂L/∂h_{t-1} = dh ⊙ (1 - u) + [da_u, da_n] W_h.
    """
    u, n = split(gates, 2)
    da = np.concatenate([dh * (n - h_prev) * u * (1 - u), dh * u * (1 - n * n)], axis=-1)
    dh_prev = dh * (1 - u) + da @ p.W_h
    return da, da.T @ h_prev, None, dh_prev, None


def gru_backward_step(dh, dc, gates, hn, h_prev, c_prev, c, p: Params):
    """Full GRU, reset before the product (s = r ⊙ h_{t-1} is what W_hn sees).

    da_n = dh ⊙ u ⊙ (1 - n²),  ds = da_n W_hn,  da_r = ds ⊙ h_{t-1} ⊙ r(1 - r),
    da_u = dh ⊙ (n - h_{t-1}) ⊙ u(1 - u),
    ∂L/∂W_h = [da_r, da_u]^T h_{t-1} stacked over da_n^T s,
    ∂L/∂h_{t-1} = dh ⊙ (1 - u) + ds ⊙ r + [da_r, da_u] [W_hr; W_hu].
    """
    H = h_prev.shape[1]
    r, u, n = split(gates, 3)
    W_hru, W_hn = p.W_h[: 2 * H], p.W_h[2 * H :]
    s = r * h_prev
    da_n = dh * u * (1 - n * n)
    ds = da_n @ W_hn
    da_r = ds * h_prev * r * (1 - r)
    da_u = dh * (n - h_prev) * u * (1 - u)
    da_ru = np.concatenate([da_r, da_u], axis=-1)
    dW_h = np.concatenate([da_ru.T @ h_prev, da_n.T @ s], axis=0)
    dh_prev = dh * (1 - u) + ds * r + da_ru @ W_hru
    return np.concatenate([da_ru, da_n], axis=-1), dW_h, None, dh_prev, None


def gru_cudnn_backward_step(dh, dc, gates, hn, h_prev, c_prev, c, p: Params):
    """cuDNN GRU, reset after the product.

    da_n = dh ⊙ u ⊙ (1 - n²),  dhn = da_n ⊙ r (gradient of W_hn h_{t-1} + b_hn),
    da_r = da_n ⊙ hn ⊙ r(1 - r),  da_u = dh ⊙ (n - h_{t-1}) ⊙ u(1 - u),
    ∂L/∂W_h = [da_r, da_u, dhn]^T h_{t-1},  ∂L/∂b_hn = Σ_b dhn,
    ∂L/∂h_{t-1} = dh ⊙ (1 - u) + [da_r, da_u, dhn] W_h.
    """
    r, u, n = split(gates, 3)
    da_n = dh * u * (1 - n * n)
    da_r = da_n * hn * r * (1 - r)
    da_u = dh * (n - h_prev) * u * (1 - u)
    da_rec = np.concatenate([da_r, da_u, da_n * r], axis=-1)
    dh_prev = dh * (1 - u) + da_rec @ p.W_h
    da_x = np.concatenate([da_r, da_u, da_n], axis=-1)
    return da_x, da_rec.T @ h_prev, (da_n * r).sum(axis=0), dh_prev, None


def lstm_cell_grad(dh, dc_next, gates, c):
    """The total ∂L/∂c_t: what flows back from c_{t+1} plus the path through h_t.

    ∂L/∂c_t = dc_next + dh ⊙ o ⊙ (1 - tanh²(c_t)).
    """
    o = split(gates, 4)[3]
    tc = np.tanh(c)
    return dc_next + dh * o * (1 - tc * tc)


def lstm_backward_step(dh, dc, gates, hn, h_prev, c_prev, c, p: Params):
    """LSTM, given the total dh and dc (see :func:`lstm_cell_grad`).

    da_i = dc ⊙ g ⊙ i(1 - i),  da_f = dc ⊙ c_{t-1} ⊙ f(1 - f),  da_g = dc ⊙ i ⊙ (1 - g²),
    da_o = dh ⊙ tanh(c_t) ⊙ o(1 - o),
    ∂L/∂c_{t-1} = dc ⊙ f,  ∂L/∂h_{t-1} = [da_i, da_f, da_g, da_o] W_h.
    """
    i, f, g, o = split(gates, 4)
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g), dh * np.tanh(c) * o * (1 - o)],
        axis=-1,
    )
    return da, da.T @ h_prev, None, da @ p.W_h, dc * f


FORWARD_STEP = {
    "rnn_tanh": rnn_tanh_forward_step,
    "rnn_relu": rnn_relu_forward_step,
    "gru_simple": gru_simple_forward_step,
    "gru": gru_forward_step,
    "gru_cudnn": gru_cudnn_forward_step,
    "lstm": lstm_forward_step,
}

BACKWARD_STEP = {
    "rnn_tanh": rnn_tanh_backward_step,
    "rnn_relu": rnn_relu_backward_step,
    "gru_simple": gru_simple_backward_step,
    "gru": gru_backward_step,
    "gru_cudnn": gru_cudnn_backward_step,
    "lstm": lstm_backward_step,
}


# ----------------------------------------------------------------------------
# The time loops. Inputs arrive validated (gradlab.validate): contiguous, one
# dtype, finite, h0/c0 filled in.
# ----------------------------------------------------------------------------


def forward(spec: CellSpec, p: Params, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None) -> Trace:
    """Run the cell over T steps: h_t = cell(x_t, h_{t-1}[, c_{t-1}])."""
    step = FORWARD_STEP[spec.name]
    T, B, _ = x.shape
    H = p.hidden_size
    a_x = x @ p.W_x.T + p.b  # the input projection of every step at once, (T, B, G*H)
    h = np.empty((T, B, H), x.dtype)
    c = np.empty((T, B, H), x.dtype) if spec.has_cell_state else None
    gates = np.empty((T, B, spec.num_gates * H), x.dtype)
    hn = np.empty((T, B, H), x.dtype) if spec.has_b_hn else None
    h_prev, c_prev = h0, c0
    for t in range(T):
        h[t], c_t, gates[t], hn_t = step(a_x[t], h_prev, c_prev, p)
        if c is not None:
            c[t] = c_t
        if hn is not None:
            hn[t] = hn_t
        h_prev, c_prev = h[t], c_t
    return Trace(cell=spec.name, h=h, c=c, x=x, h0=h0, c0=c0, gates=gates, hn=hn, backend="numpy")


def backward(spec: CellSpec, p: Params, trace: Trace, dh: np.ndarray, dc_last, clip_step) -> Grads:
    """Full backpropagation through time, recording ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) at every step.

    At each step, from t = T down to 1: the total ∂L/∂h_t is the outside
    gradient ``dh[t]`` plus what flowed back from step t+1; its norm is recorded,
    then (with ``clip_step``) it is clipped to [-clip_step, clip_step] before it
    flows further back. For the LSTM the total ∂L/∂c_t is formed from the
    clipped ∂L/∂h_t, recorded and clipped the same way.
    """
    step = BACKWARD_STEP[spec.name]
    x, h, c = trace.x, trace.h, trace.c
    T, B, H = h.shape
    dtype = h.dtype
    dW_h = np.zeros_like(p.W_h)
    db_hn = np.zeros(H, dtype) if spec.has_b_hn else None
    da_x = np.empty((T, B, spec.num_gates * H), dtype)
    dh_norm = np.empty((T, B), dtype)
    dc_norm = np.empty((T, B), dtype) if spec.has_cell_state else None

    dh_flow = np.zeros((B, H), dtype)  # ∂L/∂h_t arriving through step t+1
    dc_flow = None
    if spec.has_cell_state:
        dc_flow = np.zeros((B, H), dtype) if dc_last is None else dc_last.copy()
    for t in range(T - 1, -1, -1):
        h_prev = h[t - 1] if t > 0 else trace.h0
        c_prev = None
        if spec.has_cell_state:
            c_prev = c[t - 1] if t > 0 else trace.c0
        dh_t = dh[t] + dh_flow
        dh_norm[t] = np.linalg.norm(dh_t, axis=1)
        if clip_step is not None:
            dh_t = np.clip(dh_t, -clip_step, clip_step)
        dc_t = None
        if spec.has_cell_state:
            dc_t = lstm_cell_grad(dh_t, dc_flow, trace.gates[t], c[t])
            dc_norm[t] = np.linalg.norm(dc_t, axis=1)
            if clip_step is not None:
                dc_t = np.clip(dc_t, -clip_step, clip_step)
        da_x[t], dW_h_t, db_hn_t, dh_flow, dc_flow = step(
            dh_t, dc_t, trace.gates[t], None if trace.hn is None else trace.hn[t], h_prev, c_prev,
            None if c is None else c[t], p,
        )
        dW_h += dW_h_t
        if db_hn is not None:
            db_hn += db_hn_t

    da_flat = da_x.reshape(T * B, -1)
    return Grads(
        W_x=da_flat.T @ x.reshape(T * B, -1),
        W_h=dW_h,
        b=da_flat.sum(axis=0),
        b_hn=db_hn,
        x=da_x @ p.W_x,
        h0=dh_flow,
        c0=dc_flow,
        dh_norm=dh_norm,
        dc_norm=dc_norm,
    )
