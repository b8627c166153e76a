"""Steps to solve the adding problem at T = 50: rnn_tanh, gru and lstm, one fixed seed.

The question: with the same training recipe, how many optimiser steps does
each cell need before it passes the adding problem's success criterion at
T = 50 — and does the plain tanh RNN get there at all within the budget?

Recipe (identical for every cell): H = 32 hidden units, one layer, Adam with
learning rate 0.01, global-norm clipping at 1.0 (Pascanu et al. 2013),
batches of 32 fresh sequences, full BPTT, float64, the NumPy reference
backend, seed 0 for the weights and the data, a budget of 3000 steps.
The criterion is the task's own (``gradlab.tasks.Adding``):

* ``le2015`` (Le et al. 2015): batch MSE ≤ 0.01; chance (predict 1) is 1/6;
* ``hs1997`` (Hochreiter & Schmidhuber 1997): every sequence of a batch
  within 0.04 of its target; chance (predict 0.5) gets 15 % of them.

The criterion is checked on each fresh training batch before its update (a
held-out estimate) and must hold on 5 consecutive batches (160 sequences), so
that one lucky batch does not count; the step reported is the last of those
5. After training the metric is also measured on 2000 new sequences. Run::

    .venv/bin/python studies/adding_t50.py                 # both forms, about a minute or two
    .venv/bin/python studies/adding_t50.py --form le2015 --steps 3000
"""

# %%
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import gradlab
from gradlab import tasks

CELLS = ("rnn_tanh", "gru", "lstm")


def run(cell: str, form: str, T: int, steps: int, hidden: int, seed: int, backend: str, patience: int) -> dict:
    task = tasks.Adding(T, form)
    net = task.network(cell, hidden, seed=seed, backend=backend)
    start = time.perf_counter()
    hist = gradlab.train(net, task, steps, batch_size=32, optimizer="adam", lr=0.01,
                         clip="norm", clip_threshold=1.0, seed=seed, patience=patience)
    test = task.sample(2000, seed + 1_000_003)
    return {
        "form": form,
        "cell": cell,
        "solved_at": hist.attrs["solved_at"],
        "status": hist.attrs["status"],
        "steps_run": len(hist),
        "held_out": task.metric(net.predict(test.x), test),
        "metric": task.metric_name,
        "chance": task.baseline,
        "clipped_frac": float(hist["clipped"].mean()),
        "seconds": time.perf_counter() - start,
    }


# %%
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--form", choices=("both",) + tasks.adding.FORMS, default="both")
    parser.add_argument("--T", type=int, default=50)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--patience", type=int, default=5, help="consecutive batches the criterion must hold on")
    args = parser.parse_args()
    forms = tasks.adding.FORMS if args.form == "both" else (args.form,)

    print(f"adding problem, T = {args.T}, H = {args.hidden}, seed {args.seed}, budget {args.steps} steps, "
          f"patience {args.patience}, backend {args.backend}, gradlab {gradlab.__version__}, numpy {np.__version__}, "
          f"python {platform.python_version()}, {platform.machine()}")
    header = f"{'form':8} {'cell':9} {'steps to criterion':>19} {'held-out metric':>22} {'chance':>7} {'clipped':>8} {'time':>7}"
    print(header)
    print("-" * len(header))
    for form in forms:
        for cell in CELLS:
            r = run(cell, form, args.T, args.steps, args.hidden, args.seed, args.backend, args.patience)
            solved = str(r["solved_at"]) if r["solved_at"] is not None else f"not in {r['steps_run']}"
            if r["status"] == "diverged":
                solved = f"diverged at {r['steps_run']}"
            print(f"{form:8} {cell:9} {solved:>19} {r['metric']:>16} {r['held_out']:.4f} {r['chance']:7.3f} "
                  f"{r['clipped_frac']:8.0%} {r['seconds']:6.1f}s", flush=True)


if __name__ == "__main__":
    main()
