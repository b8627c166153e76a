"""How do the gradient profile, its decay rate, λ₁ and the gates evolve while a network learns?

Two sweeps on the adding problem in the form of Le, Jaitly & Hinton (2015)
(values U[0, 1], one marked value X1 in the first half and X2 in the second,
target X1 + X2, chance MSE 1/6):

``evolution``
    The tanh RNN, the GRU and the LSTM (forget-gate bias 1, Gers, Schmidhuber
    & Cummins 2000; Jozefowicz, Zaremba & Sutskever 2015) are trained with
    full BPTT, and at checkpoints of training (step 0 included) a fixed probe
    batch is measured:

    * the gradient profile ‖∂L_T/∂h_{T−k}‖ of the task's own loss, relative to
      its value at k = 0, and its decay rate ρ (:func:`gradlab.dynamics.decay_rate`);
    * for the LSTM also ‖∂L_T/∂c_{T−k}‖ relative to the same ‖∂L_T/∂h_T‖, the
      memory cell's path next to the hidden state's;
    * the gradient that reaches the step of the first marked value X1;
    * the top Lyapunov exponent λ₁ of the forward dynamics on the probe
      inputs (:func:`gradlab.dynamics.lyapunov_spectrum`; for the LSTM that
      of the full state [h; c]);
    * the gates, read from :attr:`gradlab.Trace.gates` of
      :func:`gradlab.forward` (blocks i, f, g, o for the LSTM; r, u, n for the
      GRU): the *keep* gate — the LSTM's forget gate f, and 1 − u for the GRU,
      whose update is h_t = u ⊙ n + (1 − u) ⊙ h_{t−1} (SPEC §2) — and the
      *write* gate — the LSTM's input gate i, the GRU's update gate u — at
      the marked steps and elsewhere;
    * the held-out MSE.

    The measurements are taken inside one :func:`gradlab.train` call by its
    ``callback`` (after the update of the checkpoint's step), so Adam's
    moment estimates are never reset.

``tbptt``
    The GRU is trained at T = 100 with full BPTT and with truncated BPTT
    (Williams & Peng 1990) of windows k = 10 and 50 (``train(..., tbptt=k)``).
    In a many-to-one task only the last window — the last k steps — receives
    a gradient; the state is carried through the earlier windows but the
    gradient is not, so no parameter update ever sees a path longer than k
    steps. X1 lies at least T/2 = 50 steps before the loss, beyond both
    windows; X2 lies inside the last k steps with probability k/50. If only
    dependencies that fit in the window could be learned, the best MSE would
    be Var(X1) + P(X2 outside)·Var(X2) = (1 + max(0, 1 − k/50))/12
    (:func:`window_floor`): 0.150 for k = 10, 0.083 for k = 50. The k = 10
    and full-BPTT arms are also run on a delayed variant
    (:class:`DelayedAdding`: 10 blank steps between the sequence and the
    loss), where no marked value ever falls inside the 10-step window. Each
    run records its learning curve, its held-out MSE, the least-squares
    coefficients of its prediction on X1 and on X2 inside and outside the
    window (:func:`marker_coefficients`), how far back the gradient of its
    last batch reached, and the final ρ, λ₁ and gates. A network that beats
    the floor has learned a dependency longer than its gradient ever
    spanned: the weights are shared over time, so a rule learned from the
    instances inside the window also acts outside it — truncation biases the
    gradient (Tallec & Ollivier 2017, "Unbiasing truncated backpropagation
    through time") rather than setting a hard horizon on what can be learned.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .. import api, dynamics, tasks
from ..tasks.base import Batch
from ..train import train
from ..types import Params

TITLE = "How do gradients and gates evolve during training, and what does truncating BPTT cost?"
QUESTION = ("While the tanh RNN, the GRU and the LSTM learn the adding problem, how do the gradient profile, its "
            "decay rate ρ, the top Lyapunov exponent λ₁ and the gates (LSTM forget and input gates, ‖∂L/∂c_t‖ "
            "against ‖∂L/∂h_t‖; the GRU's update gate) change; and can truncated BPTT with windows of k = 10 "
            "and 50 steps learn a dependency longer than k that full BPTT learns?")

CELLS = ("rnn_tanh", "gru", "lstm")
COLORS = {"rnn_tanh": "tab:blue", "gru": "tab:green", "lstm": "tab:red"}
#: The cell of the truncated-BPTT sweep (the one that learns the adding problem at T = 100 within the budget).
TBPTT_CELL = "gru"
#: Checkpoints of the ``evolution`` sweep as fractions of the training budget.
CHECKPOINT_FRACTIONS = (0.0, 1 / 24, 1 / 12, 1 / 6, 1 / 3, 1 / 2, 2 / 3, 1.0)
#: A unit whose mean keep gate is at least this holds its value for ≳ 1/(1 − 0.9) = 10 steps: a "memory unit".
MEMORY_KEEP = 0.9
#: "Solved": the task's criterion (MSE ≤ 0.01) on this many consecutive training batches.
PATIENCE = 10
#: Training settings shared by both sweeps.
TRAIN = dict(optimizer="adam", lr=0.01, clip="norm", clip_threshold=1.0, batch_size=32)


def sizes(quick: bool) -> dict:
    """The grid's sizes: the default run and the reduced one of ``--quick``."""
    if quick:
        return dict(T=20, H=8, steps=24, probe=8, eval=128, replicates=2, tb_T=100, tb_arms={0: (10, 50), 10: (10,)},
                    tb_H=8, tb_steps=20, tb_eval=128, tb_replicates=1, curve_every=5)
    return dict(T=50, H=16, steps=600, probe=16, eval=256, replicates=5, tb_T=100, tb_arms={0: (10, 50), 10: (10,)},
                tb_H=16, tb_steps=500, tb_eval=1024, tb_replicates=5, curve_every=10)


def checkpoints(steps: int) -> list[int]:
    """The training steps at which the ``evolution`` sweep measures (0 = before training)."""
    return sorted({int(round(f * steps)) for f in CHECKPOINT_FRACTIONS})


def effective_window(k: int, length: int) -> int:
    """How many last steps of a ``length``-step sequence truncated BPTT of window ``k`` reaches.

    :meth:`gradlab.Network.loss_and_grads` cuts the sequence into windows of k
    steps starting at t = 0, so in a many-to-one task the loss's window is the
    last, ((length − 1) mod k) + 1 steps long (k ≥ length: full BPTT, all steps).
    """
    if k < 1 or length < 1:
        raise ValueError(f"k, length: expected positive integers, got {k}, {length}")
    return length if k >= length else (length - 1) % k + 1


def window_floor(k: int, T: int, delay: int = 0) -> float:
    """The adding problem's (Le et al. 2015 form) MSE when only marked values in the last ``k`` steps are used.

    X1 is drawn from the first ⌊T/2⌋ steps and X2 from the other T − ⌊T/2⌋, both U[0, 1]
    (variance 1/12), and ``delay`` blank steps follow (:class:`DelayedAdding`). A
    predictor that uses a marked value only when it lies in the last k of the
    T + delay steps, and its mean 1/2 otherwise, has MSE
    Var(X1)·P(X1 outside) + Var(X2)·P(X2 outside).

    Parameters
    ----------
    k : int
        The window: the number of last steps the gradient reaches (see
        :func:`effective_window`; k ≥ T + delay is full BPTT and gives 0).
    T : int
        The length of the adding sequence.
    delay : int
        Blank steps between the sequence and the loss.
    """
    if k < 1 or T < 2 or delay < 0:
        raise ValueError(f"k, T, delay: expected k >= 1, T >= 2, delay >= 0, got {k}, {T}, {delay}")
    h1, h2 = T // 2, T - T // 2
    reach = k - delay  # how many of the sequence's own last steps the window covers
    in2 = min(max(reach, 0), h2) / h2
    in1 = min(max(reach - h2, 0), h1) / h1
    return ((1 - in1) + (1 - in2)) / 12.0


class DelayedAdding(tasks.Adding):
    """The adding problem (Le et al. 2015 form) followed by ``delay`` blank steps (value 0, marker 0).

    The loss sits after the blanks, so both marked values lie at least
    ``delay + 1`` steps before it: with ``delay ≥ k`` truncated BPTT of window k
    never has a marked value inside its window. Chance, metric and criterion
    are those of :class:`gradlab.tasks.Adding`.

    Parameters
    ----------
    T : int
        Length of the adding sequence (the input has T + delay steps).
    delay : int
        Blank steps appended, ≥ 0.
    """

    def __init__(self, T: int = 100, delay: int = 10):
        super().__init__(T, "le2015")
        if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or delay < 0:
            raise ValueError(f"delay: expected a non-negative integer, got {delay!r}")
        self.delay = int(delay)
        if self.delay:
            self.name = f"{self.name}_delay{self.delay}"

    def sample(self, batch_size, seed=None, dtype=np.float64) -> Batch:
        b = super().sample(batch_size, seed, dtype)
        if not self.delay:
            return b
        blank = np.zeros((self.delay,) + b.x.shape[1:], b.x.dtype)
        return Batch(np.ascontiguousarray(np.concatenate([b.x, blank], axis=0)), b.y)


def marker_positions(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The steps of the two marked values of adding-problem inputs ``x`` (T, B, 2): (i1, i2), each (B,)."""
    marks = np.asarray(x)[:, :, 1] == 1.0
    if not (marks.sum(axis=0) == 2).all():
        raise ValueError("x: expected exactly two marked steps per sequence (the adding problem)")
    idx = np.argsort(~marks, axis=0, kind="stable")[:2]
    return idx[0], idx[1]


def marker_coefficients(pred: np.ndarray, x: np.ndarray, k: int) -> dict:
    """Least-squares coefficients of the prediction on X1 and on X2 inside / outside the last ``k`` steps.

    Fits ``pred ≈ a + b1·X1 + b2_in·X2·[X2 in the last k steps] + b2_out·X2·[outside]``
    on adding-problem inputs: a network that has learned the task has b1 ≈ b2 ≈ 1;
    one that uses only what its gradient window saw has b1 ≈ b2_out ≈ 0.

    Returns
    -------
    dict
        ``b1``, ``b2_in``, ``b2_out`` (NaN where no sequence falls in that case) and ``intercept``.
    """
    x = np.asarray(x, np.float64)
    pred = np.asarray(pred, np.float64).reshape(-1)
    T, B = x.shape[0], x.shape[1]
    i1, i2 = marker_positions(x)
    cols = np.arange(B)
    x1, x2 = x[i1, cols, 0], x[i2, cols, 0]
    inside = i2 >= T - k
    A = np.column_stack([np.ones(B), x1, x2 * inside, x2 * ~inside])
    coef, *_ = np.linalg.lstsq(A, pred, rcond=None)
    return {"intercept": float(coef[0]), "b1": float(coef[1]),
            "b2_in": float(coef[2]) if inside.any() else float("nan"),
            "b2_out": float(coef[3]) if (~inside).any() else float("nan")}


def gate_blocks(cell: str, gates: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(keep, write) gate activations from :attr:`gradlab.Trace.gates` (T, B, G·H); (None, None) without gates.

    LSTM (blocks i, f, g, o): keep = f, write = i. GRU (blocks r, u, n, with
    h_t = u ⊙ n + (1 − u) ⊙ h_{t−1}): keep = 1 − u, write = u.
    """
    g = np.asarray(gates)
    if cell == "lstm":
        H = g.shape[-1] // 4
        return g[..., H:2 * H], g[..., :H]
    if cell in ("gru", "gru_cudnn"):
        H = g.shape[-1] // 3
        u = g[..., H:2 * H]
        return 1.0 - u, u
    return None, None


def _float64(p: Params) -> Params:
    return Params(**{k: None if v is None else np.asarray(v, np.float64) for k, v in p.arrays().items()})


def measure(net, probe, held_out, task, seed: int) -> tuple[dict, dict]:
    """Every measurement of one checkpoint: scalars, and the per-sequence relative profiles.

    Returns
    -------
    scalars : dict
        ``mse`` (held out), ``rho``, ``rho_ci_low``, ``rho_ci_high``, ``lambda1``,
        ``grad_at_x1`` (the relative ‖∂L/∂h‖ at the step of X1, median over the
        probe), and for gated cells the keep/write gate statistics (LSTM also
        ``rho_c``, ``grad_c_at_x1`` and the median ratio ‖∂L/∂c‖/‖∂L/∂h‖ at
        k = 0 and k = T − 1, ``dc_over_dh_first``/``_last``).
    profiles : dict
        ``dh`` and ``dc`` (None unless LSTM): arrays (T, B) indexed by the distance k,
        relative to ‖∂L_T/∂h_T‖ of each sequence.
    """
    cell, T = net.cell, probe.x.shape[0]
    nan = float("nan")
    res = net.loss_and_grads(probe.x, probe.y)  # many-to-one: the loss sits at the last step only
    dh = dynamics.profile_from_dh_norm(res.record.dh_norm[0, 0]).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_h = dh / dh[:1]
        rel_c = None
        if res.record.dc_norm is not None:
            rel_c = dynamics.profile_from_dh_norm(res.record.dc_norm[0, 0]).astype(np.float64) / dh[:1]
    fit = dynamics.decay_rate(rel_h)
    i1, _ = marker_positions(probe.x)
    cols = np.arange(probe.x.shape[1])
    out = {"mse": float(task.metric(net.predict(held_out.x), held_out)), "rho": fit.rho,
           "rho_ci_low": fit.ci_low, "rho_ci_high": fit.ci_high,
           "grad_at_x1": float(np.nanmedian(rel_h[T - 1 - i1, cols]))}
    p = net.layer_params(0)
    x64 = np.asarray(probe.x, np.float64)
    with np.errstate(all="ignore"):
        lyap = dynamics.lyapunov_spectrum(cell, _float64(p), x64, num_exponents=1, seed=seed)
    out["lambda1"] = float(np.median(lyap[:, 0]))
    if rel_c is not None:
        fit_c = dynamics.decay_rate(rel_c)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.nanmedian(rel_c / rel_h, axis=1)
        out.update(rho_c=fit_c.rho, dc_over_dh_first=float(ratio[0]), dc_over_dh_last=float(ratio[-1]),
                   grad_c_at_x1=float(np.nanmedian(rel_c[T - 1 - i1, cols])))
    keep, write = gate_blocks(cell, api.forward(cell, p, probe.x).gates)
    stats = {"keep_mean": nan, **{f"keep_q{q:02d}": nan for q in (5, 25, 50, 75, 95)}, "keep_top_unit": nan,
             "memory_units": nan, "keep_marker": nan, "keep_other": nan, "write_marker": nan, "write_other": nan}
    if keep is not None:
        marks = np.asarray(probe.x)[:, :, 1] == 1.0  # (T, B)
        qs = np.quantile(keep, [0.05, 0.25, 0.5, 0.75, 0.95])
        unit = keep.mean(axis=(0, 1))  # each unit's mean keep gate over steps and sequences
        stats.update(keep_mean=float(keep.mean()), **{f"keep_q{q:02d}": float(v) for q, v in zip((5, 25, 50, 75, 95), qs)},
                     keep_top_unit=float(unit.max()), memory_units=int((unit >= MEMORY_KEEP).sum()),
                     keep_marker=float(keep[marks].mean()), keep_other=float(keep[~marks].mean()),
                     write_marker=float(write[marks].mean()), write_other=float(write[~marks].mean()))
    out.update(stats)
    return out, {"dh": rel_h, "dc": rel_c}


def _seeds(seed: int) -> tuple[int, np.random.SeedSequence, np.random.SeedSequence, np.random.SeedSequence]:
    weights, data, probe, held_out = np.random.SeedSequence(seed).spawn(4)
    return int(weights.generate_state(1)[0]), data, probe, held_out


def _curve_rows(hist: pd.DataFrame, every: int) -> list[dict]:
    """The batch metric's median over consecutive windows of ``every`` steps (one row per window)."""
    m = hist["metric"].to_numpy()
    rows = []
    for lo in range(0, len(m), every):
        w = m[lo:lo + every]
        rows.append({"row": "curve", "step": int(lo + len(w)),
                     "curve_mse": float(np.nanmedian(w)) if np.isfinite(w).any() else float("nan")})
    return rows


# ---------------------------------------------------------------------- grid points (run on Dask workers)

def evolution_point(config: dict, seed: int) -> list[dict]:
    """Train one network with full BPTT; measure the probe batch at every checkpoint.

    Rows: ``row == "checkpoint"`` (one per checkpoint: :func:`measure`'s scalars),
    ``row == "profile"`` (per checkpoint, distance k and probe sequence: ``dh_rel``,
    ``dc_rel``), ``row == "curve"`` (the batch MSE per window of steps) and one
    ``row == "summary"`` (``steps_run``, ``solved_at``, ``status``, ``cpu_time``).
    """
    start = time.process_time()
    task = tasks.Adding(config["T"], "le2015")
    w_seed, data_seed, probe_seed, eval_seed = _seeds(seed)
    net = task.network(config["cell"], config["H"], dtype=config["dtype"], seed=w_seed, backend=config["backend"])
    probe = task.sample(config["probe"], probe_seed, dtype=config["dtype"])
    held_out = task.sample(config["eval"], eval_seed, dtype=config["dtype"])
    marks = set(checkpoints(config["steps"]))
    rows: list[dict] = []

    def record(step: int) -> None:
        scalars, prof = measure(net, probe, held_out, task, seed)
        rows.append({"row": "checkpoint", "step": step, **scalars})
        K, B = prof["dh"].shape
        dc = prof["dc"]
        rows.extend({"row": "profile", "step": step, "k": k, "sequence": b, "dh_rel": float(prof["dh"][k, b]),
                     "dc_rel": float("nan") if dc is None else float(dc[k, b])}
                    for k in range(K) for b in range(B))

    record(0)
    hist = train(net, task, config["steps"], seed=data_seed, until_solved=False, patience=PATIENCE,
                 backend=config["backend"], callback=lambda step, _res: record(step) if step in marks else None,
                 **TRAIN)
    rows += _curve_rows(hist, config["curve_every"])
    rows.append({"row": "summary", **_run_summary(hist), "cpu_time": time.process_time() - start})
    return rows


def tbptt_point(config: dict, seed: int) -> list[dict]:
    """Train the GRU with BPTT truncated to ``k`` steps (k ≥ T + delay: full BPTT); learning curve and final state.

    Rows: ``row == "curve"`` and one ``row == "summary"`` with the held-out MSE, the
    marker coefficients, ``window`` (:func:`effective_window`), ``grad_reach`` (the largest distance k' at which the last
    training batch had a nonzero ‖∂L/∂h_{T−1−k'}‖), ``floor`` (:func:`window_floor`),
    ``steps_run``, ``solved_at``, ``cpu_time`` and :func:`measure`'s scalars after training.
    """
    start = time.process_time()
    T, k, delay = config["T"], config["k"], config["delay"]
    task = DelayedAdding(T, delay)
    w_seed, data_seed, probe_seed, eval_seed = _seeds(seed)
    net = task.network(config["cell"], config["H"], dtype=config["dtype"], seed=w_seed, backend=config["backend"])
    probe = task.sample(config["probe"], probe_seed, dtype=config["dtype"])
    held_out = task.sample(config["eval"], eval_seed, dtype=config["dtype"])
    last = {}

    def keep_last(step: int, res) -> None:
        last["dh_norm"] = res.record.dh_norm[0, 0]

    hist = train(net, task, config["steps"], seed=data_seed, until_solved=False, patience=PATIENCE,
                 tbptt=None if k >= T + delay else k, backend=config["backend"], callback=keep_last, **TRAIN)
    reach = np.flatnonzero((dynamics.profile_from_dh_norm(last["dh_norm"]) > 0).any(axis=1))
    scalars, _ = measure(net, probe, held_out, task, seed)
    window = effective_window(k, T + delay)
    summary = {"row": "summary", **_run_summary(hist), "window": window,
               "grad_reach": int(reach.max()) if reach.size else -1, "floor": window_floor(window, T, delay),
               **marker_coefficients(net.predict(held_out.x), held_out.x, window),
               **scalars, "cpu_time": time.process_time() - start}
    return _curve_rows(hist, config["curve_every"]) + [summary]


def _run_summary(hist: pd.DataFrame) -> dict:
    solved = hist.attrs["solved_at"]
    return {"steps_run": int(len(hist)), "status": hist.attrs["status"],
            "solved_at": float("nan") if solved is None else float(solved)}


# ---------------------------------------------------------------------- the study

def grids(quick: bool) -> dict[str, tuple[list[dict], int]]:
    """Every sweep of the study: label -> (configs, replicates)."""
    s = sizes(quick)
    evo = [{"cell": c, "T": s["T"], "H": s["H"], "steps": s["steps"], "probe": s["probe"], "eval": s["eval"],
            "curve_every": s["curve_every"]} for c in CELLS]
    tb = [{"cell": TBPTT_CELL, "T": s["tb_T"], "delay": d, "k": k, "H": s["tb_H"], "steps": s["tb_steps"],
           "probe": s["probe"], "eval": s["tb_eval"], "curve_every": s["curve_every"]}
          for d, ks in s["tb_arms"].items() for k in (*ks, s["tb_T"] + d)]
    return {"evolution": (evo, s["replicates"]), "tbptt": (tb, s["tb_replicates"])}


def run(ctx) -> None:
    """Run the sweeps and write ``reports/training_dynamics/``."""
    from . import training_dynamics_report as report

    g = grids(ctx.quick)
    results = {label: ctx.sweep(label, fn, *g[label])
               for label, fn in (("evolution", evolution_point), ("tbptt", tbptt_point))}
    rep = ctx.report(title=TITLE, question=QUESTION)
    report.write(rep, results, sizes(ctx.quick))
    ctx.finish(rep)
