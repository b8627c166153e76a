"""Does clipping rescue training when gradients explode?

The tanh RNN, the GRU and the LSTM start from an *exploding* initialisation
(orthogonal recurrent blocks scaled to a largest singular value of 2, SPEC
§4) and are trained with an aggressive learning rate on the adding problem
(Le et al. 2015 form) and on the temporal-order problem (Hochreiter &
Schmidhuber 1997, experiment 6a), the two tasks of Pascanu, Mikolov &
Bengio (2013) that gradlab generates. Every run uses the same optimiser and
budget; only the clipping policy (SPEC §5, :func:`gradlab.train`) changes:

* ``none`` — the raw gradient;
* ``norm τ`` — global-norm clipping, g ← g·τ/‖g‖ when ‖g‖ > τ (Pascanu et
  al. 2013, Algorithm 1), at several thresholds τ around their cutoff of 1;
* ``value v`` — every gradient element clipped to [−v, v] (the notes;
  Karpathy's min-char-rnn);
* ``step v`` — ∂L/∂h_t (and the LSTM's ∂L/∂c_t) clipped elementwise to
  [−v, v] inside BPTT at every step.

Runs of the same ``pair`` number share their initial weights and their
stream of training batches across the policies (common random numbers,
seeded by ``numpy.random.SeedSequence([root_seed, pair])``), so the
policies are compared on the same networks and the same data. Each run
records, per step, the batch loss and metric, the gradient norm before
clipping, whether the policy clipped, whether the gradient was non-finite,
the norm of the gradient the optimiser actually received (measured inside
the optimiser, independently of the history's flags) and the share of the
squared gradient norm that lies in the output head. A run *succeeds* when
the task's criterion (adding: batch MSE ≤ 0.01; temporal order: a whole
batch classified correctly) holds for ``patience`` consecutive steps; it
*diverges* when its loss or parameters overflow.

References
----------
Pascanu, R., Mikolov, T. & Bengio, Y. (2013). On the difficulty of training
recurrent neural networks. ICML.
Hochreiter, S. & Schmidhuber, J. (1997). Long short-term memory. Neural
Computation 9(8).
Le, Q. V., Jaitly, N. & Hinton, G. E. (2015). A simple way to initialize
recurrent networks of rectified linear units. arXiv:1504.00941.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from .. import tasks
from ..clip import global_norm
from ..network import Network
from ..optim import SGD
from ..train import train

TITLE = "Does gradient clipping rescue training when gradients explode?"
QUESTION = ("With an exploding initialisation and an aggressive learning rate, do global-norm clipping (at several "
            "thresholds), elementwise value clipping and per-step clipping inside BPTT prevent the loss spikes and "
            "divergence of the tanh RNN, the GRU and the LSTM on the adding and temporal-order problems, and do "
            "they make more runs solve the task than no clipping, as Pascanu et al. (2013) found?")

CELLS = ("rnn_tanh", "gru", "lstm")
TASKS = ("adding", "temporal_order")
TASK_LABELS = {"adding": "adding (Le et al. 2015 form)", "temporal_order": "temporal order (H&S 1997, 4 classes)"}
#: The Pascanu et al. (2013) cutoff, the threshold the property "exploding gradients reach it" is checked against.
PASCANU_THRESHOLD = 1.0
#: Every policy: label -> (clip, threshold). Value and step thresholds are in the units of the batch-mean loss.
POLICIES = {
    "none": (None, None),
    "norm 0.25": ("norm", 0.25),
    "norm 1": ("norm", 1.0),
    "norm 4": ("norm", 4.0),
    "value 0.1": ("value", 0.1),
    "step 0.01": ("step", 0.01),
}
QUICK_POLICIES = ("none", "norm 1", "value 0.1", "step 0.01")
HEAD_PREFIX = "head."


def sizes(quick: bool) -> dict:
    """The grid's sizes: the default run and the reduced one of ``--quick``."""
    common = dict(T=30, H=16, B=32, scale=2.0, lr=0.15, momentum=0.9, patience=5, test_batch=256)
    if quick:
        return dict(common, cells=("rnn_tanh", "gru"), policies=QUICK_POLICIES, pairs=2, steps=120)
    return dict(common, cells=CELLS, policies=tuple(POLICIES), pairs=5, steps=500)


def make_task(name: str, T: int):
    """The task of a configuration: ``"adding"`` (Le et al. 2015 form) or ``"temporal_order"``."""
    if name == "adding":
        return tasks.Adding(T, "le2015")
    if name == "temporal_order":
        return tasks.TemporalOrder(T)
    raise ValueError(f"task: unknown task {name!r}; expected one of {', '.join(TASKS)}")


def pair_seeds(root_seed: int, pair: int) -> tuple[int, int, int]:
    """The seeds (weights, training batches, test batch) shared by every policy's run number ``pair``."""
    state = np.random.SeedSequence([int(root_seed), int(pair)]).generate_state(3, np.uint32)
    return int(state[0]), int(state[1]), int(state[2])


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default).

    Wilson (1927): (p̂ + z²/2n ± z·√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n);
    unlike the normal approximation it stays inside [0, 1] and is not
    empty at 0 or n successes. ``n = 0`` gives (0, 1).
    """
    successes, n = int(successes), int(n)
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def backprop_gain(dh_norm: np.ndarray) -> float:
    """How much ‖∂L/∂h_t‖ grew on its way back from the last step to the first: median over sequences.

    ``dh_norm`` is one layer's record of shape (T, B) from a many-to-one
    loss (so ∂L/∂h_T is the injected error); the gain is
    median_b ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖, above 1 when the gradient explodes
    through time (Pascanu et al. 2013, §2), nan where undefined.
    """
    dh = np.asarray(dh_norm, dtype=np.float64)
    if dh.ndim != 2 or dh.shape[0] < 1:
        raise ValueError(f"dh_norm: expected an array of shape (T, B), got {dh.shape}")
    with np.errstate(all="ignore"):
        ratio = dh[0] / dh[-1]
    ratio = ratio[np.isfinite(ratio)]
    return float(np.median(ratio)) if len(ratio) else float("nan")


class RecordingSGD(SGD):
    """SGD (with momentum) that records the global norm of every gradient it is handed.

    :func:`gradlab.train` clips before calling :meth:`step`, so ``applied``
    holds the norms of the gradients that were actually applied — a
    measurement independent of the history's ``clipped`` flags.
    """

    def __init__(self, lr: float, momentum: float = 0.0):
        super().__init__(lr, momentum=momentum)
        self.applied: list[float] = []

    def step(self, params: dict, grads: dict, lr: float | None = None) -> None:
        self.applied.append(global_norm(grads))
        super().step(params, grads, lr)


# ---------------------------------------------------------------------- grid point (runs on Dask workers)

def train_point(config: dict, seed: int) -> list[dict]:
    """Train one network with one clipping policy; one row per step (run-level columns repeated).

    The sweep's ``seed`` is not used: the weights and batches come from
    :func:`pair_seeds` so that every policy sees the same ones (see the module docstring).
    """
    del seed
    task = make_task(config["task"], config["T"])
    w_seed, data_seed, test_seed = pair_seeds(config["root_seed"], config["pair"])
    net = task.network(config["cell"], config["H"], init="orthogonal", scale=config["scale"],
                       dtype=config["dtype"], seed=w_seed, backend=config["backend"])
    clip, threshold = config["clip"], config["threshold"]
    opt = RecordingSGD(config["lr"], momentum=config["momentum"])
    extra: list[tuple[float, float, float]] = []  # per step: applied norm (nan if not applied), head norm, gain
    seen = [0]  # how many of the optimiser's records the steps so far have claimed

    def record(step: int, res) -> None:
        applied = float("nan")
        if len(opt.applied) > seen[0]:
            applied, seen[0] = opt.applied[-1], len(opt.applied)
        head = global_norm({k: v for k, v in res.grads.items() if k.startswith(HEAD_PREFIX)})
        extra.append((applied, head, backprop_gain(res.record.dh_norm[0, 0])))

    cpu0, wall0 = time.process_time(), time.perf_counter()
    with np.errstate(all="ignore"):  # diverging runs overflow on purpose; train() records and stops them
        hist = train(net, task, config["steps"], batch_size=config["B"], optimizer=opt,
                     clip=None if clip == "none" else clip, clip_threshold=threshold, nonfinite="skip",
                     seed=data_seed, until_solved=True, patience=config["patience"], backend=config["backend"],
                     callback=record)
        test = task.sample(config["test_batch"], test_seed, dtype=net.dtype)
        out = net.predict(test.x)
        test_metric = float(task.metric(out, test)) if np.all(np.isfinite(out)) else float("nan")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    solved_at = hist.attrs["solved_at"]
    run = {"status": hist.attrs["status"], "solved_at": float("nan") if solved_at is None else int(solved_at),
           "test_metric": test_metric, "cpu_seconds": cpu, "wall_seconds": wall}
    rows = []
    for r, (applied, head, gain) in zip(hist.itertuples(index=False), extra):
        total = float(r.grad_norm)  # the pre-clip norm of all parameters, as train() measured it
        share = (head / total) ** 2 if np.isfinite(total) and total > 0 else float("nan")
        rows.append({"step": int(r.step), "loss": float(r.loss), "metric": float(r.metric),
                     "grad_norm": float(r.grad_norm), "clipped": bool(r.clipped), "nonfinite": bool(r.nonfinite),
                     "applied_norm": float(applied), "head_share": float(share), "backprop_gain": gain, **run})
    return rows


# ---------------------------------------------------------------------- the study

def grids(quick: bool, root_seed: int = 0) -> dict[str, tuple[list[dict], int]]:
    """Every sweep of the study: label -> (configs, replicates).

    The runs of a configuration are its ``pair`` numbers (one point each,
    replicates = 1), shared across policies.
    """
    s = sizes(quick)
    configs = []
    for task in TASKS:
        for cell in s["cells"]:
            for policy in s["policies"]:
                clip, threshold = POLICIES[policy]
                for pair in range(s["pairs"]):
                    configs.append({
                        "task": task, "cell": cell, "policy": policy, "clip": clip or "none",
                        "threshold": threshold, "pair": pair, "root_seed": int(root_seed),
                        "T": s["T"], "H": s["H"], "B": s["B"], "scale": s["scale"], "lr": s["lr"],
                        "momentum": s["momentum"], "steps": s["steps"], "patience": s["patience"],
                        "test_batch": s["test_batch"]})
    return {"runs": (configs, 1)}


def run(ctx) -> None:
    """Run the sweep and write ``reports/clipping/``."""
    from . import clipping_report as report

    configs, replicates = grids(ctx.quick, ctx.seed)["runs"]
    steps = ctx.sweep("runs", train_point, configs, replicates)
    rep = ctx.report(title=TITLE, question=QUESTION)
    report.write(rep, steps, sizes(ctx.quick))
    per_run = steps.drop_duplicates(RUN)
    ctx.finish(rep, compute={"runs": len(per_run), "training CPU seconds (sum over runs)":
                             round(float(per_run["cpu_seconds"].sum()), 1),
                             "largest run (CPU s)": round(float(per_run["cpu_seconds"].max()), 2)})


RUN = ["task", "cell", "policy", "pair"]


def run_summary(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per run: outcome, steps to solve, clipping and non-finite counts, pre-clip norm quantiles."""
    def one(g: pd.DataFrame) -> pd.Series:
        norms = g["grad_norm"].to_numpy()
        finite = norms[np.isfinite(norms)]
        q = np.quantile(finite, [0.5, 0.9, 0.99]) if len(finite) else np.full(3, np.nan)
        skipped = (~np.isfinite(g["loss"].to_numpy()) | ~np.isfinite(norms))
        first = g.iloc[0]
        with np.errstate(all="ignore"):
            shrink = g["applied_norm"].to_numpy() / norms
        late = g["head_share"].to_numpy()[-20:]
        peak = int(np.argmax(np.where(np.isfinite(norms), norms, -np.inf))) if len(finite) else 0
        return pd.Series({
            "clip": first["clip"], "threshold": first["threshold"],
            "status": first["status"], "solved": first["status"] == "solved",
            "diverged": first["status"] == "diverged", "solved_at": first["solved_at"],
            "steps_run": len(g), "clipped_fraction": float(g["clipped"].astype(bool).mean()),
            "step_shrink": float(np.nanmedian(shrink)) if np.isfinite(shrink).any() else np.nan,
            "nonfinite_steps": int(skipped.sum()),
            "norm_median": q[0], "norm_q90": q[1], "norm_q99": q[2],
            "norm_max": float(finite.max()) if len(finite) else np.nan,
            "norm_first": float(norms[0]),
            "exceeded_pascanu": bool((finite > PASCANU_THRESHOLD).any()),
            "head_share_at_peak": float(g["head_share"].to_numpy()[peak]),
            "gain_at_peak": float(g["backprop_gain"].to_numpy()[peak]),
            "gain_first": float(g["backprop_gain"].iloc[0]),
            "head_share_last20": float(np.nanmedian(late)) if np.isfinite(late).any() else np.nan,
            "gain_median": float(np.nanmedian(g["backprop_gain"])) if g["backprop_gain"].notna().any() else np.nan,
            "final_loss": float(g["loss"].iloc[-1]), "test_metric": first["test_metric"],
            "cpu_seconds": first["cpu_seconds"], "wall_seconds": first["wall_seconds"],
        })

    return steps.groupby(RUN, sort=False).apply(one, include_groups=False).reset_index()


def policy_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task, cell and policy: success rate with its Wilson interval, steps to solve, divergence, clipping."""
    rows = []
    for (task, cell, policy), g in runs.groupby(["task", "cell", "policy"], sort=False):
        n, k = len(g), int(g["solved"].sum())
        lo, hi = wilson_interval(k, n)
        sa = g.loc[g["solved"], "solved_at"].astype(float)
        rows.append({
            "task": task, "cell": cell, "policy": policy, "runs": n, "solved": k, "success_rate": k / n,
            "success_low": lo, "success_high": hi,
            "steps_to_solve_median": sa.median() if k else np.nan,
            "steps_to_solve_q25": sa.quantile(0.25) if k else np.nan,
            "steps_to_solve_q75": sa.quantile(0.75) if k else np.nan,
            "diverged": int(g["diverged"].sum()), "nonfinite_steps": int(g["nonfinite_steps"].sum()),
            "clipped_fraction_median": g["clipped_fraction"].median(),
            "step_shrink_median": g["step_shrink"].median(),
            "norm_median": g["norm_median"].median(), "norm_q99_median": g["norm_q99"].median(),
            "norm_max": g["norm_max"].max(), "test_metric_median": g["test_metric"].median(),
        })
    return pd.DataFrame(rows)
