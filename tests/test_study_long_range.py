"""The ``long_range`` study: its helpers, and its report at ``--quick`` size."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from study_helpers import check_report, run_quick

from gradlab.studies import long_range as lr

# ---------------------------------------------------------------------- helpers, by hand


def test_wilson_interval_by_hand():
    # 0 of 5: the lower bound is 0 and the upper z²/(n + z²)
    lo, hi = lr.wilson_interval(0, 5)
    assert lo == 0.0 and hi == pytest.approx(1.96**2 / (5 + 1.96**2))
    # 5 of 5 mirrors it
    lo, hi = lr.wilson_interval(5, 5)
    assert hi == 1.0 and lo == pytest.approx(1 - 1.96**2 / (5 + 1.96**2))
    # 5 of 10: centred on 1/2, half-width z·sqrt(1/40 + z²/400)/(1 + z²/10)
    lo, hi = lr.wilson_interval(5, 10)
    half = 1.96 * math.sqrt(0.025 + 1.96**2 / 400) / (1 + 1.96**2 / 10)
    assert (lo, hi) == pytest.approx((0.5 - half, 0.5 + half))
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    with pytest.raises(ValueError, match="successes"):
        lr.wilson_interval(6, 5)
    with pytest.raises(ValueError, match="successes"):
        lr.wilson_interval(0, 0)


def test_patience_for_follows_hochreiter_schmidhuber():
    assert lr.patience_for("adding_hs1997", 32, 10) == 63  # ceil(2000 / 32)
    assert lr.patience_for("adding_hs1997", 2000, 10) == 1
    assert lr.patience_for("adding_le2015", 32, 10) == 10
    assert lr.patience_for("copy", 32, 7) == 7


def test_make_task_and_unknown_task():
    assert lr.make_task("adding_le2015", 50).baseline == pytest.approx(1 / 6)
    assert lr.make_task("copy", 20).baseline == pytest.approx(1 / lr.COPY_SYMBOLS)
    assert lr.sequence_steps("copy", 20) == 20 + 2 * lr.COPY_LENGTH
    with pytest.raises(ValueError, match="unknown task"):
        lr.make_task("parity", 10)


def _runs(records):
    base = {"series": "main", "task": "adding_le2015", "seed": 0, "steps": 100, "patience": 10, "status": "max_steps",
            "last_batch_metric": 0.1, "baseline": 1 / 6, "criterion": 0.01, "metric_name": "mse",
            "higher_is_better": False, "skipped": 0, "clipped_share": 0.0, "wall_time": 1.0, "cpu_time": 1.0}
    return pd.DataFrame([{**base, **r} for r in records])


def test_success_table_and_longest_solved_by_hand():
    runs = _runs([
        # T = 10, lstm: 2 of 3 solved, at 20 and 40 steps
        {"T": 10, "cell": "lstm", "replicate": 0, "solved": True, "solved_at": 20.0, "steps_run": 20, "final_metric": 0.004},
        {"T": 10, "cell": "lstm", "replicate": 1, "solved": True, "solved_at": 40.0, "steps_run": 40, "final_metric": 0.006},
        {"T": 10, "cell": "lstm", "replicate": 2, "solved": False, "solved_at": np.nan, "steps_run": 100, "final_metric": 0.2},
        # T = 20, lstm: 1 of 3
        {"T": 20, "cell": "lstm", "replicate": 0, "solved": True, "solved_at": 90.0, "steps_run": 90, "final_metric": 0.005},
        {"T": 20, "cell": "lstm", "replicate": 1, "solved": False, "solved_at": np.nan, "steps_run": 100, "final_metric": 0.1},
        {"T": 20, "cell": "lstm", "replicate": 2, "solved": False, "solved_at": np.nan, "steps_run": 100, "final_metric": 0.2},
        # T = 10, tanh: none
        {"T": 10, "cell": "rnn_tanh", "replicate": 0, "solved": False, "solved_at": np.nan, "steps_run": 100, "final_metric": 0.15},
    ])
    t = lr.success_table(runs).set_index(["T", "cell"])
    a = t.loc[(10, "lstm")]
    assert (a["runs"], a["solved"]) == (3, 2) and a["success_rate"] == pytest.approx(2 / 3)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx(lr.wilson_interval(2, 3))
    assert (a["steps_q25"], a["steps_median"], a["steps_q75"]) == pytest.approx((25.0, 30.0, 35.0))
    assert a["final_median"] == pytest.approx(0.006)
    assert np.isnan(t.loc[(10, "rnn_tanh"), "steps_median"]) and t.loc[(10, "rnn_tanh"), "solved"] == 0
    assert t.loc[(20, "lstm"), "success_rate"] == pytest.approx(1 / 3)
    table = lr.success_table(runs)
    assert list(table["cell"]) == ["rnn_tanh", "lstm", "lstm"]  # cells in CELLS order within each T
    assert lr.longest_solved(table, "adding_le2015", "lstm") == 10
    assert lr.longest_solved(table, "adding_le2015", "lstm", threshold=0.3) == 20
    assert lr.longest_solved(table, "adding_le2015", "rnn_tanh") is None


def test_grids_cover_every_cell_task_and_length():
    for quick in (True, False):
        s = lr.sizes(quick)
        configs, replicates = lr.grids(quick)["runs"]
        assert replicates == s["replicates"]
        main = {(c["task"], c["T"], c["cell"]) for c in configs if c["series"] == "main"}
        assert main == {(t, T, cell) for t in lr.TASKS for T in s["T"][t] for cell in lr.CELLS}
        long = [c for c in configs if c["series"] == "long"]
        assert {c["cell"] for c in long} == set(lr.CELLS)
        assert all(c["steps"] > s["steps"]["adding_le2015"] for c in long)
        costs = [c["steps"] * lr.sequence_steps(c["task"], c["T"]) for c in configs]
        assert costs == sorted(costs, reverse=True)  # the longest runs start first
    assert lr.sizes(False)["replicates"] >= 5


# ---------------------------------------------------------------------- the quick study


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return run_quick("long_range", tmp_path_factory.mktemp("long_range"))


@pytest.fixture(scope="module")
def runs(report):
    return pd.read_csv(report / "data" / "runs.csv")


def test_report_is_complete(report):
    readme = check_report(report)
    for stem in ("success_vs_T", "steps_to_solve", "metric_vs_T", "curves_adding_le2015", "curves_long"):
        assert f"({stem}.png)" in readme
    assert "not solved within this budget" in readme
    assert "Hochreiter & Schmidhuber" in readme and "Le, Jaitly & Hinton" in readme


def test_data_hold_every_run_of_the_grid(report, runs):
    configs, replicates = lr.grids(True)["runs"]
    assert set(lr.RUN + lr.SUMMARY_COLUMNS) <= set(runs.columns)
    got = runs.groupby(["series", "task", "T", "cell"]).size()
    want = {(c["series"], c["task"], c["T"], c["cell"]) for c in configs}
    assert set(got.index) == want and (got == replicates).all()
    assert runs["seed"].nunique() == len(runs)  # every run its own seed
    success = pd.read_csv(report / "data" / "success.csv")
    assert len(success) == len(want)
    curves = pd.read_csv(report / "data" / "curves.csv")
    assert {"series", "task", "T", "cell", "replicate", "step", "curve_metric"} <= set(curves.columns)


def test_chance_baseline_in_the_data_is_the_tasks(runs):
    for (task, T), g in runs.groupby(["task", "T"]):
        t = lr.make_task(task, int(T))
        assert np.allclose(g["baseline"], t.baseline) and np.allclose(g["criterion"], t.criterion)


def test_stopping_is_consistent_with_the_criterion(runs):
    solved = runs["solved"].astype(bool)
    assert (solved == np.isfinite(runs["solved_at"])).all()
    s = runs[solved]
    # an early stop exactly when the criterion had held for the whole patience window
    assert (s["steps_run"] == s["solved_at"]).all() and (s["solved_at"] >= s["patience"]).all()
    assert (s["status"] == "solved").all()
    u = runs[~solved]
    assert ((u["steps_run"] == u["steps"]) | (u["status"] == "diverged")).all()


def test_gated_cells_solve_the_shortest_adding_problem(runs):
    # measured over 12 seeds each at the quick size: the GRU solved T = 10 in every seed (59-87 steps of 150)
    # and the LSTM in every seed (86-128 steps)
    le = runs[(runs["series"] == "main") & (runs["task"] == "adding_le2015")]
    shortest = le[le["T"] == le["T"].min()]
    gru = shortest[shortest["cell"] == "gru"]
    lstm = shortest[shortest["cell"] == "lstm"]
    assert gru["solved"].astype(bool).all()
    assert lstm["solved"].astype(bool).any()


def test_solved_runs_generalise_to_held_out_sequences(runs):
    # the criterion is met on training batches; on 256 fresh sequences a solved run's MSE must still be far below
    # chance (1/6): measured at most 0.008 over 60 solved quick runs
    le = runs[(runs["task"] == "adding_le2015") & runs["solved"].astype(bool)]
    assert len(le) > 0
    assert (le["final_metric"] < 0.03).all()
