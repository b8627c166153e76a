"""The largest finite-difference and PyTorch-autograd discrepancies of the NumPy reference, per cell.

Runs the same problems as tests/test_reference_gradients.py and prints a Markdown table:

    .venv/bin/python scripts/gradient_discrepancies.py
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests"))
import numpy as np, gradlab
from conftest import make_problem
from test_reference_gradients import finite_difference, relative_error, FIELDS
from torch_cells import run as torch_run
print("| cell | FD relative error | torch relative error |")
print("|---|---|---|")
for cell in gradlab.CELL_NAMES:
    p, x, h0, c0, dh, dc = make_problem(cell, T=5, B=2, D=3, H=4, seed=3)
    tr = gradlab.forward(cell, p, x, h0, c0, backend="numpy"); g = gradlab.backward(cell, p, tr, dh, dc, backend="numpy")
    fd_err = max(relative_error(getattr(g, f), finite_difference(cell, f, p, x, h0, c0, dh, dc))
                 for f in FIELDS if getattr(g, f) is not None)
    p, x, h0, c0, dh, dc = make_problem(cell, T=6, B=3, D=4, H=5, seed=7, scale=1.3)
    tr = gradlab.forward(cell, p, x, h0, c0, backend="numpy"); g = gradlab.backward(cell, p, tr, dh, dc, backend="numpy")
    ref = torch_run(cell, p, x, h0, c0, dh, dc)
    t_err = max([relative_error(getattr(g, f), ref[f]) for f in FIELDS if f in ref] + [relative_error(tr.h, ref["h"]), relative_error(g.dh_norm, ref["dh_norm"])])
    print(f"| {cell} | {fd_err:.1e} | {t_err:.1e} |")
