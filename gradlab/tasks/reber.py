"""The embedded Reber grammar (Reber 1967; Cleeremans, Servan-Schreiber & McClelland 1989;
Hochreiter & Schmidhuber 1997, experiment 1).

The Reber grammar is a finite automaton over the symbols B T S X P V E::

    0 -B-> 1    1 -T-> 2   1 -P-> 3    2 -S-> 2   2 -X-> 4
    3 -T-> 3    3 -V-> 5   4 -X-> 3    4 -S-> 6   5 -P-> 4
    5 -V-> 6    6 -E-> end

(e.g. BTSSXXTVVE, BPVVE), each branch taken with probability 1/2. An
embedded Reber string is B, then T or P, then a Reber string, then the same
T or P again, then E (e.g. BT BTXSE TE without the spaces). The second symbol
must be remembered across the whole inner string to predict the
second-to-last: a long-range dependency that a network without memory gets
right half of the time.

The task is next-symbol prediction: many-to-many, softmax over the 7
symbols, input one-hot of symbol t, target symbol t + 1; strings of a batch
are padded to the longest and the padding is masked out.

* a string is predicted correctly when at every step the most probable next
  symbol is one the grammar allows there; metric: the fraction of strings
  predicted correctly;
* chance: 0.5, the fraction a predictor gets that knows the inner grammar
  but not the embedding — it must guess the second-to-last symbol (a
  uniform guesser does far worse); its loss is log 2 per string above the
  grammar's own entropy;
* solved: every string of a batch predicted correctly (fraction 1), as H&S
  require on their test set.

:func:`generate` draws strings, :func:`is_valid` checks them and
:func:`legal_successors` lists what may follow each prefix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Batch, Task, check_batch_size, check_dtype, one_hot, rng_from

SYMBOLS = "BTSXPVE"
INDEX = {s: i for i, s in enumerate(SYMBOLS)}

#: The Reber automaton: state -> {symbol: next state}; state 7 is the end.
REBER = {
    0: {"B": 1},
    1: {"T": 2, "P": 3},
    2: {"S": 2, "X": 4},
    3: {"T": 3, "V": 5},
    4: {"X": 3, "S": 6},
    5: {"P": 4, "V": 6},
    6: {"E": 7},
}
END = 7


def generate_reber(rng: np.random.Generator) -> str:
    """One string of the (plain) Reber grammar, every branch with probability 1/2."""
    state, out = 0, []
    while state != END:
        options = sorted(REBER[state])
        symbol = options[int(rng.integers(len(options)))]
        out.append(symbol)
        state = REBER[state][symbol]
    return "".join(out)


def generate(seed: Any = None, embedded: bool = True) -> str:
    """One (embedded) Reber string drawn with ``seed`` (an int, SeedSequence or Generator)."""
    rng = rng_from(seed)
    inner = generate_reber(rng)
    if not embedded:
        return inner
    branch = "TP"[int(rng.integers(2))]
    return "B" + branch + inner + branch + "E"


def legal_successors(s: str, embedded: bool = True) -> list[set[str]] | None:
    """For every prefix s[:t+1], the set of symbols the grammar allows next.

    Returns None if ``s`` leaves the grammar at some point. The set after the
    final E is empty.
    """
    out: list[set[str]] = []
    if not embedded:
        state = 0
        for ch in s:
            if state == END or ch not in REBER[state]:
                return None
            state = REBER[state][ch]
            out.append(set(REBER[state]) if state != END else set())
        return out
    # the embedded automaton: B, branch, inner Reber string, the same branch, E
    phase, branch, state = "start", None, 0
    for ch in s:
        if phase == "start":
            if ch != "B":
                return None
            phase, nxt = "branch", {"T", "P"}
        elif phase == "branch":
            if ch not in "TP":
                return None
            branch, phase, nxt = ch, "inner", {"B"}
        elif phase == "inner":
            if ch not in REBER[state]:
                return None
            state = REBER[state][ch]
            nxt = set(REBER[state]) if state != END else {branch}
            if state == END:
                phase = "close"
        elif phase == "close":
            if ch != branch:
                return None
            phase, nxt = "end", {"E"}
        elif phase == "end":
            if ch != "E":
                return None
            phase, nxt = "done", set()
        else:
            return None
        out.append(nxt)
    return out


def is_valid(s: str, embedded: bool = True) -> bool:
    """Whether ``s`` is a complete string of the (embedded) Reber grammar."""
    if not isinstance(s, str) or not s:
        return False
    succ = legal_successors(s, embedded)
    return succ is not None and succ[-1] == set() and s.endswith("E")


class EmbeddedReber(Task):
    """Next-symbol prediction on embedded Reber strings (see the module docstring).

    Parameters
    ----------
    max_length : int, optional
        Strings longer than this are redrawn (the grammar's strings are
        unbounded, though rarely longer than 30); None keeps every string.
    """

    name = "embedded_reber"
    mode = "many_to_many"
    head = "softmax"
    input_size = output_size = len(SYMBOLS)
    metric_name = "fraction_strings_correct"
    higher_is_better = True
    baseline = 0.5
    baseline_loss = float(np.log(2))  # above the grammar's entropy, per string
    criterion = 1.0

    def __init__(self, max_length: int | None = None):
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer))
                                       or max_length < 9):
            raise ValueError(f"max_length: expected None or an integer >= 9 (the shortest embedded string), got {max_length!r}")
        self.max_length = max_length

    def strings(self, batch_size: int, seed: Any = None) -> list[str]:
        """``batch_size`` embedded Reber strings."""
        rng = rng_from(seed)
        out = []
        for _ in range(check_batch_size(batch_size)):
            s = generate(rng)
            while self.max_length is not None and len(s) > self.max_length:
                s = generate(rng)
            out.append(s)
        return out

    def sample(self, batch_size: int, seed: Any = None, dtype=np.float64) -> Batch:
        dtype = check_dtype(dtype)
        strings = self.strings(batch_size, seed)
        B, T = len(strings), max(len(s) for s in strings) - 1
        ids = np.zeros((T + 1, B), np.int64)
        mask = np.zeros((T, B), dtype)
        legal = np.zeros((T, B, len(SYMBOLS)), bool)
        for b, s in enumerate(strings):
            ids[: len(s), b] = [INDEX[c] for c in s]
            mask[: len(s) - 1, b] = 1.0
            for t, nxt in enumerate(legal_successors(s)[:-1]):
                legal[t, b, [INDEX[c] for c in nxt]] = True
        x = one_hot(ids[:-1], len(SYMBOLS), dtype) * mask[..., None]
        return Batch(x, ids[1:] * (mask > 0), mask, {"legal": legal, "strings": strings})

    def metric(self, outputs: np.ndarray, batch: Batch) -> float:
        legal = batch.info["legal"]
        pred = np.argmax(outputs, axis=-1)
        ok = np.take_along_axis(legal, pred[..., None], axis=-1)[..., 0] | (batch.mask == 0)
        return float(np.mean(ok.all(axis=0)))


__all__ = ["EmbeddedReber", "REBER", "SYMBOLS", "generate", "generate_reber", "is_valid", "legal_successors"]
