"""The scaling study at its --quick size, and the helpers it measures and fits with."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import gradlab
from gradlab.studies import scaling as sc
from gradlab.studies import scaling_report as sr
from study_helpers import check_report, run_quick


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    return run_quick("scaling", tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def timing(report_dir):
    return pd.read_csv(report_dir / "data" / "timing.csv")


# ---------------------------------------------------------------------- the report


def test_report_has_its_figures_tables_and_data(report_dir):
    readme = check_report(report_dir)
    for stem in ("time", "cpu_time", "ratios", "memory", "throughput"):
        assert f"({stem}.png)" in readme
    assert "| quantity | impl | cell | axis | range | exponent | 95 % CI | CI contains 1 |" in readme
    assert "gradlab study scaling --quick" in readme
    for name in ("timing", "memory", "summary", "exponents", "first_call", "throughput"):
        assert f"`data/{name}.csv`" in readme
    if not sc.torch_installed():
        assert "PyTorch is not installed here" in readme


def test_every_timing_point_and_implementation_is_in_the_data(timing):
    configs, _ = sc.grids(quick=True)["timing"]
    def repeats(impl, c):
        return c["slow_repeats"] if impl in sc.SLOW else c["repeats"]

    assert len(timing) == sum(repeats(i, c) for c in configs for i in c["impls"])
    for c in configs:
        at = timing[(timing["cell"] == c["cell"]) & (timing["T"] == c["T"]) & (timing["B"] == c["B"])
                    & (timing["H"] == c["H"])]
        assert sorted(set(at["impl"])) == sorted(c["impls"])
        counts = at.groupby("impl")["repeat"].count()
        assert all(counts[i] == repeats(i, c) for i in c["impls"])
    assert set(timing["cell"]) == set(sc.CELLS)
    assert {"cpu", "numpy"} <= set(timing["impl"])
    assert (sc.PARALLEL in set(timing["impl"])) == (sc.available_cores() > 1)
    par = timing["impl"] == sc.PARALLEL
    assert (timing.loc[~par, "impl_threads"] == sc.THREADS).all()
    assert (timing.loc[par, "impl_threads"] == timing.loc[par, "parallel_threads"]).all()
    assert ("torch" in set(timing["impl"])) == sc.torch_installed()
    assert (timing["seconds"] > 0).all() and np.isfinite(timing["first_call_s"]).all()
    assert (timing["cpu_seconds"] >= 0).all()
    assert (timing["flops"] == [sc.flops(c, T, B, sc.INPUT_SIZE, H) for c, T, B, H
                                in zip(timing["cell"], timing["T"], timing["B"], timing["H"])]).all()
    s = sc.sizes(quick=True)
    assert timing.loc[timing["impl"].isin(sc.SLOW), "T"].max() <= s["slow_max_T"]
    assert timing.loc[timing["impl"] == "cpu", "T"].max() == max(s["T"])


@pytest.fixture(scope="module")
def memory(report_dir):
    return pd.read_csv(report_dir / "data" / "memory.csv")


def test_memory_is_measured_at_every_shape_the_host_backends_were_timed_at(timing, memory):
    timed = timing[timing["impl"].isin(sc.TRACED)].drop_duplicates(sr.POINT)[sr.POINT]
    assert len(memory) == len(timed)
    assert set(map(tuple, memory[sr.POINT].to_numpy())) == set(map(tuple, timed.to_numpy()))
    assert (memory["peak_bytes"] <= memory["peak_bytes_max"]).all()


def test_returned_arrays_equal_the_documented_formula_byte_for_byte(memory):
    assert (memory["returned_bytes"] == memory["formula_returned_bytes"]).all()


def test_traced_peak_is_bounded_below_by_the_formula_and_close_to_it(memory):
    # everything the formula counts is alive at once at the end of the backward pass, so the traced peak
    # can only exceed it; what it leaves out is O(B·H + G·H²) scratch and Python objects, small at long T
    ratio = memory["peak_bytes"] / memory["formula_peak_bytes"]
    assert (ratio >= 1).all()
    assert (ratio <= 1.2).all()
    longest = ratio[memory["T"] == memory["T"].max()]
    assert len(longest) > 0 and (longest <= 1.02).all()
    s = sc.sizes(quick=True)
    assert memory.loc[memory["impl"] == "numpy", "T"].max() <= s["slow_max_T"]


def test_first_call_runs_in_a_fresh_process_for_every_cell(report_dir):
    first = pd.read_csv(report_dir / "data" / "first_call.csv")
    assert list(first.sort_values("order")["cell"]) == list(sc.CELLS)
    assert (first["second_call_s"] > 0).all() and (first["import_s"] > 0).all()
    assert (first["cache_hits"] + first["cache_misses"] > 0).all(), "the kernels were loaded or compiled"


def test_throughput_has_every_worker_count_and_round(report_dir):
    tp = pd.read_csv(report_dir / "data" / "throughput.csv")
    (config,), _ = sc.grids(quick=True)["throughput"]
    assert sorted(set(tp["workers"])) == config["worker_counts"]
    assert (tp.groupby("workers")["round"].count() == config["rounds"]).all()
    assert (tp["points_done"] == tp["points"]).all()
    clusters = tp[tp["workers"] > 0]
    assert ((clusters["pids"] >= 1) & (clusters["pids"] <= clusters["workers"])).all()
    assert (tp.loc[tp["workers"] == 0, "pids"] == 1).all()
    assert (clusters["startup_s"] > 0).all()


# ---------------------------------------------------------------------- helpers


def test_returned_bytes_formula_by_hand():
    # rnn_tanh, T=2, B=3, D=4, H=5: trace h, gates 2·3·(5 + 5) = 60 words; grads ∂x 2·3·4 = 24, dh_norm 6,
    # ∂h0 3·5 = 15, W_x 5·4 = 20, W_h 5·5 = 25, b 5: 60 + 24 + 6 + 15 + 50 = 155 words
    assert sc.returned_bytes_formula("rnn_tanh", 2, 3, 4, 5, 8) == 155 * 8
    # lstm (G=4): h, c, gates 2·3·(5 + 5 + 20) = 180; ∂x 24, two norms 12, ∂h0 ∂c0 30, W_x 80, W_h 100, b 20
    assert sc.returned_bytes_formula("lstm", 2, 3, 4, 5, 4) == (180 + 24 + 12 + 30 + 200) * 4
    # the peak adds the gate gradients T·B·G·H
    assert sc.peak_bytes_formula("rnn_tanh", 2, 3, 4, 5, 8) == (155 + 30) * 8
    assert sc.peak_bytes_formula("lstm", 2, 3, 4, 5, 8) == (446 + 120) * 8
    assert sc.flops("lstm", 10, 2, 3, 4) == 6 * 2 * 4 * 4 * (3 + 4) * 10


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_returned_bytes_formula_matches_the_arrays_of_every_cell(cell, backend):
    T, B, D, H = 7, 3, 2, 5
    params, x, dh = sc.problem(cell, T, B, H, D, "float32", seed=1)
    trace, grads = sc.gradlab_call(cell, params, x, dh, backend)()
    assert sc._returned(trace, grads) == sc.returned_bytes_formula(cell, T, B, D, H, 4)


def test_traced_peak_sees_numpy_buffers_and_the_formula_bounds_a_real_call_in_a_fresh_process():
    _, peak = sc.traced_peak(lambda: np.ones(10**6))
    assert 8 * 10**6 <= peak < 8 * 10**6 + 2**20
    config = {"shapes": [["lstm", 400, 4, 8], ["rnn_tanh", 50, 2, 3]], "D": 3, "dtype": "float64", "threads": 1,
              "traced": 2, "slow_max_T": 100}
    rows = pd.DataFrame(sc.in_fresh_process("memory_rows", config, seed=0))
    assert list(zip(rows["impl"], rows["cell"], rows["T"])) == [("cpu", "lstm", 400), ("cpu", "rnn_tanh", 50),
                                                                  ("numpy", "rnn_tanh", 50)]
    assert (rows["returned_bytes"] == rows["formula_returned_bytes"]).all()
    big = rows.iloc[0]
    assert big["formula_peak_bytes"] == sc.peak_bytes_formula("lstm", 400, 4, 3, 8, 8)
    assert big["formula_peak_bytes"] <= big["peak_bytes"] <= 1.05 * big["formula_peak_bytes"]
    assert (rows["import_s"] > 0).all() and (rows["process_s"] >= rows["import_s"]).all()


def test_a_failure_in_the_fresh_process_is_raised_with_its_message():
    with pytest.raises(RuntimeError, match="no_such_function in a fresh process failed"):
        sc.in_fresh_process("no_such_function", {}, seed=0)


@pytest.mark.parametrize("cell", sc.CELLS)
def test_the_torch_peer_computes_the_same_gradients_as_gradlab(cell):
    if not sc.torch_installed():  # then the study must not list it
        assert all("torch" not in c["impls"] for c in sc.grids(quick=True)["timing"][0])
        return
    T, B, D, H = 12, 3, 4, 5
    params, x, dh = sc.problem(cell, T, B, H, D, "float64", seed=2)
    _, grads = sc.gradlab_call(cell, params, x, dh, "cpu")()
    dx, dh0 = (g.numpy() for g in sc.torch_call(cell, params, x, dh)()[:2])
    np.testing.assert_allclose(dx, grads.x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh0[0], grads.h0, rtol=1e-10, atol=1e-12)


def test_array_bytes_counts_each_buffer_once():
    a = np.zeros((10, 4))
    assert sc.array_bytes([a, a[2:], a.T, None, np.zeros(3, np.float32)]) == 320 + 12


def test_fit_exponent_on_an_exact_power_law_and_on_noise():
    x = np.array([10.0, 100.0, 1000.0, 10000.0])
    fit = sc.fit_exponent(x, 3.0 * x ** 1.5)
    assert fit["exponent"] == pytest.approx(1.5) and fit["n"] == 4
    assert fit["ci_high"] - fit["ci_low"] < 1e-9 and fit["r2"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    y = 2.0 * x * np.exp(rng.normal(0, 0.05, x.size))
    noisy = sc.fit_exponent(x, y)
    assert noisy["ci_low"] < noisy["exponent"] < noisy["ci_high"]
    assert noisy["ci_low"] < 1 < noisy["ci_high"]
    two = sc.fit_exponent([1, 10], [1, 100])
    assert two["exponent"] == pytest.approx(2.0) and np.isnan(two["ci_low"])
    assert sc.fit_exponent([1, 10, 100], [1, 0, -1])["n"] == 1  # non-positive values are dropped


def test_exponent_interval_matches_students_t_by_hand():
    # points (0, 0), (1, 1), (2, 3) in log space: slope 1.5, residuals 1/6, −1/3, 1/6 (sum of squares 1/6),
    # Σ(x − x̄)² = 2, so se = sqrt((1/6) / (3 − 2) / 2) = sqrt(1/12)
    x = np.exp([0.0, 1.0, 2.0])
    y = np.exp([0.0, 1.0, 3.0])
    fit = sc.fit_exponent(x, y)
    assert fit["exponent"] == pytest.approx(1.5)
    assert fit["stderr"] == pytest.approx(np.sqrt(1 / 12))
    assert fit["ci_high"] - 1.5 == pytest.approx(12.7062 * np.sqrt(1 / 12), rel=1e-4)  # t(0.975, 1 dof)


def test_grid_helpers():
    assert sc.worker_counts(2) == [0, 1, 2]
    assert sc.worker_counts(8) == [0, 1, 2, 4, 8]
    assert sc.worker_counts(64) == [0, 1, 2, 4, 8]
    assert sc.implementations("lstm", 100, 1000, torch=True, cuda=False) == ["cpu", "numpy", "torch"]
    assert sc.implementations("lstm", 3162, 1000, torch=True, cuda=True) == ["cpu", "cuda"]
    assert sc.implementations("gru", 100, 1000, torch=True, cuda=False) == ["cpu", "numpy"]
    g = sc.grids(quick=True, torch=False, cuda=False, cores=2)
    configs, _ = g["timing"]
    s, base = sc.sizes(quick=True), sc.sizes(quick=True)["base"]
    # three axes through the base point, the base point once
    assert len(configs) == len(sc.CELLS) * (len(s["T"]) + len(s["B"]) + len(s["H"]) - 2)
    assert sum(c["T"] == base["T"] and c["B"] == base["B"] and c["H"] == base["H"] for c in configs) == len(sc.CELLS)
    assert all("torch" not in c["impls"] for c in configs)
    # the one-thread runs everywhere, every core beside them along B only
    along_B = [c for c in configs if c["T"] == base["T"] and c["H"] == base["H"]]
    n_par = min(sc.parallel_threads(), 2)
    assert all((sc.PARALLEL in c["impls"]) == (n_par > 1) and c["parallel_threads"] == n_par for c in along_B)
    assert all(sc.PARALLEL not in c["impls"] and c["threads"] == sc.THREADS for c in configs if c not in along_B)
    one_core = sc.grids(quick=True, torch=False, cuda=False, cores=1)["timing"][0]
    assert all(sc.PARALLEL not in c["impls"] for c in one_core)
    assert g["throughput"][0][0]["worker_counts"] == [0, 1, 2]
    assert sc.impl_threads(sc.PARALLEL, configs[0]) == n_par and sc.impl_threads("numpy", configs[0]) == sc.THREADS
    assert json.dumps(g)  # every config is JSON


def test_on_axis_and_exponents_pick_the_sweep_through_the_base_point():
    base = {"T": 10, "B": 2, "H": 4}
    rows = []
    shapes = [(10, 2, 4), (100, 2, 4), (1000, 2, 4), (10, 8, 4), (10, 32, 4), (10, 2, 8), (10, 2, 16)]
    wobble = {100: 1.05}  # the T sweep is not an exact power law, so its interval has a width
    for T, B, H in shapes:
        rows.append({"impl": "cpu", "cell": "rnn_tanh", "T": T, "B": B, "H": H,
                     "median_s": 1e-3 * T * B ** 0.5 * wobble.get(T, 1.0), "median_cpu_s": 1e-3 * T * H,
                     "peak_bytes": 8.0 * T * B * H, "flops": float(T * B * H), "formula_peak_bytes": 8.0 * T * B * H})
    summary = pd.DataFrame(rows)
    assert list(sr.on_axis(summary, "T", base)["T"]) == [10, 100, 1000]
    assert list(sr.on_axis(summary, "B", base)["B"]) == [2, 8, 32]
    e = sr.exponents(summary, base)
    e = e[e["cell"] == "rnn_tanh"].set_index(["quantity", "impl", "axis"])
    t = e.loc[("wall time", "cpu", "T")]
    assert t["exponent"] == pytest.approx(1.0, abs=0.01) and t["ci_low"] < 1 < t["ci_high"] and t["ci_contains_1"]
    assert e.loc[("wall time", "cpu", "B"), "exponent"] == pytest.approx(0.5)
    assert e.loc[("CPU time", "cpu", "H"), "exponent"] == pytest.approx(1.0)
    assert e.loc[("CPU time", "cpu", "B"), "exponent"] == pytest.approx(0.0, abs=1e-9)
    assert e.loc[("peak memory", "cpu", "H"), "exponent"] == pytest.approx(1.0)
    assert e.loc[("FLOPs (SPEC §9)", "model", "H"), "exponent"] == pytest.approx(1.0)
