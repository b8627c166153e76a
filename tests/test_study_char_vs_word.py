"""The character-versus-word study at its --quick size: report, data, and properties its result must have."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gradlab.language_model import log_probs, sentence_log_prob
from gradlab.losses import log_softmax
from gradlab.network import Network
from gradlab.studies import char_vs_word as cw
from gradlab.tasks import CharCorpus, WordCorpus
from gradlab.tasks.words import per_word_perplexity
from study_helpers import check_report, run_quick


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    return run_quick("char_vs_word", tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def final(report_dir):
    return pd.read_csv(report_dir / "data" / "final.csv")


@pytest.fixture(scope="module")
def reach(report_dir):
    return pd.read_csv(report_dir / "data" / "reach.csv")


# ---------------------------------------------------------------------- the report and its data

def test_report_has_its_figures_tables_and_data(report_dir):
    readme = check_report(report_dir)
    for stem in ("perplexity", "curves", "profiles"):
        assert f"({stem}.png)" in readme
    assert "| cell | model | perplexity per word, median [q25, q75] |" in readme
    assert "| cell | reach, word model (words) | reach, character model (words) | ratio character / word |" in readme
    assert "| cell | model | sampled sentence |" in readme
    assert "gradlab study char_vs_word --quick" in readme


def test_every_pair_is_in_the_data(final):
    configs, replicates = cw.grids(quick=True)["pairs"]
    assert len(final) == 2 * len(configs) * replicates
    assert set(final["model"]) == set(cw.MODELS)
    assert set(final["cell"]) == set(cw.sizes(True)["cells"])
    pairs = final.groupby(["cell", "replicate"])
    assert (pairs["model"].nunique() == 2).all() and (pairs["seed"].nunique() == 1).all()
    assert (final["steps_done"] == cw.sizes(True)["steps"]).all()


def test_profiles_against_words_cover_every_probe_at_every_distance(report_dir):
    by_w = pd.read_csv(report_dir / "data" / "profiles_words.csv")
    s = cw.sizes(True)
    assert set(by_w["words"]) == set(range(cw.PROBE_MIN_TOKENS + 1))
    assert (by_w["n"] == s["probes"] * s["replicates"]).all(), "one word-aligned state per probe and distance"
    assert np.allclose(by_w.loc[by_w["words"] == 0, "median"], 1.0)


# ---------------------------------------------------------------------- properties of the result

def test_the_character_model_takes_about_a_word_length_more_steps_per_sentence(final, report_dir):
    words, _ = cw.corpora()
    held = cw.heldout_sentences(words, cw.sizes(True)["heldout"])
    n_words = words.count_tokens(held)
    n_chars = sum(len(t) + 1 for t in held)  # every character and the end token
    w, c = final[final["model"] == "word"], final[final["model"] == "char"]
    assert (w["symbols"] == n_words).all() and (w["words_heldout"] == n_words).all()
    assert (c["symbols"] == n_chars).all()
    mean_word = np.mean([len(t) for s in words.holdout_sentences for t in s])
    ratio = n_chars / n_words
    assert mean_word < ratio < mean_word + 1.5, (ratio, mean_word)  # each word plus about one space
    fits = pd.read_csv(report_dir / "data" / "fits.csv")
    k_max = fits.groupby("model")["k_max"].min()
    assert k_max["char"] > 3 * k_max["word"]


def test_per_word_perplexity_is_the_total_nll_over_the_word_count(final):
    assert np.allclose(final["ppl_word"], np.exp(final["nats_per_word"]))
    assert np.allclose(final["nats_per_word"] * final["words_heldout"], final["nats_per_symbol"] * final["symbols"])
    w = final[final["model"] == "word"]
    assert np.allclose(w["nats_per_word"], w["nats_per_symbol"])


def test_sampled_word_sentences_contain_no_unk(report_dir):
    samples = pd.read_csv(report_dir / "data" / "samples.csv", keep_default_na=False)
    w = samples[samples["model"] == "word"]
    assert len(w) == cw.sizes(True)["n_samples"] * len(cw.sizes(True)["cells"]) * cw.sizes(True)["replicates"]
    assert (w["unk"].astype(int) == 0).all()
    assert not w["text"].str.contains("<unk>", regex=False).any()


def test_the_character_models_gradient_reaches_fewer_words_back(reach):
    assert len(reach) == len(cw.sizes(True)["cells"]) * cw.sizes(True)["replicates"]
    assert (reach["rho_word_char"] < reach["rho_word_word"]).all(), "faster decay per word of text"
    assert (reach["ratio"] < 1).all()
    # in the word model a step is a word: the two decay rates are one
    assert np.allclose(reach["rho_word_word"], reach["rho_step_word"])


# ---------------------------------------------------------------------- helpers, by hand

def test_the_two_corpora_draw_the_same_sentences_for_one_seed():
    words, chars = cw.corpora()
    for seed in (0, 7):
        bw, bc = words.sample(6, seed=seed), chars.sample(6, seed=seed)
        for b, text in enumerate(bc.info["text"]):
            # the word targets are this sentence's tokens (rare words as <unk>) and <eos> ...
            ids = np.append(words.encode(text), words.eos)
            assert bw.y[: len(ids), b].tolist() == ids.tolist() and bw.mask[:, b].sum() == len(ids)
            # ... and the character targets spell it, closed by the end token
            n = len(text) + 1
            assert chars.decode(bc.y[:n, b]) == text and bc.y[n - 1, b] == chars.eos and bc.mask[:, b].sum() == n


def test_char_word_index_by_hand():
    assert cw.char_word_index("the cat.").tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 3]
    # "yes , she ran ." : the comma is a token of its own, each space goes with the word after it
    assert cw.char_word_index("yes, she ran.").tolist() == [0, 0, 0, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 5]
    assert cw.aligned_steps("yes, she ran.").tolist() == [0, 3, 5, 9, 12, 13]
    assert cw.token_starts("yes, she ran.", ["yes", ",", "she", "ran", "."]).tolist() == [0, 3, 5, 9, 12]
    with pytest.raises(ValueError, match="not found"):
        cw.token_starts("yes, she ran.", ["yes", "she", ","])


def test_every_probe_has_one_aligned_state_per_word():
    words, _ = cw.corpora()
    probes = cw.probe_sentences(words)
    assert len(probes) == cw.PROBE_SENTENCES
    for text in probes:
        toks = [t for s in words.tokenize(text) for t in s]
        assert len(toks) >= cw.PROBE_MIN_TOKENS
        j = cw.char_word_index(text, toks)
        steps = cw.aligned_steps(text, toks)
        assert len(steps) == len(toks) + 1 and j[steps].tolist() == list(range(len(toks) + 1))
        assert (np.diff(j) >= 0).all() and (np.diff(j) <= 1).all()


def test_heldout_sentences_and_last_step_mask():
    words, _ = cw.corpora()
    everything = words.texts("holdout")
    assert cw.heldout_sentences(words) == everything
    some = cw.heldout_sentences(words, 5)
    assert len(some) == 5 and some[0] == everything[0] and some[-1] == everything[-1]
    m = cw.last_step_mask([3, 1, 4], 4)
    assert m.tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]]


def test_reach_interpolates_extrapolates_and_says_so():
    d = np.arange(4)
    # below 1e-3 between d = 2 (1e-2) and d = 3 (1e-4): halfway in log
    assert cw.reach(d, [1, 1e-1, 1e-2, 1e-4], 1e-3) == (pytest.approx(2.5), False)
    # relative to the value at d = 0
    assert cw.reach(d, [2, 2e-1, 2e-2, 2e-4], 1e-3)[0] == pytest.approx(2.5)
    # never below: along the fitted line, ln(1e-3) / ln(1/2)
    r, ext = cw.reach(np.arange(3), [1, 0.5, 0.25], 1e-3, rho=-math.log(2))
    assert ext and r == pytest.approx(math.log(1e-3) / -math.log(2))
    assert cw.reach(np.arange(3), [1, 0.9, 0.8], 1e-3, rho=0.0) == (math.inf, True)
    with pytest.raises(ValueError):
        cw.reach([0, 1], [1.0], 1e-3)


def test_per_word_perplexity_of_a_toy_character_model_by_hand():
    text = "the cat sat.\nthe dog ran!\na cat, a dog."
    words = WordCorpus(text=text, min_count=1, holdout=0.0)
    chars = CharCorpus(text=text, max_length=50)
    sentences = words.texts("train")
    assert words.count_tokens(sentences) == 5 + 5 + 7  # tokens and one <eos> each
    net = Network("gru", chars.vocab_size, 4, chars.vocab_size, seed=3)
    total = 0.0
    for s in sentences:  # −log P by hand: x<1> = 0, x<t+1> = y<t>, the end token closes the line
        ids = np.append(chars.encode(s), chars.eos)
        x = np.zeros((len(ids), 1, chars.vocab_size))
        x[np.arange(1, len(ids)), 0, ids[:-1]] = 1.0
        logp = log_softmax(net.predict(x))[:, 0]
        total -= logp[np.arange(len(ids)), ids].sum()
        assert sentence_log_prob(net, chars, s) == pytest.approx(logp[np.arange(len(ids)), ids].sum())
    lp, n = log_probs(net, chars, sentences)
    assert n.tolist() == [len(s) + 1 for s in sentences]
    assert -lp.sum() == pytest.approx(total)
    assert per_word_perplexity(-lp.sum(), words.count_tokens(sentences)) == pytest.approx(math.exp(total / 17))


def test_known_share_counts_the_tokens_seen_in_training():
    words, _ = cw.corpora()
    assert cw.known_share(["the", "boat", "."], words) == pytest.approx(1.0)
    assert cw.known_share(["the", "zzqx", "qqzx", "."], words) == pytest.approx(0.5)
    assert math.isnan(cw.known_share([], words))
