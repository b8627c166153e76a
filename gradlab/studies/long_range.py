"""How far back can each cell learn? Success and steps-to-solve against the sequence length T.

The tanh RNN, the ReLU RNN with identity initialisation (IRNN, Le, Jaitly &
Hinton 2015), the GRU and the LSTM are trained from scratch on three
long-range tasks of growing length T, with a fixed budget of optimiser steps
and an early stop once the task's criterion has held for a patience window:

* the adding problem in the form of Le et al. (2015): values U[0, 1], one
  marked value in each half, target their sum; chance MSE 1/6 ≈ 0.167,
  solved at MSE ≤ 0.01;
* the adding problem in the form of Hochreiter & Schmidhuber (1997),
  experiment 4: a sequence is correct when |error| < 0.04 on targets in
  [0, 1]; solved when every sequence of a batch is correct for as many
  consecutive batches as make H&S's 2000 sequences;
* copy memory (Arjovsky, Shah & Bengio 2016): recall a string of L symbols
  after a delay of T steps; chance recall accuracy 1/n, solved at ≥ 0.99.

Per run the study records whether and when the criterion was met
(``solved_at``, in optimiser steps, each on a fresh batch), the task's metric
on a held-out set of sequences when training stopped, and a coarse learning
curve. A run that is not solved is "not solved within this budget", not
"cannot be solved": Hochreiter & Schmidhuber's LSTM needed about 74,000
training sequences at T = 100, and Le et al. trained their IRNN at T = 150 to
400 far longer still, well beyond what a default run of minutes affords. Every
cell is also given a longer budget at one short length (the ``long`` series),
to see whether a cell that fails within the main budget learns given more steps.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import tasks
from ..train import train

TITLE = "How far back can each cell learn?"
QUESTION = ("On the adding problem (in Le et al.'s and in Hochreiter & Schmidhuber's form) and on copy memory, "
            "how does the success rate and the number of steps to solve fall with the sequence length T for the "
            "tanh RNN, the IRNN (ReLU, identity initialisation), the GRU and the LSTM, within a fixed training "
            "budget?")

#: The cells compared: label -> (gradlab cell, initialisation).
CELLS = {"rnn_tanh": ("rnn_tanh", "orthogonal"), "irnn": ("rnn_relu", "identity"),
         "gru": ("gru", "orthogonal"), "lstm": ("lstm", "orthogonal")}
COLORS = {"rnn_tanh": "tab:blue", "irnn": "tab:orange", "gru": "tab:green", "lstm": "tab:red"}
TASKS = ("adding_le2015", "adding_hs1997", "copy")
TASK_TITLES = {"adding_le2015": "adding problem (Le et al. 2015 form)",
               "adding_hs1997": "adding problem (Hochreiter & Schmidhuber 1997 form)",
               "copy": "copy memory (Arjovsky et al. 2016)"}
#: Sequences H&S required to be correct in a row before they stopped (1997, experiment 4).
HS_SEQUENCES = 2000
#: Copy-memory string length and alphabet.
COPY_LENGTH, COPY_SYMBOLS = 10, 8
EVAL_SEQUENCES = 256


def make_task(name: str, T: int) -> tasks.Task:
    """The task ``name`` (one of :data:`TASKS`) at length ``T``."""
    if name == "adding_le2015":
        return tasks.Adding(T, "le2015")
    if name == "adding_hs1997":
        return tasks.Adding(T, "hs1997")
    if name == "copy":
        return tasks.CopyMemory(T, COPY_LENGTH, COPY_SYMBOLS)
    raise ValueError(f"task: unknown task {name!r}; expected one of {', '.join(TASKS)}")


def patience_for(task_name: str, batch_size: int, default: int) -> int:
    """Consecutive solved batches required: H&S's 2000 sequences for their form, ``default`` otherwise."""
    if task_name == "adding_hs1997":
        return math.ceil(HS_SEQUENCES / batch_size)
    return default


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927), 95 % by default.

    Unlike the normal approximation it stays inside [0, 1] and is not empty
    at 0 or n successes, which is where a small number of seeds lands.

    Parameters
    ----------
    successes, n : int
        Successes out of ``n`` trials (``0 <= successes <= n``, ``n >= 1``).
    z : float
        The normal quantile (1.96 for 95 %).
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"successes, n: expected 0 <= successes <= n and n >= 1, got {successes}, {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# ---------------------------------------------------------------------- grid points (run on Dask workers)

def train_point(config: dict, seed: int) -> list[dict]:
    """Train one network on one task and length from scratch; a summary and a coarse learning curve.

    Config keys: ``series`` (a label), ``task``, ``T``, ``cell`` (a key of :data:`CELLS`), ``H``,
    ``steps`` (the budget), ``lr``, ``batch``, ``patience``, ``clip`` (the
    global-norm threshold), ``curve_points``, ``backend``, ``dtype``.
    Rows: one per curve checkpoint, each carrying the run's summary.
    """
    import time

    start = time.process_time()
    task = make_task(config["task"], config["T"])
    cell, init = CELLS[config["cell"]]
    weights_seed, data_seed, eval_seed = np.random.SeedSequence(seed).spawn(3)
    net = task.network(cell, config["H"], init=init, dtype=config["dtype"], backend=config["backend"],
                       seed=int(weights_seed.generate_state(1)[0]))
    hist = train(net, task, config["steps"], batch_size=config["batch"], optimizer="adam", lr=config["lr"],
                 clip="norm", clip_threshold=config["clip"], seed=data_seed, until_solved=True,
                 patience=config["patience"], backend=config["backend"])
    held_out = task.sample(EVAL_SEQUENCES, eval_seed, dtype=config["dtype"])
    final = task.metric(net.predict(held_out.x), held_out) if hist.attrs["status"] != "diverged" else float("nan")
    metric = hist["metric"].to_numpy()
    solved_at = hist.attrs["solved_at"]
    summary = {
        "solved": solved_at is not None,
        "solved_at": float(solved_at) if solved_at is not None else float("nan"),
        "steps_run": int(len(hist)),
        "status": hist.attrs["status"],
        "final_metric": float(final),
        "last_batch_metric": float(metric[-1]) if len(metric) else float("nan"),
        "baseline": float(task.baseline),
        "criterion": float(task.criterion),
        "metric_name": task.metric_name,
        "higher_is_better": bool(task.higher_is_better),
        "skipped": int(hist.attrs["skipped"]),
        "clipped_share": float(hist["clipped"].mean()) if len(hist) else float("nan"),
        "wall_time": float(hist["wall_time"].iloc[-1]) if len(hist) else 0.0,
        "cpu_time": time.process_time() - start,
    }
    # the learning curve: the median batch metric over equal windows of the budget
    edges = np.unique(np.linspace(0, config["steps"], config["curve_points"] + 1).round().astype(int))
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        window = metric[lo:hi]
        if len(window) == 0:
            break
        rows.append({"step": int(lo + len(window)), "curve_metric": float(np.nanmedian(window))
                     if np.isfinite(window).any() else float("nan"), **summary})
    return rows


# ---------------------------------------------------------------------- the study

def sizes(quick: bool) -> dict:
    """The grid's sizes: the default run and the reduced one of ``--quick``.

    ``T`` lists the lengths per task and ``steps`` the budget of optimiser
    steps per run (each on a fresh batch of ``batch`` sequences) of the main
    series; ``long_T`` and ``long_steps`` the one length of the Le-form adding
    problem that every cell is also given a longer budget at (the ``long``
    series). The budgets are what a default run of a few minutes on two cores
    affords; a run that is not solved within its budget is reported as such.
    """
    common = dict(cells=tuple(CELLS), H=32, batch=32, lr=0.01, clip=1.0, patience=10)
    if quick:
        return dict(common, T={"adding_le2015": (10, 20), "adding_hs1997": (10,), "copy": (5,)},
                    steps={"adding_le2015": 150, "adding_hs1997": 40, "copy": 30}, long_T=10, long_steps=200,
                    replicates=2, curve_points=10)
    # T = 150 is the shortest length of Le et al. (2015)
    return dict(common, T={"adding_le2015": (25, 50, 100, 150), "adding_hs1997": (25, 50), "copy": (10, 40)},
                steps={"adding_le2015": 400, "adding_hs1997": 150, "copy": 100}, long_T=25, long_steps=1200,
                replicates=5, curve_points=20)


def sequence_steps(task_name: str, T: int) -> int:
    """The time steps of one sequence of ``task_name`` at length ``T`` (its cost per sequence)."""
    if task_name == "copy":
        return T + 2 * COPY_LENGTH
    if task_name == "adding_hs1997":
        return T + T // 20
    return T


def grids(quick: bool) -> dict[str, tuple[list[dict], int]]:
    """Every sweep of the study: label -> (configs, replicates).

    One sweep holds every task, length and cell, most expensive first, so
    that the longest runs start early and the workers finish together.
    """
    s = sizes(quick)

    def config(series, task, T, cell, steps):
        return {"series": series, "task": task, "T": T, "cell": cell, "H": s["H"], "steps": steps, "lr": s["lr"],
                "batch": s["batch"], "patience": patience_for(task, s["batch"], s["patience"]), "clip": s["clip"],
                "curve_points": s["curve_points"]}

    configs = [config("main", task, T, cell, s["steps"][task])
               for task in TASKS for T in s["T"][task] for cell in s["cells"]]
    configs += [config("long", "adding_le2015", s["long_T"], cell, s["long_steps"]) for cell in s["cells"]]
    configs.sort(key=lambda c: -c["steps"] * sequence_steps(c["task"], c["T"]))
    return {"runs": (configs, s["replicates"])}


def run(ctx) -> None:
    """Run the sweep and write ``reports/long_range/``."""
    from . import long_range_report as report

    g = grids(ctx.quick)
    runs = ctx.sweep("runs", train_point, *g["runs"])
    rep = ctx.report(title=TITLE, question=QUESTION)
    report.write(rep, runs, sizes(ctx.quick))
    ctx.finish(rep)


# ---------------------------------------------------------------------- summaries

RUN = ["series", "task", "T", "cell", "replicate"]
SUMMARY_COLUMNS = ["seed", "steps", "patience", "solved", "solved_at", "steps_run", "status", "final_metric",
                   "last_batch_metric", "baseline", "criterion", "metric_name", "higher_is_better", "skipped",
                   "clipped_share", "wall_time", "cpu_time"]


def run_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per training run (the learning-curve rows collapsed)."""
    return rows.drop_duplicates(RUN)[RUN + SUMMARY_COLUMNS].reset_index(drop=True)


def success_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per series, task, length and cell: successes, their Wilson interval, steps-to-solve and held-out metric quartiles.

    ``runs`` is :func:`run_summary`'s frame. Steps-to-solve quartiles are over
    the solved runs only (NaN when none was solved).
    """
    out = []
    for (series, task, T, cell), g in runs.groupby(["series", "task", "T", "cell"], sort=False):
        n, k = len(g), int(g["solved"].astype(bool).sum())
        lo, hi = wilson_interval(k, n)
        solved = g.loc[g["solved"].astype(bool), "solved_at"].astype(float)
        final = g["final_metric"].astype(float)
        q = solved.quantile([0.25, 0.5, 0.75]) if k else pd.Series([np.nan] * 3, index=[0.25, 0.5, 0.75])
        f = final.quantile([0.25, 0.5, 0.75])
        out.append({"series": series, "task": task, "T": int(T), "cell": cell, "runs": n, "solved": k, "success_rate": k / n,
                    "ci_low": lo, "ci_high": hi, "steps_q25": q[0.25], "steps_median": q[0.5], "steps_q75": q[0.75],
                    "final_q25": f[0.25], "final_median": f[0.5], "final_q75": f[0.75],
                    "baseline": float(g["baseline"].iloc[0]), "criterion": float(g["criterion"].iloc[0]),
                    "budget": int(g["steps"].iloc[0]), "patience": int(g["patience"].iloc[0])})
    t = pd.DataFrame(out)
    order = {c: i for i, c in enumerate(CELLS)}
    torder = {c: i for i, c in enumerate(TASKS)}
    return (t.assign(_t=t["task"].map(torder), _c=t["cell"].map(order))
            .sort_values(["series", "_t", "T", "_c"], ascending=[False, True, True, True])
            .drop(columns=["_t", "_c"]).reset_index(drop=True))


def longest_solved(table: pd.DataFrame, task: str, cell: str, threshold: float = 0.5,
                   series: str = "main") -> int | None:
    """The longest T of ``task`` at which ``cell`` solved at least ``threshold`` of its runs (None if none)."""
    t = table[(table["series"] == series) & (table["task"] == task) & (table["cell"] == cell)
              & (table["success_rate"] >= threshold)]
    return int(t["T"].max()) if len(t) else None
