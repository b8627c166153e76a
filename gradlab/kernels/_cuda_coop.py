"""The cooperative time loop of the ``"cuda"`` backend: one launch, W_h spread over the blocks' shared memory.

For hidden sizes whose W_h does not fit one block's shared memory (H = 128 for
the LSTM in float32 is 256 KB) but does fit the whole GPU's, the hidden units
are cut into slices of ``nu`` units and each block keeps the rows (forward) or
columns (backward) of W_h that its slice needs in shared memory for the whole
sequence, as the persistent RNN kernels of Diamos et al. (2016) keep them in
registers. Every step, each block reads the previous step's state of *all*
units (h_{t-1}, or the gate gradients of step t+1) from global memory into
shared memory (whole, or in chunks of k where it does not fit), forms its
slice of the recurrent product, applies
the gate math to its own units and writes their new state; a grid-wide barrier
(``cuda.cg.this_grid().sync()``, a cooperative launch) separates the steps.
The full GRU, whose candidate needs all of r ⊙ h_{t-1}, takes two barriers a
step.

A block handles the slices ``blockIdx.x, blockIdx.x + gridDim.x, …``, so the
same code runs one slice per block on a GPU and every slice in one block on
the CUDA simulator, which supports grid sync only for single-block grids.

The product of a slice: thread ``tid`` owns column ``tid % ncols`` and the
rows ``tid // ncols + i * (nt // ncols)`` (i < ``COOP_ROWS``), summing over k
in order: deterministic, as every other reduction of the backend.
"""

from __future__ import annotations

from types import SimpleNamespace

from numba import cuda, uint64

U = uint64


def coop_kernels(zero, at, dev, ROWS: int) -> SimpleNamespace:
    """The cooperative forward and backward kernels.

    ``dev`` holds the gate-math device functions (``fwd_elem``, ``gru_n_elem``,
    ``bwd_elem``, ``gru_reset_backward``) and the cell ids; ``ROWS`` is the most
    batch rows a thread accumulates.
    """
    fwd_elem, gru_n_elem, bwd_elem = dev.fwd_elem, dev.gru_n_elem, dev.bwd_elem
    gru_reset_backward = dev.gru_reset_backward
    GRU, GRU_CUDNN, LSTM = dev.GRU, dev.GRU_CUDNN, dev.LSTM

    @cuda.jit(device=True)
    def slot_count(nslices):
        """How many slices this block takes: blockIdx.x, blockIdx.x + gridDim.x, … below ``nslices``."""
        return (nslices - cuda.blockIdx.x + cuda.gridDim.x - 1) // cuda.gridDim.x

    @cuda.jit(device=True)
    def layout(nslices, wwords, B, kc):
        """(slices of this block, offset of the staged operand, offset of the products) in shared memory,
        after the block's W slices of ``wwords`` words each."""
        nslot = slot_count(nslices)
        cs = nslot * wwords
        return nslot, cs, cs + B * (kc | 1)

    @cuda.jit(device=True)
    def slice_of(slot):
        """The slice this block takes in its ``slot``-th turn."""
        return cuda.blockIdx.x + slot * cuda.gridDim.x

    @cuda.jit(device=True)
    def slice_product(sm, wb, wstride, col0, ncols, src3, src2, ts, klo, khi, B, kc, cs, zb):
        """sm[zb + b*ncols + c] = Σ_{klo<=k<khi} src[b, k] Ws[k, col0 + c] for b < B, c < ncols.

        ``src`` is src3[ts] (or src2 when ts < 0); Ws is the block's W slice at
        ``wb`` with row stride ``wstride``; rows of src are staged ``kc`` columns at
        a time at ``cs``, with an odd row stride (a warp's rows fall in distinct
        banks). Every thread of the block must call it.
        """
        tid = U(cuda.threadIdx.x)
        nt = U(cuda.blockDim.x)
        uB = U(B)
        unc = U(ncols)
        c = tid % unc
        rg = tid // unc
        R = nt // unc
        uKC = U(kc)
        ks = uKC | U(1)
        acc = cuda.local.array(ROWS, at)
        for i in range(ROWS):
            acc[i] = zero
        k0 = U(klo)
        while k0 < U(khi):
            kn = min(uKC, U(khi) - k0)
            e = tid
            while e < uB * kn:  # stage src[:, k0:k0+kn]
                b = e // kn
                kk = e % kn
                col = k0 + kk
                sm[U(cs) + b * ks + kk] = src2[b, col] if ts < 0 else src3[U(ts), b, col]
                e += nt
            cuda.syncthreads()
            if rg < R:
                w0 = U(wb) + k0 * U(wstride) + U(col0) + c
                kk = U(0)
                while kk < kn:
                    w = sm[w0 + kk * U(wstride)]
                    for i in range(ROWS):
                        b = rg + U(i) * R
                        if b < uB:
                            acc[i] += sm[U(cs) + b * ks + kk] * w
                    kk += U(1)
            cuda.syncthreads()
            k0 += uKC
        if rg < R:
            for i in range(ROWS):
                b = rg + U(i) * R
                if b < uB:
                    sm[U(zb) + b * unc + c] = acc[i]
        cuda.syncthreads()

    @cuda.jit
    def fwd_coop(cell, W, bhn, h0, c0, h, c, gates, hn, S, nu, nslices, kc):
        """The forward pass, all T steps, slices of ``nu`` hidden units spread over the grid.

        Dynamic shared memory: per slice of the block, its W rows as (H, G*nu)
        (column g*nu + jj is W_h[g*H + q*nu + jj]); the staged chunk (B, kc | 1);
        the slice's products (B, G*nu). ``S`` receives s = r ⊙ h_{t-1} (``gru``).
        """
        T = gates.shape[0]
        B = h0.shape[0]
        H = h0.shape[1]
        G = W.shape[0] // H
        C = G * nu
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        nslot, cs, zb = layout(nslices, H * C, B, kc)
        grid = cuda.cg.this_grid()
        sm = cuda.shared.array(0, at)
        for slot in range(nslot):
            q = slice_of(slot)
            for e in range(tid, H * C, nt):
                k = e // C
                col = e % C
                j = q * nu + col % nu
                sm[slot * H * C + e] = W[(col // nu) * H + j, k] if j < H else zero
        cuda.syncthreads()
        n1 = 2 * nu if cell == GRU else C  # gru: the candidate's columns come after s is complete
        for t in range(T):
            for slot in range(nslot):
                q = slice_of(slot)
                slice_product(sm, slot * H * C, C, 0, n1, h, h0, t - 1, 0, H, B, kc, cs, zb)
                for e in range(tid, B * nu, nt):
                    b = e // nu
                    jj = e % nu
                    j = q * nu + jj
                    if j < H:
                        hp = h0[b, j] if t == 0 else h[t - 1, b, j]
                        cp = zero
                        if cell == LSTM:
                            cp = c0[b, j] if t == 0 else c[t - 1, b, j]
                        z = zb + b * n1 + jj
                        z1 = sm[z + nu] if G > 1 else zero
                        z2 = sm[z + 2 * nu] if G > 2 and cell != GRU else zero
                        z3 = sm[z + 3 * nu] if G > 3 else zero
                        v = fwd_elem(cell, H, j, gates[t, b], sm[z], z1, z2, z3, hp, cp,
                                     bhn[j] if cell == GRU_CUDNN else zero, c[t, b] if cell == LSTM else c[0, 0],
                                     hn[t, b] if cell == GRU_CUDNN else hn[0, 0])
                        if cell == GRU:
                            S[b, j] = v
                        else:
                            h[t, b, j] = v
                cuda.syncthreads()
            grid.sync()
            if cell == GRU:  # the candidate: n = tanh(W_xn x + b_n + W_hn s)
                for slot in range(nslot):
                    q = slice_of(slot)
                    slice_product(sm, slot * H * C, C, 2 * nu, nu, h, S, -1, 0, H, B, kc, cs, zb)
                    for e in range(tid, B * nu, nt):
                        b = e // nu
                        jj = e % nu
                        j = q * nu + jj
                        if j < H:
                            hp = h0[b, j] if t == 0 else h[t - 1, b, j]
                            h[t, b, j] = gru_n_elem(H, j, gates[t, b], sm[zb + b * nu + jj], hp)
                    cuda.syncthreads()
                grid.sync()

    @cuda.jit
    def bwd_coop(cell, W, dh, gates, h, c, hn, h0, c0, bound, do_clip, DA, DArec, sq_h, sq_c, direct, dcflow,
                 dh0, nu, nslices, kc):
        """The backward sweep t = T-1 … 0 and ∂L/∂h_0, slices of ``nu`` hidden units spread over the grid.

        Dynamic shared memory: per slice of the block, its W_h columns as
        (G*H, nu); the staged chunk (B, kc | 1); the slice's products (B, nu).
        ``direct`` holds the direct path into ∂L/∂h_{t-1}; ``dcflow`` ∂L/∂c_T on
        entry and ∂L/∂c_0 on exit; ``sq_h`` (``sq_c``) the squared totals.
        """
        T = gates.shape[0]
        B = h0.shape[0]
        H = h0.shape[1]
        GH = W.shape[0]
        K1 = 2 * H if cell == GRU else GH  # for gru only the r, u blocks act on h_{t-1} through W_h
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        nslot, cs, zb = layout(nslices, GH * nu, B, kc)
        grid = cuda.cg.this_grid()
        sm = cuda.shared.array(0, at)
        for slot in range(nslot):
            q = slice_of(slot)
            for e in range(tid, GH * nu, nt):
                k = e // nu
                j = q * nu + e % nu
                sm[slot * GH * nu + e] = W[k, j] if j < H else zero
        cuda.syncthreads()
        for t in range(T - 1, -1, -1):
            for slot in range(nslot):
                q = slice_of(slot)
                wb = slot * GH * nu
                slice_product(sm, wb, nu, 0, nu, DArec, DArec[0], t + 1, 0, K1 if t < T - 1 else 0, B, kc, cs, zb)
                for e in range(tid, B * nu, nt):
                    b = e // nu
                    j = q * nu + e % nu
                    if j < H:
                        tot = dh[t, b, j]
                        if t < T - 1:
                            tot += sm[zb + e] + direct[b, j]
                        sq_h[t, b, j] = tot * tot
                        hp = h0[b, j] if t == 0 else h[t - 1, b, j]
                        cp = zero
                        ct = zero
                        dcf = zero
                        if cell == LSTM:
                            cp = c0[b, j] if t == 0 else c[t - 1, b, j]
                            ct = c[t, b, j]
                            dcf = dcflow[b, j]
                        dc2, dir_, dcp = bwd_elem(cell, H, j, tot, gates[t, b], DA[t, b], DArec[t, b], hp, cp, ct,
                                                  hn[t, b, j] if cell == GRU_CUDNN else zero, dcf, bound, do_clip)
                        direct[b, j] = dir_
                        if cell == LSTM:
                            dcflow[b, j] = dcp
                            sq_c[t, b, j] = dc2
                cuda.syncthreads()
            grid.sync()
            if cell == GRU:  # ds = da_n W_hn, then da_r and the reset path into h_{t-1}
                for slot in range(nslot):
                    q = slice_of(slot)
                    slice_product(sm, slot * GH * nu, nu, 0, nu, DA, DA[0], t, 2 * H, 3 * H, B, kc, cs, zb)
                    for e in range(tid, B * nu, nt):
                        b = e // nu
                        j = q * nu + e % nu
                        if j < H:
                            hp = h0[b, j] if t == 0 else h[t - 1, b, j]
                            da_r, through = gru_reset_backward(sm[zb + e], gates[t, b, j], hp)
                            DA[t, b, j] = da_r
                            direct[b, j] += through
                    cuda.syncthreads()
                grid.sync()
        for slot in range(nslot):  # ∂L/∂h_0 = DArec_0 W_h + the direct path
            q = slice_of(slot)
            slice_product(sm, slot * GH * nu, nu, 0, nu, DArec, DArec[0], 0, 0, K1, B, kc, cs, zb)
            for e in range(tid, B * nu, nt):
                b = e // nu
                j = q * nu + e % nu
                if j < H:
                    dh0[b, j] = sm[zb + e] + direct[b, j]
            cuda.syncthreads()

    return SimpleNamespace(fwd_coop=fwd_coop, bwd_coop=bwd_coop, slice_product=slice_product)
