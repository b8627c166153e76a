"""The numba.cuda kernels of the ``"cuda"`` backend (host side: :mod:`gradlab.kernels.cuda`).

Imported only after :mod:`gradlab.kernels.cuda` has found a CUDA device or the
CUDA simulator, so importing gradlab never needs either. Kernels are built per
dtype by :func:`kernels` (the dtype of shared and local arrays must be known
when a kernel compiles); the cell is a run-time argument, a branch that is
uniform across the grid, so each kernel compiles once per dtype.

The gate math is :mod:`gradlab.kernels.pointwise`, the same ``@njit`` functions
the CPU backend inlines: numba-cuda compiles them as device functions. The
per-target pieces, the transcendental primitives ``exp_nonpos``, ``sigmoid``
and ``tanh``, are registered here for the CUDA target (libdevice's ``exp`` and
``tanh``, in the argument's own precision; the sigmoid's reciprocal without a
division, :func:`reciprocal_1_2`).

Kernels
-------
``gemm_big`` / ``gemm_small`` / ``gemm_reduce``
    C (+)= op(A) op(B) (+ bias), in :mod:`gradlab.kernels._cuda_gemm`: two
    tile shapes of one register-blocked shared-memory product, and the fixed-
    order sum of the parts of a product split along K. Used for the input
    projection and the whole-sequence products after the backward sweep
    (dW_x, dW_h, dx).
``colsum_partial`` / ``colsum_final``
    Column sums (db, db_hn) in two fixed-order stages.
``fwd_persistent`` / ``bwd_persistent``
    For small H: one block per tile of batch rows runs the whole time loop,
    W_h (transposed for the forward) held in shared memory when it fits, read
    from global memory (L2) otherwise. A thread owns one hidden unit and keeps
    its state and the next step's trace values in registers; the dot products
    of a step are split over several threads; two ``syncthreads`` per step
    (four for ``gru``). Squared norms are stored per unit and reduced by
    ``norm_final`` after the sweep.
``fwd_point`` / ``fwd_point_gru_n`` / ``bwd_point`` / ``bwd_point_gru_s`` / ``add_parts``
    For large H, each step's recurrent product is one launch of the product
    kernel (two for ``gru``), written as K parts; these kernels add the parts
    in a fixed order and apply the gate math, one thread per (sequence,
    hidden unit). The squared norms are stored per unit, as in the persistent
    kernels.
``fwd_coop`` / ``bwd_coop``
    The cooperative time loop (:mod:`gradlab.kernels._cuda_coop`): one launch,
    W_h spread over the blocks' shared memory by slices of hidden units, a
    grid-wide barrier between steps.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from numba import cuda, int64, types, uint32, uint64

U = uint64  # unsigned indices: no wrap-around of negative indices in the hot loops
U0, U1, U2, U3, U4 = (np.uint64(i) for i in range(5))

from ._cuda_coop import coop_kernels
from ._cuda_gemm import gemm_kernels
from .cpu import CELL_ID
from .pointwise import (
    clip,
    exp_nonpos,
    gru_cudnn_backward,
    gru_mix,
    gru_reset_backward,
    gru_update_backward,
    lstm_backward,
    lstm_cell,
    lstm_cell_grad,
    relu,
    relu_backward,
    reset_after,
    sigmoid,
    tanh,
    tanh_backward,
)

RNN_TANH, RNN_RELU, GRU_SIMPLE, GRU, GRU_CUDNN, LSTM = (CELL_ID[n] for n in
                                                       ("rnn_tanh", "rnn_relu", "gru_simple", "gru", "gru_cudnn", "lstm"))


def simulating() -> bool:
    """True when numba.cuda is the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    try:
        from numba.cuda.core import config
    except ImportError:  # the numba.cuda built into older Numba
        from numba.core import config
    return bool(config.ENABLE_CUDASIM)


SIM = simulating()

# Tile shapes. The simulator runs every CUDA thread as a Python thread, so it
# gets tiny tiles that still take every code path (several tiles, partial tiles).
# Few blocks matter more there than few threads: the simulator's cost is per
# block (it starts a Python thread per CUDA thread and polls them).
if SIM:
    GEMM_CONFIGS = dict.fromkeys((np.float32, np.float64), dict(gemm_big=(2, 2, 4, 4, 4), gemm_small=(2, 2, 2, 2, 2)))
    GEMM_TARGET_BLOCKS = 2            # split K until a product has this many blocks, if it is long enough
    GEMM_MIN_K_PART = 4               # terms per part of a split K, at least
    GEMM_MIN_SPLIT_WORK = 0           # products with fewer multiply-adds are never split
    STEP_TARGET_BLOCKS = 2            # the same two for the stepwise loop's per-step products
    STEP_MIN_K_PART = 4
    PERSISTENT_THREADS = 16          # threads of a persistent block, at least (one per hidden unit, at least)
    PERSISTENT_MAX_THREADS = 32      # and at most (H above this runs stepwise)
    PERSISTENT_BLOCKS = 2            # blocks the batch is spread over
    MIN_SPLIT = 2                    # terms per part, at least, when a dot product is split over threads
    COOP_THREADS, COOP_ROWS = 16, 8  # cooperative loop: threads a block, batch rows a thread
    COOP_KC = (1, 4)                 # and the k-chunk it stages in shared memory: at least, at most
    COOP_SLICES = 3                  # slices of hidden units it aims for (all in one block on the simulator)
    WARP = 1                         # thread counts are rounded up to a multiple of this
    THREADS_1D, THREADS_2D = 8, 4    # helper kernels: threads per block (per axis for 2-D)
else:
    # (TM, TN, RM, RN, BK) of the two product kernels; float64 keeps fewer accumulators a thread
    GEMM_CONFIGS = {np.float32: dict(gemm_big=(16, 16, 8, 8, 8), gemm_small=(16, 16, 4, 4, 8)),
                    np.float64: dict(gemm_big=(16, 16, 4, 4, 8), gemm_small=(16, 16, 2, 2, 8))}
    GEMM_TARGET_BLOCKS = 132
    GEMM_MIN_K_PART = 128
    GEMM_MIN_SPLIT_WORK = 1 << 24
    STEP_TARGET_BLOCKS = 132
    STEP_MIN_K_PART = 128
    PERSISTENT_THREADS = 256
    PERSISTENT_MAX_THREADS = 256     # the persistent kernels use up to 252 registers a thread (ptxas, sm_90)
    PERSISTENT_BLOCKS = 132          # about one per SM of a large GPU
    MIN_SPLIT = 8
    COOP_THREADS, COOP_ROWS = 256, 8
    COOP_KC = (16, None)             # None: the whole of k when it fits
    COOP_SLICES = None               # one slice per multiprocessor of the device
    WARP = 32
    THREADS_1D, THREADS_2D = 256, 16


def reciprocal_1_2(d, a, b, one, steps):
    """1/d for 1 <= d <= 2 without a division: the first guess a - b d (a = 24/17, b = 8/17: relative error at
    most 1/17), then ``steps`` of Newton's iteration r <- r + r (1 - d r), each of which squares the relative
    error: 3 reach 17^-8 (about 2^-33, below float32's rounding), 4 reach 2^-65 (float64's). Nan propagates.

    ``a``, ``b`` and ``one`` come in d's own precision, so that a float32 sigmoid stays float32. On a GPU,
    IEEE division checks every quotient for its slow path, a branch that keeps the gates of a step from
    overlapping; this chain of FMAs has none.
    """
    r = a - b * d
    for _ in range(steps):
        r = r + r * (one - d * r)
    return r


if not SIM:
    # The CUDA implementations of the per-target primitives (see pointwise.py).
    try:
        from numba.cuda.extending import overload as _cuda_overload
    except ImportError:  # older numba-cuda / built-in numba.cuda share numba.core's registry
        from numba.core.extending import overload as _cuda_overload

    @_cuda_overload(exp_nonpos, target="cuda")
    def _exp_nonpos_cuda(x):
        def impl(x):
            return math.exp(0.0 if x > 0.0 else x)  # nan propagates (nan > 0 is False)

        return impl

    _reciprocal_1_2 = cuda.jit(device=True)(reciprocal_1_2)

    @_cuda_overload(sigmoid, target="cuda")
    def _sigmoid_cuda(z):
        """σ(z) from e^{-|z|} (libdevice exp) and :func:`reciprocal_1_2`, in z's own precision: float32 gates
        stay float32."""
        f32 = z == types.float32
        one, nought = (np.float32(1), np.float32(0)) if f32 else (1.0, 0.0)
        a, b = (np.float32(24 / 17), np.float32(8 / 17)) if f32 else (24 / 17, 8 / 17)
        steps = 3 if f32 else 4

        def impl(z):
            e = math.exp(-abs(z))
            s = _reciprocal_1_2(one + e, a, b, one, steps)  # 1 + e lies in [1, 2]
            return s if z >= nought else e * s  # nan propagates through e

        return impl

    @_cuda_overload(tanh, target="cuda")
    def _tanh_cuda(x):
        """libdevice tanh, in x's own precision."""

        def impl(x):
            return math.tanh(x)

        return impl


@lru_cache(maxsize=None)
def kernels(dtype) -> SimpleNamespace:
    """Every kernel of the backend for one dtype (np.float32 or np.float64)."""
    dt = np.dtype(dtype).type  # scalar casts: dt(x)
    # element type of shared and local arrays: a Numba type when compiling, a
    # NumPy dtype for the simulator (which allocates them with NumPy)
    if SIM:
        at = np.dtype(dtype)
    else:
        from numba import from_dtype

        at = from_dtype(np.dtype(dtype))
    zero = dt(0)
    gemms = vars(gemm_kernels(dtype, at, GEMM_CONFIGS[dt]))

    # ------------------------------------------------------------------
    # Whole-sequence products and reductions
    # ------------------------------------------------------------------

    @cuda.jit
    def colsum_partial(A, part, rows_per_chunk):
        """part[c, n] = sum of A[r, n] over the rows r of chunk c, in order."""
        n = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        c = cuda.blockIdx.y
        if n < A.shape[1]:
            s = zero
            for r in range(c * rows_per_chunk, min(A.shape[0], (c + 1) * rows_per_chunk)):
                s += A[r, n]
            part[c, n] = s

    @cuda.jit
    def colsum_final(part, out):
        """out[n] = sum over chunks c of part[c, n], in order."""
        n = cuda.grid(1)
        if n < out.shape[0]:
            s = zero
            for c in range(part.shape[0]):
                s += part[c, n]
            out[n] = s

    @cuda.jit
    def fill(a, value):
        """a[:] = value for a 1-D array."""
        i = cuda.grid(1)
        if i < a.shape[0]:
            a[i] = value

    @cuda.jit
    def nonfinite_flags(a0, a1, a2, a3, a4, a5, a6, a7, flags):
        """flags[block, i] = 1 if the block's share of the 1-D array a_i holds an inf or a nan, else 0."""
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(8):
            a = a0 if i == 0 else (a1 if i == 1 else (a2 if i == 2 else (a3 if i == 3 else (
                a4 if i == 4 else (a5 if i == 5 else (a6 if i == 6 else a7))))))
            bad = 0
            for e in range(start, a.shape[0], stride):
                if math.isinf(a[e]) or math.isnan(a[e]):
                    bad = 1
            if cuda.syncthreads_or(bad) and cuda.threadIdx.x == 0:
                flags[cuda.blockIdx.x, i] = 1
            elif cuda.threadIdx.x == 0:
                flags[cuda.blockIdx.x, i] = 0

    @cuda.jit
    def copy2d(src, dst):
        """dst[:] = src[:] for 2-D arrays of one shape."""
        i, j = cuda.grid(2)
        if i < dst.shape[0] and j < dst.shape[1]:
            dst[i, j] = src[i, j]

    @cuda.jit
    def transpose(src, dst):
        """dst = src.T."""
        i, j = cuda.grid(2)
        if i < dst.shape[0] and j < dst.shape[1]:
            dst[i, j] = src[j, i]

    @cuda.jit
    def reset_states(gates, h, h0, S):
        """S[t] = r_t ⊙ h_{t-1} (full GRU): what W_hn acts on."""
        i = cuda.grid(1)
        T, B, H = h.shape
        if i < T * B * H:
            t = i // (B * H)
            b = (i // H) % B
            j = i % H
            hp = h0[b, j] if t == 0 else h[t - 1, b, j]
            S[t, b, j] = gates[t, b, j] * hp

    @cuda.jit
    def norm_final(part, out, part2, out2, both):
        """out[t, b] = sqrt(Σ_k part[t, b, k]) in order; the same from part2 into out2 when ``both``."""
        i = cuda.grid(1)
        if i < out.shape[0] * out.shape[1]:
            t = i // out.shape[1]
            b = i % out.shape[1]
            s = zero
            for k in range(part.shape[2]):
                s += part[t, b, k]
            out[t, b] = math.sqrt(s)
            if both:
                s = zero
                for k in range(part2.shape[2]):
                    s += part2[t, b, k]
                out2[t, b] = math.sqrt(s)

    # ------------------------------------------------------------------
    # Per element: the gate math, shared by the persistent and per-step kernels
    # ------------------------------------------------------------------

    @cuda.jit(device=True)
    def fwd_elem(cell, H, j, g, z0, z1, z2, z3, hp, cp, bhn_j, c_row, hn_row):
        """One hidden unit j of one sequence at one step, forward.

        ``g`` is the row gates[t, b], holding the input projections on entry
        (each is read before it is overwritten with the gate value); z0..z3 are
        the recurrent products of the gate blocks. Writes the gates, c_t (LSTM)
        and hn (gru_cudnn); returns h_t, or for ``gru`` s = r ⊙ h_{t-1} (the
        candidate is finished by :func:`gru_n_elem`).
        """
        if cell == RNN_TANH:
            v = dt(tanh(g[j] + z0))
            g[j] = v
            return v
        elif cell == RNN_RELU:
            v = dt(relu(g[j] + z0))
            g[j] = v
            return v
        elif cell == GRU_SIMPLE:
            u = dt(sigmoid(g[j] + z0))
            n = dt(tanh(g[H + j] + z1))
            g[j] = u
            g[H + j] = n
            return dt(gru_mix(u, n, hp))
        elif cell == GRU:
            r = dt(sigmoid(g[j] + z0))
            u = dt(sigmoid(g[H + j] + z1))
            g[j] = r
            g[H + j] = u
            return dt(r * hp)
        elif cell == GRU_CUDNN:
            hn = z2 + bhn_j
            hn_row[j] = hn
            r = dt(sigmoid(g[j] + z0))
            u = dt(sigmoid(g[H + j] + z1))
            n = dt(tanh(dt(reset_after(g[2 * H + j], r, hn))))
            g[j] = r
            g[H + j] = u
            g[2 * H + j] = n
            return dt(gru_mix(u, n, hp))
        else:
            i_ = dt(sigmoid(g[j] + z0))
            f_ = dt(sigmoid(g[H + j] + z1))
            gg = dt(tanh(g[2 * H + j] + z2))
            o_ = dt(sigmoid(g[3 * H + j] + z3))
            g[j] = i_
            g[H + j] = f_
            g[2 * H + j] = gg
            g[3 * H + j] = o_
            c = dt(lstm_cell(i_, f_, gg, cp))
            c_row[j] = c
            return dt(dt(tanh(c)) * o_)

    @cuda.jit(device=True)
    def gru_n_elem(H, j, g, zn, hp):
        """Full GRU, second phase: n = tanh(W_xn x + b_n + W_hn s); returns h_t."""
        n = dt(tanh(g[2 * H + j] + zn))
        g[2 * H + j] = n
        return dt(gru_mix(g[H + j], n, hp))

    @cuda.jit(device=True)
    def bwd_elem(cell, H, j, tot, g, da, darec, hp, cp, ct, hn_j, dcf, bound, do_clip):
        """One hidden unit at one step, backward, given the total ∂L/∂h_t (unclipped).

        Writes the gate gradients into ``da`` (and ``darec`` for gru_cudnn;
        for ``gru`` the r block is left to its second phase). Returns
        (dc², dh_direct, dc_prev): the squared total ∂L/∂c_t (LSTM, before its
        clip), the direct path into ∂L/∂h_{t-1} and ∂L/∂c_{t-1}.
        """
        tot = dt(clip(tot, bound)) if do_clip else tot
        if cell == RNN_TANH:
            da[j] = tanh_backward(tot, g[j])
            return zero, zero, zero
        elif cell == RNN_RELU:
            da[j] = relu_backward(tot, g[j])
            return zero, zero, zero
        elif cell == GRU_SIMPLE:
            da_u, dn, direct = gru_update_backward(tot, g[j], g[H + j], hp)
            n = g[H + j]
            da[j] = da_u
            da[H + j] = tanh_backward(dn, n)
            return zero, dt(direct), zero
        elif cell == GRU:
            da_u, dn, direct = gru_update_backward(tot, g[H + j], g[2 * H + j], hp)
            n = g[2 * H + j]
            da[H + j] = da_u
            da[2 * H + j] = tanh_backward(dn, n)
            return zero, dt(direct), zero
        elif cell == GRU_CUDNN:
            da_r, da_u, da_n, dhn, direct = gru_cudnn_backward(tot, g[j], g[H + j], g[2 * H + j], hn_j, hp)
            da[j] = da_r
            da[H + j] = da_u
            da[2 * H + j] = da_n
            darec[j] = da_r
            darec[H + j] = da_u
            darec[2 * H + j] = dhn
            return zero, dt(direct), zero
        else:
            tc = dt(tanh(ct))
            dc = dt(lstm_cell_grad(tot, dcf, g[3 * H + j], tc))
            dcv = dt(clip(dc, bound)) if do_clip else dc
            da_i, da_f, da_g, da_o, dcp = lstm_backward(tot, dcv, g[j], g[H + j], g[2 * H + j], g[3 * H + j], cp, tc)
            da[j] = da_i
            da[H + j] = da_f
            da[2 * H + j] = da_g
            da[3 * H + j] = da_o
            return dc * dc, zero, dt(dcp)

    # ------------------------------------------------------------------
    # Persistent kernels: one block per batch tile runs all T steps
    # ------------------------------------------------------------------
    #
    # Each thread owns at most one hidden unit (r, j) of the tile and keeps that
    # unit's state in registers from step to step: c_t (LSTM), the direct path
    # and ∂L/∂c (backward), and the trace values of the *next* step, whose loads
    # are issued a whole step ahead. Only h_{t-1} (forward) and the gate
    # gradients (backward), which every unit's product needs, go through shared
    # memory. Each dot product of the recurrent step is split over S threads
    # (partial sums in shared memory, added in a fixed order by the unit's
    # thread), so a step costs two barriers and a few shared-memory rounds, not
    # a serial loop over H. The squared norms are stored per unit and reduced
    # after the sweep (:func:`norm_final`), off the critical path.
    #
    # A step runs in very few warps (one, at B = 1 and H = 32), so its cost is
    # the latency of its instruction chain. Indices in the hot paths are
    # therefore unsigned (``U``): Numba wraps negative signed indices around,
    # which costs several 64-bit instructions per access.

    @cuda.jit(device=True)
    def dot_shared(sm, a, w, ws, n):
        """Σ_{k<n} sm[a + k] sm[w + k ws] (unsigned arguments), as four interleaved partial sums."""
        s0 = zero
        s1 = zero
        s2 = zero
        s3 = zero
        k = U0
        while k + U4 <= n:
            s0 += sm[a + k] * sm[w + k * ws]
            s1 += sm[a + k + U1] * sm[w + (k + U1) * ws]
            s2 += sm[a + k + U2] * sm[w + (k + U2) * ws]
            s3 += sm[a + k + U3] * sm[w + (k + U3) * ws]
            k += U4
        while k < n:
            s0 += sm[a + k] * sm[w + k * ws]
            k += U1
        return (s0 + s1) + (s2 + s3)

    @cuda.jit(device=True)
    def dot_global(sm, a, M, k0, col, n):
        """Σ_{k<n} sm[a + k] M[k0 + k, col] (unsigned arguments), as four interleaved partial sums."""
        s0 = zero
        s1 = zero
        s2 = zero
        s3 = zero
        k = U0
        while k + U4 <= n:
            s0 += sm[a + k] * M[k0 + k, col]
            s1 += sm[a + k + U1] * M[k0 + k + U1, col]
            s2 += sm[a + k + U2] * M[k0 + k + U2, col]
            s3 += sm[a + k + U3] * M[k0 + k + U3, col]
            k += U4
        while k < n:
            s0 += sm[a + k] * M[k0 + k, col]
            k += U1
        return (s0 + s1) + (s2 + s3)

    @cuda.jit(device=True)
    def part_range(n, S, s):
        """The terms [k0, k0 + m) of part s of S of a sum of n terms (m may be 0). The division is a 32-bit
        one: on a GPU a 64-bit division is a call to a long subroutine, and these counts are small."""
        chunk = int64((uint32(n) + uint32(S) - uint32(1)) // uint32(S))
        k0 = int64(s) * chunk
        return k0, max(int64(0), min(int64(n) - k0, chunk))

    @cuda.jit(device=True)
    def dot_part(sm, a, wshared, w, ws, M, m0, col, k0, m):
        """Σ_{k0 <= k < k0+m} sm[a + k] w_k, w_k = sm[w + k ws] if wshared else M[m0 + k, col]."""
        if m <= 0:
            return zero
        if wshared:
            return dot_shared(sm, U(a + k0), U(w + k0 * ws), U(ws), U(m))
        return dot_global(sm, U(a + k0), M, U(m0 + k0), U(col), U(m))

    @cuda.jit(device=True)
    def sum_parts(sm, off, S, stride):
        """sm[off] + sm[off + stride] + … + sm[off + (S-1) stride], in order (unsigned arguments)."""
        v = zero
        s = U0
        while s < S:
            v += sm[off + s * stride]
            s += U1
        return v

    @cuda.jit(device=True)
    def assignment(o, ncol, S, n):
        """Product part o: row r, column c (of ncol) and the terms [k0, k0 + m) of its part (of S) of n terms.

        Consecutive parts are consecutive columns of one part: the threads of a
        warp read consecutive words of W (no bank conflicts) and one word of the
        row (a broadcast). Part o's result is stored at offset o: the S parts of
        (r, c) lie ``ncol`` apart.
        """
        o32, ncol32, S32 = uint32(o), uint32(ncol), uint32(S)  # (32-bit divisions, as in part_range)
        q = o32 // ncol32  # the part's (row, part) index
        r = q // S32
        k0, m = part_range(n, S, q - r * S32)
        return int64(r), int64(o32 - q * ncol32), k0, m

    @cuda.jit(device=True)
    def products(sm, out, npr, first, ncol, S, n, a0, arow, wshared, w0, ws, M, m0, c0):
        """sm[out + o] = part o of the step's split dot products, for o = tid, tid + nt, … < npr.

        Part o is row r, column c (of ncol), terms [k0, k0 + m) of n (:func:`assignment`;
        ``first`` is this thread's first): Σ_k sm[a0 + r*arow + k] w_k, with w_k =
        sm[w0 + c + k*ws] if wshared else M[m0 + k, c + c0]. The loop runs on unsigned
        integers: a signed ``range`` with a run-time step costs a 64-bit division.
        """
        tid = U(cuda.threadIdx.x)
        nt = U(cuda.blockDim.x)
        o = tid
        while o < U(npr):
            r, c, k0, m = first if o == tid else assignment(int64(o), ncol, S, n)
            sm[U(out) + o] = dot_part(sm, a0 + r * arow, wshared, w0 + c, ws, M, m0, c + c0, k0, m)
            o += nt

    @cuda.jit(device=True)
    def unit_of(tid, H, b0, nb):
        """This thread's hidden unit: (owns one, row in the tile, unit j, sequence b) and their unsigned forms."""
        ru = tid // H
        ju = tid % H
        return tid < nb * H, ru, ju, U(b0 + ru), U(ju), U(ru * H + ju)

    @cuda.jit(device=True)
    def load_gates(a, t, b, j, H, G):
        """a[t, b, g*H + j] for the G gate blocks g (zero for g >= G), unsigned indices."""
        v1 = zero
        v2 = zero
        v3 = zero
        v0 = a[t, b, j]
        if G > 1:
            v1 = a[t, b, H + j]
        if G > 2:
            v2 = a[t, b, U2 * H + j]
        if G > 3:
            v3 = a[t, b, U3 * H + j]
        return v0, v1, v2, v3

    @cuda.jit
    def fwd_persistent(cell, W, WT, wshared, bhn, h0, c0, h, c, gates, hn, BM, S, S2):
        """Forward over all T steps for batch rows [blockIdx.x*BM, +BM).

        Dynamic shared memory: [W_h^T (H, GH) if wshared] [h double buffer
        2*BM*H] [partial products BM*nc1*S] [s = r ⊙ h_{t-1} BM*H] [partials of
        s W_hn^T BM*H*S2], nc1 the columns of the first product (2H for ``gru``,
        GH otherwise). ``WT`` is W_h^T in global memory (used when not wshared).
        """
        T = gates.shape[0]
        B = h0.shape[0]
        H = h0.shape[1]
        GH = W.shape[0]
        G = GH // H
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        b0 = cuda.blockIdx.x * BM
        nb = min(BM, B - b0)
        nc1 = 2 * H if cell == GRU else GH
        sm = cuda.shared.array(0, at)
        off = 0
        if wshared:
            for e in range(tid, GH * H, nt):
                col = e // H
                k = e % H
                sm[k * GH + col] = W[col, k]
            off = H * GH
        hb = off
        zb = hb + 2 * BM * H
        sb = zb + BM * nc1 * S
        z2b = sb + BM * H
        npr = nb * nc1 * S
        npr2 = nb * H * S2
        first = assignment(tid, nc1, S, H)  # this thread's first product part (most threads have one at most)
        first2 = assignment(tid, H, S2, H)
        unit, ru, ju, ub, uj, urow = unit_of(tid, H, b0, nb)
        uH = U(H)
        uS = U(S)
        uS2 = U(S2)
        uz = U(zb + ru * nc1 * S)
        uz2 = U(z2b + ru * H * S2)
        unc1 = U(nc1)
        gl = cuda.local.array(4, at)
        cl = cuda.local.array(1, at)
        hnl = cuda.local.array(1, at)
        x0 = zero
        x1 = zero
        x2 = zero
        x3 = zero
        cst = zero
        bj = zero
        if unit:
            sm[U(hb) + urow] = h0[ub, uj]
            if cell == LSTM:
                cst = c0[ub, uj]
            if cell == GRU_CUDNN:
                bj = bhn[uj]
            x0, x1, x2, x3 = load_gates(gates, U0, ub, uj, uH, G)
        cuda.syncthreads()
        for t in range(T):
            ut = U(t)
            cur = hb + (t % 2) * BM * H
            ucur = U(cur)
            unxt = U(hb + ((t + 1) % 2) * BM * H)
            # partial recurrent products z = h_{t-1} W_h^T
            products(sm, zb, npr, first, nc1, S, H, cur, H, wshared, 0, GH, WT, 0, 0)
            cuda.syncthreads()
            if unit:
                z0 = sum_parts(sm, uz + uj, uS, unc1)
                z1 = sum_parts(sm, uz + uH + uj, uS, unc1) if nc1 > H else zero
                z2 = sum_parts(sm, uz + U2 * uH + uj, uS, unc1) if nc1 > 2 * H else zero
                z3 = sum_parts(sm, uz + U3 * uH + uj, uS, unc1) if nc1 > 3 * H else zero
                gl[0] = x0
                gl[1] = x1
                gl[2] = x2
                gl[3] = x3
                v = fwd_elem(cell, 1, 0, gl, z0, z1, z2, z3, sm[ucur + urow], cst, bj, cl, hnl)
                if cell == LSTM:
                    cst = cl[0]
                    c[ut, ub, uj] = cst
                if cell == GRU_CUDNN:
                    hn[ut, ub, uj] = hnl[0]
                gates[ut, ub, uj] = gl[0]
                if G > 1:
                    gates[ut, ub, uH + uj] = gl[1]
                if G > 2 and cell != GRU:
                    gates[ut, ub, U2 * uH + uj] = gl[2]
                if G > 3:
                    gates[ut, ub, U3 * uH + uj] = gl[3]
                if cell == GRU:
                    sm[U(sb) + urow] = v
                else:
                    sm[unxt + urow] = v
                    h[ut, ub, uj] = v
                if t + 1 < T:  # the next step's input projections, loaded while this one finishes
                    x0, x1, x2, x3 = load_gates(gates, ut + U1, ub, uj, uH, G)
            cuda.syncthreads()
            if cell == GRU:  # the candidate: n = tanh(W_xn x + b_n + W_hn (r ⊙ h_{t-1}))
                products(sm, z2b, npr2, first2, H, S2, H, sb, H, wshared, 2 * H, GH, WT, 0, 2 * H)
                cuda.syncthreads()
                if unit:
                    zn = sum_parts(sm, uz2 + uj, uS2, uH)
                    v = gru_n_elem(1, 0, gl, zn, sm[ucur + urow])
                    gates[ut, ub, U2 * uH + uj] = gl[2]
                    sm[unxt + urow] = v
                    h[ut, ub, uj] = v
                cuda.syncthreads()

    @cuda.jit
    def bwd_persistent(cell, W, wshared, dh, gates, h, c, hn, h0, c0, bound, do_clip,
                       DA, DArec, sq_h, sq_c, dcflow, dh0, BM, S, S2):
        """The backward sweep t = T-1 … 0 for batch rows [blockIdx.x*BM, +BM), and ∂L/∂h_0.

        Dynamic shared memory: [W_h (GH, H) if wshared] [DArec double buffer
        2*BM*GH] [partial products BM*H*S] [partials of da_n W_hn BM*H*S2].
        ``sq_h`` (and ``sq_c``) receive the squared total ∂L/∂h_t (∂L/∂c_t) of
        every unit; ``dcflow`` holds ∂L/∂c_T on entry and ∂L/∂c_0 on exit.
        """
        T = gates.shape[0]
        B = h0.shape[0]
        H = h0.shape[1]
        GH = W.shape[0]
        G = GH // H
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        b0 = cuda.blockIdx.x * BM
        nb = min(BM, B - b0)
        lstm = cell == LSTM
        K1 = 2 * H if cell == GRU else GH
        sm = cuda.shared.array(0, at)
        off = 0
        if wshared:
            for e in range(tid, GH * H, nt):
                sm[e] = W[e // H, e % H]
            off = GH * H
        db = off
        fb = db + 2 * BM * GH
        f2b = fb + BM * H * S
        npr = nb * H * S
        npr2 = nb * H * S2
        first = assignment(tid, H, S, K1)  # this thread's first product part (most threads have one at most)
        first2 = assignment(tid, H, S2, H)
        unit, ru, ju, ub, uj, urow = unit_of(tid, H, b0, nb)
        uf = U(fb + ru * H * S)  # where the product parts of this thread's row begin
        uf2 = U(f2b + ru * H * S2)
        uH = U(H)
        uS = U(S)
        uS2 = U(S2)
        gl = cuda.local.array(4, at)
        dal = cuda.local.array(4, at)
        darl = cuda.local.array(4, at)
        g0 = zero
        g1 = zero
        g2 = zero
        g3 = zero
        dhv = zero
        hpv = zero
        cpv = zero
        ctv = zero
        hnv = zero
        direct = zero
        dcf = zero
        if unit:  # the trace values of step T-1
            t = T - 1
            ut = U(t)
            dhv = dh[ut, ub, uj]
            g0, g1, g2, g3 = load_gates(gates, ut, ub, uj, uH, G)
            hpv = h0[ub, uj] if t == 0 else h[ut - U1, ub, uj]
            if lstm:
                dcf = dcflow[ub, uj]
                ctv = c[ut, ub, uj]
                cpv = c0[ub, uj] if t == 0 else c[ut - U1, ub, uj]
            if cell == GRU_CUDNN:
                hnv = hn[ut, ub, uj]
        for t in range(T - 1, -1, -1):
            ut = U(t)
            prv = db + ((t + 1) % 2) * BM * GH
            cur = db + (t % 2) * BM * GH
            ucr = U(cur + ru * GH)
            # partial products of DArec_{t+1} W_h (none at the last step)
            if t < T - 1:
                products(sm, fb, npr, first, H, S, K1, prv, GH, wshared, 0, H, W, 0, 0)
            cuda.syncthreads()
            hp_t = hpv
            r_t = g0
            if unit:
                flow = sum_parts(sm, uf + uj, uS, uH) if t < T - 1 else zero
                tot = dhv + flow + direct
                sq_h[ut, ub, uj] = tot * tot
                gl[0] = g0
                gl[1] = g1
                gl[2] = g2
                gl[3] = g3
                dc2, direct, dcp = bwd_elem(cell, 1, 0, tot, gl, dal, darl, hpv, cpv,
                                            ctv, hnv, dcf, bound, do_clip)
                if lstm:
                    dcf = dcp
                    sq_c[ut, ub, uj] = dc2
                for g in range(4):  # unrolled: constant indices keep dal and darl in registers
                    if g < G and not (cell == GRU and g == 0):  # gru's r block comes in its second phase
                        ug = U(g) * uH + uj
                        DA[ut, ub, ug] = dal[g]
                        if cell == GRU_CUDNN:
                            DArec[ut, ub, ug] = darl[g]
                            sm[ucr + ug] = darl[g]
                        else:
                            sm[ucr + ug] = dal[g]
                if t > 0:  # the next step's trace values, loaded while this one finishes
                    tp = ut - U1
                    dhv = dh[tp, ub, uj]
                    g0, g1, g2, g3 = load_gates(gates, tp, ub, uj, uH, G)
                    hpv = h0[ub, uj] if t == 1 else h[tp - U1, ub, uj]
                    if lstm:
                        ctv = cpv
                        cpv = c0[ub, uj] if t == 1 else c[tp - U1, ub, uj]
                    if cell == GRU_CUDNN:
                        hnv = hn[tp, ub, uj]
            cuda.syncthreads()
            if cell == GRU:  # ds = da_n W_hn, then da_r and the reset path into h_{t-1}
                products(sm, f2b, npr2, first2, H, S2, H, cur + 2 * H, GH, wshared, 2 * H * H, H, W, 2 * H, 0)
                cuda.syncthreads()
                if unit:
                    da_r, through = gru_reset_backward(sum_parts(sm, uf2 + uj, uS2, uH), r_t, hp_t)
                    DA[ut, ub, uj] = da_r
                    sm[ucr + uj] = da_r
                    direct += through
                cuda.syncthreads()
        # ∂L/∂h_0 = DArec_0 W_h + dh_direct, and ∂L/∂c_0
        products(sm, fb, npr, first, H, S, K1, db, GH, wshared, 0, H, W, 0, 0)
        cuda.syncthreads()
        if unit:
            dh0[ub, uj] = sum_parts(sm, uf + uj, uS, uH) + direct
            if lstm:
                dcflow[ub, uj] = dcf

    # ------------------------------------------------------------------
    # Per-step kernels (large H): the recurrent product of a step is one
    # launch of the product kernel, into K parts P[z] (see _cuda_gemm); these
    # kernels add the parts in order and apply the gate math, one thread per
    # (sequence, hidden unit).
    # ------------------------------------------------------------------

    @cuda.jit(device=True)
    def part_sum(P, b, col):
        """Σ_z P[z, b, col], in order of z (unsigned b, col)."""
        v = zero
        for z in range(P.shape[0]):
            v += P[U(z), b, col]
        return v

    @cuda.jit(device=True)
    def point_of(B, H):
        """This thread's (sequence, hidden unit), unsigned, and whether it has one."""
        i = U(cuda.grid(1))
        return i < U(B) * U(H), i // U(H), i % U(H)

    # (the gate-math helpers fwd_elem, bwd_elem and gru_n_elem take signed H and j)

    @cuda.jit
    def fwd_point(cell, t, P, bhn, h0, c0, h, c, gates, hn, S):
        """Step t of the forward pass from the parts P of h_{t-1} W_h^T (for ``gru`` the r, u columns only).

        Writes the gates (and c_t, hn); h_t, or for ``gru`` s = r ⊙ h_{t-1} into S.
        """
        B = h0.shape[0]
        H = h0.shape[1]
        ok, b, j = point_of(B, H)
        if ok:
            uH = U(H)
            ng = 2 if cell == GRU else gates.shape[2] // H
            ut = U(t)
            z0 = part_sum(P, b, j)
            z1 = part_sum(P, b, uH + j) if ng > 1 else zero
            z2 = part_sum(P, b, U2 * uH + j) if ng > 2 else zero
            z3 = part_sum(P, b, U3 * uH + j) if ng > 3 else zero
            hp = h0[b, j] if t == 0 else h[ut - U1, b, j]
            cp = zero
            if cell == LSTM:
                cp = c0[b, j] if t == 0 else c[ut - U1, b, j]
            v = fwd_elem(cell, H, int64(j), gates[ut, b], z0, z1, z2, z3, hp, cp,
                         bhn[j] if cell == GRU_CUDNN else zero, c[ut, b] if cell == LSTM else c[0, 0],
                         hn[ut, b] if cell == GRU_CUDNN else hn[0, 0])
            if cell == GRU:
                S[b, j] = v
            else:
                h[ut, b, j] = v

    @cuda.jit
    def fwd_point_gru_n(t, P, h0, h, gates):
        """Step t of the full GRU, second phase, from the parts P of s W_hn^T: the candidate and h_t."""
        B = h0.shape[0]
        H = h0.shape[1]
        ok, b, j = point_of(B, H)
        if ok:
            ut = U(t)
            hp = h0[b, j] if t == 0 else h[ut - U1, b, j]
            h[ut, b, j] = gru_n_elem(H, int64(j), gates[ut, b], part_sum(P, b, j), hp)

    @cuda.jit
    def bwd_point(cell, t, P, dh, gates, h, c, hn, h0, c0, bound, do_clip, DA, DArec, sq_h, sq_c, direct, dcflow):
        """Step t of the backward sweep: ∂L/∂h_t = dh_t + (parts P of DArec_{t+1} W_h) + the direct path,
        then the gate gradients. Stores the squared totals in sq_h[t] (sq_c[t]) for :func:`norm_final`.
        """
        T = gates.shape[0]
        B = h0.shape[0]
        H = h0.shape[1]
        ok, b, j = point_of(B, H)
        if ok:
            ut = U(t)
            last = t == T - 1
            tot = dh[ut, b, j]
            if not last:
                tot += part_sum(P, b, j) + direct[b, j]
            sq_h[ut, b, j] = tot * tot
            hp = h0[b, j] if t == 0 else h[ut - U1, b, j]
            cp = zero
            ct = zero
            dcf = zero
            if cell == LSTM:
                cp = c0[b, j] if t == 0 else c[ut - U1, b, j]
                ct = c[ut, b, j]
                dcf = dcflow[b, j]
            dc2, dir_, dcp = bwd_elem(cell, H, int64(j), tot, gates[ut, b], DA[ut, b], DArec[ut, b], hp, cp, ct,
                                      hn[ut, b, j] if cell == GRU_CUDNN else zero, dcf, bound, do_clip)
            direct[b, j] = dir_
            if cell == LSTM:
                dcflow[b, j] = dcp
                sq_c[ut, b, j] = dc2

    @cuda.jit
    def bwd_point_gru_s(t, P, gates, h, h0, DA, direct):
        """Step t of the full GRU backward, second phase, from the parts P of ds = da_n W_hn: da_r and the reset path."""
        B = h0.shape[0]
        H = h0.shape[1]
        ok, b, j = point_of(B, H)
        if ok:
            ut = U(t)
            hp = h0[b, j] if t == 0 else h[ut - U1, b, j]
            da_r, through = gru_reset_backward(part_sum(P, b, j), gates[ut, b, j], hp)
            DA[ut, b, j] = da_r
            direct[b, j] += through

    @cuda.jit
    def add_parts(P, V, out):
        """out = Σ_z P[z] (in order) + V, for 2-D arrays: ∂L/∂h_0 = DArec_0 W_h + the direct path."""
        ok, b, j = point_of(out.shape[0], out.shape[1])
        if ok:
            out[b, j] = part_sum(P, b, j) + V[b, j]

    gate_math = SimpleNamespace(fwd_elem=fwd_elem, gru_n_elem=gru_n_elem, bwd_elem=bwd_elem,
                                gru_reset_backward=gru_reset_backward, GRU=GRU, GRU_CUDNN=GRU_CUDNN, LSTM=LSTM)
    coop = vars(coop_kernels(zero, at, gate_math, COOP_ROWS))
    found = {k: v for k, v in locals().items() if hasattr(v, "py_func") or callable(v)}
    return SimpleNamespace(**gemms, **coop, **found)
