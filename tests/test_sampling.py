"""gradlab.sampling: a char model learns and samples within its vocabulary, stopping at end-of-sequence."""

from __future__ import annotations

import numpy as np
import pytest

import gradlab
from gradlab import sampling, tasks


@pytest.fixture(scope="module")
def corpus():
    return tasks.CharCorpus(max_length=50)


@pytest.fixture(scope="module")
def trained(corpus):
    net = corpus.network("lstm", 32, seed=0, backend="numpy")
    hist = gradlab.train(net, corpus, 40, batch_size=8, lr=0.02, clip="norm", clip_threshold=5.0, seed=0,
                         until_solved=False)
    return net, hist


def test_char_model_loss_falls(trained, corpus):
    _, hist = trained
    first, last = hist["metric"].iloc[0], hist["metric"].iloc[-5:].mean()
    assert first > 0.95 * corpus.uniform_entropy  # nats per character at the start: about log V
    assert last < 0.75 * first
    assert last < corpus.unigram_entropy  # better than the best model without context


def test_samples_use_the_vocabulary_and_end_at_eos(trained, corpus):
    net, _ = trained
    ids = sampling.sample_ids(net, max_length=60, eos=corpus.eos, seed=1, num_samples=40, temperature=0.8)
    ended = 0
    for s in ids:
        assert 1 <= len(s) <= 60
        assert np.all((s >= 0) & (s < corpus.vocab_size))
        assert not np.any(s[:-1] == corpus.eos)  # nothing after the end token
        ended += s[-1] == corpus.eos
    assert ended > 0  # some samples chose to stop
    texts = sampling.sample_texts(net, corpus, 10, max_length=60, seed=2)
    vocab = set(corpus.vocab[1:])
    for t in texts:
        assert set(t) <= vocab and len(t) <= 60
    assert len(set(texts)) > 1


def test_seed_temperature_and_greedy(trained, corpus):
    net, _ = trained
    a = sampling.sample_text(net, corpus, seed=5, max_length=40)
    assert a == sampling.sample_text(net, corpus, seed=5, max_length=40)
    greedy = {sampling.sample_text(net, corpus, seed=s, temperature=0, max_length=40) for s in range(3)}
    assert len(greedy) == 1
    hot = {sampling.sample_text(net, corpus, seed=s, temperature=5.0, max_length=40) for s in range(5)}
    assert len(hot) == 5
    primed = sampling.sample_text(net, corpus, seed=1, prefix="The ", max_length=20)
    assert primed.startswith("The ")


def test_stops_at_eos_and_at_max_length(corpus):
    net = corpus.network("gru", 8, backend="numpy")
    net.params["head.b_y"][corpus.eos] = 1e3  # the end token is certain
    assert sampling.sample_texts(net, corpus, 3, seed=0) == ["", "", ""]
    assert [len(s) for s in sampling.sample_ids(net, eos=corpus.eos, num_samples=2, seed=0)] == [1, 1]
    net.params["head.b_y"][corpus.eos] = -1e3  # the end token never comes
    assert [len(t) for t in sampling.sample_texts(net, corpus, 3, max_length=17, seed=0)] == [17, 17, 17]


def test_draws_follow_softmax_over_temperature():
    rng = np.random.default_rng(0)
    z = np.tile(np.log([0.5, 0.3, 0.2]), (40000, 1))
    for tau in (1.0, 0.5):
        counts = np.bincount(sampling._draw(z, tau, rng), minlength=3) / len(z)
        p = np.array([0.5, 0.3, 0.2]) ** (1 / tau)
        np.testing.assert_allclose(counts, p / p.sum(), atol=0.01)
    np.testing.assert_array_equal(sampling._draw(z[:5], 0.0, rng), 0)


def test_prefix_feeds_the_state():
    """Sampling after a prefix continues from the state the prefix produced (checked against predict)."""
    corpus = tasks.CharCorpus(text="abcab\nbca\n")
    net = corpus.network("rnn_tanh", 6, backend="numpy")
    prefix = corpus.encode("abc")
    x = np.zeros((4, 1, corpus.vocab_size))
    x[np.arange(1, 4), 0, prefix] = 1.0
    expected = int(np.argmax(net.predict(x)[-1, 0]))
    got = sampling.sample_ids(net, max_length=1, temperature=0, prefix=prefix)[0]
    assert got.tolist() == [expected]


def test_decode_agrees_with_teacher_forcing():
    task = tasks.SequenceReversal(4, symbols=5)
    net = task.network("lstm", 6, num_layers=2, seed=1, backend="numpy")
    batch = task.sample(3, 0)
    ids = sampling.decode(net, batch.x, 6)
    assert ids.shape == (6, 3)
    # fed its own greedy outputs as targets, the teacher-forced decoder predicts the same outputs
    z = net.loss_and_grads(batch.x, ids).record.outputs
    np.testing.assert_array_equal(np.argmax(z, -1), ids)
    eos = int(ids[1, 0])
    stop = sampling.decode(net, batch.x, 6, eos=eos)
    first = int(np.argmax(ids[:, 0] == eos))
    assert stop[first, 0] == eos and np.all(stop[first + 1 :, 0] == -1)
    np.testing.assert_array_equal(stop[: first + 1, 0], ids[: first + 1, 0])


def test_bad_input(trained, corpus):
    net, _ = trained
    with pytest.raises(ValueError, match="temperature"):
        sampling.sample_text(net, corpus, temperature=-1.0)
    with pytest.raises(ValueError, match="max_length"):
        sampling.sample_text(net, corpus, max_length=0)
    with pytest.raises(ValueError, match="text: characters"):
        sampling.sample_text(net, corpus, prefix="∑")
    with pytest.raises(ValueError, match="network: sampling needs a unidirectional"):
        sampling.sample_text(corpus.network("gru", 3, bidirectional=True), corpus)
    with pytest.raises(ValueError, match="network: its output size"):
        sampling.sample_text(net, tasks.CharCorpus(text="ab"))
    with pytest.raises(ValueError, match="eos"):
        sampling.sample_ids(net, eos=10_000)
    with pytest.raises(ValueError, match="network: decode needs"):
        sampling.decode(net, np.zeros((2, 1, corpus.vocab_size)), 3)
