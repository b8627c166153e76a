"""The first study at its --quick size: report, figures, data, and properties its result must have."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gradlab.studies import vanishing_exploding as ve
from study_helpers import check_report, run_quick


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    return run_quick("vanishing_exploding", tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def points(report_dir):
    return pd.read_csv(report_dir / "data" / "points.csv")


def test_report_has_its_figures_tables_and_data(report_dir):
    readme = check_report(report_dir)
    for stem in ("profiles_orthogonal", "rho_vs_lambda1", "profiles_long", "depth_map", "depth_map_bidirectional", "trained"):
        assert f"({stem}.png)" in readme
    assert "| cell | init | scale | T | ρ per step |" in readme
    assert "gradlab study vanishing_exploding --quick" in readme


def test_every_grid_point_is_in_the_data(points):
    configs, replicates = ve.grids(quick=True)["init"]
    assert len(points) == len(configs) * replicates
    assert set(points["cell"]) == set(ve.CELLS)
    assert points["seed"].nunique() == len(points), "every network has its own seed"


def test_lstm_decays_slower_than_rnn_tanh_at_the_same_contracting_scale(points):
    # above scale 1 the tanh RNN nears the edge of chaos and can decay more slowly than the LSTM
    s = ve.sizes(quick=True)
    at = points[(points["T"] == s["T"]) & (points["init"] == "orthogonal")].groupby(["cell", "scale"])["rho"].median()
    for scale in [x for x in s["scales"] if x <= 1.0]:
        assert at[("lstm", scale)] > at[("rnn_tanh", scale)], scale


def test_measured_rate_tracks_the_top_lyapunov_exponent(points):
    gap = (points["rho"] - points["lambda1"]).abs()
    assert np.isfinite(gap).all()
    assert gap.median() < 0.1
    assert np.corrcoef(points["rho"], points["lambda1"])[0, 1] > 0.9


def test_pascanu_sufficient_condition_means_vanishing(points):
    plain = points[points["pascanu_applies"].astype(bool)]
    assert set(plain["cell"]) == {"rnn_tanh", "rnn_relu"}
    guaranteed = plain[plain["vanishing_sufficient"].astype(bool)]
    assert len(guaranteed) > 0 and (guaranteed["rho"] < 0).all()
    exploding = plain[plain["exploding"].astype(bool)]
    assert exploding["exploding_necessary"].astype(bool).all(), "exploding needs σ_max > 1/γ"


def test_bidirectional_top_layer_backward_direction_has_no_path_beyond_the_last_step(report_dir):
    depth = pd.read_csv(report_dir / "data" / "depth.csv")
    bi = depth[depth["bidirectional"] & (depth["layer"] == 2) & (depth["direction"] == "backward")]
    assert len(bi) > 0
    assert (bi.loc[bi["k"] > 0, "median"] == 0).all() and (bi.loc[bi["k"] == 0, "median"] > 0).all()
