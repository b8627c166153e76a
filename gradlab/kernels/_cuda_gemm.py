"""The matrix-product kernels of the ``"cuda"`` backend: C (+)= op(A) op(B) (+ bias), deterministic.

Used for the whole-sequence products: the input projection of every step
before the forward time loop, and dW_x, dW_h and ∂L/∂x after the backward
sweep. The host side (tile shape, split of K) is :func:`gradlab.kernels.cuda._gemm`.

The kernel is the classic shared-memory SGEMM (Volkov & Demmel 2008; the
layout of CUTLASS's SIMT kernels): a block of ``TM x TN`` threads owns a
``BM x BN`` tile of C (``BM = TM*RM``, ``BN = TN*RN``); each thread keeps an
``RM x RN`` block of it in registers, strided by the thread grid so that the
shared-memory reads of a warp hit distinct banks or broadcast. K is walked in
slices of ``BK``: every thread loads its share of the next slice of A and B
into registers while the current slice, in one of two shared-memory stages,
feeds ``RM*RN`` multiply-adds per ``RM + RN`` shared loads. One barrier per
slice. Indices are unsigned, so that Numba adds no wrap-around of negative
indices to the address arithmetic.

Tall products (few tiles of C, long K: dW_x and dW_h, whose K is T·B) are
split along K over ``gridDim.z`` blocks; each writes its partial tile to a
workspace ``P[z]`` and :func:`gemm_reduce` adds the parts in a fixed order.
Every element of C is summed the same way on every run, so results are
bit-for-bit reproducible (no atomics).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from numba import cuda, uint64

U = uint64


def gemm_kernels(dtype, at, configs) -> SimpleNamespace:
    """The product kernels for one dtype.

    ``at`` is the element type of shared and local arrays (a Numba type, or a
    NumPy dtype on the simulator); ``configs`` maps a name to the tile shape
    ``(TM, TN, RM, RN, BK)`` of one compiled variant.
    """
    zero = np.dtype(dtype).type(0)
    out = {name: _make_gemm(zero, at, *shape) for name, shape in configs.items()}

    @cuda.jit
    def gemm_reduce(P, C, bias, has_bias, accumulate):
        """C[m, n] = Σ_z P[z, m, n] (in order of z) [+ bias[n]] [+ C[m, n]]."""
        i = cuda.grid(1)
        M = C.shape[0]
        N = C.shape[1]
        if i < M * N:
            m = U(i // N)
            n = U(i % N)
            s = zero
            for z in range(P.shape[0]):
                s += P[U(z), m, n]
            if has_bias:
                s += bias[n]
            if accumulate:
                s += C[m, n]
            C[m, n] = s

    out["gemm_reduce"] = gemm_reduce
    return SimpleNamespace(**out)


def _make_gemm(zero, at, TM, TN, RM, RN, BK):
    BM, BN = TM * RM, TN * RN
    NT = TM * TN
    LA, LB = BK * BM // NT, BK * BN // NT  # elements of a K slice each thread loads
    assert LA * NT == BK * BM and LB * NT == BK * BN, "a K slice must split evenly over the threads"
    SA, SB = BK * BM, BK * BN
    STAGE = SA + SB  # words of one shared-memory stage: A slice (BK, BM), then B slice (BK, BN)
    uBM, uBN, uBK, uTM, uTN, uNT = (U(v) for v in (BM, BN, BK, TM, TN, NT))
    uSA, uSTAGE = U(SA), U(STAGE)

    @cuda.jit(device=True)
    def load_slice(A, B, ta, tb, M, N, K, m0, n0, k0, tid, pa, pb):
        """This thread's share of the K slice [k0, k0 + BK) of op(A) and op(B), zero outside the matrices."""
        for i in range(LA):
            e = tid + U(i) * uNT
            if ta:  # A is (K, M): consecutive threads along m
                m = e % uBM
                kk = e // uBM
                ok = k0 + kk < K and m0 + m < M
                pa[i] = A[k0 + kk, m0 + m] if ok else zero
            else:  # A is (M, K): consecutive threads along k
                kk = e % uBK
                m = e // uBK
                ok = k0 + kk < K and m0 + m < M
                pa[i] = A[m0 + m, k0 + kk] if ok else zero
        for i in range(LB):
            e = tid + U(i) * uNT
            if tb:  # B is (N, K)
                kk = e % uBK
                n = e // uBK
                ok = k0 + kk < K and n0 + n < N
                pb[i] = B[n0 + n, k0 + kk] if ok else zero
            else:  # B is (K, N)
                n = e % uBN
                kk = e // uBN
                ok = k0 + kk < K and n0 + n < N
                pb[i] = B[k0 + kk, n0 + n] if ok else zero

    @cuda.jit(device=True)
    def store_slice(sm, base, ta, tb, tid, pa, pb):
        """Write the loaded slice into the stage at ``base``: A as (BK, BM), B as (BK, BN)."""
        for i in range(LA):
            e = tid + U(i) * uNT
            if ta:
                sm[base + (e // uBM) * uBM + e % uBM] = pa[i]
            else:
                sm[base + (e % uBK) * uBM + e // uBK] = pa[i]
        for i in range(LB):
            e = tid + U(i) * uNT
            if tb:
                sm[base + uSA + (e % uBK) * uBN + e // uBK] = pb[i]
            else:
                sm[base + uSA + (e // uBN) * uBN + e % uBN] = pb[i]

    @cuda.jit(device=True)
    def write_tile(acc, P, C, bias, z, mode, m0, n0, ty, tx, M, N):
        """The thread's block of C: to P[z] (mode 0), C = acc (1), acc + bias (2), C + acc (3), C + acc + bias (4)."""
        for i in range(RM):
            m = m0 + ty + U(i * TM)
            for j in range(RN):
                n = n0 + tx + U(j * TN)
                if m < M and n < N:
                    if mode == 0:
                        P[z, m, n] = acc[i, j]
                    elif mode == 1:
                        C[m, n] = acc[i, j]
                    elif mode == 2:
                        C[m, n] = acc[i, j] + bias[n]
                    elif mode == 3:
                        C[m, n] += acc[i, j]
                    else:
                        C[m, n] += acc[i, j] + bias[n]

    @cuda.jit
    def gemm(A, B, C, P, ta, tb, bias, has_bias, accumulate, kchunk):
        """C = op(A) op(B) [+ bias] [+ C]; op(A) = A.T if ta, op(B) = B.T if tb.

        Shapes: C (M, N); A (M, K) or (K, M); B (K, N) or (N, K); any strides.
        Block z of the grid sums the terms k in [z*kchunk, (z+1)*kchunk); with
        more than one such block along z, each writes its raw partial tile to
        ``P[z]`` (shape (gridDim.z, M, N)) instead, for :func:`gemm_reduce`.
        Dynamic shared memory: two stages of ``BK * (BM + BN)`` words.
        """
        M = U(C.shape[0])
        N = U(C.shape[1])
        K = U(A.shape[0] if ta else A.shape[1])
        z = U(cuda.blockIdx.z)
        kb = z * U(kchunk)
        ke = min(K, kb + U(kchunk))
        sm = cuda.shared.array(0, at)
        acc = cuda.local.array((RM, RN), at)
        ra = cuda.local.array(RM, at)
        rb = cuda.local.array(RN, at)
        pa = cuda.local.array(LA, at)
        pb = cuda.local.array(LB, at)
        tx = U(cuda.threadIdx.x)
        ty = U(cuda.threadIdx.y)
        tid = ty * uTN + tx
        m0 = U(cuda.blockIdx.y) * uBM
        n0 = U(cuda.blockIdx.x) * uBN
        for i in range(RM):
            for j in range(RN):
                acc[i, j] = zero
        if kb < ke:
            load_slice(A, B, ta, tb, M, N, K, m0, n0, kb, tid, pa, pb)
            store_slice(sm, U(0), ta, tb, tid, pa, pb)
        cuda.syncthreads()
        stage = U(0)
        k0 = kb
        while k0 < ke:
            more = k0 + uBK < ke
            if more:  # the next slice's loads are in flight during this slice's products
                load_slice(A, B, ta, tb, M, N, K, m0, n0, k0 + uBK, tid, pa, pb)
            a = stage * uSTAGE
            b = a + uSA
            for kk in range(BK):
                for i in range(RM):
                    ra[i] = sm[a + U(kk * BM + i * TM) + ty]
                for j in range(RN):
                    rb[j] = sm[b + U(kk * BN + j * TN) + tx]
                for i in range(RM):
                    for j in range(RN):
                        acc[i, j] += ra[i] * rb[j]
            stage = U(1) - stage
            if more:  # the other stage was last read before the previous barrier
                store_slice(sm, stage * uSTAGE, ta, tb, tid, pa, pb)
            cuda.syncthreads()
            k0 += uBK
        # one inlined copy of the epilogue per case, so that each unrolls and acc stays in registers
        if cuda.gridDim.z > 1:
            write_tile(acc, P, C, bias, z, 0, m0, n0, ty, tx, M, N)
        elif has_bias and accumulate:
            write_tile(acc, P, C, bias, z, 4, m0, n0, ty, tx, M, N)
        elif has_bias:
            write_tile(acc, P, C, bias, z, 2, m0, n0, ty, tx, M, N)
        elif accumulate:
            write_tile(acc, P, C, bias, z, 3, m0, n0, ty, tx, M, N)
        else:
            write_tile(acc, P, C, bias, z, 1, m0, n0, ty, tx, M, N)

    gemm.tile = SimpleNamespace(TM=TM, TN=TN, RM=RM, RN=RN, BK=BK, BM=BM, BN=BN, shared_words=2 * STAGE)
    return gemm
