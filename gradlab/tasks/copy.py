"""Copy memory (Arjovsky, Shah & Bengio 2016; after Hochreiter & Schmidhuber 1997).

Alphabet: 0 blank, 1 … n data symbols, n + 1 the delimiter. A sequence of
length T + 2L is L data symbols drawn uniformly from {1 … n}, T − 1 blanks,
the delimiter, and L blanks; the target is blanks for T + L steps and then
the L data symbols: the network must recall a short string after a delay of
T steps. Many-to-many, softmax over the n + 1 output symbols (blank and
data), a loss at every step. Arjovsky et al. use n = 8, L = 10.

* chance: emit blanks where the target is blank and guess the L recalled
  symbols uniformly: a loss of L log n per sequence (gradlab sums over the
  steps; Arjovsky et al. quote it per step, L log n / (T + 2L)) and a recall
  accuracy of 1/n;
* metric: recall accuracy, the fraction of the L recalled symbols whose most
  probable output is right;
* solved: recall accuracy ≥ 0.99.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..losses import accuracy
from .base import Batch, Task, check_batch_size, check_dtype, check_length, one_hot, rng_from


class CopyMemory(Task):
    """Copy memory with delay ``T`` (see the module docstring).

    Parameters
    ----------
    T : int
        The delay between the end of the string and its recall, at least 2.
    length : int
        L, the length of the string to remember.
    symbols : int
        n, the number of data symbols.
    """

    mode = "many_to_many"
    head = "softmax"
    metric_name = "recall_accuracy"
    higher_is_better = True
    criterion = 0.99

    def __init__(self, T: int = 100, length: int = 10, symbols: int = 8):
        self.T = check_length("T", T, 2)
        self.length = check_length("length", length, 1)
        self.symbols = check_length("symbols", symbols, 2)
        self.input_size = self.symbols + 2
        self.output_size = self.symbols + 1
        self.name = f"copy_T{self.T}"
        self.baseline = 1.0 / self.symbols
        self.baseline_loss = self.length * float(np.log(self.symbols))

    def sample(self, batch_size: int, seed: Any = None, dtype=np.float64) -> Batch:
        B, dtype, rng = check_batch_size(batch_size), check_dtype(dtype), rng_from(seed)
        L, T = self.length, self.T
        total = T + 2 * L
        data = rng.integers(1, self.symbols + 1, (L, B))
        ids = np.zeros((total, B), np.int64)
        ids[:L] = data
        ids[L + T - 1] = self.symbols + 1  # the delimiter
        y = np.zeros((total, B), np.int64)
        y[T + L:] = data
        return Batch(one_hot(ids, self.input_size, dtype), y)

    def metric(self, outputs: np.ndarray, batch: Batch) -> float:
        L = self.length
        return accuracy(outputs[-L:], batch.y[-L:])


__all__ = ["CopyMemory"]
