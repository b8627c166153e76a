"""What recording ‖∂L/∂h_t‖ and ‖∂L/∂c_t‖ costs the CPU backward pass.

The same backward pass with the records on and off (``record=False``, a
benchmark-only switch of ``gradlab.kernels.cpu.backward``), called in
alternating order so that neither side always follows the other, on one
trace per case; median of repeats. Prints a Markdown table.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/record_cost.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import gradlab
from gradlab.kernels import cpu

CONFIGS = ((1000, 1, 32), (100, 64, 128), (200, 32, 256))


def cost(cell: str, dtype, T: int, B: int, H: int, repeats: int) -> tuple[float, float]:
    """Median seconds of the backward pass with and without the records."""
    p = gradlab.init_params(cell, H, H, dtype=dtype, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, H)).astype(dtype)
    trace = gradlab.forward(cell, p, x, backend="cpu")
    dh = np.ones_like(trace.h)
    spec = gradlab.CELLS[cell]
    calls = {flag: (lambda flag=flag: cpu.backward(spec, p, trace, dh, None, None, record=flag)) for flag in (True, False)}
    for call in calls.values():
        call()
    times = {True: [], False: []}
    for i in range(repeats):
        for flag in ((True, False) if i % 2 == 0 else (False, True)):
            start = time.perf_counter()
            calls[flag]()
            times[flag].append(time.perf_counter() - start)
    return statistics.median(times[True]), statistics.median(times[False])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cells", nargs="+", default=["rnn_tanh", "gru_cudnn", "lstm"])
    args = parser.parse_args()
    print("| config (T, B, H) | cell | dtype | with records ms | without ms | cost |")
    print("|---|---|---|---|---|---|")
    for T, B, H in CONFIGS:
        for cell in args.cells:
            for dtype in (np.float32, np.float64):
                on, off = cost(cell, dtype, T, B, H, args.repeats)
                print(f"| ({T}, {B}, {H}) | {cell} | {np.dtype(dtype).name} | {1e3 * on:.2f} | {1e3 * off:.2f} "
                      f"| {100 * (on / off - 1):+.1f}% |", flush=True)


if __name__ == "__main__":
    main()
