"""Gradient dynamics: profiles, decay rates, step Jacobians, Lyapunov spectra, Pascanu bounds (SPEC §7).

The question every vanishing/exploding study asks is how the gradient of a
loss placed at the last step, L_T, depends on a hidden state k steps earlier.
With J_t = ∂s_t/∂s_{t-1} the Jacobian of one step of the recurrence (s = h for
every cell but the LSTM, where s = [h; c]), the chain rule gives

    ∂L_T/∂s_{T-k} = J_{T-k+1}^T · · · J_T^T · ∂L_T/∂s_T,                     (1)

so ‖∂L_T/∂h_{T-k}‖ is a product of k transposed Jacobians applied to one
vector (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training
recurrent neural networks", ICML 2013, §2). This module measures both sides of
that relation:

* the **gradient profile** ‖∂L_T/∂h_{T-k}‖ against the distance k, from a real
  backward pass (:func:`gradient_profiles`), summarised over sequences and
  seeds by its median and quartiles (:func:`summarize_profiles`);
* its **decay rate** ρ, the slope of log‖∂L_T/∂h_{T-k}‖ against k (per step,
  natural log), with a confidence interval, the **horizon** k* where the
  profile falls below 10⁻⁶ of its value at k = 0, and an **exploding** flag
  (:func:`decay_rate`, :func:`horizon`, :func:`profile_metrics`);
* the analytic **step Jacobians** J_t of all six cells along a trajectory and
  their singular values (:func:`step_jacobians`,
  :func:`jacobian_singular_values`);
* the **Lyapunov spectrum** λ₁ ≥ λ₂ ≥ … of the product J_T · · · J_1 by
  repeated QR re-orthonormalisation (Benettin, Galgani, Giorgilli & Strelcyn
  1980, "Lyapunov characteristic exponents for smooth dynamical systems and
  for Hamiltonian systems; a method for computing all of them", Meccanica 15)
  (:func:`lyapunov_spectrum`), and the top exponent from two nearby
  trajectories as an independent check (:func:`two_trajectory_lyapunov`);
* Pascanu et al.'s conditions on the recurrent weights
  (:func:`pascanu_bounds`).

Decay rate and top Lyapunov exponent
------------------------------------
The product in (1) has the same singular values as J_T · · · J_{T-k+1}, so for
a generic ∂L_T/∂s_T and large k, log‖∂L_T/∂s_{T-k}‖ ≈ λ₁ k + const
(Oseledets' theorem), and the measured ρ should be close to λ₁ of the same
cell driven by the same kind of inputs. They are not identical: ρ is fitted over
a finite window of one trajectory's last steps, λ₁ is a time average over the
whole trajectory; ρ measures ‖∂L/∂h‖ while for the LSTM λ₁ describes the full
state [h; c]; and with several layers the gradient reaching a lower layer
arrives at every step through the layers above, not only through (1).

Conventions
-----------
Jacobians act on column vectors: ``J[t, b, i, j] = ∂s_t[i] / ∂s_{t-1}[j]`` for
the step that reads ``x[t]``, with s_{-1} the initial state (h0, c0). Every
profile is indexed by the distance k, ``profile[k]`` being the gradient
norm at real time step t = T-1-k (k = 0 is the last step, where the loss sits).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import network as _network
from .kernels.reference import FORWARD_STEP, split
from .types import Params
from .validate import check_forward, check_params

__all__ = [
    "DecayFit",
    "PascanuBounds",
    "decay_rate",
    "gradient_profiles",
    "horizon",
    "jacobian_singular_values",
    "lyapunov_spectrum",
    "pascanu_bounds",
    "profile_from_dh_norm",
    "profile_metrics",
    "step_jacobians",
    "summarize_profiles",
    "two_trajectory_lyapunov",
]


# ----------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a positive number, got {type(value).__name__}")
    value = float(value)
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"{name}: expected a positive finite number, got {value}")
    return value


def _check_seed(seed: Any) -> Any:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return _check_int("seed", seed, 0)


def _check_profile(name: str, profile: Any) -> np.ndarray:
    """A profile as a float array of shape (K,) or (K, N)."""
    if isinstance(profile, (str, bytes)) or profile is None:
        raise TypeError(f"{name}: expected an array of gradient norms, got {type(profile).__name__}")
    a = np.asarray(profile)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name}: expected real numbers, got dtype {a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"{name}: expected shape (K,) or (K, N), got shape {a.shape}")
    if a.shape[0] < 1 or (a.ndim == 2 and a.shape[1] < 1):
        raise ValueError(f"{name}: expected at least one distance and one sequence, got shape {a.shape}")
    a = a.astype(np.float64) if not np.issubdtype(a.dtype, np.floating) else a
    if np.any(a < 0):
        raise ValueError(f"{name}: gradient norms cannot be negative (found {a[a < 0].ravel()[0]})")
    return a


def _median_profile(profile: np.ndarray) -> np.ndarray:
    """(K,) as it is; (K, N) -> the per-k median over the N sequences, NaN ignored."""
    if profile.ndim == 1:
        return profile
    with np.errstate(invalid="ignore"), _warnings_off():
        return np.nanmedian(profile, axis=1)


class _warnings_off:
    """Silence 'All-NaN slice' RuntimeWarnings; an all-NaN k simply yields NaN."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


# ----------------------------------------------------------------------------
# 1. Gradient profiles
# ----------------------------------------------------------------------------


def gradient_profiles(network, x, *, y=None, seed=0, backend: str | None = None) -> np.ndarray:
    """‖∂L_T/∂h_t‖ of every layer and direction against the distance k = T-1-t from a loss at the last step.

    The loss is a many-to-one loss on the top layer's output at the last step,
    a_T = h_T of the top layer (``[→h_T, ←h_T]`` when bidirectional), whatever
    the network's ``mode``:

    * ``y=None`` (default): L_T = ⟨u_b, a_T⟩ with u_b a random unit vector per
      sequence b (dimension dirs·H), drawn from ``numpy.random.default_rng(seed)``.
      Then ∂L_T/∂a_T = u_b, so the profile of a unidirectional top layer is
      exactly 1 at k = 0, the gradient direction carries no information from
      the head or the targets, and profiles are comparable across networks.
    * ``y`` given: the gradient of the network's own loss (softmax
      cross-entropy or squared error of its head) on the last step's output,
      with targets ``y`` of shape ``(B,)`` (classes) or ``(B, K)`` (linear
      head); for a ``many_to_one`` network this is exactly
      :meth:`Network.loss_and_grads`, whose ``record.dh_norm`` it reverses.

    The gradient is propagated by full BPTT through every layer (no clipping).

    Parameters
    ----------
    network : gradlab.Network
        Any cell, depth and direction; not ``mode="seq2seq"``.
    x : ndarray, shape (T, B, D)
        Inputs, in the network's dtype.
    y : ndarray, optional
        Targets of the last step (see above); None for the random-direction loss.
    seed : int
        Seeds the random directions u_b (ignored when ``y`` is given).
    backend : str, optional
        Overrides the network's backend.

    Returns
    -------
    ndarray, shape (layers, dirs, T, B)
        ``profiles[l, d, k, b]`` = ‖∂L_T/∂h^{(l,d)}_{T-1-k}‖ for sequence b,
        the total gradient at that state (as :class:`gradlab.Grads.dh_norm`).
        Layer 0 is the bottom layer; direction 0 forward, 1 reversed.

    Notes
    -----
    **Distance in the reversed direction.** k is the distance in input
    positions from the loss, k = T-1-t, in both directions. The reversed pass
    processes x_T first and x_1 last (its last processed step is real t = 0),
    and gradients flow along its recurrence from small t towards large t; the
    loss sits at its *first* processed step. So in the top layer the reversed
    state at position T-1-k has no path to L_T for k ≥ 1 (its profile is
    ‖u_b's reversed half‖ at k = 0 and exactly 0 beyond), and in lower layers
    the reversed direction receives gradient at every position through the
    layer above. Its profile against k measures how the loss depends on
    positions k steps back, not a product of its own step Jacobians; the
    forward direction's profile is such a product in the top layer (eq. (1)
    of the module docstring) and gains the paths through the layers above in
    lower layers. Both directions use the layout of ``Record.dh_norm`` with
    its time axis reversed (:func:`profile_from_dh_norm`).

    If the forward pass overflows (a hidden state becomes inf or nan), every
    profile is NaN, as :meth:`Network.loss_and_grads` returns.
    """
    if not isinstance(network, _network.Network):
        raise TypeError(f"network: expected a gradlab.Network, got {type(network).__name__}")
    if network.mode == "seq2seq":
        raise ValueError("network: gradient profiles need a many_to_one or many_to_many network, not seq2seq")
    backend = _network._check_backend(backend) or network.backend
    x = network._check_x(x)
    T, B = x.shape[0], x.shape[1]
    dirs = network.num_directions
    if y is None:
        seed = _check_seed(seed)
    else:
        y = network._check_targets(y, (B,))
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported as NaN profiles
            traces, a = network._forward_stack("encoder", x, None, backend)
    except _network._NonFinite:
        return np.full((network.num_layers, dirs, T, B), np.nan, network.dtype)
    dtop = np.zeros_like(a)
    if y is None:
        u = np.random.default_rng(seed).standard_normal((B, a.shape[-1]))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        dtop[-1] = u.astype(network.dtype)
    else:
        _, dz = network._loss(network._head(a[-1]), y, None)
        dtop[-1] = network._head_backward(a[-1], dz, {})
    with np.errstate(over="ignore", invalid="ignore"):  # exploding gradients may overflow to inf
        dh_norm, _, _ = network._backward_stack("encoder", traces, dtop, None, None, backend, {})
    return profile_from_dh_norm(dh_norm)


def profile_from_dh_norm(dh_norm) -> np.ndarray:
    """Reverse the time axis of a ``dh_norm`` record so that row k is the distance k = T-1-t.

    Parameters
    ----------
    dh_norm : ndarray, shape (T, B), or (..., T, B) such as ``Record.dh_norm`` (L, dirs, T, B)
        ‖∂L/∂h_t‖ indexed by real time t (:class:`gradlab.Grads`,
        :class:`gradlab.Record`); a 1-D ``(T,)`` array is one sequence.

    Returns
    -------
    ndarray, the same shape
        ``out[..., k, b] = dh_norm[..., T-1-k, b]`` (a contiguous copy).
    """
    a = np.asarray(dh_norm)
    if a.dtype == object or not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"dh_norm: expected an array of gradient norms, got dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError("dh_norm: expected shape (T, B) or (..., T, B), got a scalar")
    axis = 0 if a.ndim == 1 else -2
    return np.ascontiguousarray(np.flip(a, axis=axis))


def summarize_profiles(profiles):
    """Median and quartiles of gradient profiles at every distance k.

    Parameters
    ----------
    profiles : ndarray, shape (K, N) or (K,)
        ``profiles[k, n]``: the profile of sequence n at distance k, the N
        sequences pooled over batches and seeds (e.g. ``np.concatenate(
        [p[l, d] for p in runs], axis=1)`` of :func:`gradient_profiles`).

    Returns
    -------
    pandas.DataFrame
        One row per k with columns ``k``, ``median``, ``q25``, ``q75`` (the
        25th and 75th percentiles, linear interpolation) and ``n``, the number
        of sequences that were not NaN at that k (NaN marks a run whose
        forward pass overflowed; they are left out). A norm that overflowed to
        +inf counts as the largest value, so a quantile that interpolates
        towards it is +inf.
    """
    import pandas as pd

    a = _check_profile("profiles", profiles)
    if a.ndim == 1:
        a = a[:, None]
    a = a.astype(np.float64)
    # Overflowed norms (+inf) are the largest values; linear interpolation towards
    # one gives +inf, which numpy computes as inf - inf = NaN. Interpolate towards
    # the largest float instead and map anything above the finite values to +inf.
    big = np.finfo(np.float64).max
    with np.errstate(invalid="ignore"), _warnings_off():
        q = np.nanquantile(np.where(np.isposinf(a), big, a), [0.25, 0.5, 0.75], axis=1)
        finite_max = np.max(np.where(np.isfinite(a), a, -np.inf), axis=1)
    q25, median, q75 = np.where(q > finite_max, np.inf, q)
    return pd.DataFrame(
        {"k": np.arange(a.shape[0]), "median": median, "q25": q25, "q75": q75, "n": (~np.isnan(a)).sum(axis=1)}
    )


# ----------------------------------------------------------------------------
# 2. Decay rate and horizon
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DecayFit:
    """The straight-line fit log p_k ≈ intercept + ρ k of a gradient profile.

    Attributes
    ----------
    rho : float
        The decay rate ρ per step (natural log): < 0 vanishing, > 0 exploding.
        NaN when fewer than two points could be fitted.
    ci_low, ci_high : float
        The two-sided confidence interval of ρ from Student's t with n-2
        degrees of freedom; NaN with fewer than three points.
    intercept : float
        log p at k = 0 on the fitted line.
    stderr : float
        The standard error of ρ.
    horizon : int or None
        :func:`horizon` of the fitted profile: the first k with
        p_k < 10⁻⁶ p_0 (the threshold is an argument), None if never.
    exploding : bool
        True when the gradient grows significantly with k: ci_low > 0, or the
        profile overflowed to +inf within the fit window.
    n_points : int
        How many k entered the fit.
    k_last : int or None
        The last k that entered the fit (None when none did).
    """

    rho: float
    ci_low: float
    ci_high: float
    intercept: float
    stderr: float
    horizon: int | None
    exploding: bool
    n_points: int
    k_last: int | None

    def as_dict(self) -> dict:
        """The fields as a plain dict."""
        return asdict(self)


def horizon(profile, threshold: float = 1e-6) -> int | None:
    """The horizon k*: the first distance k at which the profile falls below ``threshold`` times its value at k = 0.

    Parameters
    ----------
    profile : ndarray, shape (K,) or (K, N)
        A gradient profile indexed by k; with N sequences the per-k median is used.
    threshold : float
        Relative level, 10⁻⁶ by default (SPEC §7).

    Returns
    -------
    int or None
        min{k : p_k < threshold · p_0}; None when the profile never falls that
        low within its K steps, or when p_0 is zero or not finite (no
        reference level).
    """
    p = _median_profile(_check_profile("profile", profile))
    threshold = _check_positive("threshold", threshold)
    p0 = p[0]
    if not (np.isfinite(p0) and p0 > 0):
        return None
    below = np.flatnonzero(p < threshold * p0)  # NaN compares False
    return int(below[0]) if below.size else None


def decay_rate(profile, *, k_min: int = 0, k_max: int | None = None, confidence: float = 0.95,
               threshold: float = 1e-6) -> DecayFit:
    """Fit the decay rate ρ of a gradient profile: log ‖∂L_T/∂h_{T-k}‖ ≈ intercept + ρ k.

    ρ is the ordinary least-squares slope (``scipy.stats.linregress``) of the
    natural log of the profile against k, per step. By (1) in the module
    docstring, ‖∂L_T/∂h_{T-k}‖ is a product of k Jacobians applied to one
    vector, so its log grows like λ₁ k for large k: ρ < 0 is a vanishing
    gradient, ρ > 0 an exploding one (Pascanu et al. 2013, §2), and
    exp(-1/ρ) steps is the e-folding length of the memory.

    The confidence interval is ρ ± t_{(1+confidence)/2, n-2} · stderr,
    Student's t with n-2 degrees of freedom for n fitted points. It measures
    how well a straight line describes this one curve; with several sequences
    the curve is their median, so it does not include the spread between
    sequences (see :func:`summarize_profiles` for that).

    Parameters
    ----------
    profile : array, shape (K,) or (K, N)
        Gradient norms indexed by the distance k (:func:`gradient_profiles`,
        :func:`profile_from_dh_norm`). With N sequences the fit is to the
        per-k median over sequences (NaN ignored); the median commutes with
        the log, so this is the median log-profile, robust to the heavy tails
        of products of random matrices.
    k_min, k_max : int
        The fit window k_min ≤ k ≤ k_max (both inclusive; k_max None means
        K-1). Skip a transient with k_min.
    confidence : float
        Level of the interval, in (0, 1).
    threshold : float
        Passed to :func:`horizon`.

    Returns
    -------
    DecayFit

    Notes
    -----
    The fit **stops** at the first k in the window whose value is not a
    positive normal float: zero or subnormal (the gradient underflowed; the
    log of a subnormal has lost precision), +inf (it overflowed) or NaN.
    Values beyond that k never enter the fit. ``exploding`` is
    ``ci_low > 0`` (the growth is significant at the chosen level, which
    implies ρ > 0) or an overflow to +inf inside the window; with fewer than
    three points ci_low is NaN and only an overflow can set it.
    """
    from scipy import stats

    a = _check_profile("profile", profile)
    K = a.shape[0]
    k_min = _check_int("k_min", k_min, 0)
    if k_min >= K:
        raise ValueError(f"k_min: must be below the profile's length K={K}, got {k_min}")
    if k_max is None:
        k_max = K - 1
    else:
        k_max = _check_int("k_max", k_max, 0)
        if k_max < k_min:
            raise ValueError(f"k_max: must be >= k_min={k_min}, got {k_max}")
        k_max = min(k_max, K - 1)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.integer, np.floating)):
        raise TypeError(f"confidence: expected a number in (0, 1), got {type(confidence).__name__}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence}")
    k_star = horizon(a, threshold)

    p = _median_profile(a)[k_min : k_max + 1]
    tiny = np.finfo(p.dtype).tiny if np.issubdtype(p.dtype, np.floating) else np.finfo(np.float64).tiny
    ok = np.isfinite(p) & (p >= tiny)
    stop = int(np.argmin(ok)) if not ok.all() else p.size
    overflow = bool(stop < p.size and p[stop] == np.inf)
    k = np.arange(k_min, k_min + stop, dtype=np.float64)
    logp = np.log(p[:stop].astype(np.float64))
    n = int(stop)
    nan = float("nan")
    if n < 2:
        rho = intercept = stderr = nan
    else:
        fit = stats.linregress(k, logp)
        rho, intercept = float(fit.slope), float(fit.intercept)
        stderr = float(fit.stderr) if n >= 3 else nan
    if n >= 3:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * stderr
        ci_low, ci_high = rho - half, rho + half
    else:
        ci_low = ci_high = nan
    exploding = bool(overflow or ci_low > 0)
    return DecayFit(
        rho=rho, ci_low=ci_low, ci_high=ci_high, intercept=intercept, stderr=stderr, horizon=k_star,
        exploding=exploding, n_points=n, k_last=(k_min + n - 1) if n else None,
    )


def profile_metrics(profiles, *, k_min: int = 0, k_max: int | None = None, confidence: float = 0.95,
                    threshold: float = 1e-6) -> dict:
    """The metrics of one configuration's profiles as a flat dict, for a row of a results table.

    Parameters
    ----------
    profiles : array, shape (K, N) or (K,)
        Profiles of N sequences pooled over seeds; arguments as in :func:`decay_rate`.

    Returns
    -------
    dict
        ``rho``, ``ci_low``, ``ci_high``, ``intercept``, ``stderr``,
        ``horizon`` (float, NaN when never reached), ``exploding`` (bool),
        ``n_points``, ``k_last`` (NaN when no point), and ``p0_median``,
        ``pK_median``: the median profile at k = 0 and at the last k.
    """
    fit = decay_rate(profiles, k_min=k_min, k_max=k_max, confidence=confidence, threshold=threshold)
    med = _median_profile(_check_profile("profiles", profiles))
    row = fit.as_dict()
    row["horizon"] = float("nan") if fit.horizon is None else float(fit.horizon)
    row["k_last"] = float("nan") if fit.k_last is None else int(fit.k_last)
    row["p0_median"] = float(med[0])
    row["pK_median"] = float(med[-1])
    return row


# ----------------------------------------------------------------------------
# 3. Step Jacobians J_t = ∂s_t/∂s_{t-1}
# ----------------------------------------------------------------------------


def _dm(d: np.ndarray, W: np.ndarray) -> np.ndarray:
    """diag(d) W for a batch of vectors d (B, n): (B, n, m)."""
    return d[:, :, None] * W


def _eye(B: int, H: int, d: np.ndarray) -> np.ndarray:
    """diag(d) for a batch of vectors d (B, H): (B, H, H)."""
    out = np.zeros((B, H, H), d.dtype)
    idx = np.arange(H)
    out[:, idx, idx] = d
    return out


def _jac_rnn_tanh(p, h_prev, c_prev, h, c, gates, hn):
    """h_t = tanh(a),  a = W_x x_t + W_h h_{t-1} + b:   J = diag(1 - h_t²) W_h."""
    return _dm(1 - h * h, p.W_h)


def _jac_rnn_relu(p, h_prev, c_prev, h, c, gates, hn):
    """h_t = max(0, a):   J = diag([h_t > 0]) W_h (the derivative at a = 0 taken as 0, as in BPTT)."""
    return _dm((h > 0).astype(h.dtype), p.W_h)


def _jac_gru_simple(p, h_prev, c_prev, h, c, gates, hn):
    """h_t = u ⊙ n + (1 - u) ⊙ h_{t-1}, u = σ(W_hu h_{t-1} + ·), n = tanh(W_hn h_{t-1} + ·):

    J = diag(1 - u) + diag((n - h_{t-1}) ⊙ u(1 - u)) W_hu + diag(u ⊙ (1 - n²)) W_hn.
    """
    B, H = h.shape
    u, n = split(gates, 2)
    W_hu, W_hn = p.W_h[:H], p.W_h[H:]
    return _eye(B, H, 1 - u) + _dm((n - h_prev) * u * (1 - u), W_hu) + _dm(u * (1 - n * n), W_hn)


def _jac_gru(p, h_prev, c_prev, h, c, gates, hn):
    """Full GRU, n = tanh(W_hn (r ⊙ h_{t-1}) + ·), r = σ(W_hr h_{t-1} + ·):

    ∂(r ⊙ h_{t-1})/∂h_{t-1} = diag(r) + diag(h_{t-1} ⊙ r(1 - r)) W_hr,
    J = diag(1 - u) + diag((n - h_{t-1}) ⊙ u(1 - u)) W_hu
        + diag(u ⊙ (1 - n²)) W_hn [diag(r) + diag(h_{t-1} ⊙ r(1 - r)) W_hr].
    """
    B, H = h.shape
    r, u, n = split(gates, 3)
    W_hr, W_hu, W_hn = p.W_h[:H], p.W_h[H : 2 * H], p.W_h[2 * H :]
    ds = _eye(B, H, r) + _dm(h_prev * r * (1 - r), W_hr)  # ∂(r ⊙ h_{t-1})/∂h_{t-1}
    return _eye(B, H, 1 - u) + _dm((n - h_prev) * u * (1 - u), W_hu) + _dm(u * (1 - n * n), W_hn @ ds)


def _jac_gru_cudnn(p, h_prev, c_prev, h, c, gates, hn):
    """cuDNN GRU, n = tanh(W_xn x_t + b_n + r ⊙ hn), hn = W_hn h_{t-1} + b_hn:

    ∂(r ⊙ hn)/∂h_{t-1} = diag(r) W_hn + diag(hn ⊙ r(1 - r)) W_hr,
    J = diag(1 - u) + diag((n - h_{t-1}) ⊙ u(1 - u)) W_hu
        + diag(u ⊙ (1 - n²)) [diag(r) W_hn + diag(hn ⊙ r(1 - r)) W_hr].
    """
    B, H = h.shape
    r, u, n = split(gates, 3)
    W_hr, W_hu, W_hn = p.W_h[:H], p.W_h[H : 2 * H], p.W_h[2 * H :]
    drhn = _dm(r, W_hn) + _dm(hn * r * (1 - r), W_hr)  # ∂(r ⊙ hn)/∂h_{t-1}
    return _eye(B, H, 1 - u) + _dm((n - h_prev) * u * (1 - u), W_hu) + (u * (1 - n * n))[:, :, None] * drhn


def _jac_lstm(p, h_prev, c_prev, h, c, gates, hn):
    """LSTM, state s = [h; c]; i, f, o = σ(W_h· h_{t-1} + ·), g = tanh(W_hg h_{t-1} + ·):

    ∂c_t/∂h_{t-1} = diag(g ⊙ i(1 - i)) W_hi + diag(c_{t-1} ⊙ f(1 - f)) W_hf + diag(i ⊙ (1 - g²)) W_hg,
    ∂c_t/∂c_{t-1} = diag(f),
    ∂h_t/∂h_{t-1} = diag(tanh(c_t) ⊙ o(1 - o)) W_ho + diag(o ⊙ (1 - tanh²(c_t))) ∂c_t/∂h_{t-1},
    ∂h_t/∂c_{t-1} = diag(o ⊙ (1 - tanh²(c_t)) ⊙ f),
    J = [[∂h_t/∂h_{t-1}, ∂h_t/∂c_{t-1}], [∂c_t/∂h_{t-1}, ∂c_t/∂c_{t-1}]]  (2H × 2H).
    """
    B, H = h.shape
    i, f, g, o = split(gates, 4)
    W_hi, W_hf, W_hg, W_ho = (p.W_h[k * H : (k + 1) * H] for k in range(4))
    tc = np.tanh(c)
    dh_dc = o * (1 - tc * tc)  # ∂h_t/∂c_t, elementwise
    dc_dh = _dm(g * i * (1 - i), W_hi) + _dm(c_prev * f * (1 - f), W_hf) + _dm(i * (1 - g * g), W_hg)
    J = np.empty((B, 2 * H, 2 * H), h.dtype)
    J[:, :H, :H] = _dm(tc * o * (1 - o), W_ho) + dh_dc[:, :, None] * dc_dh
    J[:, :H, H:] = _eye(B, H, dh_dc * f)
    J[:, H:, :H] = dc_dh
    J[:, H:, H:] = _eye(B, H, f)
    return J


_JACOBIAN = {
    "rnn_tanh": _jac_rnn_tanh,
    "rnn_relu": _jac_rnn_relu,
    "gru_simple": _jac_gru_simple,
    "gru": _jac_gru,
    "gru_cudnn": _jac_gru_cudnn,
    "lstm": _jac_lstm,
}


def _trajectory(cell, params, x, h0, c0):
    """Validate, then yield (J_t, state_t) along the trajectory, one step at a time (O(B S²) memory)."""
    spec, p, x, h0, c0 = check_forward(cell, params, x, h0, c0)
    step, jac = FORWARD_STEP[spec.name], _JACOBIAN[spec.name]
    a_x = x @ p.W_x.T + p.b

    def steps():
        h_prev, c_prev = h0, c0
        for t in range(x.shape[0]):
            h, c, gates, hn = step(a_x[t], h_prev, c_prev, p)
            yield jac(p, h_prev, c_prev, h, c, gates, hn)
            h_prev, c_prev = h, c

    S = (2 if spec.has_cell_state else 1) * p.hidden_size
    return spec, p, x, S, steps()


def step_jacobians(cell: str, params: Params, x, h0=None, c0=None, *, h_only: bool = False) -> np.ndarray:
    """The analytic Jacobians J_t = ∂s_t/∂s_{t-1} of every step along the trajectory driven by ``x``.

    The trajectory is the NumPy reference forward pass (the same step
    functions as ``backend="numpy"``); the Jacobians are written out per cell
    from its equations (SPEC §2), with a = W_x x_t + W_h h_{t-1} + b the
    pre-activations:

    * ``rnn_tanh``: J = diag(1 - h_t²) W_h; ``rnn_relu``: J = diag([a > 0]) W_h;
    * ``gru_simple``, ``gru``, ``gru_cudnn``: diag(1 - u) plus the update-gate
      and candidate paths (see the private ``_jac_*`` functions' docstrings);
    * ``lstm``: the state is s = [h; c] and J is 2H × 2H (``_jac_lstm``).

    Parameters
    ----------
    cell, params, x, h0, c0 : as in :func:`gradlab.forward`
        x has shape (T, B, D); h0, c0 default to zeros.
    h_only : bool
        LSTM only: return the H × H block ∂h_t/∂h_{t-1} at fixed c_{t-1}.
        Unlike the full J, products of these blocks are *not* the gradient
        through several steps (they drop the memory-cell path c_{t-1} → c_t,
        the constant error carousel); use them to look at one step.
        Ignored for the other cells, whose state is h.

    Returns
    -------
    ndarray, shape (T, B, S, S)
        ``J[t, b, i, j] = ∂s_t[i]/∂s_{t-1}[j]`` for sequence b at the step that
        reads ``x[t]`` (s_{-1} = the initial state); S = H, or 2H for the LSTM
        (rows and columns ordered h then c), H with ``h_only``.

    Notes
    -----
    BPTT is the transposed product: ∂L/∂s_{t-1} = J_t^T ∂L/∂s_t for the part
    of the gradient that flows through the recurrence.
    """
    if not isinstance(h_only, (bool, np.bool_)):
        raise TypeError(f"h_only: expected True or False, got {h_only!r}")
    spec, p, x, S, steps = _trajectory(cell, params, x, h0, c0)
    H = p.hidden_size
    if h_only:
        S = H
    J = np.empty((x.shape[0], x.shape[1], S, S), p.dtype)
    for t, J_t in enumerate(steps):
        J[t] = J_t[:, :H, :H] if h_only else J_t
    return J


def jacobian_singular_values(J) -> np.ndarray:
    """Singular values of each Jacobian, largest first.

    Parameters
    ----------
    J : ndarray, shape (..., S, S)
        E.g. the (T, B, S, S) output of :func:`step_jacobians`.

    Returns
    -------
    ndarray, shape (..., S)
        σ_1 ≥ … ≥ σ_S of every J_t. σ_1 < 1 at every step makes every
        gradient shrink (‖J_t^T v‖ ≤ σ_1 ‖v‖); the Lyapunov exponents are the
        long-run averages of the log-singular values of the *product*, not of
        the single steps.
    """
    J = np.asarray(J)
    if not np.issubdtype(J.dtype, np.floating):
        raise TypeError(f"J: expected a float array of Jacobians, got dtype {J.dtype}")
    if J.ndim < 2 or J.shape[-1] != J.shape[-2]:
        raise ValueError(f"J: expected square matrices of shape (..., S, S), got shape {J.shape}")
    return np.linalg.svd(J, compute_uv=False)


# ----------------------------------------------------------------------------
# 4. Lyapunov exponents
# ----------------------------------------------------------------------------


def lyapunov_spectrum(cell: str, params: Params, x, h0=None, c0=None, *, num_exponents: int | None = None,
                      warmup: int = 0, seed=0) -> np.ndarray:
    """The Lyapunov spectrum of the recurrence driven by ``x``, by repeated QR (Benettin et al. 1980).

    Start from an orthonormal frame Q_0 (S × n, random, seeded) and at every step
    re-orthonormalise the pushed-forward frame:

        J_t Q_{t-1} = Q_t R_t  (QR, R_t upper triangular),
        λ_i = 1/(T - warmup) Σ_{t ≥ warmup} log |R_t[i, i]|.

    The log|R_t[i, i]| are the growth rates of the successive volumes spanned by
    the frame, so λ_1 is the growth rate of ‖J_t · · · J_1 v‖ for a generic v,
    λ_1 + λ_2 that of an area, and so on (Oseledets' theorem). The first
    ``warmup`` steps are taken but not counted, so that the frame aligns with the
    dominant directions before averaging.

    Parameters
    ----------
    cell, params, x, h0, c0 : as in :func:`step_jacobians`
    num_exponents : int, optional
        n, how many of the largest exponents to compute (1 ≤ n ≤ S); all S by default.
    warmup : int
        Steps discarded before averaging (0 ≤ warmup < T).
    seed : int
        Seeds the initial frame Q_0.

    Returns
    -------
    ndarray, shape (B, n)
        The exponents of every sequence per step, natural log, sorted in
        descending order. An exponent is -inf when the Jacobians are singular
        along it (e.g. ``rnn_relu`` units that are off at every step).

    Notes
    -----
    λ_1 is the rate that the decay rate ρ of a gradient profile estimates: the
    backward gradient ∂L/∂s_{T-k} = J_{T-k+1}^T · · · J_T^T ∂L/∂s_T, whose norm grows
    like exp(λ_1 k). λ_1 < 0: gradients vanish; λ_1 > 0: they explode (and
    for bounded cells such as tanh the forward dynamics is chaotic). For the
    LSTM the exponents are those of the full state [h; c]. The sum of all S
    exponents is the mean of log|det J_t|.
    """
    spec, p, x, S, steps = _trajectory(cell, params, x, h0, c0)
    T, B = x.shape[0], x.shape[1]
    n = S if num_exponents is None else _check_int("num_exponents", num_exponents, 1)
    if n > S:
        raise ValueError(f"num_exponents: at most the state size S={S}, got {n}")
    warmup = _check_int("warmup", warmup, 0)
    if warmup >= T:
        raise ValueError(f"warmup: must be below the number of steps T={T}, got {warmup}")
    seed = _check_seed(seed)
    Q0, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((S, n)))
    Q = np.broadcast_to(Q0.astype(p.dtype), (B, S, n))
    total = np.zeros((B, n), np.float64)
    with np.errstate(divide="ignore"):
        for t, J_t in enumerate(steps):
            Q, R = np.linalg.qr(J_t @ Q)
            if t >= warmup:
                total += np.log(np.abs(np.diagonal(R, axis1=1, axis2=2)))
    return -np.sort(-(total / (T - warmup)), axis=1)


def two_trajectory_lyapunov(cell: str, params: Params, x, h0=None, c0=None, *, eps: float = 1e-8,
                            renorm_every: int = 1, warmup: int = 0, seed=0) -> np.ndarray:
    """The top Lyapunov exponent from two nearby trajectories (no Jacobians).

    Run the cell from s_0 and from s_0 + ε v (v a random unit vector, seeded) on
    the same inputs. Every ``renorm_every`` steps measure their distance d, add
    log(d/ε) to the total and pull the second trajectory back to distance ε along
    the same direction. Then λ_1 ≈ total / (T - warmup): for small ε the
    separation evolves by the step Jacobians, so this is the power iteration
    that :func:`lyapunov_spectrum`'s first column performs, computed from the
    nonlinear map instead (the classic two-trajectory method; Benettin et al.
    1980 §3). The first ``warmup`` steps renormalise without counting.

    Parameters
    ----------
    cell, params, x, h0, c0 : as in :func:`step_jacobians`
    eps : float
        The separation ε (absolute). It must be well above the rounding of the
        states, whose error on log(d/ε) is about u‖s‖/ε per renormalisation
        (u the unit roundoff: 1e-8 suits float64 states of order 1; use about
        1e-3 in float32, and more for large states), and small enough that the
        map is linear over it.
    renorm_every : int
        Steps between renormalisations; the separation must not leave the linear
        regime in between (ε · e^{λ_1 · renorm_every} ≪ 1).
    warmup : int
        Steps not counted (0 ≤ warmup < T).
    seed : int
        Seeds the initial direction v.

    Returns
    -------
    ndarray, shape (B,)
        λ_1 per sequence, per step, natural log. The distance is taken over
        the full state ([h; c] for the LSTM).
    """
    spec, p, x, h0, c0 = check_forward(cell, params, x, h0, c0)
    T, B, H = x.shape[0], x.shape[1], p.hidden_size
    eps = _check_positive("eps", eps)
    renorm_every = _check_int("renorm_every", renorm_every, 1)
    warmup = _check_int("warmup", warmup, 0)
    if warmup >= T:
        raise ValueError(f"warmup: must be below the number of steps T={T}, got {warmup}")
    seed = _check_seed(seed)
    lstm = spec.has_cell_state
    step = FORWARD_STEP[spec.name]
    a_x = x @ p.W_x.T + p.b

    def pack(h, c):
        return np.concatenate([h, c], axis=1) if lstm else h

    def unpack(s):
        return (s[:, :H], s[:, H:]) if lstm else (s, None)

    s = pack(h0, c0)
    v = np.random.default_rng(seed).standard_normal(s.shape)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    s2 = s + eps * v.astype(s.dtype)
    total = np.zeros(B, np.float64)
    since = 0
    for t in range(T):
        h, c, _, _ = step(a_x[t], *unpack(s), p)
        h2, c2, _, _ = step(a_x[t], *unpack(s2), p)
        s, s2 = pack(h, c), pack(h2, c2)
        since += 1
        end_of_warmup = t == warmup - 1
        if since == renorm_every or end_of_warmup or t == T - 1:
            diff = s2 - s
            d = np.linalg.norm(diff, axis=1)
            if t >= warmup:
                with np.errstate(divide="ignore"):
                    total += np.log(d / eps)
            # Pull back to distance ε along the current separation (the same state if d = 0).
            scale = np.divide(eps, d, out=np.zeros_like(d), where=d > 0)
            s2 = s + (scale[:, None] * diff).astype(s.dtype)
            since = 0
    return total / (T - warmup)


# ----------------------------------------------------------------------------
# 5. Pascanu, Mikolov & Bengio (2013)
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PascanuBounds:
    """Pascanu et al.'s conditions on the recurrent weights of one layer.

    For h_t = φ(W_h h_{t-1} + W_x x_t + b) with |φ'| ≤ γ, every step satisfies
    ‖J_t^T‖ ≤ ‖diag(φ')‖ ‖W_h‖ ≤ γ σ_max(W_h), so with η = γ σ_max < 1 the
    gradient of (1) shrinks at least like η^k: σ_max < 1/γ is **sufficient**
    for vanishing gradients, and σ_max > 1/γ is therefore **necessary** for
    exploding ones (Pascanu, Mikolov & Bengio 2013, §2.1).
    γ = 1 for tanh and relu, 1/4 for the logistic sigmoid.

    Attributes
    ----------
    cell : str
    sigma_max : float
        The largest singular value of the recurrent matrix that matters: W_h
        for the plain RNNs; for gated cells that of the candidate block (W_hn
        of the GRUs, W_hg of the LSTM), the matrix of the tanh path that
        becomes the plain RNN when the gates are saturated open.
    block : str
        Which block ``sigma_max`` is ("h", "n" or "g").
    sigma_max_blocks : dict
        σ_max of every gate block, by gate name.
    gamma : float
        The bound γ on |φ'| of that block's nonlinearity.
    gamma_blocks : dict
        γ of every gate block (1/4 for the sigmoid gates, 1 for tanh/relu).
    threshold : float
        1/γ.
    vanishing_sufficient, exploding_necessary : bool or None
        σ_max < 1/γ and σ_max > 1/γ (strict; at equality neither holds); None
        where the theorem does not apply.
    applicable : bool
        True for ``rnn_tanh`` and ``rnn_relu``.
    reason : str
        Why the theorem does or does not apply.
    """

    cell: str
    sigma_max: float
    block: str
    sigma_max_blocks: dict = field(hash=False)
    gamma: float
    gamma_blocks: dict = field(hash=False)
    threshold: float
    vanishing_sufficient: bool | None
    exploding_necessary: bool | None
    applicable: bool
    reason: str

    def as_dict(self) -> dict:
        """The fields as a plain dict (a copy)."""
        return asdict(self)


_CANDIDATE_BLOCK = {"rnn_tanh": "h", "rnn_relu": "h", "gru_simple": "n", "gru": "n", "gru_cudnn": "n", "lstm": "g"}


def pascanu_bounds(cell: str, params: Params) -> PascanuBounds:
    """Check Pascanu et al.'s sufficient condition for vanishing gradients, σ_max(W_h) < 1/γ.

    Parameters
    ----------
    cell : str
        One of ``gradlab.CELL_NAMES``.
    params : Params
        The layer's parameters (only ``W_h`` is read).

    Returns
    -------
    PascanuBounds
        For ``rnn_tanh`` and ``rnn_relu`` the conditions of the theorem. For
        the gated cells ``applicable`` is False and the two flags are None: the
        step Jacobian contains diag(1 - u) (GRUs) or diag(f) on the memory
        cell (LSTM), an additive path not of the form diag(φ') W_h, so a small
        W_h does not bound it; σ_max of every block is still reported.
    """
    spec, p = check_params(cell, params)
    H = p.hidden_size
    W_h = np.asarray(p.W_h, dtype=np.float64)
    sig = {g: float(np.linalg.norm(W_h[k * H : (k + 1) * H], 2)) for k, g in enumerate(spec.gates)}
    gam = {g: (spec.gamma if g in ("h", "n", "g") else 0.25) for g in spec.gates}
    block = _CANDIDATE_BLOCK[spec.name]
    sigma, gamma = sig[block], gam[block]
    threshold = 1.0 / gamma
    if spec.name in ("rnn_tanh", "rnn_relu"):
        applicable = True
        # σ_max = 1/γ up to rounding (e.g. an orthogonal W_h at scale 1) meets neither strict condition
        tol = 1e-12 * threshold
        vanish, explode = sigma < threshold - tol, sigma > threshold + tol
        phi = "tanh" if spec.name == "rnn_tanh" else "relu"
        reason = (f"J_t = diag({phi}'(a_t)) W_h with |{phi}'| <= {gamma:g}, so ||dL/dh_(T-k)|| <= "
                  f"(gamma * sigma_max)^k ||dL/dh_T|| (Pascanu et al. 2013, sec. 2.1)")
    else:
        applicable, vanish, explode = False, None, None
        path = "diag(f) on the memory cell" if spec.has_cell_state else "diag(1 - u) (the update gate's leak)"
        reason = (f"{spec.name}: the step Jacobian contains {path}, an additive path that is not diag(phi') W_h, "
                  "so sigma_max(W_h) < 1/gamma does not bound the gradient; sigma_max of the candidate block "
                  f"'{block}' is reported for comparison only")
    return PascanuBounds(
        cell=spec.name, sigma_max=sigma, block=block, sigma_max_blocks=sig, gamma=gamma, gamma_blocks=gam,
        threshold=threshold, vanishing_sufficient=vanish, exploding_necessary=explode, applicable=applicable,
        reason=reason,
    )
