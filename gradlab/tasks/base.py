"""What every task provides: seeded batches, a metric, its chance baseline and a success criterion."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..validate import FLOAT_DTYPES


@dataclass
class Batch:
    """One batch of a task, time-major.

    Attributes
    ----------
    x : ndarray, shape (T, B, D)
        Inputs.
    y : ndarray
        Targets in the shape :meth:`gradlab.Network.loss_and_grads` expects
        for the task's head and mode.
    mask : ndarray, shape (T, B) or (Ty, B), or None
        1 where a step is scored, 0 on padding or unscored steps.
    info : dict
        Whatever the task's metric needs besides ``y`` (e.g. the legal
        successors of a Reber string).
    """

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def check_length(name: str, value: Any, minimum: int = 2, why: str = "") -> int:
    """A sequence-length argument: an integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected at least {minimum}{why}, got {value}")
    return int(value)


def check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    return int(batch_size)


def check_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    return dtype


def rng_from(seed: Any) -> np.random.Generator:
    """A Generator from an int, a SeedSequence, a Generator (used as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer, np.random.SeedSequence)) and not isinstance(seed, bool):
        return np.random.default_rng(seed)
    raise TypeError(f"seed: expected an int, a SeedSequence, a numpy Generator or None, got {type(seed).__name__}")


def one_hot(ids: np.ndarray, n: int, dtype) -> np.ndarray:
    """One-hot vectors of ``ids`` along a new last axis of size ``n``."""
    out = np.zeros(ids.shape + (n,), dtype)
    np.put_along_axis(out, ids[..., None].astype(np.intp), 1.0, axis=-1)
    return out


def teacher_forced_batch(targets: list[np.ndarray], vocab_size: int, dtype, info: dict | None = None) -> Batch:
    """A language-model batch of the notes: x⟨1⟩ = 0, x⟨t+1⟩ = one-hot(y⟨t⟩), targets ``y``, padding masked out.

    ``targets`` holds one int array of symbol ids per sequence (any lengths);
    the batch is as long as the longest.
    """
    T, B = max(len(t) for t in targets), len(targets)
    y = np.zeros((T, B), np.int64)
    mask = np.zeros((T, B), dtype)
    x = np.zeros((T, B, vocab_size), dtype)
    for b, t in enumerate(targets):
        y[: len(t), b] = t
        mask[: len(t), b] = 1.0
        x[1 : len(t), b] = one_hot(t[:-1], vocab_size, dtype)
    return Batch(x, y, mask, dict(info or {}))


class Task(ABC):
    """A long-range learning task, generated on the fly from a seed.

    Subclasses set the class or instance attributes below and implement
    :meth:`sample` and :meth:`metric`.

    Attributes
    ----------
    name : str
    input_size, output_size : int
        D and K of a network that solves it.
    head : {"softmax", "linear"}
    mode : {"many_to_many", "many_to_one", "seq2seq"}
    metric_name : str
        What :meth:`metric` measures.
    higher_is_better : bool
    baseline : float
        The metric at chance (how it is defined is in each task's docstring).
    baseline_loss : float
        The loss (gradlab's convention: summed over scored steps, mean over
        the batch) of the same chance predictor.
    criterion : float
        The task is solved when the metric reaches it (≥ if higher is
        better, ≤ otherwise).
    """

    name = "task"
    input_size: int
    output_size: int
    head = "softmax"
    mode = "many_to_many"
    metric_name = "accuracy"
    higher_is_better = True
    baseline: float
    baseline_loss: float
    criterion: float

    @abstractmethod
    def sample(self, batch_size: int, seed: Any = None, dtype=np.float64) -> Batch:
        """A batch of ``batch_size`` sequences drawn with ``seed`` (int, SeedSequence or Generator)."""

    @abstractmethod
    def metric(self, outputs: np.ndarray, batch: Batch) -> float:
        """The task's metric of the head's ``outputs`` (logits or predictions) on ``batch``."""

    def _set_unigram_baseline(self, counts: np.ndarray, n_sequences: int, criterion_fraction: float) -> np.ndarray:
        """Chance level of a language model from its target symbol ``counts``: the unigram entropy H₁.

        Sets ``unigram_entropy``, ``baseline`` (H₁ per symbol), ``baseline_loss``
        (H₁ × symbols per sequence), ``uniform_entropy`` (log V) and
        ``criterion`` (``criterion_fraction`` × H₁); returns the unigram probabilities.
        """
        p = counts / counts.sum()
        nz = p[p > 0]
        self.unigram_entropy = float(-(nz * np.log(nz)).sum())
        self.baseline = self.unigram_entropy
        self.baseline_loss = self.unigram_entropy * counts.sum() / n_sequences
        self.uniform_entropy = float(np.log(len(counts)))
        self.criterion = criterion_fraction * self.unigram_entropy
        return p

    def solved(self, metric: float) -> bool:
        """Whether ``metric`` meets the success criterion."""
        if not np.isfinite(metric):
            return False
        return metric >= self.criterion if self.higher_is_better else metric <= self.criterion

    def network(self, cell: str, hidden_size: int, **kwargs: Any):
        """A :class:`gradlab.Network` whose sizes, head and mode fit this task."""
        from ..network import Network

        return Network(cell, self.input_size, hidden_size, self.output_size, head=self.head, mode=self.mode, **kwargs)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name}: metric {self.metric_name}, chance {self.baseline:.4g}, "
                f"criterion {'>=' if self.higher_is_better else '<='} {self.criterion:.4g})")


__all__ = ["Batch", "Task", "check_batch_size", "check_dtype", "check_length", "one_hot", "rng_from",
           "teacher_forced_batch"]
