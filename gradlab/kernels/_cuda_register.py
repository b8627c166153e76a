"""The register time loop of the ``"cuda"`` backend: W_h held in registers, one block per sequence.

For small hidden sizes a time step is a chain of dependent operations in a
handful of warps, so its cost is the latency of that chain, not arithmetic.
These kernels are compiled for one cell and one hidden size H (both
compile-time constants), so every loop over H unrolls and each thread keeps
its share of W_h in registers for the whole sweep: a step's dot products read
only the broadcast state from shared memory, at addresses known when the
kernel compiles.

Layout (the same in both directions). A warp serves ``PW = LANES // G``
hidden units, the G gate blocks of each: lane ``l`` of warp ``w`` is gate block
``g = l // PW`` of unit ``j = w * PW + l % PW``; lanes beyond ``G * PW`` and
units beyond H idle. The lane with ``g = 0`` owns unit j: its state (c_t, the
direct path, ∂L/∂c) lives in its registers and it runs the gate math
(:func:`gradlab.kernels._cuda_kernels.kernels`' ``fwd_elem`` / ``bwd_elem``,
the shared pointwise functions). Because the G values a unit needs come from
lanes of its own warp, a step takes one warp barrier and one block barrier.

* forward, step t: lane (g, j) computes z = Σ_k W_h[gH + j, k] h_{t-1}[k] from
  its row of W_h; the unit lane applies the gate math and writes h_t into the
  other half of a double buffer.
* backward, step t: lane (g, j) computes the part Σ_k DArec_{t+1}[gH + k]
  W_h[gH + k, j] of ∂L/∂h_t's recurrent term from gate block g of W_h's
  column j. The gate gradients sit in shared memory gate block by gate block,
  each block padded by ``PAD`` words, so a lane reads consecutive words (four
  at a time) and the G blocks a warp reads at once fall in different banks;
  the unit lane adds the G parts in order, then the gate gradients.

Where a thread's H words of W_h do not all fit in its registers (H = 128 in
float32 for the LSTM: 512 threads, at most 128 registers each), it keeps the
first ``hr`` of them there and the other H - hr in shared memory, at
``ws[k * threads + tid]``: a thread reads only its own words, consecutive
threads consecutive words, so neither a barrier nor a bank conflict. Past 48 KB
that takes the opt-in shared memory of the multiprocessor (227 KB on sm_90);
:func:`register_words` and :func:`shared_bytes` size it.

Every sum runs in a fixed order, so results do not change from run to run. The
full ``gru`` (two products a step, the second on r ⊙ h_{t-1}) is left to the
persistent loop.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from numba import cuda

from . import _cuda_kernels as K_
from ._cuda_kernels import GRU_CUDNN, LSTM, SIM, U, U0, U1, U2

#: Lanes of a warp: 32 on a GPU. The simulator has no warps (and no syncwarp):
#: there a "warp" is 8 threads synchronised with a block barrier, so that tiny
#: shapes still take several of them.
LANES = 8 if SIM else 32

#: Largest H the register loop takes: its threads hold H words of W_h each, in registers and, past what
#: the register file allows, in shared memory.
MAX_H = 128

#: Largest H for which "auto" picks the register loop: where it was measured faster than the persistent
#: loop (every thread's words of W_h in registers; see ``reports/performance/gpu.md``).
AUTO_MAX_H = 64

#: 32-bit registers of the multiprocessor's register file, and the most one thread can have.
REGISTER_FILE, THREAD_REGISTERS = 65536, 255

#: 32-bit registers a thread needs besides its words of W_h, by item size (ptxas, sm_90: with all 64 words of
#: a row in registers, the kernels take 122–128 registers in float32 and 214–220 in float64; with these
#: margins no kernel up to H = 128 spills under its register budget).
OTHER_REGISTERS = {4: 72, 8: 104}

#: A cap on the words of W_h a thread keeps in registers (None: what the register file allows). Tests lower
#: it, so that shapes small enough for the simulator run the split between registers and shared memory.
REGISTER_WORDS = None

#: Words between the gate blocks of the backward's gate gradients in shared memory: gate block g starts at
#: g (H + PAD), so that the G blocks a warp reads at once lie in different banks.
PAD = 4

#: The cells it runs (the full ``gru`` needs two products a step).
CELLS = ("rnn_tanh", "rnn_relu", "gru_simple", "gru_cudnn", "lstm")


def layout(G: int, H: int) -> tuple[int, int]:
    """(units per warp, threads per block) for G gate blocks of H units."""
    pw = LANES // G
    return pw, -(-H // pw) * LANES


def register_budget(threads: int) -> int:
    """The registers a thread may take when ``threads`` of them share a multiprocessor (255 at most, else a
    multiple of 8: registers are allocated to a warp in blocks of 256)."""
    return min(THREAD_REGISTERS, REGISTER_FILE // threads // 8 * 8)


def register_words(itemsize: int, G: int, H: int) -> int:
    """How many of its H words of W_h a thread keeps in registers: all of them where they fit, else a
    multiple of 4 (at least 4; the rest lie in shared memory)."""
    words = (register_budget(layout(G, H)[1]) - OTHER_REGISTERS[itemsize]) * 4 // itemsize
    if REGISTER_WORDS is not None:
        words = min(words, REGISTER_WORDS)
    return H if H <= words else max(4, words - words % 4)


def shared_bytes(itemsize: int, G: int, H: int, hr: int, backward: bool) -> int:
    """Shared memory of one block: the double-buffered state (h, or the gate gradients), one product per
    thread, and the H - hr words of W_h each thread keeps there."""
    threads = layout(G, H)[1]
    state = 2 * G * (H + PAD) if backward else 2 * H
    return (state + threads + (H - hr) * threads) * itemsize


def supports(cell: str, H: int, G: int, itemsize: int, shared_limit: int) -> bool:
    """Whether the register loop runs this cell at this hidden size, in a block of at most ``shared_limit``
    bytes of shared memory."""
    if cell not in CELLS or H > MAX_H or G > LANES:
        return False
    hr = register_words(itemsize, G, H)
    return hr == H or max(shared_bytes(itemsize, G, H, hr, bw) for bw in (False, True)) <= shared_limit


#: How many steps ahead a unit's loads from global memory are issued (1 or 2). A step is shorter than a
#: load from memory, so two might hide more of it; on an H200 at (T, B, H) = (1000, 1, 32) (LSTM, float32,
#: ``gpu_step_latency.py``) one step ahead was faster: 0.58 against 0.63 µs a forward step, 0.65 against
#: 0.90 µs a backward step.
AHEAD = 1


# The simulator makes a static shared array when the first thread of a block reaches it, without a lock,
# so two threads can get arrays of their own (about one run in six of the register tests failed). There, and
# where words of W_h lie in shared memory (past 48 KB a block, which only dynamic shared memory can have), the
# kernels cut their shared arrays out of dynamic shared memory, one buffer a block, of the size
# register_kernels returns (``fwd_shared``, ``bwd_shared``).


@lru_cache(maxsize=None)
def register_kernels(dtype, cell: str, H: int, G: int, ahead: int = 1, hr: int | None = None):
    """The kernels for one dtype, cell and hidden size, loading ``ahead`` steps ahead (see AHEAD), each thread
    keeping ``hr`` words of W_h in registers (None: all H) and the rest in shared memory: ``fwd``, ``bwd``,
    their ``threads`` a block, and the dynamic shared memory a launch takes (``fwd_shared``, ``bwd_shared``:
    bytes; zero where every word sits in registers, but on the simulator)."""
    if ahead not in (1, 2):
        raise ValueError(f"ahead: expected 1 or 2, got {ahead}")
    if cell not in CELLS or H > MAX_H or G > LANES:
        raise ValueError(f"the register loop runs the cells {CELLS} up to H = {MAX_H}; got {cell!r}, H = {H}")
    HR = H if hr is None else hr  # noqa: N806 (constants of the kernels, as those below)
    if not (HR == H or 4 <= HR < H and HR % 4 == 0):
        raise ValueError(f"hr: expected H = {H} or a multiple of 4 from 4 to H - 1, got {hr}")
    AHEAD = ahead  # noqa: N806 (a constant of the kernels)
    k = K_.kernels(np.dtype(dtype).type)
    fwd_elem, bwd_elem, load_gates = k.fwd_elem, k.bwd_elem, k.load_gates
    dt = np.dtype(dtype).type
    if SIM:
        at = np.dtype(dtype)
    else:
        from numba import from_dtype

        at = from_dtype(np.dtype(dtype))
    zero = dt(0)
    CELL = K_.CELL_ID[cell]
    lstm, cudnn = CELL == LSTM, CELL == GRU_CUDNN
    GH = G * H
    PW, NT = layout(G, H)
    HS = H - HR  # the words of a thread's row (column slice) of W_h in shared memory
    HR4, HS4 = HR - HR % 4, HS - HS % 4
    DYN = SIM or HS > 0  # the shared arrays are cut out of dynamic shared memory (see above register_kernels)
    HP = H + PAD  # the stride of the backward's gate blocks in shared memory
    H2, GHP2 = 2 * H, 2 * G * HP  # shared-array sizes must be constants, not expressions
    WS = HS * NT
    budget = register_budget(NT)  # (below the most a thread can have only past H = 64)
    jit_options = {} if SIM or budget == THREAD_REGISTERS else {"max_registers": budget}
    UH, UG, UPW, UHP, UGHP = U(H), U(G), U(PW), U(HP), U(G * HP)

    @cuda.jit(device=True)
    def sync_warp():
        """Order the shared-memory traffic of one warp's lanes (a block barrier on the simulator)."""
        if SIM:
            cuda.syncthreads()
        else:
            cuda.syncwarp()

    @cuda.jit(device=True)
    def lane():
        """This thread's (gate block g, unit j, whether it has a unit, whether it owns it, warp base)."""
        tid = U(cuda.threadIdx.x)
        w = tid // U(LANES)
        ln = tid % U(LANES)
        g = ln // UPW
        j = w * UPW + ln % UPW
        return g, j, g < UG and j < UH, g == U0 and j < UH, w * U(LANES) + ln % UPW

    @cuda.jit(device=True)
    def dot(w, ws, tid, v, base, stride):
        """Σ_{k<H} W_k v[base + k*stride] (a constant stride), in four interleaved sums, where W_k is w[k]
        (registers) for k < HR and ws[(k - HR) * NT + tid] (shared memory) after."""
        s0 = zero
        s1 = zero
        s2 = zero
        s3 = zero
        for k in range(0, HR4, 4):
            s0 += w[k] * v[base + U(k * stride)]
            s1 += w[k + 1] * v[base + U((k + 1) * stride)]
            s2 += w[k + 2] * v[base + U((k + 2) * stride)]
            s3 += w[k + 3] * v[base + U((k + 3) * stride)]
        for k in range(HR4, HR):
            s0 += w[k] * v[base + U(k * stride)]
        for k in range(0, HS4, 4):
            s0 += ws[U(k * NT) + tid] * v[base + U((HR + k) * stride)]
            s1 += ws[U((k + 1) * NT) + tid] * v[base + U((HR + k + 1) * stride)]
            s2 += ws[U((k + 2) * NT) + tid] * v[base + U((HR + k + 2) * stride)]
            s3 += ws[U((k + 3) * NT) + tid] * v[base + U((HR + k + 3) * stride)]
        for k in range(HS4, HS):
            s0 += ws[U(k * NT) + tid] * v[base + U((HR + k) * stride)]
        return (s0 + s1) + (s2 + s3)

    @cuda.jit(device=True)
    def parts(p, base):
        """p[base] + p[base + PW] + … over the G gate lanes of a unit, in order."""
        v = p[base]
        for g in range(1, G):
            v += p[base + U(g * PW)]
        return v

    @cuda.jit(device=True)
    def fwd_values(gates, t, b, j):
        """What step t of the forward reads from global memory: the input projections of unit j."""
        return load_gates(gates, t, b, j, UH, G)

    @cuda.jit(device=True)
    def bwd_values(dh, gates, h, c, hn, h0, c0, t, b, j):
        """What step t of the backward reads from global memory for unit j: dh_t, the gates, h_{t-1}, c_t,
        c_{t-1} and hn_t (zero where the cell has none)."""
        g0, g1, g2, g3 = load_gates(gates, t, b, j, UH, G)
        hp = h0[b, j] if t == U0 else h[t - U1, b, j]
        ct = zero
        cp = zero
        hnv = zero
        if lstm:
            ct = c[t, b, j]
            cp = c0[b, j] if t == U0 else c[t - U1, b, j]
        if cudnn:
            hnv = hn[t, b, j]
        return dh[t, b, j], g0, g1, g2, g3, hp, ct, cp, hnv

    @cuda.jit(**jit_options)
    def fwd_register(W, bhn, h0, c0, h, c, gates, hn):
        """Forward over all T steps of sequence blockIdx.x (see the module docstring)."""
        T = gates.shape[0]
        b = U(cuda.blockIdx.x)
        tid = U(cuda.threadIdx.x)
        g, j, active, unit, base = lane()
        w = cuda.local.array(HR, at)
        if DYN:
            sm = cuda.shared.array(0, at)
            hs = sm[:H2]
            zs = sm[H2:H2 + NT]
            ws = sm[H2 + NT:H2 + NT + WS]
        else:
            hs = cuda.shared.array(H2, at)
            zs = cuda.shared.array(NT, at)
            ws = zs  # (no words of W_h in shared memory)
        gl = cuda.local.array(4, at)
        cl = cuda.local.array(1, at)
        hnl = cuda.local.array(1, at)
        if active:
            row = g * UH + j
            for kk in range(HR):
                w[kk] = W[row, U(kk)]
            for kk in range(HS):
                ws[U(kk * NT) + tid] = W[row, U(HR + kk)]
        x = (zero, zero, zero, zero)  # the input projections of step t
        y = x  # and of step t + 1 (AHEAD = 2)
        cst = zero
        bj = zero
        if unit:
            hs[j] = h0[b, j]
            if lstm:
                cst = c0[b, j]
            if cudnn:
                bj = bhn[j]
            x = fwd_values(gates, U0, b, j)
            if AHEAD == 2 and T > 1:
                y = fwd_values(gates, U1, b, j)
        cuda.syncthreads()
        for t in range(T):
            ut = U(t)
            cur = (ut & U1) * UH
            if active:
                zs[tid] = dot(w, ws, tid, hs, cur, 1)
            sync_warp()
            if unit:
                gl[0], gl[1], gl[2], gl[3] = x
                z1 = zs[base + UPW] if G > 1 else zero
                z2 = zs[base + U(2 * PW)] if G > 2 else zero
                z3 = zs[base + U(3 * PW)] if G > 3 else zero
                v = fwd_elem(CELL, 1, 0, gl, zs[base], z1, z2, z3, hs[cur + j], cst, bj, cl, hnl)
                hs[UH - cur + j] = v
                h[ut, b, j] = v
                if lstm:
                    cst = cl[0]
                    c[ut, b, j] = cst
                if cudnn:
                    hn[ut, b, j] = hnl[0]
                for gg in range(G):
                    gates[ut, b, U(gg * H) + j] = gl[gg]
                # the loads of a later step, issued while this one finishes
                if AHEAD == 2:
                    x = y
                    if t + 2 < T:
                        y = fwd_values(gates, ut + U2, b, j)
                elif t + 1 < T:
                    x = fwd_values(gates, ut + U1, b, j)
            cuda.syncthreads()

    @cuda.jit(**jit_options)
    def bwd_register(W, dh, gates, h, c, hn, h0, c0, bound, do_clip, DA, DArec, sq_h, sq_c, dcflow, dh0):
        """The backward sweep t = T-1 … 0 of sequence blockIdx.x, and ∂L/∂h_0 (see the module docstring).

        ``sq_h`` (``sq_c``) receive the squared total ∂L/∂h_t (∂L/∂c_t) of every
        unit; ``dcflow`` holds ∂L/∂c_T on entry and ∂L/∂c_0 on exit.
        """
        T = gates.shape[0]
        b = U(cuda.blockIdx.x)
        tid = U(cuda.threadIdx.x)
        g, j, active, unit, base = lane()
        w = cuda.local.array(HR, at)
        if DYN:
            sm = cuda.shared.array(0, at)
            ds = sm[:GHP2]
            ps = sm[GHP2:GHP2 + NT]
            ws = sm[GHP2 + NT:GHP2 + NT + WS]
        else:
            ds = cuda.shared.array(GHP2, at)
            ps = cuda.shared.array(NT, at)
            ws = ps  # (no words of W_h in shared memory)
        gl = cuda.local.array(4, at)
        dal = cuda.local.array(4, at)
        darl = cuda.local.array(4, at)
        if active:
            for kk in range(HR):
                w[kk] = W[g * UH + U(kk), j]
            for kk in range(HS):
                ws[U(kk * NT) + tid] = W[g * UH + U(HR + kk), j]
        x = (zero, zero, zero, zero, zero, zero, zero, zero, zero)  # the loads of step t (bwd_values)
        y = x  # and of step t - 1 (AHEAD = 2)
        direct = zero
        dcf = zero
        if unit:
            x = bwd_values(dh, gates, h, c, hn, h0, c0, U(T - 1), b, j)
            if AHEAD == 2 and T > 1:
                y = bwd_values(dh, gates, h, c, hn, h0, c0, U(T - 2), b, j)
            if lstm:
                dcf = dcflow[b, j]
        for t in range(T - 1, -1, -1):
            ut = U(t)
            cur = (ut & U1) * UGHP
            if active and t < T - 1:
                ps[tid] = dot(w, ws, tid, ds, UGHP - cur + g * UHP, 1)
            sync_warp()
            if unit:
                dhv, gl[0], gl[1], gl[2], gl[3], hpv, ctv, cpv, hnv = x
                tot = dhv + direct
                if t < T - 1:
                    tot += parts(ps, base)
                sq_h[ut, b, j] = tot * tot
                dc2, direct, dcp = bwd_elem(CELL, 1, 0, tot, gl, dal, darl, hpv, cpv, ctv, hnv, dcf, bound, do_clip)
                if lstm:
                    dcf = dcp
                    sq_c[ut, b, j] = dc2
                for gg in range(G):
                    ug = U(gg * H) + j
                    DA[ut, b, ug] = dal[gg]
                    if cudnn:
                        DArec[ut, b, ug] = darl[gg]
                        ds[cur + U(gg * HP) + j] = darl[gg]
                    else:
                        ds[cur + U(gg * HP) + j] = dal[gg]
                # the loads of a later step, issued while this one finishes
                if AHEAD == 2:
                    x = y
                    if t > 1:
                        y = bwd_values(dh, gates, h, c, hn, h0, c0, ut - U2, b, j)
                elif t > 0:
                    x = bwd_values(dh, gates, h, c, hn, h0, c0, ut - U1, b, j)
            cuda.syncthreads()
        # ∂L/∂h_0 = DArec_0 W_h + the direct path, and ∂L/∂c_0
        if active:
            ps[tid] = dot(w, ws, tid, ds, g * UHP, 1)
        sync_warp()
        if unit:
            dh0[b, j] = parts(ps, base) + direct
            if lstm:
                dcflow[b, j] = dcf

    size = np.dtype(dtype).itemsize
    return SimpleNamespace(fwd=fwd_register, bwd=bwd_register, threads=NT,
                           fwd_shared=shared_bytes(size, G, H, HR, False) if DYN else 0,
                           bwd_shared=shared_bytes(size, G, H, HR, True) if DYN else 0)
