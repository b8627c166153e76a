"""Side by side on one GPU: gradlab ``cuda``, gradlab ``cpu`` and PyTorch cuDNN, forward + full BPTT.

For each configuration (T, B, H) with D = H, dtype and cell, every
implementation runs forward and backward of L = sum of all outputs (so
∂L/∂h_t = 1) on the same inputs and weights: once to warm up (the first
call, Numba compilation included, is reported separately as ``first_s``), then
``--repeats`` timed runs whose median is reported. GPU timings call
``synchronize`` inside the timed region; gradlab ``cuda`` gets device arrays
(no host copies are timed). ``dx_rel_err`` is the largest relative error of
∂L/∂x against gradlab's own ``cpu`` backend where that ran, else against torch.

Results are appended to the CSV as each row finishes and the Markdown table is
rewritten after each configuration, so an interrupted run leaves its partial
results. A time budget (``--budget`` seconds) skips whatever would start after
it; each row says so.

    PYTHONPATH=. python benchmarks/gpu_compare.py               # the full comparison (reports/performance/)
    PYTHONPATH=. python benchmarks/gpu_compare.py --tiny --out /tmp/x   # a smoke run (CI, simulator)
    PYTHONPATH=. python benchmarks/gpu_compare.py --strategy register --out /tmp/r   # another time loop
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gradlab  # noqa: E402
from gradlab.kernels import cuda as gcuda  # noqa: E402

CONFIGS = [(1000, 1, 32), (100, 8, 128), (100, 64, 128), (200, 32, 256), (100, 64, 512), (100, 256, 1024)]
TINY_CONFIGS = [(3, 2, 4)]
CELLS = ("rnn_tanh", "gru_cudnn", "lstm")  # the cells cuDNN has (gru_cudnn is torch.nn.GRU)
TINY_CELLS = ("rnn_tanh", "lstm")
#: gradlab cpu is timed only up to this H (it is slow at H = 1024 and not what this compares)
CPU_MAX_H = 256
FIELDS = ["cell", "dtype", "T", "B", "H", "impl", "path", "median_ms", "min_ms", "repeats", "first_s",
          "vs_torch", "dx_rel_err", "note"]


def log(msg: str) -> None:
    print(f"[gpu_compare {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def card_name() -> str:
    try:
        cuda = gcuda.cuda_module()
        if gcuda.simulating():
            return "CUDA simulator (no GPU)"
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        return f"{name} (compute capability {dev.compute_capability[0]}.{dev.compute_capability[1]})"
    except Exception as err:  # pragma: no cover - reported, not fatal
        return f"unknown ({err})"


def make_inputs(cell, T, B, H, dtype, seed=0):
    p = gradlab.init_params(cell, H, H, dtype=np.dtype(dtype), seed=seed)
    rng = np.random.default_rng(seed)
    p.b = rng.normal(0, 0.1, p.b.shape).astype(dtype)
    if p.b_hn is not None:
        p.b_hn = rng.normal(0, 0.1, p.b_hn.shape).astype(dtype)
    x = rng.standard_normal((T, B, H)).astype(dtype)
    return p, x, np.ones((T, B, H), dtype)


def rel_err(a, ref) -> float:
    """The largest absolute difference of a from ref, relative to the largest magnitude in ref."""
    ref = np.asarray(ref, np.float64)
    scale = max(float(np.abs(ref).max()), np.finfo(np.float64).tiny)
    return float(np.abs(np.asarray(a, np.float64) - ref).max() / scale)


def timed(fn, sync, repeats, max_seconds):
    """First-call seconds, then the median and min of up to ``repeats`` calls (fewer past ``max_seconds``)."""
    t0 = time.perf_counter()
    out = fn()
    sync()
    first = time.perf_counter() - t0
    times = []
    start = time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < max_seconds):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return out, first, float(np.median(times)) * 1e3, float(np.min(times)) * 1e3, len(times)


def run_gradlab_cuda(cell, p, x, dh):
    cuda = gcuda.cuda_module()
    pd = gradlab.Params(**{k: cuda.to_device(v) for k, v in p.arrays().items()})
    xd, dhd = cuda.to_device(x), cuda.to_device(dh)

    def fn():
        tr = gradlab.forward(cell, pd, xd, backend="cuda")
        return gradlab.backward(cell, pd, tr, dhd, backend="cuda")

    return fn, gcuda.synchronize, lambda g: g.x.copy_to_host()


def run_gradlab_cpu(cell, p, x, dh):
    def fn():
        tr = gradlab.forward(cell, p, x, backend="cpu")
        return gradlab.backward(cell, p, tr, dh, backend="cpu")

    return fn, lambda: None, lambda g: g.x


def run_torch(cell, p, x, dh):
    import torch

    from gradlab.interop import params_to_torch

    dtype = torch.float32 if x.dtype == np.float32 else torch.float64
    T, B, D = x.shape
    H = p.hidden_size
    cls = {"rnn_tanh": torch.nn.RNN, "gru_cudnn": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    mod = cls(D, H).to(device="cuda", dtype=dtype)
    mod.load_state_dict({k: v.to(device="cuda", dtype=dtype) for k, v in params_to_torch(p, cell).items()})
    xt = torch.tensor(x, device="cuda", requires_grad=True)

    def fn():
        xt.grad = None
        mod.zero_grad(set_to_none=True)
        out, _ = mod(xt)
        out.sum().backward()
        return xt.grad

    return fn, torch.cuda.synchronize, lambda g: g.detach().cpu().numpy()


def torch_cuda_available() -> str | None:
    """None when torch with a CUDA device is importable, else why not."""
    try:
        import torch
    except Exception as err:
        return f"torch not importable ({type(err).__name__})"
    if not torch.cuda.is_available():
        return "torch has no CUDA device"
    return None


def write_markdown(rows, path: Path, meta: dict, complete: bool) -> None:
    lines = [
        "# gradlab `cuda` against PyTorch cuDNN on one GPU",
        "",
        f"Card: **{meta['card']}**. Measured {meta['date']} with `benchmarks/gpu_compare.py` "
        f"(run by `scripts/gpu_check.sh`); numba {meta['numba']}, numba-cuda {meta['numba_cuda']}, "
        f"torch {meta['torch']}, numpy {np.__version__}, Python {platform.python_version()}.",
        "",
        "Forward + full BPTT of L = sum of all outputs, D = H; median of repeated runs after a warm-up call "
        "(`first_s`: the first call, Numba compilation included), `synchronize` inside the timed region, "
        "device-resident inputs for gradlab `cuda`. `vs_torch` = torch time / this time (> 1: faster than "
        "cuDNN). `path`: the time loop gradlab `cuda` chose (register or persistent: one kernel for the whole "
        f"sequence; stepwise: launches per step; asked for: `{meta.get('strategy', 'auto')}`, `--strategy`). "
        "`dx_rel_err`: max relative error of ∂L/∂x against gradlab `cpu` (else torch). TF32 in cuDNN's "
        f"float32 products: {meta.get('tf32', '-')} (`--cudnn-tf32`; gradlab computes in full float32).",
        "",
    ]
    if not complete:
        lines += ["**Partial results**: the run stopped or is still running.", ""]
    lines += ["| cell | dtype | T | B | H | impl | path | median ms | vs torch | first s | dx rel err | note |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda v, f: "" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, f)  # noqa: E731
        lines.append(f"| {r['cell']} | {r['dtype']} | {r['T']} | {r['B']} | {r['H']} | {r['impl']} | {r['path']} | "
                     f"{fmt(r['median_ms'], '.3f')} | {fmt(r['vs_torch'], '.2f')} | {fmt(r['first_s'], '.2f')} | "
                     f"{fmt(r['dx_rel_err'], '.1e')} | {r['note']} |")
    lines += ["", "Targets (issue 7): (T=1000, B=1, H=32) and (T=100, B=8, H=128) faster than cuDNN for LSTM "
              "and GRU float32; (T=100, B=64, H=512) at least half of cuDNN's speed for LSTM float32.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def parse_configs(text: str) -> list[tuple[int, int, int]]:
    """'1000x1x32,100x8x128' -> [(1000, 1, 32), (100, 8, 128)] (argparse type: a clear error otherwise)."""
    try:
        configs = [tuple(int(n) for n in item.lower().split("x")) for item in text.split(",") if item.strip()]
    except ValueError:
        configs = []
    if not configs or any(len(c) != 3 or min(c) < 1 for c in configs):
        raise argparse.ArgumentTypeError(f"expected comma-separated TxBxH with positive sizes, got {text!r}")
    return configs


def parse_names(ap, option: str, text: str | None, allowed) -> list[str] | None:
    """A comma-separated list of names from ``allowed`` (None: no choice made); an argparse error otherwise."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        ap.error(f"{option}: expected names from {', '.join(allowed)}, got {text!r}")
    return names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="one tiny configuration (CI smoke run; works on the simulator)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "performance"), help="folder for gpu.md and gpu.csv")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=330.0, help="seconds after which no new measurement starts")
    ap.add_argument("--configs", type=parse_configs, default=None,
                    help="comma-separated TxBxH, e.g. 1000x1x32,100x8x128 (default: all of the comparison's)")
    ap.add_argument("--cells", default=None, help=f"comma-separated, from {', '.join(CELLS)} (default: all)")
    ap.add_argument("--dtypes", default="float32,float64", help="comma-separated, from float32, float64")
    ap.add_argument("--cudnn-tf32", choices=("default", "off"), default="default",
                    help="TF32 tensor cores in cuDNN's float32 RNNs: PyTorch's default (torch.backends.cudnn."
                         "allow_tf32, True: inputs rounded to 10-bit mantissas inside its products) or off, "
                         "for full float32 like gradlab's (default: %(default)s)")
    ap.add_argument("--strategy", choices=gcuda.STRATEGIES, default="auto",
                    help="the time loop gradlab cuda is asked for (gradlab.kernels.cuda.STRATEGY; where the shape "
                         "does not suit it, the backend's fallback runs: the path column says which; default: "
                         "%(default)s)")
    args = ap.parse_args(argv)
    cells_arg = parse_names(ap, "--cells", args.cells, CELLS)
    dtypes = parse_names(ap, "--dtypes", args.dtypes, ("float32", "float64"))
    deadline = time.monotonic() + args.budget
    out_dirs = [Path(args.out)]
    if os.environ.get("OUT") and not args.tiny:
        out_dirs.append(Path(os.environ["OUT"]))
    for d in out_dirs:
        d.mkdir(parents=True, exist_ok=True)

    gcuda.cuda_module()  # fail early and clearly without a GPU / simulator
    gcuda.STRATEGY = args.strategy
    configs, cells = (TINY_CONFIGS, TINY_CELLS) if args.tiny else (CONFIGS, CELLS)
    configs = args.configs or configs
    cells = [c for c in cells if c in cells_arg] if cells_arg else cells
    repeats = 1 if args.tiny else args.repeats
    no_torch = torch_cuda_available()
    try:
        import torch
        torch_version = torch.__version__
        if no_torch is None:
            torch.backends.cudnn.benchmark = False
            if args.cudnn_tf32 == "off":
                torch.backends.cudnn.allow_tf32 = False
        tf32 = "-" if no_torch else ("allowed" if torch.backends.cudnn.allow_tf32 else "off")
    except Exception:
        torch_version, tf32 = "absent", "-"
    try:
        from importlib.metadata import version
        numba_cuda_version = version("numba-cuda")
    except Exception:
        numba_cuda_version = "absent"
    import numba

    meta = dict(card=card_name(), date=time.strftime("%Y-%m-%d %H:%M"), numba=numba.__version__,
                numba_cuda=numba_cuda_version, torch=torch_version, tf32=tf32, strategy=args.strategy)
    log(f"card: {meta['card']}; torch: {no_torch or 'cuDNN on the GPU'}")
    rows: list[dict] = []
    csv_paths = [d / "gpu.csv" for d in out_dirs]
    for cp in csv_paths:
        cp.write_text(",".join(FIELDS) + "\n", encoding="utf-8")

    def emit(row):
        rows.append(row)
        for cp in csv_paths:
            with cp.open("a", encoding="utf-8") as f:
                f.write(",".join("" if row[k] is None else str(row[k]) for k in FIELDS) + "\n")
        log(f"{row['cell']:9s} {row['dtype']:7s} T={row['T']} B={row['B']} H={row['H']} {row['impl']:13s} "
            f"{'' if row['median_ms'] is None else format(row['median_ms'], '.3f') + ' ms'} {row['note']}")

    for (T, B, H) in configs:
        for dtype in dtypes:
            for cell in cells:
                p, x, dh = make_inputs(cell, T, B, H, np.dtype(dtype))
                plan = gcuda.time_loop(cell, B, H, np.dtype(dtype))
                impls = [("gradlab-cuda", run_gradlab_cuda, plan), ("gradlab-cpu", run_gradlab_cpu, "")]
                impls.append(("torch-cudnn", run_torch, ""))
                results = {}
                for name, maker, path in impls:
                    row = dict(cell=cell, dtype=dtype, T=T, B=B, H=H, impl=name, path=path, median_ms=None,
                               min_ms=None, repeats=0, first_s=None, vs_torch=None, dx_rel_err=None, note="")
                    if name == "gradlab-cpu" and H > CPU_MAX_H:
                        row["note"] = f"not run (H > {CPU_MAX_H})"
                    elif name == "torch-cudnn" and no_torch:
                        row["note"] = f"not run: {no_torch}"
                    elif time.monotonic() > deadline:
                        row["note"] = "skipped: time budget"
                    else:
                        try:
                            fn, sync, dx_of = maker(cell, p, x, dh)
                            budget_each = 0.5 if args.tiny else 3.0
                            g, first, med, mn, n = timed(fn, sync, repeats, budget_each)
                            row.update(median_ms=med, min_ms=mn, repeats=n, first_s=first)
                            results[name] = (row, dx_of(g))
                        except Exception as err:  # a failing peer must not stop the comparison
                            row["note"] = f"error: {type(err).__name__}: {str(err)[:120]}".replace(",", ";").replace("|", "/")
                    if name not in results:
                        emit(row)
                ref = results.get("gradlab-cpu", results.get("torch-cudnn"))
                torch_ms = results["torch-cudnn"][0]["median_ms"] if "torch-cudnn" in results else None
                for name, (row, dx) in results.items():
                    if ref is not None and ref[1] is not dx:
                        row["dx_rel_err"] = rel_err(dx, ref[1])
                    if torch_ms:
                        row["vs_torch"] = torch_ms / row["median_ms"]
                    emit(row)
            for d in out_dirs:
                write_markdown(rows, d / "gpu.md", meta, complete=False)
    for d in out_dirs:
        write_markdown(rows, d / "gpu.md", meta, complete=True)
    log(f"done: {len(rows)} rows -> {', '.join(str(d) for d in out_dirs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
