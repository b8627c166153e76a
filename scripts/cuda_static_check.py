"""What the register time loop compiles to, without a GPU: registers, spills and shared memory per kernel.

For each dtype, cell and hidden size H the register loop takes, this compiles
its forward and backward kernels to PTX for one compute capability (sm_90 by
default) and runs ``ptxas -v`` on them, under the register budget the backend
compiles them with (:func:`gradlab.kernels._cuda_register.register_budget`),
and prints one row a kernel pair: the words of W_h a thread keeps in registers
(``hr``), the threads and shared memory of a block, and ptxas's registers and
spill stores. With ``--sass`` (needs ``nvdisasm``) it also counts, in each
disassembled kernel, the calls (IEEE division's slow path, for one), the
reconvergence points (``BSSY``), the instructions, and the float64 operations
and conversions (none belong in a float32 kernel).

No CUDA driver is needed, only NVVM, NVRTC and ptxas: the CUDA toolkit, or
``pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12`` (and
``nvidia-cuda-nvdisasm`` for ``--sass``). Without them it exits with status 3.

    PYTHONPATH=. python scripts/cuda_static_check.py                      # float32 and float64, H = 32 … 128
    PYTHONPATH=. python scripts/cuda_static_check.py --cells lstm --hs 32 --sass
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"  # compile for a real device (the simulator compiles nothing)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CELLS = ("rnn_tanh", "rnn_relu", "gru_simple", "gru_cudnn", "lstm")
MISSING_TOOLS = 3  # the exit status when ptxas, NVVM, NVRTC or (with --sass) nvdisasm is not found


def find_tool(name: str) -> str | None:
    """``name`` on PATH, in CUDA_HOME, or in one of NVIDIA's pip wheels (nvidia/*/bin)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = [Path(os.environ["CUDA_HOME"]) / "bin" / name] if os.environ.get("CUDA_HOME") else []
    for entry in sys.path:
        candidates += sorted(Path(entry).glob(f"nvidia/*/bin/{name}")) if entry else []
    return next((str(p) for p in candidates if p.is_file()), None)


def signatures(dtype):
    """The numba argument types of the register loop's forward and backward kernels."""
    from numba.cuda import types as T

    at = T.float32 if dtype == np.float32 else T.float64
    A1, A2, A3 = (T.Array(at, n, "C") for n in (1, 2, 3))
    fwd = (A2, A1, A2, A2, A3, A3, A3, A3)
    bwd = (A2, A3, A3, A3, A3, A3, A2, A2, at, T.boolean, A3, A3, A3, A3, A2, A2)
    return fwd, bwd


def ptxas_report(ptxas: str, ptx: str, arch: str, budget: int, keep: Path) -> dict:
    """ptxas's registers and spill stores for one kernel, its cubin kept at ``keep``."""
    src = keep.with_suffix(".ptx")
    src.write_text(ptx, encoding="utf-8")
    cmd = [ptxas, f"-arch={arch}", "-v", "-o", str(keep)]
    if budget < 255:  # (as numba compiles it: max_registers only below the most a thread can have)
        cmd.append(f"-maxrregcount={budget}")
    out = subprocess.run(cmd + [str(src)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"ptxas failed on {src}:\n{out.stderr}")
    regs = re.search(r"Used (\d+) registers", out.stderr)
    spill = re.search(r"(\d+) bytes spill stores", out.stderr)
    return {"regs": int(regs.group(1)) if regs else -1, "spill": int(spill.group(1)) if spill else -1}


def sass_shape(nvdisasm: str, cubin: Path) -> str:
    """Instructions, calls, reconvergence points and float64 operations (conversions included) of a kernel."""
    text = subprocess.run([nvdisasm, "-c", str(cubin)], capture_output=True, text=True).stdout
    lines = [ln for ln in text.splitlines() if re.match(r"\s*/\*[0-9a-f]+\*/\s+[@A-Z]", ln)]
    fp64 = sum(bool(re.search(r"\b(F2F\.F64|F2F\.F32\.F64|DADD|DMUL|DFMA)", ln)) for ln in lines)
    return (f"{len(lines)} instructions, {sum('CALL' in ln for ln in lines)} calls, "
            f"{sum('BSSY' in ln for ln in lines)} BSSY, {fp64} float64")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default=",".join(CELLS), help="comma-separated (default: every register-loop cell)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--hs", default="32,64,96,128", help="comma-separated hidden sizes")
    ap.add_argument("--cc", default="9.0", help="compute capability to compile for (default: %(default)s)")
    ap.add_argument("--shared-limit", type=int, default=227 * 1024,
                    help="opt-in shared memory of a block, bytes (default: sm_90's, %(default)s)")
    ap.add_argument("--sass", action="store_true", help="also the shape of the forward kernel's SASS (nvdisasm)")
    args = ap.parse_args(argv)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    bad = [c for c in cells if c not in CELLS]
    if bad:
        ap.error(f"--cells: expected names from {', '.join(CELLS)}, got {bad}")
    dtypes = [np.dtype(d.strip()).type for d in args.dtypes.split(",") if d.strip()]
    if any(d not in (np.float32, np.float64) for d in dtypes):
        ap.error(f"--dtypes: expected float32 and/or float64, got {args.dtypes!r}")
    hs = [int(h) for h in args.hs.split(",") if h.strip()]
    cc = tuple(int(p) for p in args.cc.split("."))
    arch = "sm_" + "".join(str(p) for p in cc)
    ptxas = find_tool("ptxas")
    nvdisasm = find_tool("nvdisasm") if args.sass else None
    missing = None if ptxas else "ptxas not found: install the CUDA toolkit or `pip install nvidia-cuda-nvcc-cu12`"
    if args.sass and nvdisasm is None:
        missing = "--sass: nvdisasm not found (`pip install nvidia-cuda-nvdisasm`)"
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    def probe(out):
        out[0] = 1.0

    try:  # a compile of a one-line kernel finds NVVM and NVRTC (numba asks it which architectures exist), or not
        from numba.cuda import types as T

        cuda.compile_ptx(probe, (T.Array(T.float32, 1, "C"),), cc=cc)
    except Exception as err:  # NVVM or NVRTC missing, or this cc unknown to them
        missing = missing or (f"compiling for {arch} failed ({type(err).__name__}: {str(err)[:200]}): install the "
                              f"CUDA toolkit or `pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12`")
    if missing:
        print(missing, file=sys.stderr)
        return MISSING_TOOLS

    # device functions compile for "the current device": without a driver, say which one
    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=cc)
    from gradlab.kernels.cells import CELLS as SPECS
    from gradlab.kernels import _cuda_register as R

    print(f"register loop, {arch}, ptxas {ptxas}")
    print("| dtype | cell | H | hr | threads | budget | shared fwd / bwd B | fwd regs | fwd spill B | bwd regs | "
          "bwd spill B |" + (" forward SASS | backward SASS |" if args.sass else ""))
    print("|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if args.sass else ""))
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in dtypes:
            size = np.dtype(dtype).itemsize
            for cell in cells:
                G = SPECS[cell].num_gates
                for H in hs:
                    name = f"{np.dtype(dtype).name} | {cell} | {H}"
                    if not R.supports(cell, H, G, size, args.shared_limit):
                        print(f"| {name} | - | | | | | | | | not taken (shared memory or H) |")
                        continue
                    hr = R.register_words(size, G, H)
                    threads = R.layout(G, H)[1]
                    budget = R.register_budget(threads)
                    rk = R.register_kernels(dtype, cell, H, G, R.AHEAD, None if hr == H else hr)
                    row, shapes = [], []
                    for direction, kernel, sig in zip(("fwd", "bwd"), (rk.fwd, rk.bwd), signatures(dtype)):
                        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
                        keep = Path(tmp) / f"{direction}.cubin"
                        rep = ptxas_report(ptxas, ptx, arch, budget, keep)
                        row += [rep["regs"], rep["spill"]]
                        if nvdisasm:
                            shapes.append(sass_shape(nvdisasm, keep))
                    shared = [R.shared_bytes(size, G, H, hr, bw) for bw in (False, True)]
                    print(f"| {name} | {hr} | {threads} | {budget} | {shared[0]} / {shared[1]} | "
                          + " | ".join(str(v) for v in row) + " |" + "".join(f" {sh} |" for sh in shapes),
                          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
