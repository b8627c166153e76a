"""Sequence reversal for the encoder–decoder: input length Tx = T, output length Ty = T + 1.

The input is T symbols drawn uniformly from {0 … n−1} (one-hot); the
target is the same symbols in reverse order followed by an end-of-sequence
token (index n), so Ty = T + 1 ≠ Tx. Mode ``seq2seq`` (Sutskever, Vinyals &
Le 2014, who found that reversing the source made the dependencies shorter),
softmax over n + 1 outputs; the decoder reads its previous target (teacher
forcing). The first output needs the last input and the last output the
first: the whole string must pass through the encoder's final state.

* chance: guessing the symbols uniformly (the end token is always at
  position T + 1 and is free): token accuracy 1/n, loss T log n;
* metric: token accuracy over the T reversed symbols (teacher-forced);
* solved: token accuracy ≥ 0.99.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..losses import accuracy
from .base import Batch, Task, check_batch_size, check_dtype, check_length, one_hot, rng_from


class SequenceReversal(Task):
    """Reverse a string of ``T`` symbols, then emit the end token (see the module docstring).

    Parameters
    ----------
    T : int
        Input length, at least 2.
    symbols : int
        n, the size of the alphabet.
    """

    mode = "seq2seq"
    head = "softmax"
    metric_name = "token_accuracy"
    higher_is_better = True
    criterion = 0.99

    def __init__(self, T: int = 10, symbols: int = 8):
        self.T = check_length("T", T, 2)
        self.symbols = check_length("symbols", symbols, 2)
        self.input_size = self.symbols
        self.output_size = self.symbols + 1
        self.eos = self.symbols
        self.name = f"reversal_T{self.T}"
        self.baseline = 1.0 / self.symbols
        self.baseline_loss = self.T * float(np.log(self.symbols))

    def sample(self, batch_size: int, seed: Any = None, dtype=np.float64) -> Batch:
        B, dtype, rng = check_batch_size(batch_size), check_dtype(dtype), rng_from(seed)
        ids = rng.integers(0, self.symbols, (self.T, B))
        y = np.concatenate([ids[::-1], np.full((1, B), self.eos)], axis=0).astype(np.int64)
        return Batch(one_hot(ids, self.input_size, dtype), y, None, {"eos": self.eos})

    def metric(self, outputs: np.ndarray, batch: Batch) -> float:
        return accuracy(outputs[:-1], batch.y[:-1])


__all__ = ["SequenceReversal"]
