"""A character-level corpus for language models and sampling novel sequences.

Text is read from any UTF-8 file (or from a string) — by default from the
small corpus that ships inside gradlab (``gradlab/tasks/data/corpus.txt``:
about 300 lines of English written for the project, hand-written prose and
sentences from a small generated grammar). Every non-empty line is one
sequence, ending with an end-of-sequence token; a line longer than
``max_length`` characters is wrapped at spaces into pieces, and only the last
piece ends with the token.

The vocabulary is every character that occurs, sorted, after the
end-of-sequence token at index 0 (shown as ``"<eos>"``). The model of the
notes: x⟨1⟩ = 0, then x⟨t+1⟩ = y⟨t⟩ (one-hot), and the targets are the
characters followed by the end token; many-to-many, softmax over V, padding
masked out.

* metric: cross-entropy per scored character, in nats (the loss divided by
  the number of scored steps per sequence);
* chance: the unigram entropy H₁ of the targets — what the best model that
  ignores context scores (a uniform guesser scores log V, worse);
* solved: per-character cross-entropy ≤ H₁ / 2 — the model uses context
  (on the default corpus, H₁ ≈ 2.95 nats; a one-layer LSTM with 96 units,
  Adam at 0.005 and batches of 16 lines gets there in about 400 steps).
"""

from __future__ import annotations

import os
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..losses import log_softmax
from .base import Batch, Task, check_batch_size, check_dtype, check_length, rng_from, teacher_forced_batch

EOS = "<eos>"


def default_corpus_path() -> Path:
    """Where the corpus that ships with gradlab is installed."""
    return Path(str(resources.files("gradlab.tasks") / "data" / "corpus.txt"))


def _read(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path: no such file: {p}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"path: {p} is not UTF-8 text ({e})") from None


class CharCorpus(Task):
    """Character-level language modelling on a text (see the module docstring).

    Parameters
    ----------
    path : str or path-like, optional
        A UTF-8 text file; the default corpus when both ``path`` and ``text`` are None.
    text : str, optional
        The text itself, instead of a file.
    max_length : int
        The longest piece of a line taken as one sequence, at least 2.

    Attributes
    ----------
    vocab : list of str
        ``vocab[0]`` is ``"<eos>"``, then the characters in sorted order.
    sequences : list of (str, bool)
        Every piece of text and whether it ends with the end token.
    """

    mode = "many_to_many"
    head = "softmax"
    metric_name = "nats_per_char"
    higher_is_better = False
    eos = 0

    def __init__(self, path: str | os.PathLike | None = None, *, text: str | None = None, max_length: int = 120):
        if path is not None and text is not None:
            raise ValueError("text: give a path or a text, not both")
        self.max_length = check_length("max_length", max_length, 2)
        if text is None:
            source = default_corpus_path() if path is None else path
            text = _read(source)
            where = f"path: {source}"
        elif not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        else:
            where = "text"
        self.sequences: list[tuple[str, bool]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            pieces = textwrap.wrap(line, self.max_length, break_long_words=True, replace_whitespace=False) or [line]
            self.sequences += [(piece, i == len(pieces) - 1) for i, piece in enumerate(pieces)]
        if not self.sequences:
            raise ValueError(f"{where} holds no text (empty or only whitespace)")
        chars = sorted({c for s, _ in self.sequences for c in s})
        self.vocab = [EOS] + chars
        self.index = {c: i for i, c in enumerate(self.vocab) if i > 0}
        self.input_size = self.output_size = len(self.vocab)
        self.name = "chars" if path is None and where != "text" else f"chars_{Path(str(path)).stem if path else 'text'}"

        counts = np.zeros(len(self.vocab))
        for s, ends in self.sequences:
            for c in s:
                counts[self.index[c]] += 1
            counts[self.eos] += ends
        self._set_unigram_baseline(counts, len(self.sequences), 0.5)

    @property
    def vocab_size(self) -> int:
        """V, including the end token."""
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """Character ids of ``text`` (every character must be in the vocabulary)."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        unknown = sorted({c for c in text if c not in self.index})
        if unknown:
            raise ValueError(f"text: characters {unknown!r} are not in the corpus's vocabulary")
        return np.array([self.index[c] for c in text], np.int64)

    def decode(self, ids) -> str:
        """The text of ``ids``, up to (not including) the first end token."""
        out = []
        for i in np.asarray(ids, np.int64).ravel():
            if i == self.eos:
                break
            out.append(self.vocab[int(i)])
        return "".join(out)

    def sample(self, batch_size: int, seed: Any = None, dtype=np.float64) -> Batch:
        B, dtype, rng = check_batch_size(batch_size), check_dtype(dtype), rng_from(seed)
        return self.batch_of([self.sequences[i] for i in rng.integers(0, len(self.sequences), B)], dtype)

    def batch_of(self, sequences: list[tuple[str, bool]], dtype=np.float64) -> Batch:
        """A batch of exactly these ``(text, ends_with_eos)`` pieces, laid out as :meth:`sample` lays them out."""
        targets = [np.append(self.encode(s), [self.eos] if ends else []).astype(np.int64) for s, ends in sequences]
        return teacher_forced_batch(targets, self.vocab_size, check_dtype(dtype), {"text": [s for s, _ in sequences]})

    def metric(self, outputs: np.ndarray, batch: Batch) -> float:
        logp = log_softmax(np.asarray(outputs, np.float64))
        nll = -np.take_along_axis(logp, batch.y[..., None], axis=-1)[..., 0]
        return float((nll * batch.mask).sum() / batch.mask.sum())


__all__ = ["CharCorpus", "EOS", "default_corpus_path"]
