"""Where the time of gradlab ``cuda``'s forward + full BPTT goes, next to PyTorch cuDNN's total.

For each configuration (T, B, H) with D = H in float32, per cell: the whole
call (forward + backward, as in ``gpu_compare.py``), the forward and the
backward alone, the argument validation of each (shape, dtype and finiteness
checks, which run before any kernel), and the bare time-loop kernels
(``fwd_register`` / ``bwd_register`` or ``fwd_persistent`` / ``bwd_persistent``,
whichever "auto" runs, launched directly on prepared arrays). What the loop kernels do not explain is host work: allocations,
copies and the other kernel launches (input projection, weight gradients,
column sums, norms). Medians of repeated runs after a warm-up call, with
``synchronize`` inside the timed region; device-resident inputs.

A second table times the whole call under each time loop the shape allows
(``gradlab.kernels.cuda.STRATEGY``: register, persistent, stepwise, cooperative; "-"
where the shape does not suit one), for the cells of the speed targets, so
that the choice "auto" makes can be checked on the card.

Three more tables say what bounds the stepwise time loop (H > 256):

* steps: forward + backward of the stepwise loop with its per-step products
  planned under several (``STEP_TARGET_BLOCKS``, ``STEP_MIN_K_PART``) settings
  (more K parts: shorter K loops and more blocks, more parts to add), with
  the resulting tile and number of K parts of each product;

* products: the throughput of the product kernel (``_cuda_gemm``) at the
  shapes one forward + backward of the LSTM at (T, B, H) = (100, 64, 512)
  runs, whole-sequence and per step, next to ``torch.matmul`` (cuBLAS, full
  float32: TF32 off) at the same shapes;
* launches: the host cost of one kernel launch (microseconds, a one-block
  launch repeated, synchronised once at the end), for a kernel with two
  arguments and for the 11-argument forward pointwise kernel that the
  stepwise loop launches every step, through numba's dispatcher and as the
  backend launches them (``gradlab.kernels._cuda_launch.launch``); and of one
  device allocation.

And ``profile``: the host functions that take the most time in forward +
backward at the first two configurations (cProfile, per call; the profiler
slows Python down, so read the shares, not the microseconds).

    PYTHONPATH=. python benchmarks/gpu_breakdown.py           # on a GPU
    PYTHONPATH=. python benchmarks/gpu_breakdown.py --tiny    # a smoke run (CI, simulator)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import gradlab  # noqa: E402
from gpu_compare import (make_inputs, parse_configs, parse_names, rel_err, run_torch, timed,  # noqa: E402
                         torch_cuda_available)
from gradlab import validate  # noqa: E402
from gradlab.kernels import cuda as gcuda  # noqa: E402
from gradlab.kernels._cuda_launch import allow_shared, launch  # noqa: E402
from gradlab.kernels.cells import get_cell  # noqa: E402

CONFIGS = [(1000, 1, 32), (100, 8, 128), (100, 64, 512)]
TINY_CONFIGS = [(3, 2, 5)]
CELLS = ("rnn_tanh", "gru_cudnn", "lstm")
TINY_CELLS = ("rnn_tanh", "lstm")
COLUMNS = ("total", "forward", "backward", "validate_fwd", "validate_bwd", "fwd_loop", "bwd_loop", "torch_total")


def loop_kernels(cell, pd, dhd, T, B, H, dtype):
    """Callables launching the bare register or persistent forward and backward kernels (None when the plan is
    stepwise or cooperative)."""
    cuda = gcuda.cuda_module()
    K_, k = gcuda._ker(dtype)
    spec = get_cell(cell)
    size = np.dtype(dtype).itemsize
    fplan = gcuda._plan(K_, spec, B, H, size, backward=False)
    bplan = gcuda._plan(K_, spec, B, H, size, backward=True)
    if fplan[0] not in ("persistent", "register") or bplan[0] != fplan[0]:
        return None, None
    GH = spec.num_gates * H
    gates = cuda.device_array((T, B, GH), dtype)
    h, c, hn = (cuda.device_array((T, B, H), dtype) for _ in range(3))
    h0 = cuda.to_device(np.zeros((B, H), dtype))
    b_hn = cuda.to_device(np.zeros(H, dtype))
    WT = cuda.to_device(np.ascontiguousarray(pd.W_h.copy_to_host().T))
    DA = cuda.device_array((T, B, GH), dtype)
    sq_h, sq_c = (cuda.device_array((T, B, H), dtype) for _ in range(2))
    dcflow = cuda.to_device(np.zeros((B, H), dtype))
    g_h0 = cuda.device_array((B, H), dtype)
    bound0 = np.dtype(dtype).type(0)  # clip_step's bound, as the backend passes it
    if fplan[0] == "register":
        rk = gcuda._register_kernels(dtype, spec, H, fplan[3])
        fwd, bwd = rk.fwd[fplan[1], fplan[2], 0, rk.fwd_shared], rk.bwd[bplan[1], bplan[2], 0, rk.bwd_shared]
        fargs = (pd.W_h, b_hn, h0, h0, h, c, gates, hn)
        bargs = (pd.W_h, dhd, gates, h, c, hn, h0, h0, bound0, False, DA, DA, sq_h, sq_c, dcflow, g_h0)
        allow_shared(rk.fwd, fargs, rk.fwd_shared, K_.SIM)  # (past 48 KB: W_h partly in shared memory)
        allow_shared(rk.bwd, bargs, rk.bwd_shared, K_.SIM)
        return lambda: fwd(*fargs), lambda: bwd(*bargs)
    cid = K_.CELL_ID[cell]
    _, blocks, nt, BM, wshared, nbytes, S, S2 = fplan
    fwd = k.fwd_persistent[blocks, nt, 0, nbytes]
    _, bblocks, bnt, bBM, bwshared, bnbytes, bS, bS2 = bplan
    bwd = k.bwd_persistent[bblocks, bnt, 0, bnbytes]

    def run_fwd():
        fwd(cid, pd.W_h, WT, wshared, b_hn, h0, h0, h, c, gates, hn, BM, S, S2)

    def run_bwd():
        bwd(cid, pd.W_h, bwshared, dhd, gates, h, c, hn, h0, h0, bound0, False, DA, DA, sq_h, sq_c, dcflow, g_h0,
            bBM, bS, bS2)

    return run_fwd, run_bwd


def breakdown(cell, T, B, H, repeats):
    """Median milliseconds of each column for one cell and shape (float32)."""
    cuda = gcuda.cuda_module()
    dtype = np.float32
    p, x, dh = make_inputs(cell, T, B, H, np.dtype(dtype))
    pd = gradlab.Params(**{k: cuda.to_device(v) for k, v in p.arrays().items()})
    xd, dhd = cuda.to_device(x), cuda.to_device(dh)
    trace = gradlab.forward(cell, pd, xd, backend="cuda")

    def ms(fn, sync=gcuda.synchronize):
        return timed(fn, sync, repeats, 3.0)[2]

    out = dict(
        total=ms(lambda: gradlab.backward(cell, pd, gradlab.forward(cell, pd, xd, backend="cuda"), dhd, backend="cuda")),
        forward=ms(lambda: gradlab.forward(cell, pd, xd, backend="cuda")),
        backward=ms(lambda: gradlab.backward(cell, pd, trace, dhd, backend="cuda")),
        validate_fwd=ms(lambda: validate.check_forward(cell, pd, xd, None, None)),
        validate_bwd=ms(lambda: validate.check_backward(cell, pd, trace, dhd, None, None)),
    )
    run_fwd, run_bwd = loop_kernels(cell, pd, dhd, T, B, H, dtype)
    out["fwd_loop"] = ms(run_fwd) if run_fwd else float("nan")
    out["bwd_loop"] = ms(run_bwd) if run_bwd else float("nan")
    out["torch_total"] = float("nan")
    if torch_cuda_available() is None:
        fn, sync, _ = run_torch(cell, p, x, dh)
        out["torch_total"] = ms(fn, sync)
    return out


LOOPS = ("register", "persistent", "stepwise", "cooperative")
LOOP_CELLS = ("rnn_tanh", "gru", "gru_cudnn", "lstm")
#: the comparison's shapes up to H = 512 (the range where the choice between loops is open)
LOOP_CONFIGS = [(1000, 1, 32), (100, 8, 128), (100, 64, 128), (200, 32, 256), (100, 64, 512)]


def loops(cell, T, B, H, repeats):
    """Median milliseconds of forward + backward under each time loop (nan where the shape does not allow it),
    and ``dx_diff``: the largest relative difference of ∂L/∂x between the loops that ran."""
    cuda = gcuda.cuda_module()
    p, x, dh = make_inputs(cell, T, B, H, np.dtype(np.float32))
    pd = gradlab.Params(**{k: cuda.to_device(v) for k, v in p.arrays().items()})
    xd, dhd = cuda.to_device(x), cuda.to_device(dh)
    out, dx = {}, []
    for loop in LOOPS:
        gcuda.STRATEGY = loop
        try:
            # (asked for where it cannot link, the cooperative loop raises: test that first)
            missing = loop == "cooperative" and gcuda._cooperative_missing(gcuda._ker(np.float32)[0])
            if missing or gcuda.time_loop(cell, B, H) != loop:
                out[loop] = float("nan")
                continue
            fn = lambda: gradlab.backward(cell, pd, gradlab.forward(cell, pd, xd, backend="cuda"), dhd,  # noqa: E731
                                          backend="cuda")
            g, _, out[loop], _, _ = timed(fn, gcuda.synchronize, repeats, 3.0)
            dx.append(g.x.copy_to_host())
        finally:
            gcuda.STRATEGY = "auto"
    out["auto"] = gcuda.time_loop(cell, B, H)
    out["dx_diff"] = max((rel_err(d, dx[0]) for d in dx[1:]), default=float("nan"))
    return out


#: (STEP_TARGET_BLOCKS, STEP_MIN_K_PART) settings timed by the "steps" table: the first and the last plan
#: both products as the default does (a check of the spread), the others cut K into more or fewer parts
STEP_SETTINGS = [(132, 128), (264, 64), (528, 32), (1056, 16), (66, 256), (264, 128)]
STEP_CONFIGS = [(100, 64, 512), (100, 256, 1024)]
STEP_CELLS = ("gru_cudnn", "lstm")


def step_plans(T, B, H, repeats, settings, cells):
    """Rows (cell, setting, forward plan, backward plan, ms, dx rel diff against the first setting): forward +
    backward of the stepwise loop with its per-step products planned by each (target blocks, min K part)."""
    cuda = gcuda.cuda_module()
    K_, k = gcuda._ker(np.float32)
    default = (K_.STEP_TARGET_BLOCKS, K_.STEP_MIN_K_PART)
    rows = []
    for cell in cells:
        G = get_cell(cell).num_gates
        nc1 = 2 * H if cell == "gru" else G * H
        p, x, dh = make_inputs(cell, T, B, H, np.dtype(np.float32))
        pd = gradlab.Params(**{n: cuda.to_device(v) for n, v in p.arrays().items()})
        xd, dhd = cuda.to_device(x), cuda.to_device(dh)
        fn = lambda: gradlab.backward(cell, pd, gradlab.forward(cell, pd, xd, backend="cuda"), dhd,  # noqa: E731
                                      backend="cuda")
        ref = None
        gcuda.STRATEGY = "stepwise"
        try:
            for setting in settings:
                K_.STEP_TARGET_BLOCKS, K_.STEP_MIN_K_PART = setting
                plans = [gcuda._gemm_plan(K_, k, B, n, kd, step=True) for n, kd in ((nc1, H), (H, nc1))]
                g, _, t, _, _ = timed(fn, gcuda.synchronize, repeats, 3.0)
                dx = g.x.copy_to_host()
                ref = dx if ref is None else ref
                rows.append((cell, setting, *(f"{pl[0].tile.BM}x{pl[0].tile.BN}/{pl[1]}" for pl in plans), t,
                             rel_err(dx, ref)))
        finally:
            gcuda.STRATEGY = "auto"
            K_.STEP_TARGET_BLOCKS, K_.STEP_MIN_K_PART = default
    return rows


def product_shapes(T, B, H, G=4):
    """(name, M, N, K, ta, tb) of the products of one LSTM forward + backward with D = H."""
    TB, GH = T * B, G * H
    return [("input projection", TB, GH, H, False, True), ("dW_x", GH, H, TB, True, False),
            ("dx", TB, H, GH, False, False), ("step, forward", B, GH, H, False, True),
            ("step, backward", B, H, GH, False, False)]


def products(T, B, H, repeats):
    """Rows (name, M, N, K, K parts, gradlab ms, gradlab TFLOP/s, torch TFLOP/s) for :func:`product_shapes`."""
    cuda = gcuda.cuda_module()
    K_, k = gcuda._ker(np.float32)
    rng = np.random.default_rng(0)
    rows = []
    for name, M, N, Kdim, ta, tb in product_shapes(T, B, H):
        A = rng.standard_normal((Kdim, M) if ta else (M, Kdim)).astype(np.float32)
        Bm = rng.standard_normal((N, Kdim) if tb else (Kdim, N)).astype(np.float32)
        dA, dB, dC = cuda.to_device(A), cuda.to_device(Bm), cuda.device_array((M, N), np.float32)
        step = name.startswith("step")
        if step:  # as the time loop runs it: the K parts, added by the pointwise kernel
            prod = gcuda._Product(cuda, K_, k, M, N, Kdim, np.float32)
            fn = lambda: prod(dA, dB, ta, tb)  # noqa: E731
            parts = prod.parts.shape[0]
        else:
            fn = lambda: gcuda._gemm(cuda, K_, k, dA, dB, dC, ta=ta, tb=tb)  # noqa: E731
            parts = gcuda._gemm_plan(K_, k, M, N, Kdim)[1]
        t = timed(fn, gcuda.synchronize, repeats, 3.0)[2]
        flop = 2.0 * M * N * Kdim
        torch_tf = float("nan")
        if torch_cuda_available() is None:
            import torch

            torch.backends.cuda.matmul.allow_tf32 = False
            tA = torch.from_numpy(A).cuda()
            tB = torch.from_numpy(Bm).cuda()
            tfn = lambda: (tA.T if ta else tA) @ (tB.T if tb else tB)  # noqa: E731
            torch_tf = flop / (timed(tfn, torch.cuda.synchronize, repeats, 3.0)[2] * 1e-3) / 1e12
        rows.append((name, M, N, Kdim, parts, t, flop / (t * 1e-3) / 1e12, torch_tf))
    return rows


def launch_cost(n):
    """Microseconds of host time per launch (a 2-argument kernel, the forward pointwise kernel; each through
    numba's dispatcher, then as the backend launches them, through :func:`~gradlab.kernels._cuda_launch.launch`:
    the argument signature looked up, the direct path from the third launch) and per allocation of a
    (100, 8, 512) float32 device array, with its deferred free."""
    cuda = gcuda.cuda_module()
    K_, k = gcuda._ker(np.float32)
    B, H, T = 2, 4, 2
    a = cuda.device_array(K_.THREADS_1D, np.float32)
    P, gates = cuda.device_array((1, B, 4 * H), np.float32), cuda.device_array((T, B, 4 * H), np.float32)
    h0, h, c = cuda.device_array((B, H), np.float32), *(cuda.device_array((T, B, H), np.float32) for _ in range(2))
    bhn, S = cuda.device_array(H, np.float32), cuda.device_array((B, H), np.float32)
    fill = k.fill[1, K_.THREADS_1D]
    point = k.fwd_point[1, K_.THREADS_1D]
    cell = K_.CELL_ID["lstm"]
    config = (1, K_.THREADS_1D)
    out = []
    for fn in (lambda: fill(a, 0), lambda: point(cell, 1, P, bhn, h0, h0, h, c, gates, c, S),
               lambda: launch(k.fill, config, (a, 0), K_.SIM),
               lambda: launch(k.fwd_point, config, (cell, 1, P, bhn, h0, h0, h, c, gates, c, S), K_.SIM)):
        fn()
        gcuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        gcuda.synchronize()
        out.append((time.perf_counter() - t0) / n * 1e6)
    t0 = time.perf_counter()
    for _ in range(n):
        a = cuda.device_array((100, 8, 512), np.float32)
    del a
    gcuda.synchronize()
    out.append((time.perf_counter() - t0) / n * 1e6)
    return out


def host_profile(cell, T, B, H, calls, top):
    """The host functions that take the most time over ``calls`` forward + backward calls (cProfile), as rows
    (function, calls per call, own µs per call, cumulative µs per call), and the median ms of one call."""
    import cProfile
    import pstats

    cuda = gcuda.cuda_module()
    p, x, dh = make_inputs(cell, T, B, H, np.dtype(np.float32))
    pd = gradlab.Params(**{k: cuda.to_device(v) for k, v in p.arrays().items()})
    xd, dhd = cuda.to_device(x), cuda.to_device(dh)

    def call():
        return gradlab.backward(cell, pd, gradlab.forward(cell, pd, xd, backend="cuda"), dhd, backend="cuda")

    median = timed(call, gcuda.synchronize, calls, 3.0)[2]
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        call()
    gcuda.synchronize()
    prof.disable()
    stats = pstats.Stats(prof).stats
    rows = []
    for (path, line, name), (_, ncalls, own, cum, _) in stats.items():
        where = f"{Path(path).name}:{line}({name})" if line else name
        rows.append((where, ncalls / calls, own / calls * 1e6, cum / calls * 1e6))
    rows.sort(key=lambda r: -r[2])
    return rows[:top], median


SECTIONS = ("time", "loops", "steps", "products", "launches", "profile")


def header(columns):
    """Print the head of a Markdown table whose rows start with cell, T, B, H."""
    print("| cell | T | B | H | " + " | ".join(columns) + " |")
    print("|---|---|---|---|" + "---|" * len(columns))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="one tiny configuration (CI smoke run; works on the simulator)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"which tables, comma-separated, in this order: {', '.join(SECTIONS)} (default: all)")
    ap.add_argument("--configs", type=parse_configs, default=None,
                    help="comma-separated TxBxH for every table, e.g. 1000x1x32,100x8x128 (default: each table's own)")
    ap.add_argument("--cells", default=None, help="comma-separated cells for every table (default: each table's own)")
    args = ap.parse_args(argv)
    only_cells = parse_names(ap, "--cells", args.cells, LOOP_CELLS)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        ap.error(f"--sections: expected names from {', '.join(SECTIONS)}, got {args.sections!r}")
    gcuda.cuda_module()
    repeats = 1 if args.tiny else args.repeats
    tables = dict(time=section_time, loops=section_loops, steps=section_steps, products=section_products,
                  launches=section_launches, profile=section_profile)
    for section in sections:
        tables[section](Choice(args.tiny, args.configs, only_cells), repeats)
    return 0


class Choice:
    """The configurations and cells a table runs: the tiny ones, those asked for, or the table's own."""

    def __init__(self, tiny: bool, configs, cells):
        self.tiny, self._configs, self._cells = tiny, configs, cells

    def configs(self, default):
        return TINY_CONFIGS if self.tiny else (self._configs or default)

    def cells(self, default, tiny=("lstm",)):
        return tiny if self.tiny else (self._cells or default)


def section_time(choice, repeats):
    print("median ms, float32; loops: the bare time-loop kernels (register or persistent); "
          "host work = forward + backward - validation - loops")
    header(COLUMNS + ("host work",))
    for (T, B, H) in choice.configs(CONFIGS):
        for cell in choice.cells(CELLS, TINY_CELLS):
            r = breakdown(cell, T, B, H, repeats)
            host = r["forward"] + r["backward"] - r["validate_fwd"] - r["validate_bwd"] - r["fwd_loop"] - r["bwd_loop"]
            cols = " | ".join(f"{r[c]:.3f}" for c in COLUMNS)
            print(f"| {cell} | {T} | {B} | {H} | {cols} | {host:.3f} |", flush=True)


def section_loops(choice, repeats):
    print("\nforward + backward under each time loop, median ms, float32 ('-': the shape does not allow it)")
    missing = gcuda._cooperative_missing(gcuda._ker(np.float32)[0])
    if missing:
        print(f"(the cooperative loop cannot run here: {missing})")
    header(LOOPS + ("auto picks", "dx rel diff"))
    for (T, B, H) in choice.configs(LOOP_CONFIGS):
        for cell in choice.cells(LOOP_CELLS):
            r = loops(cell, T, B, H, repeats)
            cols = " | ".join("-" if r[c] != r[c] else f"{r[c]:.3f}" for c in LOOPS)
            print(f"| {cell} | {T} | {B} | {H} | {cols} | {r['auto']} | {r['dx_diff']:.1e} |", flush=True)


def section_steps(choice, repeats):
    print("\nthe stepwise loop under each plan of its per-step products, float32 (plan: tile/K parts)")
    print("| cell | T | B | H | target blocks, min K part | forward product | backward product | ms | dx rel diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    settings = [(2, 4), (4, 2)] if choice.tiny else STEP_SETTINGS
    for (T, B, H) in choice.configs(STEP_CONFIGS):
        for cell, setting, fplan, bplan, t, diff in step_plans(T, B, H, repeats, settings,
                                                             choice.cells(STEP_CELLS)):
            print(f"| {cell} | {T} | {B} | {H} | {setting[0]}, {setting[1]} | {fplan} | {bplan} | {t:.3f} | "
                  f"{diff:.1e} |", flush=True)


def section_products(choice, repeats):
    T, B, H = choice.configs([(100, 64, 512)])[0]
    print(f"\nproducts of the LSTM at (T, B, H) = ({T}, {B}, {H}), float32 (torch: cuBLAS, TF32 off)")
    print("| product | M | N | K | K parts | gradlab ms | gradlab TFLOP/s | torch TFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, M, N, Kdim, parts, t, tf, ttf in products(T, B, H, repeats):
        print(f"| {name} | {M} | {N} | {Kdim} | {parts} | {t:.3f} | {tf:.2f} | {ttf:.2f} |", flush=True)


def section_launches(choice, repeats):
    plain, point, fast_plain, fast_point, alloc = launch_cost(2 if choice.tiny else 500)
    print(f"\nhost time per launch: {plain:.1f} us (2 arguments), {point:.1f} us (fwd_point, 11 arguments); "
          f"as gradlab launches them (_cuda_launch.launch): {fast_plain:.1f} us and {fast_point:.1f} us; "
          f"per device allocation (with its deferred free): {alloc:.1f} us")


def section_profile(choice, repeats):
    calls, top = (2, 5) if choice.tiny else (max(repeats, 50), 25)
    for (T, B, H) in choice.configs(CONFIGS[:2]):
        for cell in choice.cells(("lstm", "gru_cudnn")):
            rows, median = host_profile(cell, T, B, H, calls, top)
            print(f"\nhost profile of forward + backward, {cell} ({T}, {B}, {H}) float32, {calls} calls under "
                  f"cProfile (median call without it: {median:.3f} ms); per call, by own time:")
            print("| function | calls | own us | cumulative us |")
            print("|---|---|---|---|")
            for where, n, own, cum in rows:
                print(f"| {where} | {n:g} | {own:.1f} | {cum:.1f} |", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
