"""The training_dynamics study at its --quick size: report, data, its helpers, and properties its result must have."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gradlab import tasks
from gradlab.studies import training_dynamics as td
from study_helpers import check_report, run_quick


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    return run_quick("training_dynamics", tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def checkpoints(report_dir):
    return pd.read_csv(report_dir / "data" / "checkpoints.csv")


@pytest.fixture(scope="module")
def tbptt_runs(report_dir):
    return pd.read_csv(report_dir / "data" / "tbptt_runs.csv")


# ---------------------------------------------------------------------- the report and its data

def test_report_has_its_figures_tables_and_data(report_dir):
    readme = check_report(report_dir)
    for stem in ("learning", "profiles", "rho_lambda", "gates", "lstm_cell_vs_hidden", "tbptt_curves",
                 "tbptt_coefficients"):
        assert f"({stem}.png)" in readme
    assert "| cell | step | held-out MSE | ρ per step |" in readme
    assert "| blank steps before the loss | BPTT | window (steps) |" in readme
    assert "gradlab study training_dynamics --quick" in readme


def test_every_grid_point_and_checkpoint_is_in_the_data(checkpoints, tbptt_runs):
    s = td.sizes(quick=True)
    configs, replicates = td.grids(quick=True)["evolution"]
    steps = td.checkpoints(s["steps"])
    assert len(checkpoints) == len(configs) * replicates * len(steps)
    assert set(checkpoints["cell"]) == set(td.CELLS)
    assert sorted(checkpoints["step"].unique()) == steps
    configs, replicates = td.grids(quick=True)["tbptt"]
    assert len(tbptt_runs) == len(configs) * replicates
    assert set(zip(tbptt_runs["delay"], tbptt_runs["k"])) == {(c["delay"], c["k"]) for c in configs}
    assert tbptt_runs["seed"].nunique() == len(tbptt_runs), "every run has its own seed"


def test_rho_and_lambda1_are_finite_and_gates_are_ordered_probabilities(checkpoints):
    assert np.isfinite(checkpoints[["rho", "lambda1", "mse", "grad_at_x1"]].to_numpy()).all()
    gated = checkpoints[checkpoints["cell"].isin(["gru", "lstm"])]
    q = gated[["keep_q05", "keep_q25", "keep_q50", "keep_q75", "keep_q95"]].to_numpy()
    assert ((q > 0) & (q < 1)).all()
    assert (np.diff(q, axis=1) >= 0).all()
    assert (gated["keep_top_unit"] >= gated["keep_q50"] - 1e-12).all()
    assert checkpoints[checkpoints["cell"] == "rnn_tanh"]["keep_q50"].isna().all(), "the tanh RNN has no gates"


def test_lstm_forget_gate_starts_near_sigmoid_of_its_bias(checkpoints):
    # forget bias 1 (Gers et al. 2000; Jozefowicz et al. 2015): f ≈ σ(1) ≈ 0.73 before training
    f0 = checkpoints[(checkpoints["cell"] == "lstm") & (checkpoints["step"] == 0)]["keep_q50"]
    assert len(f0) > 0 and (abs(f0 - 1 / (1 + math.exp(-1))) < 0.05).all()


def test_lstm_cell_path_carries_the_gradient_back_better_than_the_hidden_state_at_init(checkpoints):
    # at the loss ∂L/∂c_T = o ⊙ tanh'(c_T) ⊙ ∂L/∂h_T is smaller than ∂L/∂h_T; the cell path, gated
    # only by f ≈ 0.73, loses the gradient more slowly, so the ratio grows with the distance
    init = checkpoints[(checkpoints["cell"] == "lstm") & (checkpoints["step"] == 0)]
    assert len(init) > 0
    assert (init["dc_over_dh_first"] < 1).all()
    assert (init["dc_over_dh_last"] > init["dc_over_dh_first"]).all()
    assert (init["rho_c"] >= init["rho"]).all(), "‖∂L/∂c_t‖ decays no faster than ‖∂L/∂h_t‖"


def test_truncated_and_full_bptt_histories_have_one_row_per_step(tbptt_runs):
    steps = td.sizes(quick=True)["tb_steps"]
    assert (tbptt_runs["steps_run"] == steps).all()


def test_truncated_gradient_reaches_exactly_its_window(tbptt_runs):
    for _, r in tbptt_runs.iterrows():
        length = r["T"] + r["delay"]
        window = td.effective_window(int(r["k"]), int(length))
        assert r["window"] == window
        assert r["grad_reach"] + 1 == window, (r["k"], r["delay"])
    full = tbptt_runs[tbptt_runs["k"] >= tbptt_runs["T"] + tbptt_runs["delay"]]
    assert len(full) > 0 and (full["grad_reach"] + 1 == full["T"] + full["delay"]).all()
    assert set(tbptt_runs.loc[tbptt_runs["k"] < tbptt_runs["T"], "window"]) == {10, 50}


# ---------------------------------------------------------------------- helpers, by hand

def test_effective_window_follows_the_windows_from_t0():
    assert td.effective_window(10, 100) == 10
    assert td.effective_window(50, 100) == 50
    assert td.effective_window(50, 110) == 10  # windows [0, 50), [50, 100), [100, 110)
    assert td.effective_window(30, 100) == 10
    assert td.effective_window(100, 100) == 100 and td.effective_window(500, 100) == 100
    with pytest.raises(ValueError):
        td.effective_window(0, 100)


def test_window_floor_by_hand():
    assert td.window_floor(10, 100) == pytest.approx((1 + 0.8) / 12)
    assert td.window_floor(50, 100) == pytest.approx(1 / 12)
    assert td.window_floor(75, 100) == pytest.approx(0.5 / 12)
    assert td.window_floor(100, 100) == 0
    assert td.window_floor(10, 100, delay=10) == pytest.approx(2 / 12)  # the chance MSE 1/6
    assert td.window_floor(30, 100, delay=10) == pytest.approx((1 + 0.6) / 12)
    assert td.window_floor(110, 100, delay=10) == 0
    with pytest.raises(ValueError):
        td.window_floor(10, 100, delay=-1)


def test_marker_positions_and_coefficients_of_exact_predictors():
    task = tasks.Adding(40, "le2015")
    batch = task.sample(400, seed=3)
    i1, i2 = td.marker_positions(batch.x)
    assert (i1 < 20).all() and (i2 >= 20).all()
    cols = np.arange(400)
    x1, x2 = batch.x[i1, cols, 0], batch.x[i2, cols, 0]
    exact = td.marker_coefficients(x1 + x2, batch.x, k=10)
    for key in ("b1", "b2_in", "b2_out"):
        assert exact[key] == pytest.approx(1.0)
    assert exact["intercept"] == pytest.approx(0.0, abs=1e-12)
    inside = i2 >= 40 - 10
    windowed = td.marker_coefficients(0.5 + x2 * inside, batch.x, k=10)  # X2 only when the window saw it
    assert windowed["b1"] == pytest.approx(0.0, abs=1e-12)
    assert windowed["b2_out"] == pytest.approx(0.0, abs=1e-12)
    assert windowed["b2_in"] == pytest.approx(1.0) and windowed["intercept"] == pytest.approx(0.5)
    assert math.isnan(td.marker_coefficients(x1 + x2, batch.x, k=40)["b2_out"]), "no X2 outside a full window"
    with pytest.raises(ValueError):
        td.marker_positions(np.zeros((5, 2, 2)))


def test_delayed_adding_appends_blank_steps_to_the_same_sequences():
    plain, delayed = tasks.Adding(30, "le2015").sample(8, seed=5), td.DelayedAdding(30, 7).sample(8, seed=5)
    assert delayed.x.shape == (37, 8, 2)
    np.testing.assert_array_equal(delayed.x[:30], plain.x)
    assert (delayed.x[30:] == 0).all()
    np.testing.assert_array_equal(delayed.y, plain.y)
    with pytest.raises(ValueError):
        td.DelayedAdding(30, -1)


def test_gate_blocks_pick_the_keep_and_write_gates():
    H = 3
    lstm = np.concatenate([np.full((2, 1, H), v) for v in (0.1, 0.2, 0.3, 0.4)], axis=-1)  # i, f, g, o
    keep, write = td.gate_blocks("lstm", lstm)
    assert (keep == 0.2).all() and (write == 0.1).all()
    gru = np.concatenate([np.full((2, 1, H), v) for v in (0.1, 0.25, 0.3)], axis=-1)  # r, u, n
    keep, write = td.gate_blocks("gru", gru)
    assert np.allclose(keep, 0.75) and np.allclose(write, 0.25)
    assert td.gate_blocks("rnn_tanh", np.zeros((2, 1, H))) == (None, None)


def test_checkpoints_include_the_start_and_the_end():
    assert td.checkpoints(600) == [0, 25, 50, 100, 200, 300, 400, 600]
    assert td.checkpoints(24)[0] == 0 and td.checkpoints(24)[-1] == 24
