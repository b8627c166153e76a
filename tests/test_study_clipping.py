"""The ``clipping`` study: its report at quick size, the properties its runs must have, and its helpers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from study_helpers import check_report, run_quick

from gradlab.studies import clipping
from gradlab.studies.clipping import (PASCANU_THRESHOLD, POLICIES, RecordingSGD, backprop_gain, grids, pair_seeds,
                                      policy_summary, run_summary, train_point, wilson_interval)

RUN = ["task", "cell", "policy", "pair"]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    return run_quick("clipping", tmp_path_factory.mktemp("clipping_report"))


@pytest.fixture(scope="module")
def runs(report_dir):
    return pd.read_csv(report_dir / "data" / "runs.csv")


@pytest.fixture(scope="module")
def curves(report_dir, runs):
    c = pd.read_csv(report_dir / "data" / "curves.csv")
    return c.merge(runs[RUN + ["threshold", "clip"]], on=RUN, how="left")


# ---------------------------------------------------------------------- the report

def test_report_is_complete(report_dir):
    readme = check_report(report_dir)
    assert "Pascanu" in readme and "Wilson" in readme
    for stem in ("loss_adding", "loss_temporal_order", "grad_norms", "success", "clip_frequency"):
        assert f"({stem}.png)" in readme


def test_every_configuration_has_one_row_per_run(runs):
    configs, replicates = grids(True)["runs"]
    assert replicates == 1
    expected = {(c["task"], c["cell"], c["policy"], c["pair"]) for c in configs}
    got = set(runs[RUN].itertuples(index=False, name=None))
    assert got == expected and len(runs) == len(expected)
    for col in ("solved", "diverged", "solved_at", "clipped_fraction", "nonfinite_steps", "norm_median",
                "norm_q99", "norm_max", "exceeded_pascanu", "gain_at_peak", "test_metric", "cpu_seconds"):
        assert col in runs.columns, col
    # a solved run has its step, an unsolved one has none
    assert runs.loc[runs["solved"], "solved_at"].notna().all()
    assert runs.loc[~runs["solved"], "solved_at"].isna().all()
    assert (runs["clipped_fraction"].between(0, 1)).all()
    assert (runs.loc[runs["policy"] == "none", "clipped_fraction"] == 0).all()


def test_policies_file(report_dir, runs):
    pol = pd.read_csv(report_dir / "data" / "policies.csv")
    assert len(pol) == len(runs.drop_duplicates(["task", "cell", "policy"]))
    assert ((pol["success_low"] <= pol["success_rate"]) & (pol["success_rate"] <= pol["success_high"])).all()
    assert (pol["runs"] == clipping.sizes(True)["pairs"]).all()


def test_curves_columns(curves):
    for col in ("step", "loss", "metric", "grad_norm", "clipped", "nonfinite", "applied_norm"):
        assert col in curves.columns, col
    assert curves["threshold"].notna().sum() > 0, "the curves join their runs"


# ---------------------------------------------------------------------- properties of the result (quick size)

def test_exploding_init_without_clipping_exceeds_the_cutoff(runs):
    """With an exploding initialisation and no clipping, the pre-clip norm exceeds the threshold at least once."""
    none = runs[runs["policy"] == "none"]
    assert len(none) >= 4
    assert (none["norm_max"] > PASCANU_THRESHOLD).all(), none[RUN + ["norm_max"]]
    assert none["exceeded_pascanu"].astype(bool).all()


def test_norm_clipped_updates_never_exceed_the_threshold(curves):
    """The gradient the optimiser received (measured inside it) is at most τ under norm clipping, min(‖g‖, τ)."""
    norm = curves[(curves["clip"] == "norm") & curves["applied_norm"].notna()]
    assert len(norm) > 0
    assert (norm["applied_norm"] <= norm["threshold"] * (1 + 1e-9)).all()
    expected = np.minimum(norm["grad_norm"], norm["threshold"])
    np.testing.assert_allclose(norm["applied_norm"], expected, rtol=1e-9)
    # and the clipped flag says exactly when the norm was above τ
    assert (norm["clipped"].astype(bool) == (norm["grad_norm"] > norm["threshold"])).all()
    # some steps were actually clipped: the property is not vacuous
    assert norm["clipped"].astype(bool).any()


def test_unclipped_runs_apply_the_raw_gradient(curves):
    none = curves[(curves["clip"] == "none") & curves["applied_norm"].notna()]
    assert len(none) > 0
    np.testing.assert_allclose(none["applied_norm"], none["grad_norm"], rtol=1e-12)
    value = curves[(curves["clip"] == "value") & curves["applied_norm"].notna()]
    assert (value["applied_norm"] <= value["grad_norm"] * (1 + 1e-12)).all()


def test_runs_of_one_pair_share_weights_and_batches(curves):
    """Common random numbers: every policy's run k starts from the same weights on the same first batch."""
    first = curves[curves["step"] == 1]
    for _, g in first.groupby(["task", "cell", "pair"]):
        assert g["policy"].nunique() == len(g) >= 2
        np.testing.assert_allclose(g["loss"], g["loss"].iloc[0], rtol=1e-12)
        not_step = g[g["clip"] != "step"]
        np.testing.assert_allclose(not_step["grad_norm"], not_step["grad_norm"].iloc[0], rtol=1e-12)


# ---------------------------------------------------------------------- one grid point, every step

def _config(policy, **kw):
    clip, threshold = POLICIES[policy]
    cfg = {"task": "adding", "cell": "rnn_tanh", "policy": policy, "clip": clip or "none", "threshold": threshold,
           "pair": 0, "root_seed": 0, "T": 12, "H": 8, "B": 8, "scale": 3.0, "lr": 0.3, "momentum": 0.9,
           "steps": 40, "patience": 5, "test_batch": 16, "backend": "cpu", "dtype": "float64"}
    cfg.update(kw)
    return cfg


def test_point_rows_check_every_step():
    rows = {p: pd.DataFrame(train_point(_config(p), seed=123)) for p in ("none", "norm 1", "norm 0.25")}
    none = rows["none"]
    assert none["grad_norm"].max() > PASCANU_THRESHOLD
    for p in ("norm 1", "norm 0.25"):
        r = rows[p]
        tau = POLICIES[p][1]
        applied = r["applied_norm"].dropna()
        assert len(applied) == int((np.isfinite(r["loss"]) & np.isfinite(r["grad_norm"])).sum())
        assert (applied <= tau * (1 + 1e-9)).all()
        np.testing.assert_allclose(r.loc[0, "loss"], none.loc[0, "loss"], rtol=0)
    for col in ("status", "solved_at", "test_metric", "cpu_seconds", "backprop_gain", "head_share"):
        assert col in none.columns
    assert none["head_share"].dropna().between(0, 1).all()


def test_point_ignores_the_sweep_seed():
    a = pd.DataFrame(train_point(_config("norm 1", steps=5), seed=1))
    b = pd.DataFrame(train_point(_config("norm 1", steps=5), seed=2))
    np.testing.assert_array_equal(a["loss"], b["loss"])
    c = pd.DataFrame(train_point(_config("norm 1", steps=5, pair=1), seed=1))
    assert not np.array_equal(a["loss"], c["loss"])


# ---------------------------------------------------------------------- helpers

def test_wilson_interval_by_hand():
    z = 1.959963984540054
    lo, hi = wilson_interval(5, 10)  # p = 0.5: centre 0.5, half-width z·√(0.025 + z²/400)/(1 + z²/10)
    half = z * math.sqrt(0.025 + z * z / 400) / (1 + z * z / 10)
    assert lo == pytest.approx(0.5 - half) and hi == pytest.approx(0.5 + half)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    lo, hi = wilson_interval(0, 5)  # at 0 successes: [0, z²/(n + z²)]
    assert lo == 0.0 and hi == pytest.approx(z * z / (5 + z * z))
    lo, hi = wilson_interval(5, 5)
    assert hi == 1.0 and lo == pytest.approx(5 / (5 + z * z))
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_backprop_gain_by_hand():
    dh = np.array([[4.0, 1.0, 6.0], [2.0, 2.0, 1.0], [2.0, 0.5, 1.0]])  # ratios h_1/h_T: 2, 2, 6
    assert backprop_gain(dh) == 2.0
    dh[-1, 0] = 0.0  # undefined ratio left out: median of (2, 6)
    assert backprop_gain(dh) == 4.0
    assert math.isnan(backprop_gain(np.zeros((3, 2))))
    with pytest.raises(ValueError):
        backprop_gain(np.ones(3))


def test_pair_seeds():
    assert pair_seeds(0, 1) == pair_seeds(0, 1)
    assert pair_seeds(0, 1) != pair_seeds(0, 2) != pair_seeds(1, 1)
    assert len(set(pair_seeds(0, 0))) == 3


def test_recording_sgd_records_and_steps_like_sgd():
    from gradlab.optim import SGD

    p1 = {"w": np.array([1.0, 2.0])}
    p2 = {"w": np.array([1.0, 2.0])}
    opt, ref = RecordingSGD(0.1, momentum=0.9), SGD(0.1, momentum=0.9)
    for g in (np.array([3.0, 4.0]), np.array([0.0, 1.0])):
        opt.step(p1, {"w": g})
        ref.step(p2, {"w": g})
    assert opt.applied == [5.0, 1.0]
    np.testing.assert_array_equal(p1["w"], p2["w"])


def test_summaries_by_hand():
    def run(policy, pair, losses, norms, clipped, status, solved_at):
        n = len(losses)
        return pd.DataFrame({"task": "adding", "cell": "gru", "policy": policy, "pair": pair,
                             "clip": POLICIES[policy][0] or "none", "threshold": POLICIES[policy][1],
                             "step": np.arange(1, n + 1), "loss": losses, "metric": 0.0, "grad_norm": norms,
                             "clipped": clipped, "nonfinite": ~np.isfinite(norms), "applied_norm": np.nan,
                             "head_share": 0.5, "backprop_gain": 2.0, "status": status, "solved_at": solved_at,
                             "test_metric": 0.1, "cpu_seconds": 1.0, "wall_seconds": 1.0})

    steps = pd.concat([
        run("norm 1", 0, [1.0, 0.5, 0.1, 0.01], np.array([2.0, 0.5, 4.0, 0.2]), [True, False, True, False],
            "solved", 4),
        run("norm 1", 1, [1.0, 2.0, np.inf], np.array([0.5, 3.0, np.inf]), [False, True, False], "diverged", np.nan),
    ], ignore_index=True)
    runs = run_summary(steps)
    assert list(runs["solved"]) == [True, False] and list(runs["diverged"]) == [False, True]
    assert list(runs["clipped_fraction"]) == [0.5, 1 / 3]
    assert list(runs["nonfinite_steps"]) == [0, 1]
    assert list(runs["norm_max"]) == [4.0, 3.0]
    assert list(runs["exceeded_pascanu"]) == [True, True]
    pol = policy_summary(runs)
    assert len(pol) == 1
    r = pol.iloc[0]
    assert (r["runs"], r["solved"], r["diverged"], r["steps_to_solve_median"]) == (2, 1, 1, 4.0)
    assert (r["success_low"], r["success_high"]) == pytest.approx(wilson_interval(1, 2))


def test_make_task_rejects_unknown_names():
    assert clipping.make_task("adding", 10).T == 10
    with pytest.raises(ValueError, match="unknown task"):
        clipping.make_task("copy", 10)
