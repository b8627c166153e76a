"""The language_model study: its quick run, its report, and the helpers it measures with."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from study_helpers import check_report, run_quick

from gradlab.studies import language_model as lm
from gradlab.studies.language_model_report import starts_like_a_line, still_falling


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    directory = run_quick("language_model", tmp_path_factory.mktemp("language_model"))
    return directory, check_report(directory)


def _read(directory, stem):
    return pd.read_csv(directory / "data" / f"{stem}.csv", keep_default_na=False, na_values=[""])


# ---------------------------------------------------------------------- the quick run

def test_report_has_its_parts(quick):
    directory, readme = quick
    for png in ("loss_curves.png", "profiles_single_step.png", "profiles_total.png", "samples.png"):
        assert f"]({png})" in readme
    for heading in ("## Setup", "## Default corpus", "## Reading", "**Answer in one line.**"):
        assert heading in readme
    assert "single-step profile" in readme and lm.CORPUS_ENV in readme


def test_data_files_hold_every_configuration(quick):
    directory, _ = quick
    s = lm.sizes(True)
    final = _read(directory, "final")
    assert sorted(final["cell"].unique()) == sorted(s["cells"])
    assert final.groupby("cell").size().eq(s["replicates"]).all()
    assert {"heldout", "train", "seed", "replicate", "seconds", "cpu_seconds"} <= set(final.columns)
    curves = _read(directory, "loss_curves")
    assert {"cell", "step", "heldout_median", "heldout_q25", "heldout_q75"} <= set(curves.columns)
    assert sorted(curves["step"].unique()) == list(range(0, s["steps"] + 1, s["eval_every"]))
    prof = _read(directory, "profiles")
    assert set(prof["stage"]) == set(lm.STAGES) and set(prof["loss"]) == set(lm.LOSSES)
    assert prof["k"].max() == s["k_max"]
    samples = _read(directory, "samples")
    assert samples.groupby(["cell", "replicate", "temperature"]).size().eq(s["n_samples"]).all()
    assert set(samples["status"]) <= {"new", "fragment", "copy", "empty"}


def test_training_lowers_the_loss_per_character_for_every_cell_and_seed(quick):
    """The required property: training takes every network from about log V to clearly below its start."""
    directory, _ = quick
    info = lm.corpus_info()
    final = _read(directory, "final")
    curves = _read(directory, "loss_curves")
    start = curves[curves["step"] == 0].set_index("cell")["heldout_q75"]
    for _, row in final.iterrows():
        assert row["heldout"] < info["logV"] - 0.5, row
        assert row["heldout"] < start[row["cell"]] - 0.5, row
    # at initialisation the loss is close to the uniform log V
    assert np.allclose(curves[curves["step"] == 0]["heldout_median"], info["logV"], atol=0.25)


def test_samples_consist_only_of_corpus_characters(quick):
    directory, _ = quick
    full = lm.load_corpus()[0]
    alphabet = set(full.vocab[1:])
    samples = _read(directory, "samples")
    assert len(samples) > 0
    for text in samples["text"].fillna(""):
        assert set(str(text)) <= alphabet, text
    # and the lengths the worker recorded are those of the texts
    assert (samples["text"].fillna("").map(len) == samples["length"]).all()


def test_single_step_profile_is_relative_to_its_last_step(quick):
    directory, _ = quick
    prof = _read(directory, "profiles")
    single = prof[(prof["loss"] == "single") & (prof["k"] == 0)]
    assert np.allclose(single["median"], 1.0)
    fits = _read(directory, "decay_fits")
    assert fits[fits["loss"] == "single"]["rho"].lt(0).all()  # one character's gradient shrinks with distance


# ---------------------------------------------------------------------- helpers, by hand

def test_classify_sample_by_hand():
    text = lm.corpus_text_of(["the cat sat.", "a dog ran."])
    assert lm.classify_sample("the cat sat.", text) == "copy"
    assert lm.classify_sample("cat sat", text) == "fragment"
    assert lm.classify_sample("the dog sat.", text) == "new"
    assert lm.classify_sample("sat. a dog", text) == "new"  # spans two lines: not a substring of one line
    assert lm.classify_sample(" a dog ran. ", text) == "copy"  # judged stripped
    assert lm.classify_sample("", text) == "empty"
    assert lm.classify_sample("   ", text) == "empty"


def test_words_and_valid_word_share_by_hand():
    assert lm.words_of("The cat's 3 hats, ok.") == ["the", "cat", "s", "hats", "ok"]
    assert lm.valid_word_share("the cat zzz dog", {"the", "cat", "dog"}) == 0.75
    assert np.isnan(lm.valid_word_share("... 12", {"the"}))


def test_line_profiles_and_last_step_mask_by_hand():
    dh = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [0.0, 40.0]])  # (T=4, B=2)
    out = lm.line_profiles(dh, [3, 4], k_max=3)
    np.testing.assert_array_equal(out[:, 1], [40.0, 30.0, 20.0, 10.0])
    np.testing.assert_array_equal(out[:3, 0], [3.0, 2.0, 1.0])
    assert np.isnan(out[3, 0])
    mask = np.array([[1, 1], [1, 1], [1, 1], [0, 1]], float)
    np.testing.assert_array_equal(lm.last_step_mask(mask), [[0, 0], [0, 0], [1, 0], [0, 1]])


def test_batch_of_matches_the_corpus_layout():
    full = lm.load_corpus()[0]
    seqs = [("ab.", True), ("a", False)]
    from gradlab.tasks.text import CharCorpus

    c = CharCorpus(text="ab.\nab")
    b = c.batch_of(seqs)
    assert b.x.shape == (4, 2, c.vocab_size)
    np.testing.assert_array_equal(b.mask[:, 0], [1, 1, 1, 1])
    np.testing.assert_array_equal(b.mask[:, 1], [1, 0, 0, 0])
    np.testing.assert_array_equal(b.y[:, 0], list(c.encode("ab.")) + [c.eos])
    assert b.x[0].sum() == 0 and b.x[1, 0, c.index["a"]] == 1  # x<1> = 0, x<t+1> = y<t>
    assert full.vocab_size > c.vocab_size


def test_unigram_cross_entropy_by_hand():
    from gradlab.tasks.text import CharCorpus

    c = CharCorpus(text="ab\nab")
    # training counts with one pseudo-count each: eos 2+1, a 2+1, b 2+1 -> uniform over 3 symbols
    assert lm.unigram_cross_entropy(c, [("ab", True)]) == pytest.approx(np.log(3))


def test_the_default_split_holds_out_every_tenth_line():
    full, train_c, held, lines = lm.load_corpus()
    assert len(train_c.sequences) + len(held) == len(full.sequences)  # fewer than MAX_HELDOUT held out here
    assert held == full.sequences[lm.HELDOUT_EVERY - 1:: lm.HELDOUT_EVERY]
    assert train_c.sequences == [s for i, s in enumerate(full.sequences) if (i + 1) % lm.HELDOUT_EVERY]
    assert len(lines) == len(full.sequences)  # no line of the default corpus is long enough to be wrapped
    assert train_c.vocab == full.vocab


def test_user_corpus_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(lm.CORPUS_ENV, raising=False)
    assert lm.corpora() == [lm.DEFAULT]
    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(f"line number {i} of a tiny corpus." for i in range(30)), encoding="utf-8")
    monkeypatch.setenv(lm.CORPUS_ENV, str(path))
    assert lm.corpora() == [lm.DEFAULT, str(path.resolve())]
    g = lm.grids(True, lm.corpora())
    assert set(g) == {"train", "train_tiny"}
    assert {c["corpus"] for c in g["train_tiny"][0]} == {str(path.resolve())}
    info = lm.corpus_info(str(path.resolve()))
    assert info["heldout_pieces"] == 3 and info["train_pieces"] == 27
    config = {**g["train_tiny"][0][0], "steps": 4, "early": 2, "eval_every": 2, "n_samples": 2, "max_length": 20,
              "k_max": 10, "backend": "numpy", "dtype": "float64"}
    rows = lm.split_kinds(pd.DataFrame(lm.train_point(config, 7)))
    assert len(rows["sample"]) == 2 * len(lm.TEMPERATURES) and len(rows["final"]) == 1
    monkeypatch.setenv(lm.CORPUS_ENV, str(tmp_path / "missing.txt"))
    with pytest.raises(FileNotFoundError, match=lm.CORPUS_ENV):
        lm.corpora()


def test_probe_pieces_prefers_long_lines():
    held = [("x" * n, True) for n in (50, 10, 45, 60, 5)]
    assert lm.probe_pieces(held, n=2, min_length=40) == [held[0], held[2]]
    # fewer long pieces than asked for: the longest, in corpus order
    assert lm.probe_pieces(held, n=4, min_length=55) == [held[0], held[1], held[2], held[3]]
    assert len(lm.probe_pieces(lm.load_corpus()[2])) == lm.PROBE_LINES


def test_default_grid():
    g = lm.grids(False)
    assert list(g) == ["train"]
    configs, replicates = g["train"]
    assert replicates >= 5 and [c["cell"] for c in configs] == list(lm.CELLS)
    assert {c["corpus"] for c in configs} == {lm.DEFAULT}
    q_configs, q_replicates = lm.grids(True)["train"]
    assert q_replicates >= 2 and q_configs[0]["steps"] < configs[0]["steps"]


def test_starts_like_a_line_by_hand():
    texts = pd.Series(["The cat.", "he sat.", "", "A dog."])
    assert starts_like_a_line(texts, "AT") == pytest.approx(2 / 3)  # the empty sample is left out
    assert np.isnan(starts_like_a_line(pd.Series([""]), "AT"))


def test_still_falling_by_hand():
    curves = pd.DataFrame({"cell": ["gru"] * 3 + ["lstm"] * 3, "step": [0, 80, 100] * 2,
                           "heldout": [3.0, 2.0, 1.9, 3.0, 2.0, 1.99]})
    assert still_falling(curves) == ["gru"]
