"""Character against word language models: perplexity per word, samples, and how far back the gradient reaches.

The course notes build the language model at the word level (a vocabulary
with ⟨UNK⟩, every sentence closed by ⟨EOS⟩) and weigh it against a
character-level model, which never meets an unknown word but must carry its
dependencies over many more steps: a sentence of the default word corpus is
about 13.8 word tokens (⟨EOS⟩ included) but about 64 characters. For
gradient dynamics that is a question of distance — the gradient of a loss at
the end of the sentence has to travel about 4.7 times as many steps back to
reach the same word. This study trains both models of each cell on the very
same sentences and measures

* the held-out **perplexity per word** of both: the word model's is
  exp(−Σ log P / N) over the N word tokens of the held-out sentences, one
  ⟨EOS⟩ per sentence included (what :func:`gradlab.language_model.perplexity`
  computes, here from :func:`gradlab.language_model.log_probs`);
  the character model's total −log P of the same sentences (every character
  and the closing end token) is divided by the same N
  (:func:`gradlab.tasks.words.per_word_perplexity`). Both are −log P of the
  same sentences, so the numbers compare — except that the word model pays
  for the ⟨UNK⟩ class, not for the rare word it stands for (1.5 % of the
  held-out words on the default corpus; the report prints the rate);
* the **training curves** in nats per word on the identical batches;
* **samples** of both (the word model never draws ⟨UNK⟩: the notes'
  resampling, :func:`gradlab.language_model.sample_sentences`);
* the **gradient profile of one prediction**: L_T = −log P(⟨EOS⟩ | sentence),
  the loss of the last step only (a mask scoring that one step), and
  ‖∂L_T/∂h_t‖ / ‖∂L_T/∂h_T‖ at every earlier step t (``record.dh_norm`` of
  :meth:`gradlab.Network.loss_and_grads`), against the distance in steps
  and in **words of text** (below), at initialisation and after training.

Cells: the GRU and the LSTM (a tanh-RNN pair costs as much again and does
not fit the study's time budget; :data:`CELLS` lists what the figures can
show), one layer each.

The same budget
---------------
Both models of a pair take the same number of optimiser steps (Adam, the
same learning rate, global norm clipping at :data:`CLIP_NORM`) on batches of
the same number of sentences, and they see **the same sentences in the same
order**: the character corpus is ``CharCorpus(text="\\n".join(words.texts(
"train")))``, one line per training sentence in the word corpus's order, and
both draw their batches from one data seed (:meth:`WordCorpus.sample` and
:meth:`CharCorpus.sample` draw the same indices from the same generator). The
hidden size is the same too. The compute is not: a character step is
cheap (V ≈ 32) but there are about 4.7 times as many; a word step pays for
the V = 920 softmax and one-hot input. The report gives the CPU seconds each
model's training took.

Distance in words of text
-------------------------
A model's state h_t has read the first t symbols and predicts symbol t (the
notes' x⟨t+1⟩ = y⟨t⟩). In a sentence of N word tokens (``WordCorpus``'s
tokenizer: words and punctuation marks) the loss L_T sits at the step that
predicts ⟨EOS⟩. The state that predicts a symbol of token j (counting from
0; ⟨EOS⟩ is token N) is at **distance N − j words** from the loss:

* word model: step t predicts token t, so the distance in words is the
  distance in steps k = N − t;
* character model: the characters of the detokenized sentence are mapped to
  the token they belong to, a space to the token that follows it
  (:func:`char_word_index`); the state predicting character i is at
  distance N − j(i). The state that predicts the **first** character of
  token j (after the space) is the counterpart of the word model's state
  predicting token j: both have read tokens 0 … j−1 and nothing of token j.
  These *word-aligned* states carry the profile against words.

Gradient reach
--------------
The profile is summarised per trained model by the median over the probe
sentences of the relative norm at each distance d in words, and by its
decay rate ρ_word per word (:func:`gradlab.dynamics.decay_rate` of the
word-aligned profile, over every distance all probe sentences cover). The
**reach** at level ε is the distance in words where that median first
falls below ε (:data:`REACH_LEVEL` = 10⁻³ of its value at d = 0); when the
median stays above ε over the distances the probes cover, the reach is
extrapolated along the fitted line, d = ln ε / ρ_word, and marked so
(:func:`reach`). The study reports the ratio of the character model's reach
to the word model's, cell by cell and seed by seed, and the ratio of the
e-folding distances 1/|ρ_word|, which needs no threshold.

References
----------
Mikolov, T., Sutskever, I., Deoras, A., Le, H.-S., Kombrink, S. & Černocký,
J. (2012), "Subword language modeling with neural networks" (character vs
word perplexity). Graves, A. (2013), "Generating sequences with recurrent
neural networks", arXiv:1308.0850. Karpathy, A., Johnson, J. & Fei-Fei, L.
(2015), "Visualizing and understanding recurrent networks", arXiv:1506.02078.
Pascanu, R., Mikolov, T. & Bengio, Y. (2013), "On the difficulty of training
recurrent neural networks", ICML. Bengio, Y., Simard, P. & Frasconi, P. (1994),
"Learning long-term dependencies with gradient descent is difficult", IEEE
Trans. Neural Networks 5(2). Hwang, K. & Sung, W. (2017), "Character-level
language modeling with hierarchical recurrent neural networks", ICASSP.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pandas as pd

from .. import dynamics
from ..language_model import log_probs, sample_sentences
from ..network import Network
from ..sampling import sample_texts
from ..tasks.base import Batch
from ..tasks.text import CharCorpus
from ..tasks.words import EOS, UNK, WordCorpus, detokenize, per_word_perplexity, tokenize
from ..train import train

TITLE = "Character against word language models: perplexity per word and the reach of the gradient"
QUESTION = ("Trained on the same sentences with the same budget, how do character- and word-level language models "
            "of each cell compare in held-out perplexity per word, and how far back in words of text does the "
            "gradient of one prediction at the end of a sentence reach in each?")

CELLS = ("rnn_tanh", "gru", "lstm")
MODELS = ("word", "char")
COLORS = {"rnn_tanh": "tab:blue", "gru": "tab:green", "lstm": "tab:red"}
STYLES = {"word": "-", "char": "--"}
STAGES = ("initialisation", "trained")
#: Global norm clipping threshold of both models (Pascanu et al. 2013).
CLIP_NORM = 5.0
#: The reach is the distance in words where the median relative profile falls below this.
REACH_LEVEL = 1e-3
#: The probe sentences: the first PROBE_SENTENCES held-out sentences with at least PROBE_MIN_TOKENS
#: word tokens (⟨EOS⟩ not counted), so that every probe covers distances 0 … PROBE_MIN_TOKENS words.
PROBE_SENTENCES = 32
PROBE_MIN_TOKENS = 15
#: Sampling temperature of the samples table.
TEMPERATURE = 1.0
#: The most characters (words) a character (word) model's sample may have; the longest training sentence
#: has 162 characters and 29 word tokens.
SAMPLE_CHARS, SAMPLE_WORDS = 200, 50


def sizes(quick: bool) -> dict:
    """The grid's sizes: the default run and the reduced one of ``--quick``."""
    if quick:
        return dict(cells=("gru", "lstm"), H=16, steps=40, batch=8, lr=0.01, replicates=1, n_samples=4,
                    curve_every=10, probes=8, heldout=120)
    return dict(cells=("gru", "lstm"), H=32, steps=300, batch=16, lr=0.01, replicates=5, n_samples=6,
                curve_every=20, probes=PROBE_SENTENCES, heldout=None)


# ---------------------------------------------------------------------- corpora

@functools.lru_cache(maxsize=2)
def corpora() -> tuple[WordCorpus, CharCorpus]:
    """The default word corpus (``min_count=3``: V = 920) and the character corpus of its training sentences."""
    words = WordCorpus()
    chars = CharCorpus(text="\n".join(words.texts("train")), max_length=200)
    if len(chars.sequences) != len(words.sequences):
        raise RuntimeError("corpora: the character corpus does not hold one whole line per training sentence")
    return words, chars


def heldout_sentences(words: WordCorpus, n: int | None = None) -> list[str]:
    """The held-out sentences (detokenized) that are scored: all of them, or ``n`` evenly spaced ones."""
    texts = words.texts("holdout")
    if n is None or n >= len(texts):
        return texts
    return [texts[i] for i in np.linspace(0, len(texts) - 1, n).round().astype(int)]


def probe_sentences(words: WordCorpus, n: int = PROBE_SENTENCES, min_tokens: int = PROBE_MIN_TOKENS) -> list[str]:
    """The first ``n`` held-out sentences (detokenized) with at least ``min_tokens`` word tokens."""
    texts = words.texts("holdout")
    out = [t for t, s in zip(texts, words.holdout_sentences) if len(s) >= min_tokens][:n]
    if len(out) < n:
        raise ValueError(f"probe_sentences: only {len(out)} held-out sentences have {min_tokens} tokens; asked for {n}")
    return out


# ---------------------------------------------------------------------- helpers (unit-tested)

def token_starts(text: str, tokens: list[str]) -> np.ndarray:
    """The character offset where each token begins in ``text`` (tokens in order, as the tokenizer gave them).

    Raises ValueError when a token is not found in order (the text is not
    the detokenized form of the tokens).
    """
    starts, pos = [], 0
    for tok in tokens:
        i = text.find(tok, pos)
        if i < 0 or text[pos:i].strip():
            raise ValueError(f"text: token {tok!r} not found at or after offset {pos} of {text!r}")
        starts.append(i)
        pos = i + len(tok)
    return np.array(starts, np.int64)


def char_word_index(text: str, tokens: list[str] | None = None) -> np.ndarray:
    """For each character position i of ``text`` and the end (i = len(text)), the index j of its word token.

    A character belongs to the token that contains it, a space to the token
    that follows it; position len(text) (where the end token is predicted)
    belongs to token N = len(tokens), the ⟨EOS⟩. ``tokens`` defaults to the
    word tokenizer's tokens of ``text`` (lower-cased, one sentence).

    Examples
    --------
    >>> char_word_index("the cat.").tolist()
    [0, 0, 0, 1, 1, 1, 1, 2, 3]
    """
    if tokens is None:
        sents = tokenize(text)
        tokens = [t for s in sents for t in s]
    starts = token_starts(text, tokens)
    pos = np.arange(len(text) + 1)
    j = np.searchsorted(starts, pos, side="right") - 1
    # a space before token j+1 belongs to token j+1: the positions after token j's end
    ends = starts + np.array([len(t) for t in tokens])
    for jj in range(len(tokens) - 1):
        j[ends[jj]: starts[jj + 1]] = jj + 1
    j[len(text)] = len(tokens)
    return j


def aligned_steps(text: str, tokens: list[str] | None = None) -> np.ndarray:
    """The character steps word-aligned with tokens 0 … N: the first character of each token, then the end."""
    if tokens is None:
        tokens = [t for s in tokenize(text) for t in s]
    return np.append(token_starts(text, tokens), len(text))


def last_step_mask(lengths, T: int, dtype=np.float64) -> np.ndarray:
    """A (T, B) mask scoring only step ``lengths[b] − 1`` of every sequence b."""
    lengths = np.asarray(lengths, np.int64)
    mask = np.zeros((T, len(lengths)), dtype)
    mask[lengths - 1, np.arange(len(lengths))] = 1.0
    return mask


def reach(distances, median, level: float = REACH_LEVEL, rho: float | None = None) -> tuple[float, bool]:
    """The distance where a median relative profile first falls below ``level``, and whether it was extrapolated.

    Parameters
    ----------
    distances : array of int
        Increasing distances (in words), starting at 0.
    median : array of float
        The median relative profile at those distances (1 at distance 0).
    level : float
        The threshold relative to the value at distance 0.
    rho : float, optional
        The fitted decay rate per unit distance (natural log); used when
        the profile never falls below ``level``: the reach is then
        ln(level) / rho (infinite when rho ≥ 0 or NaN).

    Returns
    -------
    (float, bool)
        The reach, linearly interpolated in log-profile between the last
        distance above the level and the first below it; and True when it
        was extrapolated from ``rho``.
    """
    d = np.asarray(distances, np.float64)
    m = np.asarray(median, np.float64)
    if d.shape != m.shape or d.ndim != 1 or len(d) < 1:
        raise ValueError("distances, median: expected two 1-D arrays of the same length")
    m0 = m[0]
    if not (np.isfinite(m0) and m0 > 0):
        return float("nan"), False
    rel = m / m0
    below = np.flatnonzero(rel < level)
    if below.size:
        i = int(below[0])
        if i == 0:
            return 0.0, False
        a, b = np.log(rel[i - 1]), np.log(max(rel[i], np.finfo(np.float64).tiny))
        frac = (a - np.log(level)) / (a - b) if a != b else 1.0
        return float(d[i - 1] + frac * (d[i] - d[i - 1])), False
    if rho is None or not np.isfinite(rho) or rho >= 0:
        return float("inf"), True
    return float(np.log(level) / rho), True


# ---------------------------------------------------------------------- grid point (runs on Dask workers)

def _profile_rows(net: Network, model: str, batch: Batch, texts: list[str], tokens: list[list[str]],
                  stage: str) -> list[dict]:
    """Profile rows of the single-step loss −log P(⟨EOS⟩ | sentence) for every probe sentence."""
    lengths = (batch.mask > 0).sum(axis=0).astype(int)
    res = net.loss_and_grads(batch.x, batch.y, last_step_mask(lengths, batch.x.shape[0], net.dtype))
    dh = np.asarray(res.record.dh_norm[0, 0], np.float64)
    rows = []
    for b, (text, toks) in enumerate(zip(texts, tokens)):
        n = int(lengths[b])
        last = dh[n - 1, b]
        N = len(toks)
        if model == "word":
            widx = np.arange(N + 1)
            aligned = np.ones(N + 1, bool)
        else:
            widx = char_word_index(text, toks)
            aligned = np.zeros(n, bool)
            aligned[aligned_steps(text, toks)] = True
        for t in range(n):
            rows.append({"kind": "profile", "model": model, "stage": stage, "sequence": b, "k": n - 1 - t,
                         "words": int(N - widx[t]), "aligned": bool(aligned[t]), "grad_norm": float(dh[t, b]),
                         "relative": float(dh[t, b] / last) if last > 0 else float("nan")})
    return rows


def _fit_rows(rows: list[dict], model: str, stage: str, d_max: int) -> dict:
    """ρ per word and per step, and the reach in words, of one model's probe profiles."""
    prof = pd.DataFrame([r for r in rows if r["kind"] == "profile" and r["model"] == model and r["stage"] == stage])
    al = prof[prof["aligned"] & (prof["words"] <= d_max)]
    by_d = al.pivot_table(index="words", columns="sequence", values="relative").sort_index()
    fit_w = dynamics.decay_rate(by_d.to_numpy())
    med = np.nanmedian(by_d.to_numpy(), axis=1)
    r, extrapolated = reach(by_d.index.to_numpy(), med, REACH_LEVEL, fit_w.rho)
    k_max = int(prof.groupby("sequence")["k"].max().min())
    by_k = prof[prof["k"] <= k_max].pivot_table(index="k", columns="sequence", values="relative").sort_index()
    fit_k = dynamics.decay_rate(by_k.to_numpy())
    return {"kind": "fit", "model": model, "stage": stage, "rho_word": fit_w.rho, "rho_word_ci_low": fit_w.ci_low,
            "rho_word_ci_high": fit_w.ci_high, "rho_step": fit_k.rho, "d_max": d_max, "k_max": k_max,
            "reach_words": r, "reach_extrapolated": extrapolated, "median_at_dmax": float(med[-1])}


def known_share(tokens: list[str], words: WordCorpus) -> float:
    """The share of ``tokens`` that occur in the word corpus's training sentences (NaN for no token)."""
    if not tokens:
        return float("nan")
    return float(np.mean([t in words.counts for t in tokens]))


def _sample_rows(net: Network, model: str, words: WordCorpus, chars: CharCorpus, n: int, seed) -> list[dict]:
    """``n`` sentences sampled at :data:`TEMPERATURE`, with their ⟨UNK⟩ count and share of corpus words."""
    rows = []
    if model == "word":
        for i, toks in enumerate(sample_sentences(net, words, n, max_length=SAMPLE_WORDS, temperature=TEMPERATURE,
                                                  seed=seed, as_tokens=True)):
            body = [t for t in toks if t != EOS]
            rows.append({"kind": "sample", "model": model, "index": i, "text": detokenize(toks),
                         "unk": sum(t == UNK for t in toks), "ended": toks[-1:] == [EOS],
                         "known_words": known_share(body, words)})
    else:
        for i, text in enumerate(sample_texts(net, chars, n, max_length=SAMPLE_CHARS, temperature=TEMPERATURE,
                                              seed=seed)):
            toks = [t for s in tokenize(text) for t in s]
            rows.append({"kind": "sample", "model": model, "index": i, "text": text, "unk": 0,
                         "ended": len(text) < SAMPLE_CHARS, "known_words": known_share(toks, words)})
    return rows


def pair_point(config: dict, seed: int) -> list[dict]:
    """Train a word and a character model of one cell on the same batches; return tidy rows.

    Rows carry ``kind``: ``"final"`` (per model: held-out perplexity per
    word and per symbol, training CPU seconds), ``"curve"`` (per model: the
    training cross-entropy in nats per word, averaged over windows of
    ``curve_every`` steps), ``"profile"`` (relative gradient norm per probe
    sentence and step, with its distance in steps ``k`` and in words),
    ``"fit"`` (ρ per word and per step, reach in words) and ``"sample"``.
    """
    words, chars = corpora()
    dtype, cell, H = config["dtype"], config["cell"], config["H"]
    s_word, s_char, s_data, s_word_sample, s_char_sample = np.random.SeedSequence(seed).spawn(5)
    data_seed = int(s_data.generate_state(1)[0])
    held = heldout_sentences(words, config["heldout"])
    n_held_words = words.count_tokens(held)
    probes = probe_sentences(words, config["probes"])
    probe_tokens = [[t for s in words.tokenize(p) for t in s] for p in probes]
    d_max = min(len(t) for t in probe_tokens)
    wbatch = next(words.batches(probe_tokens, batch_size=len(probes), dtype=dtype))
    cbatch = chars.batch_of([(t, True) for t in probes], dtype)
    rows: list[dict] = []
    tokens_per_step = None
    for model, corpus, s_net, batch in (("word", words, s_word, wbatch), ("char", chars, s_char, cbatch)):
        V = corpus.vocab_size
        net = Network(cell, V, H, V, head="softmax", mode="many_to_many", dtype=dtype,
                      seed=int(s_net.generate_state(1)[0]), backend=config["backend"])
        rows += _profile_rows(net, model, batch, probes, probe_tokens, "initialisation")
        c0, t0 = time.process_time(), time.perf_counter()
        hist = train(net, corpus, config["steps"], batch_size=config["batch"], optimizer="adam", lr=config["lr"],
                     clip="norm", clip_threshold=CLIP_NORM, seed=data_seed, until_solved=False,
                     backend=config["backend"])
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        total = hist["loss"].to_numpy() * config["batch"]  # −log P of the batch's sentences, nats
        if model == "word":
            tokens_per_step = total / hist["metric"].to_numpy()  # word tokens (⟨EOS⟩ included) of each batch
        per_word = total / tokens_per_step
        every = config["curve_every"]
        for start in range(0, len(per_word), every):
            rows.append({"kind": "curve", "model": model, "step": start + min(every, len(per_word) - start),
                         "nats_per_word": float(np.mean(per_word[start: start + every]))})
        rows += _profile_rows(net, model, batch, probes, probe_tokens, "trained")
        lp, n_sym = log_probs(net, corpus, held)
        nll = float(-lp.sum())
        rows.append({"kind": "final", "model": model, "ppl_word": per_word_perplexity(nll, n_held_words),
                     "nats_per_word": nll / n_held_words, "nats_per_symbol": nll / float(n_sym.sum()),
                     "symbols": int(n_sym.sum()), "words_heldout": n_held_words, "sentences_heldout": len(held),
                     "train_cpu_s": cpu, "train_wall_s": wall, "steps_done": len(hist),
                     "skipped": int(hist.attrs["skipped"]),
                     "clipped_share": float(hist["clipped"].mean()), "V": V})
        rows += _sample_rows(net, model, words, chars, config["n_samples"],
                             s_word_sample if model == "word" else s_char_sample)
    for model in MODELS:
        for stage in STAGES:
            rows.append(_fit_rows(rows, model, stage, d_max))
    return rows


# ---------------------------------------------------------------------- the study

def grids(quick: bool) -> dict[str, tuple[list[dict], int]]:
    """Every sweep of the study: label -> (configs, replicates)."""
    s = sizes(quick)
    configs = [{"cell": c, "H": s["H"], "steps": s["steps"], "batch": s["batch"], "lr": s["lr"],
                "n_samples": s["n_samples"], "curve_every": s["curve_every"], "probes": s["probes"],
                "heldout": s["heldout"]}
               for c in s["cells"]]
    return {"pairs": (configs, s["replicates"])}


def run(ctx) -> None:
    """Run the sweep and write ``reports/char_vs_word/``."""
    from . import char_vs_word_report as report

    g = grids(ctx.quick)
    df = ctx.sweep("pairs", pair_point, *g["pairs"])
    rep = ctx.report(title=TITLE, question=QUESTION)
    report.write(rep, df, sizes(ctx.quick))
    ctx.finish(rep)
