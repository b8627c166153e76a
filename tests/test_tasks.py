"""gradlab.tasks: shapes, seeds, the documented chance baselines on large samples, Reber, corpora, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import gradlab
from gradlab import losses, tasks
from gradlab.tasks import reber

ALL = [
    lambda: tasks.Adding(12),
    lambda: tasks.Adding(25, "hs1997"),
    lambda: tasks.CopyMemory(6, length=3),
    lambda: tasks.TemporalOrder(20),
    lambda: tasks.EmbeddedReber(),
    lambda: tasks.SequenceReversal(4),
    lambda: tasks.CharCorpus(max_length=40),
]


@pytest.mark.parametrize("make", ALL)
def test_batches_fit_a_network_and_seeds_reproduce(make):
    task = make()
    a, b, c = task.sample(5, 7), task.sample(5, 7), task.sample(5, 8)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not (a.x.shape == c.x.shape and np.array_equal(a.x, c.x) and np.array_equal(a.y, c.y))
    assert a.x.ndim == 3 and a.x.shape[1] == 5 and a.x.shape[2] == task.input_size
    net = task.network("gru", 3, backend="numpy")
    res = net.loss_and_grads(a.x, a.y, a.mask)
    assert np.isfinite(res.loss)
    m = task.metric(res.record.outputs, a)
    assert np.isfinite(m) and isinstance(task.solved(m), bool)
    f32 = task.sample(2, 0, dtype=np.float32)
    assert f32.x.dtype == np.float32
    repr(task)


def test_adding_le2015_structure_and_baseline():
    task = tasks.Adding(30)
    bt = task.sample(20000, 0)
    x, y = bt.x, bt.y[:, 0]
    assert x.shape == (30, 20000, 2) and bt.mask is None
    markers = x[:, :, 1]
    np.testing.assert_array_equal(markers.sum(0), 2.0)
    assert np.all(markers[:15].sum(0) == 1) and np.all(markers[15:].sum(0) == 1)
    np.testing.assert_allclose(y, (x[:, :, 0] * markers).sum(0))
    assert x[:, :, 0].min() >= 0 and x[:, :, 0].max() <= 1
    chance = np.mean((1.0 - y) ** 2)  # predicting 1
    assert chance == pytest.approx(task.baseline, abs=0.005)
    assert task.baseline == pytest.approx(1 / 6)
    assert task.metric(np.ones((20000, 1)), bt) == pytest.approx(chance)
    assert task.solved(0.009) and not task.solved(0.02)


def test_adding_hs1997_structure_and_baseline():
    task = tasks.Adding(100, "hs1997")
    lengths = set()
    correct, sq = [], []
    for seed in range(20):
        bt = task.sample(1000, seed)
        x, y = bt.x, bt.y[:, 0]
        T = x.shape[0]
        lengths.add(T)
        assert 100 <= T <= 110
        marks = x[:, :, 1]
        assert np.all((marks == 1).sum(0) == 2)
        first = np.argmax(marks == 1, axis=0)
        assert first.max() < 49  # both marks lie in the first T/2 - 1 pairs (X1 in the first 10)
        assert np.all(np.sort(np.where(marks.T == 1)[1].reshape(-1, 2), axis=1)[:, 1] <= 49)
        assert np.all((marks[0] == -1) | (marks[0] == 1)) and np.all(marks[-1] == -1)
        assert np.all(x[0, marks[0] == 1, 0] == 0)  # a marked first pair has its value set to 0
        np.testing.assert_allclose(y, 0.5 + (x[:, :, 0] * (marks == 1)).sum(0) / 4)
        correct.append(task.metric(np.full((1000, 1), 0.5), bt))
        sq.append(np.mean((y - 0.5) ** 2))
    assert len(lengths) > 3
    assert np.mean(correct) == pytest.approx(task.baseline, abs=0.01)
    assert np.mean(sq) == pytest.approx(task.baseline_loss, rel=0.03)
    assert task.solved(1.0) and not task.solved(0.99)


def test_copy_memory_structure_and_baseline():
    task = tasks.CopyMemory(20, length=10, symbols=8)
    bt = task.sample(4000, 1)
    ids = np.argmax(bt.x, axis=-1)
    assert bt.x.shape == (40, 4000, 10)
    data = ids[:10]
    assert data.min() >= 1 and data.max() <= 8
    np.testing.assert_array_equal(ids[10:29], 0)
    np.testing.assert_array_equal(ids[29], 9)
    np.testing.assert_array_equal(ids[30:], 0)
    np.testing.assert_array_equal(bt.y[:30], 0)
    np.testing.assert_array_equal(bt.y[30:], data)
    # the chance predictor: blanks where blank, uniform over the data symbols at recall
    logits = np.full((40, 4000, 9), -1e9)
    logits[:30, :, 0] = 0.0
    logits[30:, :, 1:] = 0.0
    loss, _ = losses.softmax_cross_entropy(logits, bt.y)
    assert loss == pytest.approx(task.baseline_loss, rel=1e-9)
    guesses = np.random.default_rng(0).normal(size=(40, 4000, 9))
    guesses[..., 0] = -np.inf  # guessing among the data symbols
    assert task.metric(guesses, bt) == pytest.approx(task.baseline, abs=0.01)


def test_temporal_order_structure_and_baseline():
    task = tasks.TemporalOrder(100)
    bt = task.sample(8000, 2)
    ids = np.argmax(bt.x, axis=-1)
    assert 100 <= ids.shape[0] <= 110
    assert np.all(ids[0] == 6) and np.all(ids[-1] == 7)
    rel = (ids == 4) | (ids == 5)
    assert np.all(rel.sum(0) == 2)
    pos = np.sort(np.where(rel.T)[1].reshape(-1, 2), axis=1)
    assert pos[:, 0].min() >= 10 and pos[:, 0].max() <= 20
    assert pos[:, 1].min() >= 50 and pos[:, 1].max() <= 60
    cols = np.arange(8000)
    s1, s2 = ids[pos[:, 0], cols] - 4, ids[pos[:, 1], cols] - 4
    np.testing.assert_array_equal(bt.y, 2 * s1 + s2)
    freq = np.bincount(bt.y, minlength=4) / 8000
    assert freq.max() == pytest.approx(task.baseline, abs=0.02)  # the best constant guess
    assert tasks.TemporalOrder(4).sample(3, 0).x.shape[0] == 4


KNOWN_REBER = ["BTSSXXTVVE", "BPVVE", "BTXSE", "BPTVPSE", "BTSXXVPSE"]

# The Reber graph as drawn by Cleeremans et al. 1989, written out again here, independently of gradlab.
EDGES = [(0, "B", 1), (1, "T", 2), (1, "P", 3), (2, "S", 2), (2, "X", 4), (3, "T", 3), (3, "V", 5),
         (4, "X", 3), (4, "S", 6), (5, "P", 4), (5, "V", 6), (6, "E", 7)]


def all_embedded(max_inner):
    """Every embedded Reber string whose inner string has at most ``max_inner`` symbols."""
    inner, frontier = set(), [(0, "")]
    while frontier:
        state, s = frontier.pop()
        if state == 7:
            inner.add(s)
            continue
        if len(s) < max_inner:
            frontier += [(b, s + c) for a, c, b in EDGES if a == state]
    return {"B" + t + s + t + "E" for s in inner for t in "TP"}


def test_reber_checker_agrees_with_enumeration():
    """Every valid string up to length 16 passes; every substitution or deletion passes iff it is one of them."""
    for s in KNOWN_REBER:
        assert reber.is_valid(s, embedded=False)
        assert reber.is_valid("BT" + s + "TE") and reber.is_valid("BP" + s + "PE")
        assert not reber.is_valid("BT" + s + "PE")  # the long-range dependency
    valid = all_embedded(12)
    assert len(valid) > 200
    checked = 0
    for s in valid:
        assert reber.is_valid(s)
        for i in range(len(s)):
            for c in reber.SYMBOLS:
                if c != s[i]:
                    corrupted = s[:i] + c + s[i + 1 :]
                    assert reber.is_valid(corrupted) == (corrupted in valid), corrupted
            dropped = s[:i] + s[i + 1 :]
            assert reber.is_valid(dropped) == (dropped in valid), dropped
            checked += 1
        assert not reber.is_valid(s + "E") and not reber.is_valid(s[:-1])
    assert checked > 1000
    assert not reber.is_valid("") and not reber.is_valid("BTBTXSE")


def test_generated_reber_strings_are_valid():
    strings = tasks.EmbeddedReber().strings(2000, 0)
    assert all(reber.is_valid(s) for s in strings)
    short = [s for s in strings if len(s) <= 14]
    assert set(short) <= all_embedded(10) and len(set(short)) > 50
    second = np.array([s[1] == "T" for s in strings])
    assert second.mean() == pytest.approx(0.5, abs=0.05)
    assert all(reber.is_valid(reber.generate(seed, embedded=False), embedded=False) for seed in range(50))


def test_reber_batch_and_memoryless_baseline():
    task = tasks.EmbeddedReber()
    bt = task.sample(4000, 3)
    strings = bt.info["strings"]
    lengths = np.array([len(s) for s in strings])
    np.testing.assert_array_equal(bt.mask.sum(0), lengths - 1)
    idx = {c: i for i, c in enumerate(reber.SYMBOLS)}
    for b in range(5):
        s = strings[b]
        np.testing.assert_array_equal(np.argmax(bt.x[: len(s) - 1, b], -1), [idx[c] for c in s[:-1]])
        np.testing.assert_array_equal(bt.y[: len(s) - 1, b], [idx[c] for c in s[1:]])
    # a predictor that knows every legal successor but forgets the embedding: it always says T
    legal = bt.info["legal"]
    outputs = np.where(legal, 1.0, 0.0)
    for b, s in enumerate(strings):
        outputs[len(s) - 3, b] = 0.0
        outputs[len(s) - 3, b, idx["T"]] = 1.0
    assert task.metric(outputs, bt) == pytest.approx(task.baseline, abs=0.03)
    assert task.metric(np.where(legal, 1.0, 0.0), bt) == 1.0
    assert all(len(s) <= 12 for s in tasks.EmbeddedReber(max_length=12).strings(200, 0))


def test_reversal():
    task = tasks.SequenceReversal(5, symbols=6)
    bt = task.sample(3, 0)
    ids = np.argmax(bt.x, axis=-1)
    assert bt.x.shape == (5, 3, 6) and bt.y.shape == (6, 3)
    np.testing.assert_array_equal(bt.y[:5], ids[::-1])
    np.testing.assert_array_equal(bt.y[5], 6)
    big = task.sample(5000, 1)
    logits = np.zeros((6, 5000, 7))  # the chance predictor: uniform over the symbols, the end token certain
    logits[:5, :, 6] = -np.inf
    logits[5, :, :6] = -np.inf
    assert losses.softmax_cross_entropy(logits, big.y)[0] == pytest.approx(task.baseline_loss, rel=1e-12)
    assert task.baseline_loss == pytest.approx(5 * np.log(6))
    guesses = np.random.default_rng(2).normal(size=(6, 5000, 7))
    guesses[..., 6] = -np.inf
    assert task.metric(guesses, big) == pytest.approx(task.baseline, abs=0.01)


def test_default_corpus_ships_and_its_baseline_holds():
    path = tasks.default_corpus_path()
    assert path.is_file()
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    assert len(lines) >= 250
    corpus = tasks.CharCorpus()
    assert corpus.vocab[0] == "<eos>" and corpus.vocab_size == len(set("".join(lines))) + 1
    assert corpus.decode(corpus.encode(lines[0])) == lines[0]
    bt = corpus.sample(6, 0)
    for b, text in enumerate(bt.info["text"]):
        n = len(text) + 1
        assert bt.mask[:, b].sum() == n
        np.testing.assert_array_equal(bt.y[:n, b], np.append(corpus.encode(text), corpus.eos))
        np.testing.assert_array_equal(bt.x[0, b], 0.0)
        np.testing.assert_array_equal(np.argmax(bt.x[1:n, b], -1), bt.y[: n - 1, b])
    # the unigram predictor scores the unigram entropy
    counts = np.zeros(corpus.vocab_size)
    for s, ends in corpus.sequences:
        np.add.at(counts, corpus.encode(s), 1)
        counts[0] += ends
    logits = np.log(counts / counts.sum())
    big = corpus.sample(1500, 1)
    outputs = np.broadcast_to(logits, big.y.shape + (corpus.vocab_size,))
    assert corpus.metric(outputs, big) == pytest.approx(corpus.baseline, rel=0.02)
    assert corpus.unigram_entropy < corpus.uniform_entropy


def test_corpus_from_a_file_wraps_long_lines(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("héllo wörld\n\n  a b c d e f g h i j  \n", encoding="utf-8")
    corpus = tasks.CharCorpus(p, max_length=6)
    assert ("héllo", False) in corpus.sequences and ("wörld", True) in corpus.sequences
    assert all(len(s) <= 6 for s, _ in corpus.sequences)
    assert "ö" in corpus.vocab and "\n" not in corpus.vocab
    assert tasks.CharCorpus(text="abc").vocab == ["<eos>", "a", "b", "c"]


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: tasks.Adding(1), ValueError, "T: expected at least 2"),
        (lambda: tasks.Adding(1, "hs1997"), ValueError, "T: expected at least 2"),
        (lambda: tasks.Adding(10, "gauss"), ValueError, "form: unknown form"),
        (lambda: tasks.Adding(10.5), TypeError, "T: expected an integer"),
        (lambda: tasks.CopyMemory(1), ValueError, "T: expected at least 2"),
        (lambda: tasks.CopyMemory(10, length=0), ValueError, "length"),
        (lambda: tasks.TemporalOrder(1), ValueError, "T: expected at least 4"),
        (lambda: tasks.TemporalOrder(3), ValueError, "T: expected at least 4"),
        (lambda: tasks.SequenceReversal(1), ValueError, "T: expected at least 2"),
        (lambda: tasks.EmbeddedReber(max_length=5), ValueError, "max_length"),
        (lambda: tasks.CharCorpus(max_length=1), ValueError, "max_length"),
        (lambda: tasks.CharCorpus("/no/such/corpus.txt"), FileNotFoundError, "path: no such file"),
        (lambda: tasks.CharCorpus(text="  \n\n "), ValueError, "holds no text"),
        (lambda: tasks.CharCorpus(text=3), TypeError, "text"),
        (lambda: tasks.Adding(10).sample(0), ValueError, "batch_size"),
        (lambda: tasks.Adding(10).sample(4, "seed"), TypeError, "seed"),
        (lambda: tasks.Adding(10).sample(4, 0, dtype=np.int32), TypeError, "dtype"),
        (lambda: tasks.CharCorpus().encode("∑"), ValueError, "text: characters"),
    ],
)
def test_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_empty_and_non_utf8_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt holds no text"):
        tasks.CharCorpus(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        tasks.CharCorpus(latin)


def test_network_builder_fits():
    for make in ALL:
        task = make()
        net = task.network("lstm", 4)
        assert isinstance(net, gradlab.Network)
        assert (net.input_size, net.output_size, net.head, net.mode) == (
            task.input_size, task.output_size, task.head, task.mode)
