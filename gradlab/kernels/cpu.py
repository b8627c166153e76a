"""The Numba CPU backend: fused forward and BPTT kernels for every cell.

The structure is that of cuDNN's and of every fast RNN implementation:

* forward: the input projection ``A = x W_x^T + b`` of all T steps is one
  matrix product before the time loop; per step only the recurrent product
  ``h_{t-1} W_h^T`` (BLAS) and one fused pass of pointwise gate math;
* backward: one sweep from t = T to 1 that forms the total ∂L/∂h_t (and
  ∂L/∂c_t), records its norm, applies ``clip_step``, stores the gate
  gradients ``DA`` and propagates through ``W_h`` (BLAS); ``∂L/∂W_x``,
  ``∂L/∂W_h``, ``∂L/∂b`` and ``∂L/∂x`` are whole-sequence matrix products after
  the sweep, not T small ones.

The pointwise math is :mod:`gradlab.kernels.pointwise`, shared with the CUDA
backend. Each kernel is compiled twice from one Python definition: a serial
version for small B·H, where a parallel region per step costs more than it
saves, and a ``parallel=True`` version whose ``prange`` splits the batch rows
between threads. Every row is written by exactly one thread and every
reduction runs in a fixed order, so results are bit-identical from run to run
at a given thread count. Kernels are ``cache=True`` and ``nogil=True``.
"""

from __future__ import annotations

import types as pytypes

import numba
import numpy as np
from numba import njit, prange

from ..types import Grads, Params, Trace
from .cells import CellSpec
from .pointwise import (
    JIT,
    clip,
    gru_cudnn_backward,
    gru_cudnn_forward,
    gru_mix,
    gru_reset_backward,
    gru_simple_forward,
    gru_update_backward,
    lstm_backward,
    lstm_cell_grad,
    lstm_forward,
    relu,
    relu_backward,
    sigmoid,
    tanh,
    tanh_backward,
)

RNN_TANH, RNN_RELU, GRU_SIMPLE, GRU, GRU_CUDNN, LSTM = range(6)
CELL_ID = {"rnn_tanh": RNN_TANH, "rnn_relu": RNN_RELU, "gru_simple": GRU_SIMPLE, "gru": GRU, "gru_cudnn": GRU_CUDNN, "lstm": LSTM}

#: Below this many pointwise elements per step (B·H) the serial kernels run:
#: a parallel region per step would cost more than the work it splits.
PARALLEL_MIN_ELEMENTS = 8192


def _compile_twice(py_func):
    """A serial and a ``parallel=True`` dispatcher of one Python function, each with its own cache entry."""
    serial = njit(cache=True, **JIT)(py_func)
    twin = pytypes.FunctionType(py_func.__code__, py_func.__globals__, py_func.__name__ + "_parallel",
                                py_func.__defaults__, py_func.__closure__)
    twin.__qualname__ = py_func.__qualname__ + "_parallel"
    twin.__doc__ = py_func.__doc__
    parallel = njit(cache=True, parallel=True, **JIT)(twin)
    return serial, parallel


def _forward_kernel(cell, A, W_hT, W_hnT, b_hn, h0, c0, h, c, gates, hn, R, S, Rn):
    """The time loop of the forward pass (see the module docstring).

    A (T, B, G*H): input projections. W_hT (H, G*H) is W_h^T; for ``gru`` it
    holds only the r and u blocks and W_hnT (H, H) the n block, which acts on
    s = r ⊙ h_{t-1}. R, S, Rn are per-step scratch rows.
    """
    T, B, _ = A.shape
    H = h0.shape[1]
    for t in range(T):
        h_prev = h0 if t == 0 else h[t - 1]
        c_prev = c0 if t == 0 else c[t - 1]
        np.dot(h_prev, W_hT, R)
        for b in prange(B):
            a, r_, g_, hp = A[t, b], R[b], gates[t, b], h_prev[b]
            if cell == RNN_TANH:
                for j in range(H):
                    v = tanh(a[j] + r_[j])
                    g_[j] = v
                    h[t, b, j] = v
            elif cell == RNN_RELU:
                for j in range(H):
                    v = relu(a[j] + r_[j])
                    g_[j] = v
                    h[t, b, j] = v
            elif cell == GRU_SIMPLE:
                for j in range(H):
                    u, n, hv = gru_simple_forward(a[j] + r_[j], a[H + j] + r_[H + j], hp[j])
                    g_[j] = u
                    g_[H + j] = n
                    h[t, b, j] = hv
            elif cell == GRU:
                for j in range(H):
                    r = sigmoid(a[j] + r_[j])
                    g_[j] = r
                    g_[H + j] = sigmoid(a[H + j] + r_[H + j])
                    S[b, j] = r * hp[j]
            elif cell == GRU_CUDNN:
                for j in range(H):
                    hnv = r_[2 * H + j] + b_hn[j]
                    r, u, n = gru_cudnn_forward(a[j] + r_[j], a[H + j] + r_[H + j], a[2 * H + j], hnv)
                    g_[j] = r
                    g_[H + j] = u
                    g_[2 * H + j] = n
                    hn[t, b, j] = hnv
                    h[t, b, j] = gru_mix(u, n, hp[j])
            else:
                cp = c_prev[b]
                for j in range(H):
                    i, f, g, o, cv, hv = lstm_forward(a[j] + r_[j], a[H + j] + r_[H + j], a[2 * H + j] + r_[2 * H + j],
                                                      a[3 * H + j] + r_[3 * H + j], cp[j])
                    g_[j] = i
                    g_[H + j] = f
                    g_[2 * H + j] = g
                    g_[3 * H + j] = o
                    c[t, b, j] = cv
                    h[t, b, j] = hv
        if cell == GRU:
            np.dot(S, W_hnT, Rn)
            for b in prange(B):
                a, g_, hp = A[t, b], gates[t, b], h_prev[b]
                for j in range(H):
                    n = tanh(a[2 * H + j] + Rn[b, j])
                    g_[2 * H + j] = n
                    h[t, b, j] = gru_mix(g_[H + j], n, hp[j])


def _backward_kernel(cell, dh, gates, h, c, hn, h0, c0, W_h, W_hn, W_hru, bound, do_clip,
                     DA, DArec, dh_norm, dc_norm, dh_flow, dh_direct, dc_flow, total, DAn, DAru, DS):
    """The backward sweep, t = T-1 … 0 (see the module docstring).

    On entry ``dc_flow`` holds ∂L/∂c_T from outside (zeros if none); on exit
    ``dh_flow + dh_direct`` is ∂L/∂h_0 and ``dc_flow`` is ∂L/∂c_0. ``DA`` (T, B,
    G*H) receives the gradients of the input pre-activations; ``DArec`` those
    of the recurrent products (the same array except for ``gru_cudnn``, whose n
    block differs by the reset factor). For ``gru``, W_hn (H, H) and W_hru (2H, H)
    are the n block and the r, u blocks of W_h.
    """
    T, B, H = h.shape
    dh_flow[:] = 0.0
    dh_direct[:] = 0.0
    for t in range(T - 1, -1, -1):
        h_prev = h0 if t == 0 else h[t - 1]
        c_prev = c0 if t == 0 else c[t - 1]
        for b in prange(B):
            tot, g_, da, hp = total[b], gates[t, b], DA[t, b], h_prev[b]
            ss = 0.0
            for j in range(H):
                v = dh[t, b, j] + dh_flow[b, j] + dh_direct[b, j]
                ss += v * v
                tot[j] = v
            dh_norm[t, b] = np.sqrt(ss)
            if do_clip:
                for j in range(H):
                    tot[j] = clip(tot[j], bound)
            if cell == RNN_TANH:
                for j in range(H):
                    da[j] = tanh_backward(tot[j], g_[j])
            elif cell == RNN_RELU:
                for j in range(H):
                    da[j] = relu_backward(tot[j], g_[j])
            elif cell == GRU_SIMPLE:
                for j in range(H):
                    da_u, dn, direct = gru_update_backward(tot[j], g_[j], g_[H + j], hp[j])
                    n = g_[H + j]
                    da[j] = da_u
                    da[H + j] = dn * (1.0 - n * n)
                    dh_direct[b, j] = direct
            elif cell == GRU:
                for j in range(H):
                    da_u, dn, direct = gru_update_backward(tot[j], g_[H + j], g_[2 * H + j], hp[j])
                    n = g_[2 * H + j]
                    da_n = dn * (1.0 - n * n)
                    da[H + j] = da_u
                    da[2 * H + j] = da_n
                    DAn[b, j] = da_n
                    DAru[b, H + j] = da_u
                    dh_direct[b, j] = direct
            elif cell == GRU_CUDNN:
                darec = DArec[t, b]
                for j in range(H):
                    da_r, da_u, da_n, dhn, direct = gru_cudnn_backward(tot[j], g_[j], g_[H + j], g_[2 * H + j],
                                                                       hn[t, b, j], hp[j])
                    da[j] = da_r
                    da[H + j] = da_u
                    da[2 * H + j] = da_n
                    darec[j] = da_r
                    darec[H + j] = da_u
                    darec[2 * H + j] = dhn
                    dh_direct[b, j] = direct
            else:
                cp, ct = c_prev[b], c[t, b]
                sc = 0.0
                for j in range(H):
                    dcv, tc = lstm_cell_grad(tot[j], dc_flow[b, j], g_[3 * H + j], ct[j])
                    sc += dcv * dcv
                    dc_flow[b, j] = dcv
                dc_norm[t, b] = np.sqrt(sc)
                for j in range(H):
                    dcv = clip(dc_flow[b, j], bound) if do_clip else dc_flow[b, j]
                    da_i, da_f, da_g, da_o, dcp = lstm_backward(tot[j], dcv, g_[j], g_[H + j], g_[2 * H + j],
                                                                g_[3 * H + j], cp[j], tanh(ct[j]))
                    da[j] = da_i
                    da[H + j] = da_f
                    da[2 * H + j] = da_g
                    da[3 * H + j] = da_o
                    dc_flow[b, j] = dcp
        if cell == GRU:
            np.dot(DAn, W_hn, DS)
            for b in prange(B):
                g_, da, hp = gates[t, b], DA[t, b], h_prev[b]
                for j in range(H):
                    da_r, through = gru_reset_backward(DS[b, j], g_[j], hp[j])
                    da[j] = da_r
                    DAru[b, j] = da_r
                    dh_direct[b, j] += through
            np.dot(DAru, W_hru, dh_flow)
        else:
            np.dot(DArec[t], W_h, dh_flow)


forward_serial, forward_parallel = _compile_twice(_forward_kernel)
backward_serial, backward_parallel = _compile_twice(_backward_kernel)


def _use_parallel(B: int, H: int) -> bool:
    return numba.get_num_threads() > 1 and B > 1 and B * H >= PARALLEL_MIN_ELEMENTS


def _dummy(dtype, ndim):
    return np.zeros((1,) * ndim, dtype)


def forward(spec: CellSpec, p: Params, x: np.ndarray, h0: np.ndarray, c0) -> Trace:
    """Forward pass on validated inputs (called by :func:`gradlab.forward`)."""
    T, B, D = x.shape
    H, G, dtype = p.hidden_size, spec.num_gates, x.dtype
    A = (x.reshape(T * B, D) @ p.W_x.T).reshape(T, B, G * H)
    A += p.b
    h = np.empty((T, B, H), dtype)
    gates = np.empty((T, B, G * H), dtype)
    c = np.empty((T, B, H), dtype) if spec.has_cell_state else None
    hn = np.empty((T, B, H), dtype) if spec.has_b_hn else None
    if spec.name == "gru":
        W_hT = np.ascontiguousarray(p.W_h[: 2 * H].T)
        W_hnT = np.ascontiguousarray(p.W_h[2 * H :].T)
    else:
        W_hT = np.ascontiguousarray(p.W_h.T)
        W_hnT = _dummy(dtype, 2)
    kernel = forward_parallel if _use_parallel(B, H) else forward_serial
    kernel(
        CELL_ID[spec.name], A, W_hT, W_hnT, _dummy(dtype, 1) if p.b_hn is None else p.b_hn, h0,
        c0 if c0 is not None else _dummy(dtype, 2), h, c if c is not None else _dummy(dtype, 3), gates,
        hn if hn is not None else _dummy(dtype, 3), np.empty((B, W_hT.shape[1]), dtype), np.empty((B, H), dtype),
        np.empty((B, H), dtype),
    )
    return Trace(cell=spec.name, h=h, c=c, x=x, h0=h0, c0=c0, gates=gates, hn=hn, backend="cpu")


def backward(spec: CellSpec, p: Params, trace: Trace, dh: np.ndarray, dc_last, clip_step) -> Grads:
    """Full BPTT on validated inputs (called by :func:`gradlab.backward`)."""
    x, h = trace.x, trace.h
    T, B, H = h.shape
    D, G, dtype = x.shape[2], spec.num_gates, h.dtype
    lstm = spec.has_cell_state
    DA = np.empty((T, B, G * H), dtype)
    DArec = np.empty((T, B, G * H), dtype) if spec.has_b_hn else DA
    dh_norm = np.empty((T, B), dtype)
    dc_norm = np.empty((T, B), dtype) if lstm else _dummy(dtype, 2)
    dh_flow, dh_direct = np.empty((B, H), dtype), np.empty((B, H), dtype)
    dc_flow = np.zeros((B, H), dtype) if dc_last is None else dc_last.copy()
    gru = spec.name == "gru"
    kernel = backward_parallel if _use_parallel(B, H) else backward_serial
    kernel(
        CELL_ID[spec.name], dh, trace.gates, h, trace.c if lstm else _dummy(dtype, 3),
        trace.hn if spec.has_b_hn else _dummy(dtype, 3), trace.h0, trace.c0 if lstm else _dummy(dtype, 2),
        p.W_h, np.ascontiguousarray(p.W_h[2 * H :]) if gru else _dummy(dtype, 2),
        np.ascontiguousarray(p.W_h[: 2 * H]) if gru else _dummy(dtype, 2),
        0.0 if clip_step is None else clip_step, clip_step is not None,
        DA, DArec, dh_norm, dc_norm, dh_flow, dh_direct, dc_flow, np.empty((B, H), dtype),
        np.empty((B, H), dtype), np.empty((B, 2 * H), dtype), np.empty((B, H), dtype),
    )

    # Whole-sequence products: one BLAS call each instead of T small ones.
    DA2 = DA.reshape(T * B, G * H)
    h_prev = np.concatenate([trace.h0[None], h[:-1]]).reshape(T * B, H)
    if gru:
        s = trace.gates[:, :, :H].reshape(T * B, H) * h_prev
        dW_h = np.concatenate([DA2[:, : 2 * H].T @ h_prev, DA2[:, 2 * H :].T @ s])
    else:
        dW_h = DArec.reshape(T * B, G * H).T @ h_prev
    return Grads(
        W_x=DA2.T @ x.reshape(T * B, D),
        W_h=dW_h,
        b=DA2.sum(axis=0),
        b_hn=DArec[:, :, 2 * H :].reshape(T * B, H).sum(axis=0) if spec.has_b_hn else None,
        x=(DA2 @ p.W_x).reshape(T, B, D),
        h0=dh_flow + dh_direct,
        c0=dc_flow if lstm else None,
        dh_norm=dh_norm,
        dc_norm=dc_norm if lstm else None,
    )
