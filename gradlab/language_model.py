"""Language models: the probability of a sentence, perplexity, and sampling novel sentences.

A network trained on a :class:`gradlab.tasks.WordCorpus` (or a
:class:`gradlab.tasks.CharCorpus`) models ŷ⟨t⟩ = P(y⟨t⟩ | y⟨1⟩ … y⟨t−1⟩)
with x⟨1⟩ = 0 and x⟨t+1⟩ = one-hot(y⟨t⟩). As in the notes, the probability
of a sentence y⟨1⟩ … y⟨n⟩ closed by ⟨EOS⟩ is the product of the conditionals,

    P(sentence) = P(y⟨1⟩) · P(y⟨2⟩ | y⟨1⟩) ⋯ P(⟨EOS⟩ | y⟨1⟩ … y⟨n⟩),

so log P(sentence) = Σ_t log ŷ⟨t⟩[y⟨t⟩] over the n tokens **and** the final
⟨EOS⟩ (natural logarithms). Words outside the vocabulary are scored as
⟨UNK⟩. The perplexity of a set of sentences is exp(−Σ log P / N), N their
tokens with one ⟨EOS⟩ per sentence — the exponential of the mean
per-token cross-entropy (a character model's is per character; convert
with :func:`gradlab.tasks.per_word_perplexity`).

* :func:`sentence_log_prob` — log P of one sentence, optionally with its per-token terms;
* :func:`log_probs` — log P of many sentences, batched;
* :func:`perplexity` — on the corpus's held-out sentences by default;
* :func:`sample_sentences` — novel sentences, word by word, with temperature,
  seed and maximum length, stopping at ⟨EOS⟩; ⟨UNK⟩ is never drawn unless
  ``allow_unk=True`` (the notes' "resample if you draw ⟨UNK⟩": its
  probability is set to 0 and the rest renormalised, which is the
  distribution that redrawing until a known word comes up gives).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .losses import log_softmax
from .network import Network
from .sampling import sample_ids
from .tasks.text import CharCorpus
from .tasks.words import EOS, WordCorpus, detokenize


class SentenceLogProb(NamedTuple):
    """``sentence_log_prob(..., per_token=True)``: the total and its terms."""

    log_prob: float
    tokens: list
    terms: np.ndarray


def _check(network: Any, corpus: Any) -> None:
    if not isinstance(corpus, (WordCorpus, CharCorpus)):
        raise TypeError(f"corpus: expected a gradlab.tasks.WordCorpus or CharCorpus, got {type(corpus).__name__}")
    if not isinstance(network, Network):
        raise TypeError(f"network: expected a gradlab.Network, got {type(network).__name__}")
    if network.head != "softmax" or network.mode != "many_to_many" or network.bidirectional:
        raise ValueError("network: a language model needs a unidirectional many_to_many network with a softmax head")
    if network.input_size != corpus.vocab_size or network.output_size != corpus.vocab_size:
        raise ValueError(f"network: its input and output sizes ({network.input_size}, {network.output_size}) "
                         f"must both be the corpus's vocabulary size {corpus.vocab_size}")


def _sequences(corpus, sentences) -> list[np.ndarray]:
    """Id arrays closed by the end token."""
    if isinstance(corpus, WordCorpus):
        return corpus.encode_sentences(sentences)
    if sentences is None:
        raise ValueError("sentences: a CharCorpus has no held-out split; pass the text to score")
    if isinstance(sentences, str):
        lines = sentences.splitlines()
    elif isinstance(sentences, (list, tuple)) and all(isinstance(s, str) for s in sentences):
        lines = [ln for s in sentences for ln in s.splitlines()]
    else:
        raise TypeError("sentences: expected a str or a list of str for a CharCorpus")
    return [np.append(corpus.encode(ln.strip()), corpus.eos) for ln in lines if ln.strip()]


def _terms(network: Network, seqs: list[np.ndarray], batch_size: int = 64) -> list[np.ndarray]:
    """log ŷ⟨t⟩[y⟨t⟩] of every token of every sequence (batched by length)."""
    V = network.output_size
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out: list[np.ndarray] = [np.empty(0)] * len(seqs)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        T, B = max(len(seqs[i]) for i in chunk), len(chunk)
        x = np.zeros((T, B, V), network.dtype)
        y = np.zeros((T, B), np.int64)
        for b, i in enumerate(chunk):
            s = seqs[i]
            y[: len(s), b] = s
            x[np.arange(1, len(s)), b, s[:-1]] = 1.0  # x<1> = 0, x<t+1> = y<t>
        logp = log_softmax(np.asarray(network.predict(x), np.float64))
        picked = np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
        for b, i in enumerate(chunk):
            out[i] = picked[: len(seqs[i]), b].copy()
    return out


def sentence_log_prob(network: Network, corpus: WordCorpus | CharCorpus, sentence: str | list[str], *,
                      per_token: bool = False) -> float | SentenceLogProb:
    """log P(sentence) in nats: Σ_t log P(y⟨t⟩ | y⟨<t⟩) over its tokens and the closing end token.

    Parameters
    ----------
    network : Network
        Trained on ``corpus`` (unidirectional, many-to-many, softmax head).
    corpus : WordCorpus or CharCorpus
    sentence : str or list of str
        One sentence: a text (tokenized with the corpus's settings; it must
        hold exactly one sentence) or a list of tokens. Unknown words count
        as ``<unk>``; for a CharCorpus every character must be known.
    per_token : bool
        Return a :class:`SentenceLogProb` ``(log_prob, tokens, terms)``
        instead of the float: ``terms[t]`` = log P(tokens[t] | tokens[:t]),
        the last token being ``"<eos>"`` and ``tokens`` as scored (with
        ``<unk>`` where a word is unknown).
    """
    _check(network, corpus)
    if isinstance(corpus, WordCorpus):
        if isinstance(sentence, str):
            found = corpus.tokenize(sentence)
            if len(found) != 1:
                raise ValueError(f"sentence: expected one sentence, found {len(found)} in {sentence!r} "
                                 "(log_probs scores several)")
        elif isinstance(sentence, (list, tuple)):
            found = [corpus._tokens(sentence)]
            if not found[0]:
                raise ValueError("sentence: expected one sentence, found an empty list of tokens")
        else:
            raise TypeError(f"sentence: expected a str or a list of str tokens, got {type(sentence).__name__}")
        seq = corpus.encode_sentences(found)
        tokens = [corpus.vocab[i] for i in seq[0]]
    else:
        if not isinstance(sentence, str):
            raise TypeError(f"sentence: expected a str for a CharCorpus, got {type(sentence).__name__}")
        if "\n" in sentence.strip():
            raise ValueError("sentence: expected one line for a CharCorpus")
        seq = [np.append(corpus.encode(sentence), corpus.eos)]
        tokens = list(sentence) + [EOS]
    terms = _terms(network, seq)[0]
    total = float(terms.sum())
    return SentenceLogProb(total, tokens, terms) if per_token else total


def log_probs(network: Network, corpus: WordCorpus | CharCorpus, sentences: Any = None, *,
              batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """log P of every sentence and its number of scored tokens (end tokens included).

    ``sentences`` as in :meth:`gradlab.tasks.WordCorpus.encode_sentences`
    (None: the held-out sentences); for a CharCorpus a text or a list of
    texts, one sequence per non-empty line.

    Returns
    -------
    (log_probs, lengths) : float ndarray and int ndarray, one entry per sentence
    """
    _check(network, corpus)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    seqs = _sequences(corpus, sentences)
    if not seqs:
        raise ValueError("sentences: nothing to score")
    terms = _terms(network, seqs, int(batch_size))
    return np.array([t.sum() for t in terms]), np.array([len(s) for s in seqs], np.int64)


def perplexity(network: Network, corpus: WordCorpus | CharCorpus, sentences: Any = None, *,
               batch_size: int = 64) -> float:
    """exp(−Σ log P / N) over ``sentences`` (the corpus's held-out sentences by default).

    N counts the tokens with one end token per sentence. For a CharCorpus
    it is per character and ``sentences`` is required.
    """
    if isinstance(corpus, WordCorpus) and sentences is None and not corpus.holdout_sentences:
        raise ValueError("sentences: the corpus holds no held-out sentences (holdout=0); pass the sentences to score")
    lp, n = log_probs(network, corpus, sentences, batch_size=batch_size)
    return float(np.exp(-lp.sum() / n.sum()))


def sample_sentences(
    network: Network,
    corpus: WordCorpus,
    n: int = 1,
    *,
    max_length: int = 50,
    temperature: float = 1.0,
    seed: Any = None,
    allow_unk: bool = False,
    prefix: str | list[str] = "",
    as_tokens: bool = False,
) -> list:
    """``n`` novel sentences from a word model of ``corpus``, each the prefix and what followed it.

    Parameters
    ----------
    network : Network
        Trained on ``corpus``.
    corpus : WordCorpus
    n : int
        Sentences drawn (independently, together).
    max_length : int
        The most tokens drawn per sentence, ``<eos>`` included (the prefix not counted).
    temperature : float
        τ ≥ 0: ŷ ∝ softmax(z / τ); 0 takes the most likely word.
    seed : int, SeedSequence or Generator, optional
    allow_unk : bool
        False (default): ``<unk>`` is never drawn — its probability is set
        to 0 and the others renormalised, the distribution of redrawing
        whenever ``<unk>`` comes up (the notes' resampling).
    prefix : str or list of str
        Words fed first; the sentence continues from them.
    as_tokens : bool
        Return token lists (ending with ``"<eos>"`` when it was drawn)
        instead of detokenized strings.

    Returns
    -------
    list of str (or of token lists)
        A sentence stops where the model drew ``<eos>`` or after ``max_length`` drawn tokens.
    """
    if not isinstance(corpus, WordCorpus):
        raise TypeError(f"corpus: expected a gradlab.tasks.WordCorpus, got {type(corpus).__name__}")
    _check(network, corpus)
    if not isinstance(allow_unk, (bool, np.bool_)):
        raise TypeError(f"allow_unk: expected True or False, got {allow_unk!r}")
    head = corpus.encode(prefix)
    ids = sample_ids(network, max_length=max_length, temperature=temperature, seed=seed, eos=corpus.eos,
                     prefix=head, num_samples=n, forbid=() if allow_unk else (corpus.unk,))
    out = []
    for s in ids:
        tokens = [corpus.vocab[i] for i in head] + [corpus.vocab[i] for i in s]
        out.append(tokens if as_tokens else detokenize(tokens))
    return out


__all__ = ["SentenceLogProb", "log_probs", "perplexity", "sample_sentences", "sentence_log_prob"]
