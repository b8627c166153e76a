"""Temporal order (Hochreiter & Schmidhuber 1997, experiment 6a): 4 classes.

Symbols a, b, c, d are distractors, X and Y the relevant symbols, B and E
mark the start and the end. A sequence of length drawn per batch from
[T, T + T/10] starts with B, ends with E, and holds X or Y at two positions
t1 ∈ [T/10, 2T/10] and t2 ∈ [5T/10, 6T/10] (H&S: T = 100, t1 ∈ [10, 20],
t2 ∈ [50, 60]); every other position is a random distractor. The class is
the order of the two relevant symbols: XX → 0 (H&S's Q), XY → 1 (R),
YX → 2 (S), YY → 3 (U). Many-to-one, softmax over 4 classes; inputs one-hot
over the 8 symbols in the order a b c d X Y B E.

* chance: accuracy 1/4, loss log 4 ≈ 1.386;
* metric: accuracy;
* solved: every sequence of a batch classified correctly (accuracy 1). H&S
  stop when the 2000 most recent sequences are right (and the mean error is
  below 0.1): ``gradlab.train(..., patience=ceil(2000 / batch_size))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..losses import accuracy
from .base import Batch, Task, check_batch_size, check_dtype, check_length, one_hot, rng_from

SYMBOLS = "abcdXYBE"
X, Y, START, END = 4, 5, 6, 7


class TemporalOrder(Task):
    """Temporal order with 2 relevant symbols and 4 classes (see the module docstring).

    Parameters
    ----------
    T : int
        The minimal sequence length, at least 4 (B, two relevant symbols, E).
    """

    mode = "many_to_one"
    head = "softmax"
    input_size = len(SYMBOLS)
    output_size = 4
    metric_name = "accuracy"
    higher_is_better = True
    baseline = 0.25
    baseline_loss = float(np.log(4))
    criterion = 1.0

    def __init__(self, T: int = 100):
        self.T = check_length("T", T, 4, " (start, two relevant symbols, end)")
        self.name = f"temporal_order_T{self.T}"
        T = self.T
        lo1 = max(1, round(0.1 * T))
        hi1 = max(lo1, round(0.2 * T))
        lo2 = max(hi1 + 1, round(0.5 * T))
        hi2 = min(max(lo2, round(0.6 * T)), T - 2)
        self.t1_range, self.t2_range = (lo1, hi1), (lo2, hi2)

    def sample(self, batch_size: int, seed: Any = None, dtype=np.float64) -> Batch:
        B, dtype, rng = check_batch_size(batch_size), check_dtype(dtype), rng_from(seed)
        T = int(rng.integers(self.T, self.T + self.T // 10 + 1))
        ids = rng.integers(0, 4, (T, B))
        ids[0], ids[-1] = START, END
        cols = np.arange(B)
        t1 = rng.integers(self.t1_range[0], self.t1_range[1] + 1, B)
        t2 = rng.integers(self.t2_range[0], self.t2_range[1] + 1, B)
        s1, s2 = rng.integers(0, 2, B), rng.integers(0, 2, B)  # 0 = X, 1 = Y
        ids[t1, cols] = X + s1
        ids[t2, cols] = X + s2
        return Batch(one_hot(ids, self.input_size, dtype), (2 * s1 + s2).astype(np.int64))

    def metric(self, outputs: np.ndarray, batch: Batch) -> float:
        return accuracy(outputs, batch.y)


__all__ = ["SYMBOLS", "TemporalOrder"]
