"""gradlab.tasks.WordCorpus and gradlab.language_model: tokenizer, <unk>/<eos>, sentence probability, sampling."""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import gradlab
from gradlab import language_model as lm
from gradlab import sampling, tasks
from gradlab.tasks import WordCorpus, detokenize, per_word_perplexity, tokenize

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default():
    return WordCorpus()


@pytest.fixture(scope="module")
def lines():
    return tasks.default_word_corpus_path().read_text(encoding="utf-8").splitlines()


# ----------------------------------------------------------------------------- tokenizer


def test_tokenizer_rules():
    text = "The boat's sail (blue) tore. Did it?! Yes...\nA well-known man paid 3.50 for 1,000 nets; \"Go.\" She went"
    assert tokenize(text) == [
        ["the", "boat's", "sail", "(", "blue", ")", "tore", "."],
        ["did", "it", "?!"],
        ["yes", "..."],
        ["a", "well-known", "man", "paid", "3.50", "for", "1,000", "nets", ";", '"', "go", ".", '"'],
        ["she", "went"],
    ]
    assert tokenize("Hello World.", lower=False) == [["Hello", "World", "."]]
    # line breaks end sentences, or only blank lines do
    assert tokenize("a b\nc d") == [["a", "b"], ["c", "d"]]
    assert tokenize("a b\nc d\n\ne f", split_lines=False) == [["a", "b", "c", "d"], ["e", "f"]]
    assert tokenize("  \n\n ") == [] and tokenize("") == []
    assert tokenize("Ünïcode wörds — fine.") == [["ünïcode", "wörds", "—", "fine", "."]]
    with pytest.raises(TypeError, match="text"):
        tokenize(b"bytes")


def test_detokenize_spacing():
    assert detokenize(["the", "boat", ",", "the", "net", "(", "old", ")", "."]) == "the boat, the net (old)."
    assert detokenize(["he", "said", '"', "go", "!", '"', "and", "left"]) == 'he said "go!" and left'
    assert detokenize(["a", "<eos>", "b"]) == "a"
    assert detokenize([]) == ""


def test_round_trip_on_text_without_unknown_words(lines):
    for line in lines[:400]:  # the shipped corpus is written in canonical spacing
        assert " ".join(detokenize(s) for s in tokenize(line, lower=False)) == line
    text = "\n".join(lines[:150])
    corpus = WordCorpus(text=text, lower=False, min_count=1, holdout=0.0)
    assert corpus.unk_rate == 0.0
    originals = [detokenize(s) for s in tokenize(text, lower=False)]
    assert len(originals) == corpus.num_sentences
    for s, original in zip(corpus.sentences, originals):
        ids = corpus.encode(s)
        assert corpus.unk not in ids and corpus.eos not in ids
        assert corpus.decode(ids) == original
        assert corpus.decode(corpus.encode(original)) == original
    assert corpus.texts() == originals


# ----------------------------------------------------------------------------- vocabulary, <unk>, <eos>


TOY = "the cat sat. the dog sat. a cat ran!\nthe cat and the dog ran. a bird sang? the end."


def test_vocabulary_order_and_unk_counts_match_the_cap():
    full = WordCorpus(text=TOY, min_count=1, holdout=0.0)
    counts = Counter(w for s in tokenize(TOY) for w in s)
    assert full.vocab[:2] == ["<eos>", "<unk>"]
    assert full.vocab[2:] == sorted(counts, key=lambda w: (-counts[w], w))  # by count, ties alphabetical
    assert full.vocab[2:6] == ["the", ".", "cat", "a"]
    for cap in (1, 3, 5, 8):
        c = WordCorpus(text=TOY, max_vocab=cap, min_count=1, holdout=0.0)
        assert c.vocab_size == cap + 2 and c.vocab[2:] == full.vocab[2 : cap + 2]
        kept = set(c.vocab[2:])
        expected_unk = sum(n for w, n in counts.items() if w not in kept)
        ids = np.concatenate([c.encode(s) for s in c.sentences])
        assert (ids == c.unk).sum() == expected_unk
        assert c.unk_rate == pytest.approx(expected_unk / sum(counts.values()))
    c = WordCorpus(text=TOY, min_count=3, holdout=0.0)
    assert set(c.vocab[2:]) == {w for w, n in counts.items() if n >= 3}
    assert c.num_types == len(counts) and c.num_tokens == sum(counts.values())
    # unknown words anywhere (held out, scored later) read <unk>
    assert c.decode(c.encode("the zebra sat .")) == "the <unk> <unk>."
    assert c.encode(["The", "cat"]).tolist() == [c.index["the"], c.index["cat"]]


def test_every_sentence_ends_with_eos(default):
    for ids in default.encode_sentences("the baker sold a cake. Did she? Yes!\nno stop here"):
        assert ids[-1] == default.eos and default.eos not in ids[:-1]
    batch = default.sample(16, 3)
    for b in range(16):
        n = int(batch.mask[:, b].sum())
        assert batch.y[n - 1, b] == default.eos and default.eos not in batch.y[: n - 1, b]
        np.testing.assert_array_equal(batch.x[0, b], 0.0)
        np.testing.assert_array_equal(np.argmax(batch.x[1:n, b], -1), batch.y[: n - 1, b])
    assert batch.info["text"][0] == detokenize(batch.info["tokens"][0])
    # long sentences are cut into pieces for training: only the last piece ends with <eos>
    c = WordCorpus(text="a b c d e f g h i j.\nb c.", min_count=1, holdout=0.0, max_length=4)
    assert [len(ids) for ids, _ in c.sequences] == [4, 4, 4, 4]
    assert [ends for _, ends in c.sequences] == [False, False, True, True]
    assert sum((ids == c.eos).sum() for ids, _ in c.sequences) == c.num_sentences == 2
    # evaluation batches hold whole sentences
    (b,) = list(c.batches(c.sentences))
    assert b.mask.sum() == c.count_tokens(c.sentences) == 12 + 4


def test_holdout_split_is_deterministic_and_disjoint():
    text = "\n".join(f"sentence number {i} ." for i in range(100))
    c = WordCorpus(text=text, holdout=0.1, min_count=1)
    assert len(c.holdout_sentences) == 10 and c.num_sentences == 90
    assert [s[2] for s in c.holdout_sentences] == [str(i) for i in range(9, 100, 10)]
    assert "9" not in c.vocab  # the vocabulary comes from the training sentences only
    assert c.holdout_unk_rate == pytest.approx(10 / 40)
    assert WordCorpus(text=text, holdout=0.0).holdout_sentences == []
    assert len(WordCorpus(text=text, holdout=0.25).holdout_sentences) == 25


def test_default_corpus_ships_and_its_baseline_holds(default, lines):
    assert tasks.default_word_corpus_path().is_file()
    assert 4000 <= default.num_sentences + len(default.holdout_sentences) <= 8000
    assert 300 <= default.vocab_size <= 1500 and 0 < default.unk_rate < 0.05
    assert default.num_types > default.vocab_size  # rare names become <unk>
    assert repr(default).startswith("WordCorpus(words:")
    # the unigram predictor scores the unigram entropy: exactly on all training targets, about on a batch
    ids = np.concatenate([ids for ids, _ in default.sequences])
    assert -default.unigram_log_probs[ids].mean() == pytest.approx(default.baseline, rel=1e-12)
    batch = default.sample(300, 1)
    outputs = np.broadcast_to(default.unigram_log_probs, batch.y.shape + (default.vocab_size,))
    assert default.metric(outputs, batch) == pytest.approx(default.baseline, rel=0.05)
    assert default.baseline < default.uniform_entropy and default.criterion < default.baseline


def test_the_shipped_corpus_is_what_the_generator_makes(lines):
    spec = importlib.util.spec_from_file_location("make_word_corpus", ROOT / "scripts" / "make_word_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate().splitlines() == lines


def test_batches_seed_and_fit_a_network(default):
    a, b, c = default.sample(5, 7), default.sample(5, 7), default.sample(5, 8)
    np.testing.assert_array_equal(a.y, b.y)
    assert not (a.y.shape == c.y.shape and np.array_equal(a.y, c.y))
    assert default.sample(2, 0, dtype=np.float32).x.dtype == np.float32
    net = default.network("gru", 4, backend="numpy")
    res = net.loss_and_grads(a.x, a.y, a.mask)
    assert np.isfinite(res.loss) and np.isfinite(default.metric(res.record.outputs, a))


def test_texts_feed_a_character_model_and_per_word_perplexity(default):
    train, held = default.texts("train"), default.texts("holdout")
    assert len(train) == default.num_sentences and len(held) == len(default.holdout_sentences)
    assert len(default.texts("all")) == len(train) + len(held)
    assert any("<unk>" in t for t in default.texts("train", unk=True)) and not any("<unk>" in t for t in train)
    chars = tasks.CharCorpus(text="\n".join(train), max_length=400)
    assert len(chars.sequences) == len(train) and all(ends for _, ends in chars.sequences)
    assert default.count_tokens(held) == default.count_tokens() == sum(len(s) + 1 for s in default.holdout_sentences)
    assert per_word_perplexity(0.0, 5) == 1.0
    assert per_word_perplexity(10 * np.log(7.0), 10) == pytest.approx(7.0)
    with pytest.raises(ValueError, match="n_words"):
        per_word_perplexity(1.0, 0)
    with pytest.raises(ValueError, match="total_nll"):
        per_word_perplexity(float("nan"), 3)


def test_empty_unreadable_and_bad_input(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt holds no text"):
        WordCorpus(empty)
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\t\n")
    with pytest.raises(ValueError, match="holds no text"):
        WordCorpus(blank)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait.".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        WordCorpus(latin)
    with pytest.raises(FileNotFoundError, match="path: no such file"):
        WordCorpus(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="path: no such file"):
        WordCorpus(tmp_path)  # a directory
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.txt"
        locked.write_text("a b c.")
        locked.chmod(0)
        with pytest.raises(PermissionError):
            WordCorpus(locked)
    for kwargs, error, match in [
        ({"text": "a.", "path": "x.txt"}, ValueError, "path or a text"),
        ({"text": 3}, TypeError, "text"),
        ({"path": 3}, TypeError, "path"),
        ({"text": "a.", "max_vocab": 0}, ValueError, "max_vocab"),
        ({"text": "a.", "min_count": 0}, ValueError, "min_count"),
        ({"text": "a.", "holdout": 0.9}, ValueError, "holdout"),
        ({"text": "a.", "holdout": True}, TypeError, "holdout"),
        ({"text": "a.", "lower": "yes"}, TypeError, "lower"),
        ({"text": "a.", "max_length": 1}, ValueError, "max_length"),
    ]:
        with pytest.raises(error, match=match):
            WordCorpus(**kwargs)


# ----------------------------------------------------------------------------- sentence probability

BIGRAM_TEXT = "a b. b a a. a b. b b a."


def _bigram_network(corpus, first, table):
    """A network whose ŷ⟨1⟩ = first and ŷ⟨t⟩ = table[y⟨t−1⟩] exactly.

    rnn_relu with H = V, W_x = I, W_h = 0, b = 0 gives h⟨t⟩ = x⟨t⟩ (the one-hot
    of the previous token, 0 at t = 1); the head is b_y = log first and
    W_y[:, j] = log table[j] − b_y.
    """
    V = corpus.vocab_size
    net = corpus.network("rnn_relu", V, backend="numpy")
    net.params["layer0.forward.W_x"][...] = np.eye(V)
    net.params["layer0.forward.W_h"][...] = 0.0
    net.params["layer0.forward.b"][...] = 0.0
    net.params["head.b_y"][...] = np.log(first)
    net.params["head.W_y"][...] = (np.log(table) - np.log(first)).T
    return net


@pytest.fixture(scope="module")
def toy():
    corpus = WordCorpus(text=BIGRAM_TEXT, min_count=1, holdout=0.0)
    assert corpus.vocab == ["<eos>", "<unk>", "a", "b", "."]
    first = np.array([0.1, 0.1, 0.4, 0.3, 0.1])  # P(y<1>) over <eos>, <unk>, a, b, .
    table = np.array([  # P(next | previous), rows: previous token
        [0.2, 0.2, 0.2, 0.2, 0.2],  # after <eos> (never fed)
        [0.1, 0.1, 0.2, 0.2, 0.4],  # after <unk>
        [0.05, 0.05, 0.3, 0.4, 0.2],  # after a
        [0.1, 0.1, 0.5, 0.1, 0.2],  # after b
        [0.7, 0.1, 0.1, 0.05, 0.05],  # after .
    ])
    return corpus, first, table, _bigram_network(corpus, first, table)


def test_sentence_log_prob_by_hand(toy):
    corpus, first, table, net = toy
    # "a b ." <eos>: P = P(a) P(b|a) P(.|b) P(<eos>|.) = 0.4 * 0.4 * 0.2 * 0.7
    assert lm.sentence_log_prob(net, corpus, "a b.") == pytest.approx(np.log(0.4 * 0.4 * 0.2 * 0.7), abs=1e-12)
    # "b a a" <eos> (no full stop): 0.3 * 0.5 * 0.3 * P(<eos>|a) = 0.05
    assert lm.sentence_log_prob(net, corpus, ["b", "a", "a"]) == pytest.approx(np.log(0.3 * 0.5 * 0.3 * 0.05))
    # an unknown word is scored as <unk>: "zebra a ." = 0.1 * P(a|<unk>) 0.2 * P(.|a) 0.2 * 0.7
    res = lm.sentence_log_prob(net, corpus, "Zebra a.", per_token=True)
    assert res.tokens == ["<unk>", "a", ".", "<eos>"]
    np.testing.assert_allclose(res.terms, np.log([0.1, 0.2, 0.2, 0.7]))
    assert res.log_prob == pytest.approx(res.terms.sum())
    # the empty sentence would be P(<eos>) alone, but holds nothing to score
    with pytest.raises(ValueError, match="one sentence"):
        lm.sentence_log_prob(net, corpus, "a. b.")
    with pytest.raises(ValueError, match="one sentence"):
        lm.sentence_log_prob(net, corpus, "   ")


def test_log_probs_and_perplexity_agree(toy):
    corpus, first, table, net = toy
    sentences = ["a b.", "b b a.", "a"]
    lp, n = lm.log_probs(net, corpus, sentences, batch_size=2)
    np.testing.assert_array_equal(n, [4, 5, 2])
    expected = [np.log(0.4 * 0.4 * 0.2 * 0.7), np.log(0.3 * 0.1 * 0.5 * 0.2 * 0.7), np.log(0.4 * 0.05)]
    np.testing.assert_allclose(lp, expected)
    assert lm.perplexity(net, corpus, sentences) == pytest.approx(np.exp(-sum(expected) / 11))
    assert lm.perplexity(net, corpus, "a b. b b a.\na") == pytest.approx(np.exp(-sum(expected) / 11))
    # the task's metric on evaluation batches is the same per-token cross-entropy
    (batch,) = list(corpus.batches(sentences))
    assert corpus.metric(net.predict(batch.x), batch) == pytest.approx(-sum(expected) / 11)
    with pytest.raises(ValueError, match="no held-out"):
        lm.perplexity(net, corpus)


def test_state_independent_model_gives_a_product_of_unigrams(default):
    net = default.network("lstm", 8, seed=1, backend="numpy")
    net.params["head.W_y"][...] = 0.0  # outputs no longer depend on the state
    p = np.random.default_rng(0).dirichlet(np.ones(default.vocab_size))
    net.params["head.b_y"][...] = np.log(p)
    s = "the baker sold her warm bread at the bakery ."
    ids = np.append(default.encode(s), default.eos)
    assert lm.sentence_log_prob(net, default, s) == pytest.approx(np.log(p[ids]).sum())
    held = default.holdout_sentences[:100]
    assert lm.perplexity(net, default, held) == pytest.approx(
        np.exp(-sum(np.log(p[i]).sum() for i in default.encode_sentences(held)) / default.count_tokens(held)))


def test_char_corpus_scores_per_character():
    chars = tasks.CharCorpus(text="ab\nba")
    net = chars.network("gru", 3, backend="numpy")
    net.params["head.W_y"][...] = 0.0
    p = np.array([0.2, 0.5, 0.3])
    net.params["head.b_y"][...] = np.log(p)
    assert lm.sentence_log_prob(net, chars, "abb") == pytest.approx(np.log(0.5 * 0.3 * 0.3 * 0.2))
    assert lm.perplexity(net, chars, "ab\nba") == pytest.approx(np.exp(-2 * np.log(0.5 * 0.3 * 0.2) / 6))
    with pytest.raises(ValueError, match="held-out"):
        lm.perplexity(net, chars)


def test_language_model_bad_input(toy, default):
    corpus, _, _, net = toy
    with pytest.raises(ValueError, match="vocabulary size"):
        lm.sentence_log_prob(default.network("gru", 2), corpus, "a")
    with pytest.raises(ValueError, match="unidirectional"):
        lm.perplexity(corpus.network("gru", 2, bidirectional=True), corpus, "a")
    with pytest.raises(TypeError, match="corpus"):
        lm.perplexity(net, "corpus", "a")
    with pytest.raises(TypeError, match="sentence"):
        lm.sentence_log_prob(net, corpus, 3)
    with pytest.raises(TypeError, match="corpus"):
        lm.sample_sentences(net, tasks.CharCorpus(text="ab"))


# ----------------------------------------------------------------------------- sampling


def test_sampling_never_emits_unk_when_forbidden(toy):
    corpus, first, table, _ = toy
    likes_unk = table.copy()
    likes_unk[:, corpus.unk] = 0.9  # <unk> is by far the most likely token everywhere
    likes_unk /= likes_unk.sum(axis=1, keepdims=True)
    f = first.copy()
    f[corpus.unk] = 5.0
    net = _bigram_network(corpus, f / f.sum(), likes_unk)
    for temperature in (1.0, 0.5, 0.0):
        out = lm.sample_sentences(net, corpus, 30, max_length=12, seed=0, temperature=temperature, as_tokens=True)
        assert not any("<unk>" in s for s in out)
    allowed = lm.sample_sentences(net, corpus, 30, max_length=12, seed=0, allow_unk=True, as_tokens=True)
    assert sum(s.count("<unk>") for s in allowed) > 30
    assert lm.sample_sentences(net, corpus, 1, temperature=0, allow_unk=True, max_length=3, as_tokens=True) == \
        [["<unk>"] * 3]


def test_forbidding_renormalises_the_rest():
    rng = np.random.default_rng(0)
    p = np.array([0.1, 0.6, 0.2, 0.1])
    z = np.tile(np.log(p), (40000, 1))
    counts = np.bincount(sampling._draw(z, 1.0, rng, np.array([1])), minlength=4) / len(z)
    q = p.copy()
    q[1] = 0
    np.testing.assert_allclose(counts, q / q.sum(), atol=0.01)
    assert sampling._draw(z[:3], 0.0, rng, np.array([1])).tolist() == [2, 2, 2]
    net = gradlab.Network("gru", 3, 4, 3, backend="numpy")
    with pytest.raises(ValueError, match="every id is forbidden"):
        sampling.sample_ids(net, forbid=[0, 1, 2])
    with pytest.raises(ValueError, match="forbid"):
        sampling.sample_ids(net, forbid=[3])


def test_sampling_stops_at_eos_or_max_length(default):
    net = default.network("gru", 16, seed=3, backend="numpy")
    out = lm.sample_sentences(net, default, 20, max_length=15, seed=1, as_tokens=True)
    for s in out:
        assert "<eos>" not in s[:-1]
        assert (s[-1] == "<eos>" and len(s) <= 15) or len(s) == 15
    assert lm.sample_sentences(net, default, 3, seed=4) == lm.sample_sentences(net, default, 3, seed=4)
    net.params["head.b_y"][default.eos] = 50.0  # the end is certain
    assert lm.sample_sentences(net, default, 2, seed=0, as_tokens=True) == [["<eos>"], ["<eos>"]]
    primed = lm.sample_sentences(net, default, 1, seed=0, prefix="The baker")
    assert primed == ["the baker"]
    net.params["head.b_y"][default.eos] = -50.0  # the end never comes
    assert [len(s) for s in lm.sample_sentences(net, default, 3, max_length=9, seed=0, as_tokens=True)] == [9, 9, 9]


def test_a_small_model_beats_the_unigram_baseline(lines):
    corpus = WordCorpus(text="\n".join(lines[:500]), max_vocab=120, holdout=0.15)
    net = corpus.network("gru", 32, seed=0)
    unigram_ppl = np.exp(corpus.unigram_entropy)
    assert lm.perplexity(net, corpus) > 0.9 * corpus.vocab_size  # untrained: about uniform
    gradlab.train(net, corpus, 30, batch_size=16, lr=0.02, clip="norm", clip_threshold=5.0, seed=0,
                  until_solved=False)
    ppl = lm.perplexity(net, corpus)
    assert ppl < 0.8 * unigram_ppl  # held-out text: better than any model without context
    samples = lm.sample_sentences(net, corpus, 5, seed=0, max_length=30)
    assert all("<unk>" not in s for s in samples)
