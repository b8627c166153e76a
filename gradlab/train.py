"""Training a network on a task: optimiser, clipping policy, non-finite policy, history (SPEC §5).

:func:`train` runs ``steps`` optimiser steps, each on a fresh batch drawn
from the task (so the metric of a batch, computed before the update, is a
held-out estimate), stops early once the task's criterion holds for
``patience`` consecutive steps, and returns a tidy :class:`pandas.DataFrame`,
one row per step:

==========  ================================================================
step        1, 2, …
loss        the batch loss (gradlab's convention: Σ over scored steps, mean over the batch)
metric      the task's metric on the batch (``history.attrs["metric"]`` names it)
grad_norm   the global L2 norm of all parameter gradients **before** clipping
clipped     whether the clipping policy changed the gradient (see below)
nonfinite   whether the gradient held inf or nan (the step was not applied)
lr          the learning rate of the step
wall_time   seconds since the start of training
==========  ================================================================

Clipping policies (``clip=``, with ``clip_threshold=``):

* ``None`` / ``"none"`` — the raw gradient;
* ``"norm"`` — rescale to global norm ``clip_threshold`` when above it
  (Pascanu, Mikolov & Bengio 2013; :func:`gradlab.clip.clip_norm`);
  clipped = norm > threshold;
* ``"value"`` — clip every element to [−v, v] (the notes; Karpathy's
  min-char-rnn; :func:`gradlab.clip.clip_value`); clipped = some |g| > v;
* ``"step"`` — clip ∂L/∂h_t (and ∂L/∂c_t) elementwise inside BPTT at every
  step (``clip_step`` of :func:`gradlab.backward`). No unclipped gradient
  exists here, so ``grad_norm`` is that of the gradient BPTT returned, and
  ``clipped`` says that some step's recorded ‖∂L/∂h_t‖₂ (or ‖∂L/∂c_t‖₂)
  exceeded v — necessary for the elementwise clip to bind (an element above v
  makes the norm exceed v), so False means it certainly did not.

A non-finite gradient is never applied (``nonfinite=``): ``"skip"`` records
the step with ``nonfinite=True``, leaves the parameters and the optimiser
state untouched and goes on; ``"raise"`` raises
:class:`gradlab.clip.NonFiniteGradientError` carrying the history so far as
``error.history``. Training stops cleanly — the history kept,
``history.attrs["status"] == "diverged"`` — when the loss itself is not
finite (the forward pass overflowed), when an update would make a parameter
non-finite (it is undone), or after ``max_consecutive_skips`` skipped steps
in a row.

``history.attrs`` also holds ``task``, ``metric``, ``baseline``,
``criterion``, ``solved_at`` (the first step at which the criterion had held
for ``patience`` steps, or None), ``skipped`` (how many steps were not
applied) and ``status``, why training stopped: ``"solved"``, ``"max_steps"``,
``"diverged"`` or ``"stopped"`` (by the callback).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from . import clip as cliplib
from .network import Network, _check_backend
from .optim import Optimizer, make_optimizer, make_schedule
from .tasks.base import Task, rng_from

CLIP_POLICIES = (None, "none", "norm", "value", "step")
NONFINITE_POLICIES = ("skip", "raise")
COLUMNS = ("step", "loss", "metric", "grad_norm", "clipped", "nonfinite", "lr", "wall_time")


class _Progress:
    """tqdm when it is installed, else one line on stderr rewritten at most twice a second."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.enabled, self.total, self.desc = enabled, total, desc
        self.bar, self.last = None, 0.0
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, leave=True)
            except ImportError:
                self.bar = None

    def update(self, step: int, loss: float, metric: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4g}", metric=f"{metric:.4g}", refresh=False)
            return
        now = time.perf_counter()
        if now - self.last >= 0.5 or step == self.total:
            self.last = now
            sys.stderr.write(f"\r{self.desc}: step {step}/{self.total}  loss {loss:.4g}  metric {metric:.4g}")
            sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def _check_fits(network: Network, task: Task) -> None:
    want = {"input_size": task.input_size, "output_size": task.output_size, "head": task.head, "mode": task.mode}
    got = {k: getattr(network, k) for k in want}
    if want != got:
        diff = ", ".join(f"{k} {got[k]!r} (task needs {want[k]!r})" for k in want if want[k] != got[k])
        raise ValueError(f"network: does not fit the task {task.name!r}: {diff}; task.network(cell, H) builds one that does")


def train(
    network: Network,
    task: Task,
    steps: int = 1000,
    *,
    batch_size: int = 32,
    optimizer: str | Optimizer = "adam",
    lr: float | None = None,
    schedule: Any = None,
    clip: str | None = None,
    clip_threshold: float | None = None,
    nonfinite: str = "skip",
    tbptt: int | None = None,
    seed: int = 0,
    until_solved: bool = True,
    patience: int = 1,
    max_consecutive_skips: int = 10,
    progress: bool = False,
    backend: str | None = None,
    callback: Callable[[int, Any], Any] | None = None,
) -> pd.DataFrame:
    """Train ``network`` on ``task`` and return the history (see the module docstring).

    Parameters
    ----------
    network : Network
        Trained in place; its sizes, head and mode must fit the task.
    task : gradlab.tasks.Task
    steps : int
        The most optimiser steps to take.
    batch_size : int
        Sequences per step, drawn fresh from the task every step.
    optimizer : {"sgd", "momentum", "adam"} or Optimizer
        See :mod:`gradlab.optim`.
    lr : float, optional
        The base learning rate; the optimiser's default when None.
    schedule : None, "constant" or a schedule such as ``StepDecay(every, factor)``
    clip : {None, "none", "norm", "value", "step"}
        The clipping policy; every policy but None/"none" needs ``clip_threshold``.
    clip_threshold : float
        The norm, value or per-step bound.
    nonfinite : {"skip", "raise"}
        What to do with a gradient that holds inf or nan.
    tbptt : int, optional
        Truncated BPTT window k (see :meth:`Network.loss_and_grads`); None is full BPTT.
    seed : int
        Seeds the batches: the same seed and network give the same history
        (the wall times aside).
    until_solved : bool
        Stop once ``task.solved(metric)`` has held for ``patience`` consecutive steps.
    patience : int
    max_consecutive_skips : int
        Declare divergence after this many non-finite gradients in a row.
    progress : bool
        Show a progress bar (tqdm if installed, else a line on stderr).
    backend : str, optional
        Overrides the network's backend.
    callback : callable, optional
        ``callback(step, result)`` after every step, with the
        :class:`gradlab.LossAndGrads` of the batch (before clipping); a true
        return value stops training (status ``"stopped"``).

    Returns
    -------
    pandas.DataFrame
        The history, with ``attrs`` as in the module docstring.
    """
    if not isinstance(network, Network):
        raise TypeError(f"network: expected a gradlab.Network, got {type(network).__name__}")
    if not isinstance(task, Task):
        raise TypeError(f"task: expected a gradlab.tasks.Task, got {type(task).__name__}")
    _check_fits(network, task)
    steps = _positive_int("steps", steps)
    batch_size = _positive_int("batch_size", batch_size)
    patience = _positive_int("patience", patience)
    max_consecutive_skips = _positive_int("max_consecutive_skips", max_consecutive_skips)
    opt = make_optimizer(optimizer, lr)
    sched = make_schedule(schedule)
    if clip not in CLIP_POLICIES:
        raise ValueError(f"clip: unknown clipping policy {clip!r}; expected one of None, 'none', 'norm', 'value', 'step'")
    clip = None if clip == "none" else clip
    if clip is None and clip_threshold is not None:
        raise ValueError("clip_threshold: given without a clipping policy; set clip='norm', 'value' or 'step'")
    if clip is not None:
        if clip_threshold is None:
            raise ValueError(f"clip_threshold: clip={clip!r} needs a threshold")
        if isinstance(clip_threshold, bool) or not isinstance(clip_threshold, (int, float, np.integer, np.floating)):
            raise TypeError(f"clip_threshold: expected a positive number, got {type(clip_threshold).__name__}")
        clip_threshold = float(clip_threshold)
        if not (clip_threshold > 0 and np.isfinite(clip_threshold)):
            raise ValueError(f"clip_threshold: expected a positive finite number, got {clip_threshold}")
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite: unknown policy {nonfinite!r}; expected 'skip' or 'raise'")
    tbptt = _positive_int("tbptt", tbptt, allow_none=True)
    if tbptt is not None and (network.mode == "seq2seq" or network.bidirectional):
        raise ValueError("tbptt: truncated BPTT needs a unidirectional many_to_many or many_to_one network")
    backend = _check_backend(backend)
    rng = rng_from(seed)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable or None, got {type(callback).__name__}")

    rows: list[dict] = []
    attrs = {"task": task.name, "metric": task.metric_name, "baseline": task.baseline, "criterion": task.criterion,
             "solved_at": None, "skipped": 0, "status": "max_steps"}

    def history() -> pd.DataFrame:
        df = pd.DataFrame(rows, columns=list(COLUMNS))
        df = df.astype({"step": "int64", "loss": "float64", "metric": "float64", "grad_norm": "float64",
                        "clipped": "bool", "nonfinite": "bool", "lr": "float64", "wall_time": "float64"})
        df.attrs.update(attrs)
        return df

    bar = _Progress(steps, progress, task.name)
    start = time.perf_counter()
    consecutive_skips = consecutive_solved = 0
    try:
        for step in range(1, steps + 1):
            lr_t = float(sched(opt.lr, step))
            batch = task.sample(batch_size, rng, dtype=network.dtype)
            res = network.loss_and_grads(batch.x, batch.y, batch.mask, tbptt=tbptt, backend=backend,
                                         clip_step=clip_threshold if clip == "step" else None)
            loss, grads = res.loss, res.grads
            metric = task.metric(res.record.outputs, batch) if np.isfinite(loss) else float("nan")
            norm = cliplib.global_norm(grads)
            row = {"step": step, "loss": loss, "metric": metric, "grad_norm": norm, "clipped": False,
                   "nonfinite": not np.isfinite(norm), "lr": lr_t}
            stop = None
            if not np.isfinite(loss) or not np.isfinite(norm):
                attrs["skipped"] += 1
                consecutive_skips += 1
                if nonfinite == "raise":
                    row["wall_time"] = time.perf_counter() - start
                    rows.append(row)
                    attrs["status"] = "diverged"
                    err = cliplib.NonFiniteGradientError(
                        f"step {step}: the loss is {loss} and the gradient norm {norm}; nonfinite='raise'")
                    err.history = history()
                    raise err
                if not np.isfinite(loss):
                    stop = "diverged"
                elif consecutive_skips >= max_consecutive_skips:
                    stop = "diverged"
            else:
                consecutive_skips = 0
                if clip == "norm":
                    grads, _ = cliplib.clip_norm(grads, clip_threshold)
                    row["clipped"] = norm > clip_threshold
                elif clip == "value":
                    row["clipped"] = any(bool(np.any(np.abs(g) > clip_threshold)) for g in grads.values())
                    grads = cliplib.clip_value(grads, clip_threshold)
                elif clip == "step":
                    rec = res.record
                    row["clipped"] = bool(np.any(rec.dh_norm > clip_threshold)) or (
                        rec.dc_norm is not None and bool(np.any(rec.dc_norm > clip_threshold)))
                backup = {k: v.copy() for k, v in network.params.items()}
                opt.step(network.params, grads, lr_t)
                if not all(np.isfinite(v).all() for v in network.params.values()):
                    for k, v in backup.items():
                        network.params[k][...] = v
                    stop = "diverged"
            row["wall_time"] = time.perf_counter() - start
            rows.append(row)
            bar.update(step, loss, metric)
            if callback is not None and callback(step, res):
                stop = stop or "stopped"
            consecutive_solved = consecutive_solved + 1 if task.solved(metric) else 0
            if stop is None and consecutive_solved >= patience and attrs["solved_at"] is None:
                attrs["solved_at"] = step
                if until_solved:
                    stop = "solved"
            if stop is not None:
                attrs["status"] = stop
                break
    finally:
        bar.close()
    return history()


__all__ = ["CLIP_POLICIES", "COLUMNS", "NONFINITE_POLICIES", "train"]
