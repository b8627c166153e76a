"""Tests of gradlab.dynamics: profiles, decay rates, Jacobians, Lyapunov exponents, Pascanu bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import gradlab
from conftest import make_problem
from gradlab import dynamics as dy


def _one_step(cell, p, x_t, s, H):
    """One reference step from the state s = h (or [h; c] for the LSTM); returns the new state."""
    lstm = gradlab.CELLS[cell].has_cell_state
    tr = gradlab.forward(cell, p, x_t[None], s[:, :H], s[:, H:] if lstm else None, backend="numpy")
    return np.concatenate([tr.h[0], tr.c[0]], axis=1) if lstm else tr.h[0]


# ----------------------------------------------------------------------------- Jacobians


@pytest.mark.parametrize("cell", gradlab.CELL_NAMES)
def test_step_jacobians_match_central_differences(cell):
    T, B, H = 4, 2, 3
    p, x, h0, c0, _, _ = make_problem(cell, T=T, B=B, D=3, H=H, seed=5, scale=1.3)
    J = dy.step_jacobians(cell, p, x, h0, c0)
    lstm = c0 is not None
    S = 2 * H if lstm else H
    assert J.shape == (T, B, S, S)
    tr = gradlab.forward(cell, p, x, h0, c0, backend="numpy")
    eps = 1e-6
    for t in range(T):
        h_prev = h0 if t == 0 else tr.h[t - 1]
        s = np.concatenate([h_prev, c0 if t == 0 else tr.c[t - 1]], axis=1) if lstm else h_prev
        J_fd = np.empty((B, S, S))
        for j in range(S):
            e = np.zeros(S)
            e[j] = eps
            J_fd[:, :, j] = (_one_step(cell, p, x[t], s + e, H) - _one_step(cell, p, x[t], s - e, H)) / (2 * eps)
        # central differences: truncation O(eps²) ~ 1e-12, rounding O(1e-16/eps) ~ 1e-10
        np.testing.assert_allclose(J[t], J_fd, atol=2e-9, rtol=0)


def test_lstm_h_only_is_the_hh_block():
    p, x, h0, c0, _, _ = make_problem("lstm", T=3, B=2, D=3, H=4, seed=2)
    full = dy.step_jacobians("lstm", p, x, h0, c0)
    hh = dy.step_jacobians("lstm", p, x, h0, c0, h_only=True)
    assert hh.shape == (3, 2, 4, 4)
    np.testing.assert_array_equal(hh, full[:, :, :4, :4])


def test_jacobian_singular_values_sorted_and_match_svd():
    p, x, h0, _, _, _ = make_problem("gru", T=3, B=2, D=3, H=4, seed=1)
    J = dy.step_jacobians("gru", p, x, h0)
    sv = dy.jacobian_singular_values(J)
    assert sv.shape == (3, 2, 4)
    assert np.all(np.diff(sv, axis=-1) <= 0)
    np.testing.assert_allclose(sv[1, 0], np.linalg.svd(J[1, 0], compute_uv=False))
    np.testing.assert_allclose(sv[..., 0], np.linalg.norm(J, 2, axis=(-2, -1)))


# ----------------------------------------------------------------------------- Lyapunov


def test_top_lyapunov_exponent_qr_matches_two_trajectories():
    # A chaotic tanh RNN: orthogonal W_h scaled by 3 gives λ₁ ≈ 0.05-0.1 per step.
    p = gradlab.init_params("rnn_tanh", 4, 12, scale=3.0, seed=3)
    x = np.random.default_rng(0).normal(0, 1, (400, 3, 4))
    lam = dy.lyapunov_spectrum("rnn_tanh", p, x, num_exponents=3, warmup=100)
    direct = dy.two_trajectory_lyapunov("rnn_tanh", p, x, eps=1e-8, warmup=100)
    assert lam.shape == (3, 3) and direct.shape == (3,)
    assert np.all(np.diff(lam, axis=1) <= 0)
    assert np.all(lam[:, 0] > 0.01)  # chaotic: the test would be vacuous near zero
    # Both are averages of the same tangent growth over the same 300 steps once the
    # frame and the separation have aligned with the top direction (warm-up); they
    # differ by the O(eps) nonlinearity of the map and by rounding of a 1e-8
    # separation (~1e-8 per step), measured ~1e-7. 1e-5 is 100x that and still
    # under 1e-3 of λ₁.
    np.testing.assert_allclose(lam[:, 0], direct, atol=1e-5, rtol=0)


def test_lyapunov_spectrum_sum_is_mean_log_determinant():
    p, x, h0, c0, _, _ = make_problem("lstm", T=60, B=2, D=3, H=3, seed=4, scale=1.5)
    lam = dy.lyapunov_spectrum("lstm", p, x, h0, c0)
    assert lam.shape == (2, 6)
    J = dy.step_jacobians("lstm", p, x, h0, c0)
    logdet = np.linalg.slogdet(J)[1].mean(axis=0)
    np.testing.assert_allclose(lam.sum(axis=1), logdet, rtol=1e-10)


def _linear_relu(a, D=2, H=4, seed=0):
    """rnn_relu with W_h = a·I, positive W_x and b: with positive inputs every unit stays in the linear region."""
    p = gradlab.init_params("rnn_relu", D, H, init="identity", scale=a, seed=seed)
    p.W_x = np.abs(p.W_x) + 0.1
    p.b = np.full_like(p.b, 0.5)
    return p


def test_lyapunov_spectrum_of_a_linear_rnn_is_log_a():
    x = np.abs(np.random.default_rng(1).normal(size=(30, 2, 2)))
    for a in (0.6, 1.3):
        lam = dy.lyapunov_spectrum("rnn_relu", _linear_relu(a), x)
        np.testing.assert_allclose(lam, np.log(a), atol=1e-12)
        # the map is linear, so a large eps costs nothing and keeps the rounding of the
        # growing states (|h| ~ 1e3, error ~ 1e-13 / eps per step) out of the estimate
        direct = dy.two_trajectory_lyapunov("rnn_relu", _linear_relu(a), x, eps=1e-4)
        np.testing.assert_allclose(direct, np.log(a), atol=1e-8)


# ----------------------------------------------------------------------------- profiles and decay rates


def _linear_network(a, T=40, B=3):
    net = gradlab.Network("rnn_relu", 2, 4, 3, mode="many_to_one", init="identity", scale=a, seed=0, backend="numpy")
    net.params["layer0.forward.W_x"][:] = np.abs(net.params["layer0.forward.W_x"]) + 0.1
    net.params["layer0.forward.b"][:] = 0.5
    x = np.abs(np.random.default_rng(2).normal(size=(T, B, 2)))
    return net, x


@pytest.mark.parametrize("a", [0.8, 1.15])
def test_decay_rate_of_a_linear_rnn_is_log_a(a):
    net, x = _linear_network(a)
    prof = dy.gradient_profiles(net, x, seed=1)
    assert prof.shape == (1, 1, 40, 3)
    k = np.arange(40)
    # the random unit direction gives ||dL/dh_T|| = 1, then J^T = a·I at every step
    np.testing.assert_allclose(prof[0, 0], a ** k[:, None] * np.ones((1, 3)), rtol=1e-12)
    fit = dy.decay_rate(prof[0, 0])
    assert abs(fit.rho - np.log(a)) < 1e-6
    assert fit.n_points == 40 and fit.k_last == 39
    assert fit.ci_low <= fit.rho <= fit.ci_high
    assert fit.exploding == (a > 1)
    for b in range(3):  # per sequence as well
        assert abs(dy.decay_rate(prof[0, 0, :, b]).rho - np.log(a)) < 1e-6


def test_profiles_of_a_deep_bidirectional_network():
    T, B, H = 7, 3, 3
    net = gradlab.Network("lstm", 2, H, 2, num_layers=2, bidirectional=True, head="linear", mode="many_to_one",
                          scale=1.2, seed=4, backend="numpy")
    x = np.random.default_rng(0).normal(size=(T, B, 2))
    prof = dy.gradient_profiles(net, x, seed=3)
    assert prof.shape == (2, 2, T, B)

    # Top layer: the loss direction u is a unit vector over [→h_T, ←h_T].
    np.testing.assert_allclose(prof[1, 0, 0] ** 2 + prof[1, 1, 0] ** 2, 1.0, rtol=1e-12)
    # The reversed top state at T-1-k (k >= 1) has no path to the loss at T.
    np.testing.assert_array_equal(prof[1, 1, 1:], 0.0)
    assert np.all(prof[0] > 0)  # lower layer: both directions get gradient at every k

    # Top forward direction: row k is ||(J_{T-k+1}^T ... J_T^T) [u_f; 0]|| restricted to h (eq. (1)).
    p0f, p0r = net.layer_params(0, 0), net.layer_params(0, 1)
    x1 = np.concatenate([gradlab.forward("lstm", p0f, x, backend="numpy").h,
                         gradlab.forward("lstm", p0r, x[::-1].copy(), backend="numpy").h[::-1]], -1)
    J = dy.step_jacobians("lstm", net.layer_params(1, 0), np.ascontiguousarray(x1))
    u = np.random.default_rng(3).standard_normal((B, 2 * H))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    g = np.concatenate([u[:, :H], np.zeros((B, H))], axis=1)
    expected = [np.linalg.norm(g[:, :H], axis=1)]
    for k in range(1, T):
        g = np.einsum("bij,bi->bj", J[T - k], g)
        expected.append(np.linalg.norm(g[:, :H], axis=1))
    np.testing.assert_allclose(prof[1, 0], np.array(expected), rtol=1e-10)

    # With targets, the network's own many-to-one loss: its record reversed in time.
    y = np.random.default_rng(1).normal(size=(B, 2))
    rec = net.loss_and_grads(x, y).record.dh_norm
    np.testing.assert_allclose(dy.gradient_profiles(net, x, y=y), rec[:, :, ::-1], rtol=1e-12)
    np.testing.assert_array_equal(dy.profile_from_dh_norm(rec), rec[:, :, ::-1])
    np.testing.assert_array_equal(dy.profile_from_dh_norm(rec[0, 0]), rec[0, 0, ::-1])


def test_overflowing_forward_pass_gives_nan_profiles():
    net = gradlab.Network("rnn_relu", 2, 3, 2, mode="many_to_one", init="identity", scale=50.0, backend="numpy")
    x = np.abs(np.random.default_rng(0).normal(size=(300, 2, 2))) + 1.0
    prof = dy.gradient_profiles(net, x)
    assert prof.shape == (1, 1, 300, 2) and np.isnan(prof).all()
    fit = dy.decay_rate(prof[0, 0])
    assert fit.n_points == 0 and np.isnan(fit.rho) and fit.horizon is None and not fit.exploding


def test_pascanu_bound_holds_on_profiles():
    net = gradlab.Network("rnn_tanh", 3, 6, 2, mode="many_to_one", scale=0.5, seed=0, backend="numpy")
    x = np.random.default_rng(0).normal(size=(20, 4, 3))
    prof = dy.gradient_profiles(net, x)[0, 0]
    bound = dy.pascanu_bounds("rnn_tanh", net.layer_params(0))
    assert bound.vanishing_sufficient
    eta = bound.gamma * bound.sigma_max
    k = np.arange(20)[:, None]
    assert np.all(prof <= eta**k * prof[0] * (1 + 1e-12))


def test_decay_rate_ci_covers_true_slope():
    rng = np.random.default_rng(0)
    k = np.arange(60)
    rho, sd = -0.3, 0.5

    def noisy():
        return np.exp(2.0 + rho * k + rng.normal(0, sd, k.size))

    fit = dy.decay_rate(noisy())
    assert fit.ci_low < rho < fit.ci_high and not fit.exploding
    assert fit.ci_high - fit.ci_low < 0.1
    # Coverage of the 90% t-interval over repeated draws (binomial sd ~0.013 at n=500).
    hits = np.mean([(lambda f: f.ci_low < rho < f.ci_high)(dy.decay_rate(noisy(), confidence=0.9)) for _ in range(500)])
    assert 0.85 < hits < 0.95


def test_decay_rate_window_and_stopping():
    k = np.arange(50)
    p = np.exp(-0.2 * k)
    p[:5] = 1.0  # a transient, skipped with k_min
    assert abs(dy.decay_rate(p, k_min=5).rho + 0.2) < 1e-12
    fit = dy.decay_rate(p, k_min=5, k_max=9)
    assert fit.n_points == 5 and fit.k_last == 9
    # underflow to 0 stops the fit; later values never enter it
    q = np.exp(-0.5 * k)
    q[30:] = 0.0
    q[40] = 5.0
    fit = dy.decay_rate(q)
    assert fit.n_points == 30 and abs(fit.rho + 0.5) < 1e-12
    # overflow to inf stops the fit and marks it exploding
    r = np.exp(0.1 * k)
    r[3:] = np.inf
    fit = dy.decay_rate(r)
    assert fit.n_points == 3 and fit.exploding
    # too few points: NaN, not an error
    fit = dy.decay_rate(np.array([1.0, 0.0, 0.0]))
    assert fit.n_points == 1 and np.isnan(fit.rho) and np.isnan(fit.ci_low) and not fit.exploding
    # (K, N): the per-k median, NaN sequences ignored
    P = np.stack([np.exp(-0.1 * k), np.exp(-0.2 * k), np.exp(-0.3 * k), np.full(50, np.nan)], axis=1)
    assert abs(dy.decay_rate(P).rho + 0.2) < 1e-12


def test_horizon():
    k = np.arange(40)
    p = 3.0 * np.exp(-0.5 * k)  # 3 e^{-k/2} < 3e-6  <=>  k > 2·6·ln 10 = 27.6
    assert dy.horizon(p) == 28
    assert dy.horizon(p, threshold=1e-3) == 14
    assert dy.horizon(np.ones(10)) is None
    assert dy.decay_rate(p).horizon == 28
    m = dy.profile_metrics(np.stack([p, p], axis=1))
    assert m["horizon"] == 28.0 and abs(m["rho"] + 0.5) < 1e-12 and m["exploding"] is False
    assert np.isnan(dy.profile_metrics(np.ones(10))["horizon"])
    assert set(m) >= {"rho", "ci_low", "ci_high", "intercept", "horizon", "exploding", "n_points"}


def test_summarize_profiles_quartiles():
    K, N = 5, 9
    profiles = np.arange(1, N + 1, dtype=float)[None, :] * np.arange(1, K + 1)[:, None]
    profiles[2, 0] = np.nan
    df = dy.summarize_profiles(profiles)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns[:4]) == ["k", "median", "q25", "q75"]
    assert list(df["k"]) == list(range(K))
    row = df.iloc[1]  # values 2, 4, ..., 18
    assert (row["median"], row["q25"], row["q75"]) == (10.0, 6.0, 14.0)
    assert df["n"].tolist() == [9, 9, 8, 9, 9]
    np.testing.assert_allclose(df.iloc[2][["median", "q25", "q75"]].to_numpy(float),
                               np.quantile(profiles[2, 1:], [0.5, 0.25, 0.75]))
    # overflowed norms are the largest values: quantiles interpolating towards them are inf
    df = dy.summarize_profiles(np.array([[1.0, 2.0, 3.0, np.inf], [1.0, np.inf, np.inf, np.nan]]))
    assert df.iloc[0][["q25", "median", "q75"]].tolist() == [1.75, 2.5, np.inf]
    assert df.iloc[1][["q25", "median", "q75"]].tolist() == [np.inf, np.inf, np.inf]
    assert df["n"].tolist() == [4, 3]


# ----------------------------------------------------------------------------- Pascanu et al.


def test_pascanu_bounds_rnn():
    H = 5
    Q = gradlab.init_params("rnn_tanh", 2, H, seed=0).W_h  # orthogonal: every singular value 1
    p = gradlab.Params(W_x=np.zeros((H, 2)), W_h=0.5 * Q, b=np.zeros(H))
    b = dy.pascanu_bounds("rnn_tanh", p)
    assert b.applicable and b.gamma == 1.0 and b.threshold == 1.0
    assert abs(b.sigma_max - 0.5) < 1e-12
    assert b.vanishing_sufficient is True and b.exploding_necessary is False
    p.W_h = 2.0 * Q
    b = dy.pascanu_bounds("rnn_relu", p)
    assert b.applicable and abs(b.sigma_max - 2.0) < 1e-12
    assert b.vanishing_sufficient is False and b.exploding_necessary is True
    assert b.as_dict()["sigma_max_blocks"] == {"h": b.sigma_max}


@pytest.mark.parametrize("cell,block", [("gru_simple", "n"), ("gru", "n"), ("gru_cudnn", "n"), ("lstm", "g")])
def test_pascanu_bounds_gated_cells_not_applicable(cell, block):
    p = gradlab.init_params(cell, 2, 4, scale=0.5, seed=0)
    b = dy.pascanu_bounds(cell, p)
    assert not b.applicable and b.vanishing_sufficient is None and b.exploding_necessary is None
    assert b.block == block and abs(b.sigma_max - 0.5) < 1e-12
    assert set(b.sigma_max_blocks) == set(gradlab.CELLS[cell].gates)
    assert b.gamma_blocks[block] == 1.0 and all(g == 0.25 for k, g in b.gamma_blocks.items() if k != block)
    assert cell in b.reason


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs_name_the_argument():
    p, x, h0, c0, _, _ = make_problem("rnn_tanh", T=5, B=2, D=3, H=3)
    net = gradlab.Network("rnn_tanh", 3, 3, 2, mode="many_to_one", backend="numpy")
    good = np.exp(-0.1 * np.arange(10))
    cases = [
        (lambda: dy.decay_rate(good, confidence=1.5), ValueError, "confidence"),
        (lambda: dy.decay_rate(good, k_min=10), ValueError, "k_min"),
        (lambda: dy.decay_rate(good, k_min=4, k_max=2), ValueError, "k_max"),
        (lambda: dy.decay_rate(good, k_min=1.5), TypeError, "k_min"),
        (lambda: dy.decay_rate(np.ones((2, 2, 2))), ValueError, "profile"),
        (lambda: dy.decay_rate(-good), ValueError, "profile"),
        (lambda: dy.decay_rate("abc"), TypeError, "profile"),
        (lambda: dy.horizon(good, threshold=0), ValueError, "threshold"),
        (lambda: dy.summarize_profiles(np.ones((0, 3))), ValueError, "profiles"),
        (lambda: dy.step_jacobians("rnn_tanh", p, x[0]), ValueError, "x"),
        (lambda: dy.step_jacobians("nope", p, x), ValueError, "cell"),
        (lambda: dy.step_jacobians("rnn_tanh", p, x, h_only=1), TypeError, "h_only"),
        (lambda: dy.jacobian_singular_values(np.ones((2, 3))), ValueError, "J"),
        (lambda: dy.lyapunov_spectrum("rnn_tanh", p, x, num_exponents=4), ValueError, "num_exponents"),
        (lambda: dy.lyapunov_spectrum("rnn_tanh", p, x, warmup=5), ValueError, "warmup"),
        (lambda: dy.two_trajectory_lyapunov("rnn_tanh", p, x, eps=-1.0), ValueError, "eps"),
        (lambda: dy.two_trajectory_lyapunov("rnn_tanh", p, x, renorm_every=0), ValueError, "renorm_every"),
        (lambda: dy.pascanu_bounds("rnn_tanh", "W"), TypeError, "params"),
        (lambda: dy.gradient_profiles("net", x), TypeError, "network"),
        (lambda: dy.gradient_profiles(net, x[:, :, :2]), ValueError, "x"),
        (lambda: dy.gradient_profiles(net, x, seed=-1), ValueError, "seed"),
        (lambda: dy.gradient_profiles(net, x, backend="gpu"), ValueError, "backend"),
        (lambda: dy.profile_from_dh_norm(np.float64(1.0)), ValueError, "dh_norm"),
    ]
    for call, exc, name in cases:
        with pytest.raises(exc, match=name):
            call()
