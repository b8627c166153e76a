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
backend. Sequences of a batch are independent, so the batch is cut into one
chunk of rows per thread and each thread runs the whole time loop for its
chunk (``prange`` over chunks: one parallel region per call, no barrier per
step), with its own small matrix products on a single-threaded BLAS. Every
row is written by exactly one thread and every reduction runs in a fixed
order, so results are bit-identical from run to run, and do not depend on the
thread count. With one thread or one sequence the chunk kernel is called
directly. Kernels are ``cache=True`` and ``nogil=True``; their cache is dropped when
the gate math they compile in changes (:mod:`._numba_cache`).

Memory, in words of the dtype's size (8 bytes in float64), with G gate blocks,
[LSTM] = 1 for the LSTM and [cuDNN] = 1 for ``gru_cudnn`` (else 0):

* the Trace keeps h, the gate activations, c (LSTM) and hn (``gru_cudnn``):
  T·B·H·(1 + G + [LSTM] + [cuDNN]); x, h0 and c0 are the caller's arrays;
* the Grads hold ∂x, the per-step norms, ∂h0 (∂c0) and the weight gradients:
  T·B·(D + 1 + [LSTM]) + B·H·(1 + [LSTM]) + G·H·(D + H + 1) + H·[cuDNN];
* the peak of forward + backward, beyond the inputs, is those two plus the
  gate gradients of every step, T·B·G·H (twice for ``gru_cudnn``, whose
  recurrent gradients differ), plus O(B·G·H + G·H·H) scratch (for ``gru``
  up to 2·T·B·H more while ∂W_h's n block is formed). For ``rnn_tanh`` that
  is T·B·(3H + D + 1) words to leading order, for the LSTM T·B·(10H + D + 2).

The first two are exact (the arrays returned); the NumPy reference returns
the same arrays and, except for ``gru_cudnn``, has the same peak to leading
order. The ``scaling`` study checks both against ``tracemalloc``.
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
from numba import njit, prange

from ..types import Grads, Params, Trace
from . import _numba_cache, pointwise
from .cells import CellSpec
from .pointwise import (
    JIT,
    clip,
    gru_cudnn_backward,
    gru_mix,
    gru_reset_backward,
    gru_update_backward,
    lstm_backward,
    lstm_cell,
    lstm_cell_grad,
    reset_after,
    relu,
    relu_backward,
    sigmoid,
    tanh,
    tanh_backward,
)

RNN_TANH, RNN_RELU, GRU_SIMPLE, GRU, GRU_CUDNN, LSTM = range(6)
CELL_ID = {"rnn_tanh": RNN_TANH, "rnn_relu": RNN_RELU, "gru_simple": GRU_SIMPLE, "gru": GRU, "gru_cudnn": GRU_CUDNN, "lstm": LSTM}

#: Products with at most this many multiply-adds run as plain loops: below
#: it a BLAS call costs more in overhead than the arithmetic.
SMALL_MATMUL = 16384


@njit(cache=True, **JIT)
def matmul(a, b, out):
    """out = a @ b for C-contiguous 2-D arrays: BLAS, or for tiny products a loop that vectorises over columns."""
    m, n = a.shape
    p = b.shape[1]
    if m * n * p > SMALL_MATMUL:
        np.dot(a, b, out)
        return
    for i in range(m):
        o = out[i]
        o[:] = 0.0
        for k in range(n):
            v = a[i, k]
            bk = b[k]
            for j in range(p):
                o[j] += v * bk[j]


@njit(cache=True, **JIT)
def sum_squares(v):
    """Σ v_j² in float64 with four interleaved partial sums, added in a fixed order.

    Four independent accumulators hide the latency of the additions (a
    single running sum cannot be vectorised without reassociation, which the
    kernels do not allow) and keep the result the same on every run.
    """
    n = v.shape[0]
    s0 = s1 = s2 = s3 = 0.0
    m = n - n % 4
    for j in range(0, m, 4):
        a0, a1, a2, a3 = np.float64(v[j]), np.float64(v[j + 1]), np.float64(v[j + 2]), np.float64(v[j + 3])
        s0 += a0 * a0
        s1 += a1 * a1
        s2 += a2 * a2
        s3 += a3 * a3
    for j in range(m, n):
        a0 = np.float64(v[j])
        s0 += a0 * a0
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, **JIT)
def _forward_chunk(cell, A, W_hT, W_hnT, b_hn, h0, c0, h, c, gates, hn, b0, b1):
    """The forward time loop for batch rows b0:b1 (see the module docstring).

    A (T, B, G*H): input projections; it may be ``gates`` itself, since each
    row of A is read before that row of gates is written. W_hT (H, G*H) is W_h^T; for ``gru`` it
    holds only the r and u blocks and W_hnT (H, H) the n block, which acts on
    s = r ⊙ h_{t-1}. ``c``, ``c0`` are read only for the LSTM, ``hn`` and
    ``b_hn`` only for ``gru_cudnn``.
    """
    T = A.shape[0]
    H = h0.shape[1]
    R = np.empty((b1 - b0, W_hT.shape[1]), A.dtype)
    S = np.empty((b1 - b0, H), A.dtype)
    Rn = np.empty((b1 - b0, H), A.dtype)
    for t in range(T):
        h_prev = h0[b0:b1] if t == 0 else h[t - 1, b0:b1]
        matmul(h_prev, W_hT, R)
        for k in range(b1 - b0):
            b = b0 + k
            # z is this row's recurrent products, turned in place into pre-activations
            # and then gate values; each loop below is short and simple so it vectorises.
            a, z, g_, hp, ht = A[t, b], R[k], gates[t, b], h_prev[k], h[t, b]
            if cell == RNN_TANH:
                for j in range(H):
                    z[j] = tanh(a[j] + z[j])
                ht[:] = z
            elif cell == RNN_RELU:
                for j in range(H):
                    z[j] = relu(a[j] + z[j])
                ht[:] = z
            elif cell == GRU_SIMPLE:
                for j in range(H):
                    z[j] = sigmoid(a[j] + z[j])
                for j in range(H, 2 * H):
                    z[j] = tanh(a[j] + z[j])
                for j in range(H):
                    ht[j] = gru_mix(z[j], z[H + j], hp[j])
            elif cell == GRU:
                for j in range(2 * H):
                    z[j] = sigmoid(a[j] + z[j])
                for j in range(H):
                    S[k, j] = z[j] * hp[j]
            elif cell == GRU_CUDNN:
                hnt = hn[t, b]
                for j in range(H):
                    hnt[j] = z[2 * H + j] + b_hn[j]
                for j in range(2 * H):
                    z[j] = sigmoid(a[j] + z[j])
                for j in range(H):
                    z[2 * H + j] = reset_after(a[2 * H + j], z[j], hnt[j])
                for j in range(2 * H, 3 * H):
                    z[j] = tanh(z[j])
                for j in range(H):
                    ht[j] = gru_mix(z[H + j], z[2 * H + j], hp[j])
            else:
                cp = c0[b] if t == 0 else c[t - 1, b]
                ct = c[t, b]
                for j in range(2 * H):
                    z[j] = sigmoid(a[j] + z[j])
                for j in range(2 * H, 3 * H):
                    z[j] = tanh(a[j] + z[j])
                for j in range(3 * H, 4 * H):
                    z[j] = sigmoid(a[j] + z[j])
                for j in range(H):
                    ct[j] = lstm_cell(z[j], z[H + j], z[2 * H + j], cp[j])
                for j in range(H):
                    ht[j] = tanh(ct[j])
                for j in range(H):
                    ht[j] *= z[3 * H + j]
            if cell == GRU:
                g_[: 2 * H] = z
            else:
                g_[:] = z
        if cell == GRU:
            matmul(S, W_hnT, Rn)
            for k in range(b1 - b0):
                b = b0 + k
                a, zn, g_, hp, ht = A[t, b], Rn[k], gates[t, b], h_prev[k], h[t, b]
                for j in range(H):
                    zn[j] = tanh(a[2 * H + j] + zn[j])
                for j in range(H):
                    ht[j] = gru_mix(g_[H + j], zn[j], hp[j])
                g_[2 * H :] = zn


@njit(cache=True, **JIT)
def _backward_chunk(cell, dh, gates, h, c, hn, h0, c0, W_h, W_hn, W_hru, bound, do_clip, record,
                    DA, DArec, dh_norm, dc_norm, dh_flow, dh_direct, dc_flow, b0, b1):
    """The backward sweep, t = T-1 … 0, for batch rows b0:b1 (see the module docstring).

    On entry ``dc_flow`` holds ∂L/∂c_T from outside (zeros if none); on exit
    ``dh_flow + dh_direct`` is ∂L/∂h_0 and ``dc_flow`` is ∂L/∂c_0. ``DA`` (T, B,
    G*H) receives the gradients of the input pre-activations; ``DArec`` those
    of the recurrent products (the same array except for ``gru_cudnn``, whose n
    block differs by the reset factor). For ``gru``, W_hn (H, H) and W_hru (2H, H)
    are the n block and the r, u blocks of W_h. ``record=False`` skips the
    norms (only to measure what recording costs).
    """
    T = h.shape[0]
    H = h.shape[2]
    nb = b1 - b0
    total = np.empty(H, h.dtype)
    DAn = np.empty((nb, H), h.dtype)
    DAru = np.empty((nb, 2 * H), h.dtype)
    DS = np.empty((nb, H), h.dtype)
    dh_flow[b0:b1] = 0.0
    dh_direct[b0:b1] = 0.0
    for t in range(T - 1, -1, -1):
        for k in range(nb):
            b = b0 + k
            g_, da = gates[t, b], DA[t, b]
            hp = h0[b] if t == 0 else h[t - 1, b]
            for j in range(H):
                total[j] = dh[t, b, j] + dh_flow[b, j] + dh_direct[b, j]
            if record:
                dh_norm[t, b] = np.sqrt(sum_squares(total))
            if do_clip:
                for j in range(H):
                    total[j] = clip(total[j], bound)
            if cell == RNN_TANH:
                for j in range(H):
                    da[j] = tanh_backward(total[j], g_[j])
            elif cell == RNN_RELU:
                for j in range(H):
                    da[j] = relu_backward(total[j], g_[j])
            elif cell == GRU_SIMPLE:
                for j in range(H):
                    da_u, dn, direct = gru_update_backward(total[j], g_[j], g_[H + j], hp[j])
                    n = g_[H + j]
                    da[j] = da_u
                    da[H + j] = dn * (1.0 - n * n)
                    dh_direct[b, j] = direct
            elif cell == GRU:
                for j in range(H):
                    da_u, dn, direct = gru_update_backward(total[j], g_[H + j], g_[2 * H + j], hp[j])
                    n = g_[2 * H + j]
                    da_n = dn * (1.0 - n * n)
                    da[H + j] = da_u
                    da[2 * H + j] = da_n
                    DAn[k, j] = da_n
                    DAru[k, H + j] = da_u
                    dh_direct[b, j] = direct
            elif cell == GRU_CUDNN:
                darec = DArec[t, b]
                for j in range(H):
                    da_r, da_u, da_n, dhn, direct = gru_cudnn_backward(total[j], g_[j], g_[H + j], g_[2 * H + j],
                                                                       hn[t, b, j], hp[j])
                    da[j] = da_r
                    da[H + j] = da_u
                    da[2 * H + j] = da_n
                    darec[j] = da_r
                    darec[H + j] = da_u
                    darec[2 * H + j] = dhn
                    dh_direct[b, j] = direct
            else:
                cp = c0[b] if t == 0 else c[t - 1, b]
                ct = c[t, b]
                for j in range(H):
                    da[3 * H + j] = tanh(ct[j])  # tanh(c_t), kept here until da_o replaces it
                for j in range(H):
                    dc_flow[b, j] = lstm_cell_grad(total[j], dc_flow[b, j], g_[3 * H + j], da[3 * H + j])
                if record:
                    dc_norm[t, b] = np.sqrt(sum_squares(dc_flow[b]))
                for j in range(H):
                    dcv = clip(dc_flow[b, j], bound) if do_clip else dc_flow[b, j]
                    da_i, da_f, da_g, da_o, dcp = lstm_backward(total[j], dcv, g_[j], g_[H + j], g_[2 * H + j],
                                                                g_[3 * H + j], cp[j], da[3 * H + j])
                    da[j] = da_i
                    da[H + j] = da_f
                    da[2 * H + j] = da_g
                    da[3 * H + j] = da_o
                    dc_flow[b, j] = dcp
        if cell == GRU:
            matmul(DAn, W_hn, DS)
            for k in range(nb):
                b = b0 + k
                g_, da = gates[t, b], DA[t, b]
                hp = h0[b] if t == 0 else h[t - 1, b]
                for j in range(H):
                    da_r, through = gru_reset_backward(DS[k, j], g_[j], hp[j])
                    da[j] = da_r
                    DAru[k, j] = da_r
                    dh_direct[b, j] += through
            matmul(DAru, W_hru, dh_flow[b0:b1])
        else:
            matmul(DArec[t, b0:b1], W_h, dh_flow[b0:b1])


@njit(cache=True, parallel=True, **JIT)
def _forward_parallel(cell, A, W_hT, W_hnT, b_hn, h0, c0, h, c, gates, hn, bounds):
    """Run :func:`_forward_chunk` on every chunk ``bounds[k]:bounds[k+1]`` of the batch in parallel."""
    for k in prange(len(bounds) - 1):
        _forward_chunk(cell, A, W_hT, W_hnT, b_hn, h0, c0, h, c, gates, hn, bounds[k], bounds[k + 1])


@njit(cache=True, parallel=True, **JIT)
def _backward_parallel(cell, dh, gates, h, c, hn, h0, c0, W_h, W_hn, W_hru, bound, do_clip, record,
                       DA, DArec, dh_norm, dc_norm, dh_flow, dh_direct, dc_flow, bounds):
    """Run :func:`_backward_chunk` on every chunk ``bounds[k]:bounds[k+1]`` of the batch in parallel."""
    for k in prange(len(bounds) - 1):
        _backward_chunk(cell, dh, gates, h, c, hn, h0, c0, W_h, W_hn, W_hru, bound, do_clip, record,
                        DA, DArec, dh_norm, dc_norm, dh_flow, dh_direct, dc_flow, bounds[k], bounds[k + 1])


_blas_controller = None


# The kernels above compile in the gate math of pointwise.py, which numba's on-disk cache does not track.
_numba_cache.keep_in_step(matmul.py_func, __name__.rsplit(".", 1)[-1], [pointwise.__file__])


def _single_threaded_blas():
    """A context in which the BLAS that Numba's ``np.dot`` calls runs on one thread.

    Inside the parallel kernels every Numba thread makes its own small matrix
    products; a multi-threaded BLAS would then spawn threads of its own and
    oversubscribe the cores.
    """
    global _blas_controller
    if _blas_controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loaded so that threadpoolctl sees it)
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController().select(user_api="blas")
    return _blas_controller.limit(limits=1)


#: Whole-sequence products below this many multiply-adds run on one BLAS
#: thread. Waking a sleeping BLAS worker can cost milliseconds (on virtual
#: machines a scheduler tick), far more than a small product saves by splitting.
MULTITHREADED_BLAS_MIN = 50_000_000


def _blas_threads_for(macs: int):
    """The BLAS threading for a call whose largest product has ``macs`` multiply-adds."""
    return _single_threaded_blas() if macs < MULTITHREADED_BLAS_MIN else contextlib.nullcontext()


def _chunks(B: int) -> np.ndarray:
    """Batch bounds of the chunks the kernels run in parallel: one per thread, at most one per row."""
    n = max(1, min(numba.get_num_threads(), B))
    return np.linspace(0, B, n + 1).round().astype(np.int64)


def _run(serial, parallel, args, B):
    """Call the kernel on the whole batch, in parallel chunks when there are threads and rows to share."""
    bounds = _chunks(B)
    if len(bounds) == 2:
        serial(*args, 0, B)
    else:
        with _single_threaded_blas():
            parallel(*args, bounds)


def _sum_outer(D: np.ndarray, h: np.ndarray, h0) -> np.ndarray:
    """Σ_t D_t^T h_{t-1} over the sequence, with h_{-1} = h0 (or Σ_t D_t^T h_t when h0 is None).

    Two matrix products over the flattened (T·B) axis instead of stacking h0
    in front of h: no copy of the hidden states.
    """
    if h0 is None:
        return _rows(D).T @ _rows(h)
    out = D[0].T @ h0
    if D.shape[0] > 1:
        out += _rows(D[1:]).T @ _rows(h[:-1])
    return out


def _rows(a: np.ndarray) -> np.ndarray:
    """A (T, B, n) array seen as (T·B, n)."""
    return a.reshape(-1, a.shape[-1])


def _dummy(dtype, ndim):
    return np.zeros((1,) * ndim, dtype)


def forward(spec: CellSpec, p: Params, x: np.ndarray, h0: np.ndarray, c0) -> Trace:
    """Forward pass on validated inputs (called by :func:`gradlab.forward`)."""
    with _blas_threads_for(x.shape[0] * x.shape[1] * p.W_h.shape[0] * max(p.input_size, p.hidden_size)):
        return _forward(spec, p, x, h0, c0)


def _forward(spec: CellSpec, p: Params, x: np.ndarray, h0: np.ndarray, c0) -> Trace:
    T, B, D = x.shape
    H, G, dtype = p.hidden_size, spec.num_gates, x.dtype
    # The input projections are written into the gates array: the kernel reads
    # each row's projections before it overwrites that row with the gate values.
    gates = np.empty((T, B, G * H), dtype)
    np.matmul(x.reshape(T * B, D), p.W_x.T, out=gates.reshape(T * B, G * H))
    gates += p.b
    h = np.empty((T, B, H), dtype)
    c = np.empty((T, B, H), dtype) if spec.has_cell_state else None
    hn = np.empty((T, B, H), dtype) if spec.has_b_hn else None
    if spec.name == "gru":
        W_hT = np.ascontiguousarray(p.W_h[: 2 * H].T)
        W_hnT = np.ascontiguousarray(p.W_h[2 * H :].T)
    else:
        W_hT = np.ascontiguousarray(p.W_h.T)
        W_hnT = _dummy(dtype, 2)
    args = (
        CELL_ID[spec.name], gates, W_hT, W_hnT, _dummy(dtype, 1) if p.b_hn is None else p.b_hn, h0,
        c0 if c0 is not None else _dummy(dtype, 2), h, c if c is not None else _dummy(dtype, 3), gates,
        hn if hn is not None else _dummy(dtype, 3),
    )
    _run(_forward_chunk, _forward_parallel, args, B)
    return Trace(cell=spec.name, h=h, c=c, x=x, h0=h0, c0=c0, gates=gates, hn=hn, backend="cpu")


def backward(spec: CellSpec, p: Params, trace: Trace, dh: np.ndarray, dc_last, clip_step, *,
             record: bool = True) -> Grads:
    """Full BPTT on validated inputs (called by :func:`gradlab.backward`).

    ``record=False`` leaves ``dh_norm``/``dc_norm`` unset (uninitialised); it
    exists only so that the benchmarks can measure what recording costs.
    """
    T, B, D = trace.x.shape
    with _blas_threads_for(T * B * p.W_h.shape[0] * max(D, p.hidden_size)):
        return _backward(spec, p, trace, dh, dc_last, clip_step, record)


def _backward(spec: CellSpec, p: Params, trace: Trace, dh: np.ndarray, dc_last, clip_step, record: bool) -> Grads:
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
    args = (
        CELL_ID[spec.name], dh, trace.gates, h, trace.c if lstm else _dummy(dtype, 3),
        trace.hn if spec.has_b_hn else _dummy(dtype, 3), trace.h0, trace.c0 if lstm else _dummy(dtype, 2),
        p.W_h, np.ascontiguousarray(p.W_h[2 * H :]) if gru else _dummy(dtype, 2),
        np.ascontiguousarray(p.W_h[: 2 * H]) if gru else _dummy(dtype, 2),
        0.0 if clip_step is None else clip_step, clip_step is not None, record,
        DA, DArec, dh_norm, dc_norm, dh_flow, dh_direct, dc_flow,
    )
    _run(_backward_chunk, _backward_parallel, args, B)

    # Whole-sequence products: one BLAS call each instead of T small ones.
    DA2 = DA.reshape(T * B, G * H)
    if gru:  # the n block of W_h acts on s = r ⊙ h_{t-1}
        r = trace.gates[:, :, :H]
        dW_h = np.concatenate([_sum_outer(DA[:, :, : 2 * H], h, trace.h0),
                               _sum_outer(DA[:, :, 2 * H :], r * np.concatenate([trace.h0[None], h[:-1]]), None)])
    else:
        dW_h = _sum_outer(DArec, h, trace.h0)
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
