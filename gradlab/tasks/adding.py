"""The adding problem, in its two classic forms.

Each step carries a pair (value, marker); after the last step the network
outputs a function of the two marked values X1 and X2. Many-to-one,
regression (linear head, mean squared error).

``form="le2015"`` — Le, Jaitly & Hinton 2015 ("A simple way to initialize
recurrent networks of rectified linear units"), as also used by Arjovsky et
al. 2016: values U[0, 1], marker 1 at one step of the first half
(t < ⌊T/2⌋) and one of the second half, 0 elsewhere; target X1 + X2; length
exactly T.

* chance: predicting 1 (the target's mean) whatever the input gives
  MSE = Var(X1 + X2) = 2/12 = 1/6 ≈ 0.167 — the baseline Le et al. quote;
* metric: the batch MSE (equal to gradlab's loss, K = 1);
* solved: MSE ≤ 0.01, an RMS error of 0.1 (6 % of the baseline), well
  inside the tolerance of Hochreiter & Schmidhuber's criterion (|error| <
  0.04 on targets scaled by 1/4, i.e. 0.16 on X1 + X2).

``form="hs1997"`` — Hochreiter & Schmidhuber 1997, experiment 4: values
U[−1, 1]; markers: one of the first 10 pairs (X1) and one of the first
T/2 − 1 still unmarked pairs (X2) are marked 1, the first and final pairs
−1 (if not marked), the others 0; a marked first pair has its value set to
0; the length is drawn per batch from [T, T + T/10]; target
0.5 + (X1 + X2)/4 ∈ [0, 1].

* a sequence is correct when |prediction − target| < 0.04; metric: the
  fraction correct;
* chance: predicting 0.5 gets a fraction correct of
  (1 − p₀)(c − c²/4) + p₀ c with c = 0.16 (|X1 + X2| < 0.16, X1 + X2
  triangular on [−2, 2]) and p₀ the probability that the first pair is
  marked, p₀ = 1/n₁ + (1 − 1/n₁)/n₂, n₁ = min(10, T), n₂ = max(1, ⌊T/2⌋ − 1):
  0.154 at T = 100; its MSE is (2 − p₀)/48 ≈ 0.040;
* solved: every sequence of a batch correct (fraction correct = 1). H&S stop
  when the 2000 most recent sequences are correct and the mean error is
  below 0.01: ``gradlab.train(..., patience=ceil(2000 / batch_size))``.

For small T (< 20) the marker windows shrink as n₁ and n₂ say.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Batch, Task, check_batch_size, check_dtype, check_length, rng_from

FORMS = ("le2015", "hs1997")


class Adding(Task):
    """The adding problem (see the module docstring).

    Parameters
    ----------
    T : int
        Sequence length (the minimal length for ``hs1997``), at least 2.
    form : {"le2015", "hs1997"}
    """

    head = "linear"
    mode = "many_to_one"
    input_size = 2
    output_size = 1

    def __init__(self, T: int = 100, form: str = "le2015"):
        self.T = check_length("T", T, 2, " (two marked steps)")
        if form not in FORMS:
            raise ValueError(f"form: unknown form {form!r}; expected one of {', '.join(FORMS)}")
        self.form = form
        self.name = f"adding_{form}_T{self.T}"
        if form == "le2015":
            self.metric_name, self.higher_is_better = "mse", False
            self.baseline = self.baseline_loss = 1.0 / 6.0
            self.criterion = 0.01
        else:
            self.n1, self.n2 = min(10, self.T), max(1, self.T // 2 - 1)
            p0 = 1 / self.n1 + (1 - 1 / self.n1) / self.n2
            c = 0.16
            self.metric_name, self.higher_is_better = "fraction_correct", True
            self.baseline = (1 - p0) * (c - c * c / 4) + p0 * c
            self.baseline_loss = (2 - p0) / 48
            self.criterion = 1.0

    def sample(self, batch_size: int, seed: Any = None, dtype=np.float64) -> Batch:
        B, dtype, rng = check_batch_size(batch_size), check_dtype(dtype), rng_from(seed)
        if self.form == "le2015":
            T = self.T
            x = np.zeros((T, B, 2))
            x[:, :, 0] = rng.uniform(0.0, 1.0, (T, B))
            i1 = rng.integers(0, T // 2, B)
            i2 = rng.integers(T // 2, T, B)
            cols = np.arange(B)
            x[i1, cols, 1] = 1.0
            x[i2, cols, 1] = 1.0
            y = x[i1, cols, 0] + x[i2, cols, 0]
        else:
            T = int(rng.integers(self.T, self.T + self.T // 10 + 1))
            x = np.zeros((T, B, 2))
            x[:, :, 0] = rng.uniform(-1.0, 1.0, (T, B))
            x[0, :, 1] = x[-1, :, 1] = -1.0
            cols = np.arange(B)
            i1 = rng.integers(0, self.n1, B)
            # X2: the k-th still unmarked pair among the first n2 of them
            k = rng.integers(0, self.n2, B)
            i2 = k + (k >= i1)
            x[i1, cols, 1] = 1.0
            x[i2, cols, 1] = 1.0
            x[0, :, 0] = np.where(x[0, :, 1] == 1.0, 0.0, x[0, :, 0])
            y = 0.5 + (x[i1, cols, 0] + x[i2, cols, 0]) / 4.0
        return Batch(np.ascontiguousarray(x, dtype), np.ascontiguousarray(y[:, None], dtype))

    def metric(self, outputs: np.ndarray, batch: Batch) -> float:
        err = np.asarray(outputs, np.float64)[:, 0] - batch.y[:, 0]
        if self.form == "le2015":
            return float(np.mean(err * err))
        return float(np.mean(np.abs(err) < 0.04))


__all__ = ["Adding", "FORMS"]
