"""Sampling novel sequences from a trained network (one-to-many; the notes' language model).

Generation runs the network one step at a time (:meth:`gradlab.Network.step`,
built on :func:`gradlab.forward`) and feeds each sample back:

    x⟨1⟩ = 0,   ŷ⟨t⟩ = softmax(z⟨t⟩ / τ),   y⟨t⟩ ~ ŷ⟨t⟩,   x⟨t+1⟩ = onehot(y⟨t⟩)

until the end-of-sequence token is drawn or ``max_length`` symbols have
been. The temperature τ sharpens (τ < 1) or flattens (τ > 1) the
distribution; τ = 0 takes the most probable symbol (greedy decoding). A
``seed`` makes the samples reproducible.

* :func:`sample_ids` — symbol ids from any many-to-many network whose input
  is the one-hot of its previous output (input size = output size);
* :func:`sample_text` / :func:`sample_texts` — strings from a character model
  trained on a :class:`gradlab.tasks.CharCorpus`, optionally continuing a prefix;
* :func:`decode` — the decoder of a seq2seq network run on its own outputs
  after encoding an input (greedy by default).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .losses import log_softmax
from .network import Network
from .tasks.base import rng_from
from .tasks.text import CharCorpus


def _check_temperature(temperature: Any) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)):
        raise TypeError(f"temperature: expected a number >= 0, got {type(temperature).__name__}")
    temperature = float(temperature)
    if not (temperature >= 0 and np.isfinite(temperature)):
        raise ValueError(f"temperature: expected a finite number >= 0 (0 = greedy), got {temperature}")
    return temperature


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _draw(logits: np.ndarray, temperature: float, rng: np.random.Generator, forbid=None) -> np.ndarray:
    """One symbol per row of ``logits`` (B, K): argmax at τ = 0, else a draw from softmax(z/τ).

    ``forbid`` (ids) are never drawn: their logits are set to −inf, i.e. the
    draw is from the distribution conditioned on not drawing them — the same
    as redrawing whenever one of them comes up.
    """
    if forbid is not None and len(forbid):
        logits = np.array(logits, np.float64, copy=True)
        logits[:, forbid] = -np.inf
    if temperature == 0:
        return np.argmax(logits, axis=-1)
    p = np.exp(log_softmax(np.asarray(logits, np.float64) / temperature))
    u = rng.random((p.shape[0], 1))
    return np.minimum((np.cumsum(p, axis=-1) < u * p.sum(axis=-1, keepdims=True)).sum(axis=-1), p.shape[1] - 1)


def _check_generator(network: Network) -> None:
    if not isinstance(network, Network):
        raise TypeError(f"network: expected a gradlab.Network, got {type(network).__name__}")
    if network.head != "softmax" or network.bidirectional:
        raise ValueError("network: sampling needs a unidirectional network with a softmax head")


def _run(network, state, x, steps, eos, temperature, rng, part, forbid=None):
    """Generate ``steps`` symbols for every row, stopping a row at ``eos``; return (ids (B, n), lengths)."""
    B = x.shape[0]
    out = np.full((B, steps), -1, np.int64)
    done = np.zeros(B, bool)
    lengths = np.full(B, steps)
    for t in range(steps):
        z, state = network.step(x, state, part=part)
        if not np.isfinite(z).all():
            raise FloatingPointError(f"network: its outputs overflowed at generation step {t + 1}")
        s = _draw(z, temperature, rng, forbid)
        out[~done, t] = s[~done]
        if eos is not None:
            ended = ~done & (s == eos)
            lengths[ended] = t + 1
            done |= ended
            if done.all():
                return out[:, : t + 1], lengths
        x = np.zeros_like(x)
        x[np.arange(B), s] = 1.0
    return out, lengths


def sample_ids(
    network: Network,
    *,
    max_length: int = 200,
    temperature: float = 1.0,
    seed: Any = None,
    eos: int | None = None,
    prefix: Any = (),
    num_samples: int = 1,
    forbid: Any = (),
) -> list[np.ndarray]:
    """Draw sequences of symbol ids, feeding each sample back as the next input.

    Parameters
    ----------
    network : Network
        Unidirectional, softmax head, input size equal to its output size.
    max_length : int
        The most symbols drawn per sequence (the prefix not counted).
    temperature : float
        τ ≥ 0; 0 is greedy.
    seed : int, SeedSequence or Generator, optional
    eos : int, optional
        The end-of-sequence id: a sequence stops when it is drawn (it is
        included as the last id). None draws ``max_length`` symbols.
    prefix : sequence of int
        Ids fed first (after x⟨1⟩ = 0); generation continues from there.
    num_samples : int
        Independent sequences drawn together.
    forbid : sequence of int, optional
        Ids never drawn (e.g. ``<unk>``): a draw is from the model's
        distribution renormalised over the other ids, which is what redrawing
        until an allowed id comes up gives.

    Returns
    -------
    list of int arrays
        One per sample, each ending with ``eos`` if it was drawn.
    """
    _check_generator(network)
    if network.input_size != network.output_size:
        raise ValueError(
            f"network: feeding samples back needs input_size == output_size, got {network.input_size} and {network.output_size}")
    max_length = _check_positive("max_length", max_length)
    temperature = _check_temperature(temperature)
    B = _check_positive("num_samples", num_samples)
    K = network.output_size
    if eos is not None and (isinstance(eos, bool) or not isinstance(eos, (int, np.integer)) or not 0 <= eos < K):
        raise ValueError(f"eos: expected None or an id in [0, {K}), got {eos!r}")
    prefix = np.asarray(prefix, np.int64).ravel()
    if prefix.size and (prefix.min() < 0 or prefix.max() >= K):
        raise ValueError(f"prefix: ids must lie in [0, {K})")
    forbid = np.unique(np.asarray(() if forbid is None else forbid, np.int64).ravel())
    if forbid.size and (forbid.min() < 0 or forbid.max() >= K):
        raise ValueError(f"forbid: ids must lie in [0, {K})")
    if forbid.size >= K:
        raise ValueError("forbid: every id is forbidden; nothing could be drawn")
    rng = rng_from(seed)
    x = np.zeros((B, K), network.dtype)
    state = None
    for i in prefix:  # consume the prefix: its symbols are inputs, not samples
        _, state = network.step(x, state)
        x = np.zeros((B, K), network.dtype)
        x[:, i] = 1.0
    ids, lengths = _run(network, state, x, max_length, eos, temperature, rng, "encoder", forbid)
    return [ids[b, : lengths[b]] for b in range(B)]


def sample_texts(
    network: Network,
    corpus: CharCorpus,
    n: int = 1,
    *,
    max_length: int = 200,
    temperature: float = 1.0,
    seed: Any = None,
    prefix: str = "",
) -> list[str]:
    """``n`` strings from a character model of ``corpus``, each the prefix and what followed it.

    A string ends where the model drew the end-of-sequence token (not
    included) or after ``max_length`` drawn characters.
    """
    if not isinstance(corpus, CharCorpus):
        raise TypeError(f"corpus: expected a gradlab.tasks.CharCorpus, got {type(corpus).__name__}")
    _check_generator(network)
    if network.output_size != corpus.vocab_size:
        raise ValueError(f"network: its output size {network.output_size} is not the corpus's vocabulary size {corpus.vocab_size}")
    ids = sample_ids(network, max_length=max_length, temperature=temperature, seed=seed, eos=corpus.eos,
                     prefix=corpus.encode(prefix), num_samples=n)
    return [prefix + corpus.decode(s) for s in ids]


def sample_text(network: Network, corpus: CharCorpus, **kwargs: Any) -> str:
    """One string from a character model; keyword arguments as in :func:`sample_texts`."""
    return sample_texts(network, corpus, 1, **kwargs)[0]


def decode(
    network: Network,
    x: np.ndarray,
    max_length: int,
    *,
    eos: int | None = None,
    temperature: float = 0.0,
    seed: Any = None,
) -> np.ndarray:
    """Run a seq2seq network on its own outputs: encode ``x``, then generate up to ``max_length`` ids.

    The decoder starts from the encoder's final state with a zero input and
    reads the one-hot of its previous output (greedy at τ = 0, the default).

    Returns
    -------
    int ndarray, shape (n, B)
        Time-major like every gradlab sequence: n ≤ ``max_length`` ids per
        sequence; after a sequence's ``eos`` its entries are −1.
    """
    if not isinstance(network, Network) or network.mode != "seq2seq":
        raise ValueError("network: decode needs a gradlab.Network with mode='seq2seq'")
    max_length = _check_positive("max_length", max_length)
    temperature = _check_temperature(temperature)
    state = network.final_state(x)
    B, K = state[0][0].shape[0], network.output_size
    ids, _ = _run(network, state, np.zeros((B, K), network.dtype), max_length, eos, temperature, rng_from(seed), "decoder")
    return np.ascontiguousarray(ids.T)


__all__ = ["decode", "sample_ids", "sample_text", "sample_texts"]
