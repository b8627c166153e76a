"""What one step of the persistent forward kernel costs, piece by piece (float32, LSTM, one sequence).

At (T, B, H) = (1000, 1, 32) a step of ``fwd_persistent`` runs in one block,
its gate math in one warp, so its time is the latency of a chain of
dependent work. This script times kernels that each run T steps of one piece
of that chain, in the same block shape and with the library's own device
functions, and prints microseconds per step:

* ``barriers``: the step's two ``syncthreads`` alone;
* ``product``: the split dot products h_{t-1} W_h^T from shared memory
  (``products``), the fixed-order sum of the parts (``sum_parts``), h back to
  shared memory, two barriers;
* ``gate math``: the LSTM's pointwise step (``fwd_elem``) on values in
  registers, h to shared memory, two barriers;
* ``memory``: the step's global traffic (the next step's four input
  projections loaded, the gates, c_t and h_t stored), two barriers;
* ``full step``: ``fwd_persistent`` itself;
* ``register loop, forward (backward) step, loads 1 (2) ahead``: a step of ``fwd_register``
  (``bwd_register``) of :mod:`gradlab.kernels._cuda_register`, the loop ``"auto"`` runs at this shape, for
  comparison, with its loads from global memory issued one or two steps ahead.

If the pieces add up to the full step, the chain is the whole story; what
they leave unexplained is the interaction (the memory latency the prefetch
does not hide, instruction-cache misses of the large kernel).

    PYTHONPATH=. python benchmarks/gpu_step_latency.py            # on a GPU
    PYTHONPATH=. python benchmarks/gpu_step_latency.py --tiny     # a smoke run (CI, simulator)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from numba import cuda, float32  # noqa: E402  (module level: the simulator swaps a kernel's global ``cuda``)

from gradlab.kernels import cuda as gcuda  # noqa: E402
from gradlab.kernels.cells import get_cell  # noqa: E402


def piece_kernels(k, sim):
    """The kernels of the pieces, built from the library's device functions ``k``."""
    at = np.dtype(np.float32) if sim else float32
    zero = np.float32(0)
    assignment, products, sum_parts, fwd_elem = k.assignment, k.products, k.sum_parts, k.fwd_elem

    @cuda.jit
    def barriers(T, out):
        for _ in range(T):
            cuda.syncthreads()
            cuda.syncthreads()
        if cuda.threadIdx.x == 0:
            out[0] = 1

    @cuda.jit
    def product(T, W, WT, H, S, out):
        """Steps of: split dot products of h with W_h^T (shared), parts summed, h_t = z_i * 1e-3 back."""
        GH = W.shape[0]
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        sm = cuda.shared.array(0, at)
        for e in range(tid, GH * H, nt):
            sm[(e % H) * GH + e // H] = W[e // H, e % H]
        hb = H * GH
        zb = hb + H
        npr = GH * S
        first = assignment(tid, GH, S, H)
        if tid < H:
            sm[hb + tid] = zero
        cuda.syncthreads()
        for _ in range(T):
            products(sm, zb, npr, first, GH, S, H, hb, H, True, 0, GH, WT, 0, 0)
            cuda.syncthreads()
            if tid < H:
                sm[hb + tid] = sum_parts(sm, np.uint64(zb + tid), np.uint64(S), np.uint64(GH)) * np.float32(1e-3)
            cuda.syncthreads()
        if tid < H:
            out[tid] = sm[hb + tid]

    @cuda.jit
    def gate_math(T, cell, x, out):
        """Steps of the LSTM pointwise step on register values; h_t through shared memory."""
        H = out.shape[0]
        tid = cuda.threadIdx.x
        sm = cuda.shared.array(0, at)
        gl = cuda.local.array(4, at)
        cl = cuda.local.array(1, at)
        hnl = cuda.local.array(1, at)
        c = zero
        if tid < H:
            sm[tid] = zero
        cuda.syncthreads()
        for _ in range(T):
            cuda.syncthreads()
            if tid < H:
                hp = sm[tid]
                for g in range(4):
                    gl[g] = x[g] + hp
                v = fwd_elem(cell, 1, 0, gl, zero, zero, zero, zero, hp, c, zero, cl, hnl)
                c = cl[0]
                sm[tid] = v
            cuda.syncthreads()
        if tid < H:
            out[tid] = sm[tid] + c

    @cuda.jit
    def memory(T, gates, h, c):
        """Steps of the global traffic of one unit: next step's 4 loads issued, 6 stores, two barriers."""
        H = h.shape[2]
        tid = cuda.threadIdx.x
        x0 = zero
        x1 = zero
        x2 = zero
        x3 = zero
        if tid < H:
            x0 = gates[0, 0, tid]
            x1 = gates[0, 0, H + tid]
            x2 = gates[0, 0, 2 * H + tid]
            x3 = gates[0, 0, 3 * H + tid]
        for t in range(T):
            cuda.syncthreads()
            if tid < H:
                s = x0 + x1 + x2 + x3
                gates[t, 0, tid] = s
                gates[t, 0, H + tid] = s
                gates[t, 0, 2 * H + tid] = s
                gates[t, 0, 3 * H + tid] = s
                c[t, 0, tid] = s
                h[t, 0, tid] = s
                if t + 1 < T:
                    x0 = gates[t + 1, 0, tid]
                    x1 = gates[t + 1, 0, H + tid]
                    x2 = gates[t + 1, 0, 2 * H + tid]
                    x3 = gates[t + 1, 0, 3 * H + tid]
            cuda.syncthreads()

    return barriers, product, gate_math, memory


def per_step_us(fn, T, repeats):
    """Median microseconds per step of ``fn`` (one launch running T steps), after a warm-up launch."""
    fn()
    gcuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        gcuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / T * 1e6


def measure(T, H, repeats):
    """{piece: µs per step} for the LSTM at (T, 1, H), float32."""
    cuda = gcuda.cuda_module()
    K_, k = gcuda._ker(np.float32)
    spec = get_cell("lstm")
    strategy, gcuda.STRATEGY = gcuda.STRATEGY, "persistent"
    try:
        plan = gcuda._plan(K_, spec, 1, H, 4, backward=False)
    finally:
        gcuda.STRATEGY = strategy
    if plan[0] != "persistent" or not plan[4]:
        raise SystemExit(f"H = {H}: the forward does not run persistent with W_h in shared memory ({plan})")
    _, blocks, nt, BM, wshared, nbytes, S, S2 = plan
    GH = 4 * H
    rng = np.random.default_rng(0)
    W = cuda.to_device((rng.standard_normal((GH, H)) * 0.1).astype(np.float32))
    gates = cuda.to_device(rng.standard_normal((T, 1, GH)).astype(np.float32))
    h, c, hn = (cuda.device_array((T, 1, H), np.float32) for _ in range(3))
    h0 = cuda.to_device(np.zeros((1, H), np.float32))
    b_hn = cuda.to_device(np.zeros(H, np.float32))
    out = cuda.device_array(max(H, 1), np.float32)
    x = cuda.to_device(rng.standard_normal(4).astype(np.float32))
    cell = K_.CELL_ID["lstm"]
    barriers, product, gate_math, memory = piece_kernels(k, K_.SIM)
    word = 4
    pieces = {
        "barriers": lambda: barriers[1, nt](T, out),
        "product": lambda: product[1, nt, 0, (GH * H + H + GH * S) * word](T, W, W, H, S, out),
        "gate math": lambda: gate_math[1, nt, 0, H * word](T, cell, x, out),
        "memory": lambda: memory[1, nt](T, gates, h, c),
        "full step": lambda: k.fwd_persistent[blocks, nt, 0, nbytes](cell, W, W, wshared, b_hn, h0, h0, h, c, gates,
                                                                      hn, BM, S, S2),
    }
    from gradlab.kernels._cuda_register import register_kernels

    DA, sq = cuda.device_array((T, 1, GH), np.float32), cuda.device_array((T, 1, H), np.float32)
    dcf, g_h0 = cuda.to_device(np.zeros((1, H), np.float32)), cuda.device_array((1, H), np.float32)
    for ahead in (1, 2):
        rk = register_kernels(np.float32, "lstm", H, 4, ahead)
        fwd, bwd = rk.fwd[1, rk.threads, 0, rk.fwd_shared], rk.bwd[1, rk.threads, 0, rk.bwd_shared]
        pieces[f"register loop, forward step, loads {ahead} ahead"] = (
            lambda fwd=fwd: fwd(W, b_hn, h0, h0, h, c, gates, hn))
        pieces[f"register loop, backward step, loads {ahead} ahead"] = (
            lambda bwd=bwd: bwd(W, h, gates, h, c, hn, h0, h0, np.float32(0), False, DA, DA, sq, sq, dcf, g_h0))
    result = {name: per_step_us(fn, T, repeats) for name, fn in pieces.items()}
    result["threads"], result["S"] = nt, S
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny shape (CI smoke run; works on the simulator)")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    gcuda.cuda_module()
    T, H, repeats = (3, 4, 1) if args.tiny else (1000, 32, args.repeats)
    r = measure(T, H, repeats)
    print(f"LSTM forward, float32, (T, B, H) = ({T}, 1, {H}); {r.pop('threads')} threads, dot products split "
          f"{r.pop('S')} ways; median µs per step")
    print("| piece | µs per step |")
    print("|---|---|")
    for name, us in r.items():
        print(f"| {name} | {us:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
