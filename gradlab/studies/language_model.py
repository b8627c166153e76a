"""The course notes' character language model: loss per character, gradient reach, and novel samples.

Character models of the tanh RNN, the GRU and the LSTM are trained on a
:class:`gradlab.tasks.CharCorpus` the way the notes (and Karpathy's
``min-char-rnn``/``char-rnn``) train them: x⟨1⟩ = 0, x⟨t+1⟩ = y⟨t⟩, softmax
over the vocabulary at every step, the loss summed over the characters of a
line (Adam, elementwise gradient clipping at 5 as in the notes' sampling
exercise). For every cell and seed the study measures

* the **loss per character** (nats) on held-out lines against the optimiser
  steps, with the two baselines a character model must beat: the unigram
  cross-entropy (the best context-free model, ≈ the corpus's unigram entropy
  H₁) and the uniform log V;
* **gradient-norm profiles** early and late in training, on held-out lines.
  In a language model every step is scored, so ‖∂L/∂h_t‖ of the training
  loss is a *sum* of the gradients of all later characters' losses and does
  not show how far back one prediction's gradient reaches. The study
  therefore records two profiles and says which it plots:

  - the **single-step profile** ‖∂L_T/∂h_{T−k}‖ / ‖∂L_T/∂h_T‖, where L_T is
    the loss of the *last scored character of each line only* (a mask that
    scores that one step, per sequence; for a line that ends, the end token),
    against the distance k in characters — the quantity of Pascanu et al.
    (2013) and the notes' "vanishing gradients with RNNs";
  - the **total profile** ‖∂L/∂h_t‖ of the full many-to-many loss at the same
    positions (k characters before the line's last scored step);

  each at initialisation (step 0), early (after ``early`` steps) and late
  (after the last step), with the decay rate ρ per character fitted over the
  distances every probe line covers (:func:`gradlab.dynamics.decay_rate`);
* **novel sequences** sampled (:func:`gradlab.sampling.sample_texts`) at
  temperatures 0.5, 1.0 and 1.5 after training, and how many are **new**.

Definition of *new*: a sampled line (the characters drawn before the
end-of-sequence token, or the first ``max_length`` when it was never drawn)
is **new** when it is not empty and does not occur anywhere in the corpus as
a contiguous substring of one line (train and held-out lines alike). The
others are a **copy** (equal to a whole corpus line), a **fragment** (a
proper substring of a corpus line) or **empty**. The share of sampled words
(maximal runs of letters, compared case-insensitively) that occur in the
corpus measures how word-like the new lines are.

Held-out lines: every tenth line-piece of the corpus (index ≡ 9 mod 10) is
never trained on; at most :data:`MAX_HELDOUT` of them, evenly spaced, are
scored, and the first :data:`PROBE_LINES` of those with at least
:data:`PROBE_MIN_LENGTH` characters carry the gradient profiles. The split
is fixed (it does not depend on the seed).

A user-given corpus
-------------------
Set the environment variable ``GRADLAB_CORPUS`` to a UTF-8 text file (one
sequence per non-empty line) to train on it **as well as** on the default
corpus, e.g. ``GRADLAB_CORPUS=~/shakespeare.txt gradlab study
language_model``. The report then has one part per corpus; the default run's
time roughly doubles. With ``--scheduler ADDRESS`` the path must exist on the
workers too.

References
----------
Karpathy, A. (2015), "The unreasonable effectiveness of recurrent neural
networks" (``char-rnn``; ``min-char-rnn.py``). Karpathy, A., Johnson, J. &
Fei-Fei, L. (2015), "Visualizing and understanding recurrent networks",
arXiv:1506.02078. Pascanu, R., Mikolov, T. & Bengio, Y. (2013), "On the
difficulty of training recurrent neural networks", ICML.
"""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import dynamics
from ..network import Network
from ..sampling import sample_texts
from ..tasks.base import Batch
from ..tasks.text import CharCorpus, default_corpus_path
from ..train import train

TITLE = "A character language model: loss per character, gradient reach and novel samples"
QUESTION = ("Trained as the course notes' character language model, how low does each cell (tanh RNN, GRU, LSTM) "
            "bring the held-out loss per character against the unigram baseline, how far back "
            "does one character's gradient reach early and late in training, and how many of the lines it samples "
            "at temperatures 0.5, 1 and 1.5 are new?")

#: The cells of the default grid. ``gru_simple`` trains as well (its colour is set) but is left out of the
#: default grid to keep the run within its time budget: adding it costs about a quarter more time.
CELLS = ("rnn_tanh", "gru", "lstm")
COLORS = {"rnn_tanh": "tab:blue", "gru": "tab:green", "lstm": "tab:red", "gru_simple": "tab:purple"}
TEMPERATURES = (0.5, 1.0, 1.5)
#: The environment variable naming a user-given corpus (see the module docstring).
CORPUS_ENV = "GRADLAB_CORPUS"
#: The ``corpus`` value of a config that means the corpus shipped with gradlab (any other value is an absolute path).
DEFAULT = "default"
#: One line-piece in HELDOUT_EVERY is held out (those with index ≡ HELDOUT_EVERY − 1).
HELDOUT_EVERY = 10
#: At most this many held-out lines are scored.
MAX_HELDOUT = 64
#: The held-out lines whose gradient profiles are recorded (see :func:`probe_pieces`).
PROBE_LINES = 16
#: A probe line has at least this many characters when the corpus has enough such lines.
PROBE_MIN_LENGTH = 40
#: Elementwise gradient clipping threshold (the notes; min-char-rnn).
CLIP_VALUE = 5.0
STAGES = ("initialisation", "early", "late")
LOSSES = ("single", "total")
_WORD = re.compile(r"[^\W\d_]+")


def sizes(quick: bool) -> dict:
    """The grid's sizes: the default run and the reduced one of ``--quick``."""
    if quick:
        return dict(cells=("rnn_tanh", "gru", "lstm"), H=32, steps=60, batch=8, lr=0.01, replicates=2,
                    eval_every=10, early=10, n_samples=8, max_length=120, k_max=40)
    return dict(cells=CELLS, H=64, steps=400, batch=16, lr=0.005, replicates=5,
                eval_every=20, early=40, n_samples=20, max_length=200, k_max=80)


# ---------------------------------------------------------------------- corpus helpers

def corpus_from_env() -> str | None:
    """The user-given corpus of ``GRADLAB_CORPUS`` as an absolute path, or None; a clear error if it is missing."""
    value = os.environ.get(CORPUS_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{CORPUS_ENV}: no such file: {path}")
    return str(path)


@functools.lru_cache(maxsize=4)
def load_corpus(path: str = DEFAULT) -> tuple[CharCorpus, CharCorpus, list[tuple[str, bool]], tuple[str, ...]]:
    """The corpus of ``path`` (:data:`DEFAULT` or a file), split: ``(full, train, heldout, lines)``.

    ``train`` is ``full`` restricted to the training line-pieces (same
    vocabulary, so a held-out character unseen in training is still
    encodable); ``heldout`` the scored held-out pieces; ``lines`` every
    non-empty line of the text, stripped (what *new* is judged against).
    """
    source = _source(path)
    full = CharCorpus(source)  # checks that the file exists and is UTF-8 text
    text = Path(source).read_text(encoding="utf-8")
    train_c = CharCorpus(source)
    train_c.sequences = [s for i, s in enumerate(full.sequences) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1]
    held = [s for i, s in enumerate(full.sequences) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]
    if not held or not train_c.sequences:
        raise ValueError(f"corpus: {source} needs at least {HELDOUT_EVERY} lines to hold one out")
    if len(held) > MAX_HELDOUT:
        held = [held[i] for i in np.linspace(0, len(held) - 1, MAX_HELDOUT).round().astype(int)]
    lines = tuple(line.strip() for line in text.splitlines() if line.strip())
    return full, train_c, held, lines


def probe_pieces(held: list[tuple[str, bool]], n: int = PROBE_LINES,
                 min_length: int = PROBE_MIN_LENGTH) -> list[tuple[str, bool]]:
    """The held-out pieces whose gradient profiles are recorded.

    The first ``n`` pieces of at least ``min_length`` characters, so that the
    profiles of every probe line reach that far back; when fewer than ``n``
    are that long, the ``n`` longest (in corpus order).
    """
    long = [p for p in held if len(p[0]) >= min_length]
    if len(long) >= n:
        return long[:n]
    keep = set(sorted(range(len(held)), key=lambda i: -len(held[i][0]))[:n])
    return [p for i, p in enumerate(held) if i in keep]


def unigram_cross_entropy(train_c: CharCorpus, heldout: list[tuple[str, bool]]) -> float:
    """Nats per character of the held-out targets under the training lines' unigram distribution.

    The best context-free model fitted on the training lines; a character (or
    the end token) never seen in training gets one pseudo-count, so the value
    is finite.
    """
    V = train_c.vocab_size
    counts = np.ones(V)
    for s, ends in train_c.sequences:
        np.add.at(counts, train_c.encode(s), 1)
        counts[train_c.eos] += ends
    logp = np.log(counts / counts.sum())
    ids = np.concatenate([np.append(train_c.encode(s), [train_c.eos] if e else []).astype(int) for s, e in heldout])
    return float(-logp[ids].mean())


def corpus_info(path: str = DEFAULT) -> dict:
    """The numbers the report needs about a corpus: sizes, H₁, log V, the held-out unigram baseline."""
    full, train_c, held, lines = load_corpus(path)
    return {"corpus": corpus_label(path), "path": _source(path), "V": full.vocab_size,
            "lines": len(lines), "characters": int(sum(len(s) for s, _ in full.sequences)),
            "train_pieces": len(train_c.sequences), "heldout_pieces": len(held),
            "H1": full.unigram_entropy, "logV": full.uniform_entropy,
            "unigram_heldout": unigram_cross_entropy(train_c, held),
            "probe_period_share": float(np.mean([s.rstrip().endswith(".") for s, _ in probe_pieces(held)])),
            "probe_lines": len(probe_pieces(held)), "initials": "".join(sorted({line[0] for line in lines}))}


def corpus_label(path: str) -> str:
    """A short name of a corpus: ``default`` or the file's stem."""
    return DEFAULT if path == DEFAULT else Path(path).stem


def _source(path: str) -> str:
    return str(default_corpus_path()) if path == DEFAULT else path


# ---------------------------------------------------------------------- metrics (unit-tested)

def classify_sample(text: str, corpus_text: str) -> str:
    """``"empty"``, ``"copy"``, ``"fragment"`` or ``"new"`` (see the module docstring).

    Parameters
    ----------
    text : str
        One sampled line (no newline).
    corpus_text : str
        The corpus's stripped lines joined by newlines, each line also
        wrapped in newlines (``"\\n" + "\\n".join(lines) + "\\n"``) so that a
        whole-line match is ``"\\n" + text + "\\n" in corpus_text``.
    """
    s = text.strip()
    if not s:
        return "empty"
    if f"\n{s}\n" in corpus_text:
        return "copy"
    if s in corpus_text:  # s holds no newline, so this is a substring of one line
        return "fragment"
    return "new"


def corpus_text_of(lines) -> str:
    """The form of a corpus :func:`classify_sample` searches."""
    return "\n" + "\n".join(lines) + "\n"


def words_of(text: str) -> list[str]:
    """The words of ``text``: maximal runs of letters, lower-cased."""
    return [w.lower() for w in _WORD.findall(text)]


def valid_word_share(text: str, vocabulary: set[str]) -> float:
    """The share of ``text``'s words found in ``vocabulary`` (NaN when it has none)."""
    w = words_of(text)
    return float(np.mean([x in vocabulary for x in w])) if w else float("nan")


def line_profiles(dh_norm: np.ndarray, lengths, k_max: int) -> np.ndarray:
    """Per-line profiles against the distance k from each line's last scored step.

    Parameters
    ----------
    dh_norm : ndarray, shape (T, B)
        ‖∂L/∂h_t‖ by real time step (one layer and direction of ``Record.dh_norm``).
    lengths : sequence of int
        The scored steps of each line (its last scored step is ``lengths[b] − 1``).
    k_max : int

    Returns
    -------
    ndarray, shape (k_max + 1, B)
        ``out[k, b] = dh_norm[lengths[b] − 1 − k, b]``, NaN where k ≥ lengths[b].
    """
    dh = np.asarray(dh_norm, np.float64)
    out = np.full((k_max + 1, dh.shape[1]), np.nan)
    for b, n in enumerate(lengths):
        seg = dynamics.profile_from_dh_norm(dh[:n, b])[: k_max + 1]
        out[: len(seg), b] = seg
    return out


def last_step_mask(mask: np.ndarray) -> np.ndarray:
    """A mask scoring only the last scored step of every sequence of ``mask`` (T, B)."""
    lengths = (np.asarray(mask) > 0).sum(axis=0)
    out = np.zeros_like(mask)
    out[lengths - 1, np.arange(mask.shape[1])] = 1.0
    return out


# ---------------------------------------------------------------------- grid point (runs on Dask workers)

def _heldout_metric(net: Network, corpus: CharCorpus, batch: Batch) -> float:
    return corpus.metric(net.predict(batch.x), batch)


def _profile_rows(net: Network, probe: Batch, stage: str, step: int, k_max: int) -> list[dict]:
    lengths = (probe.mask > 0).sum(axis=0)
    k_fit = int(min(lengths.min() - 1, k_max))
    rows = []
    for loss_kind, mask in (("single", last_step_mask(probe.mask)), ("total", probe.mask)):
        res = net.loss_and_grads(probe.x, probe.y, mask)
        prof = line_profiles(res.record.dh_norm[0, 0], lengths, k_max)
        rel = prof / prof[:1] if loss_kind == "single" else prof
        fit = dynamics.decay_rate(rel[: k_fit + 1])
        med = np.nanmedian(rel, axis=1)
        rows.append({"kind": "fit", "stage": stage, "step": step, "loss": loss_kind, "rho": fit.rho,
                     "rho_ci_low": fit.ci_low, "rho_ci_high": fit.ci_high, "k_fit": k_fit,
                     "median_k0": float(med[0]), "median_k20": float(med[min(20, k_max)]),
                     "median_kfit": float(med[k_fit])})
        for k in range(k_max + 1):
            for b in range(prof.shape[1]):
                if np.isfinite(prof[k, b]):
                    rows.append({"kind": "profile", "stage": stage, "step": step, "loss": loss_kind, "k": k,
                                 "sequence": b, "grad_norm": float(prof[k, b]), "relative": float(rel[k, b])})
    return rows


def train_point(config: dict, seed: int) -> list[dict]:
    """Train one character model; return its learning curve, gradient profiles and samples as tidy rows.

    Rows carry ``kind``: ``"curve"`` (step, held-out and training nats/char),
    ``"fit"`` and ``"profile"`` (gradient profiles per stage and loss),
    ``"sample"`` (one sampled line with its class and valid-word share) and
    one ``"final"`` row (final metrics and the point's cost).
    """
    t_start, c_start = time.perf_counter(), time.process_time()
    full, train_c, held, lines = load_corpus(config["corpus"])
    dtype = config["dtype"]
    s_net, s_train, s_sample = np.random.SeedSequence(seed).spawn(3)
    net = Network(config["cell"], full.vocab_size, config["H"], full.vocab_size, head="softmax",
                  mode="many_to_many", dtype=dtype, seed=int(s_net.generate_state(1)[0]), backend=config["backend"])
    heldout = full.batch_of(held, dtype)
    probe = full.batch_of(probe_pieces(held), dtype)
    steps, every, early, k_max = config["steps"], config["eval_every"], config["early"], config["k_max"]
    rows = [{"kind": "curve", "step": 0, "heldout": _heldout_metric(net, full, heldout), "train": float("nan")}]
    rows += _profile_rows(net, probe, "initialisation", 0, k_max)

    def on_step(step, res):
        if step % every == 0 or step == steps:
            rows.append({"kind": "curve", "step": step, "heldout": _heldout_metric(net, full, heldout),
                         "train": float("nan")})
        if step == early or step == steps:
            rows.extend(_profile_rows(net, probe, "early" if step == early else "late", step, k_max))
        return False

    hist = train(net, train_c, steps, batch_size=config["batch"], optimizer="adam", lr=config["lr"],
                 clip="value", clip_threshold=CLIP_VALUE, seed=s_train, until_solved=False, callback=on_step,
                 backend=config["backend"])
    metric = hist["metric"].to_numpy()
    if len(hist) < steps:  # training stopped early (diverged): profile and score the network as it stopped
        rows.append({"kind": "curve", "step": len(hist), "heldout": _heldout_metric(net, full, heldout),
                     "train": float("nan")})
        rows.extend(_profile_rows(net, probe, "late", len(hist), k_max))
    for row in rows:  # the training metric: mean over the batches since the previous evaluation
        if row["kind"] == "curve" and row["step"] > 0:
            lo = max(row["step"] - every, 0)
            row["train"] = float(np.nanmean(metric[lo: row["step"]]))

    corpus_text = corpus_text_of(lines)
    vocabulary = {w for line in lines for w in words_of(line)}
    n, max_length = config["n_samples"], config["max_length"]
    for i, (tau, s) in enumerate(zip(TEMPERATURES, s_sample.spawn(len(TEMPERATURES)))):
        texts = sample_texts(net, train_c, n, max_length=max_length, temperature=tau, seed=s)
        for j, text in enumerate(texts):
            rows.append({"kind": "sample", "temperature": tau, "index": j, "text": text, "length": len(text),
                         "ended": len(text) < max_length, "status": classify_sample(text, corpus_text),
                         "valid_words": valid_word_share(text, vocabulary), "words": len(words_of(text))})
    final_heldout = next(r["heldout"] for r in reversed(rows) if r["kind"] == "curve")
    rows.append({"kind": "final", "heldout": final_heldout, "train": float(np.nanmean(metric[-every:])),
                 "steps_done": len(hist), "status_train": hist.attrs["status"], "skipped": hist.attrs["skipped"],
                 "clipped_share": float(hist["clipped"].mean()), "seconds": time.perf_counter() - t_start,
                 "cpu_seconds": time.process_time() - c_start})
    return rows


# ---------------------------------------------------------------------- the study

def corpora() -> list[str]:
    """The corpora of this run: :data:`DEFAULT` and, when ``GRADLAB_CORPUS`` is set, that file."""
    user = corpus_from_env()
    return [DEFAULT] + ([user] if user else [])


def grids(quick: bool, corpus_paths=(DEFAULT,)) -> dict[str, tuple[list[dict], int]]:
    """Every sweep of the study: label -> (configs, replicates); one sweep per corpus."""
    s = sizes(quick)
    out = {}
    for path in corpus_paths:
        configs = [{"corpus": path, "cell": c, "H": s["H"], "steps": s["steps"], "batch": s["batch"], "lr": s["lr"],
                    "eval_every": s["eval_every"], "early": s["early"], "n_samples": s["n_samples"],
                    "max_length": s["max_length"], "k_max": s["k_max"]} for c in s["cells"]]
        out["train" if path == DEFAULT else f"train_{_safe(corpus_label(path))}"] = (configs, s["replicates"])
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "user"


def run(ctx) -> None:
    """Run the sweeps and write ``reports/language_model/``."""
    from . import language_model_report as report

    paths = corpora()
    g = grids(ctx.quick, paths)
    results = {}
    for (label, (configs, reps)), path in zip(g.items(), paths):
        results[path] = ctx.sweep(label, train_point, configs, reps)
    rep = ctx.report(title=TITLE, question=QUESTION)
    report.write(rep, results, {p: corpus_info(p) for p in paths}, sizes(ctx.quick))
    ctx.finish(rep, corpora=[corpus_info(p)["path"] for p in paths])


def split_kinds(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The rows of a sweep by ``kind``, each without the columns that are empty for it."""
    return {k: g.dropna(axis=1, how="all").reset_index(drop=True) for k, g in df.groupby("kind")}
