"""Gradient clipping on a :class:`~gradlab.Grads` or a dict of arrays (SPEC §5).

* :func:`clip_norm` — rescale all parameter gradients together when their
  global L2 norm exceeds ``max_norm`` (Pascanu, Mikolov & Bengio 2013, Alg. 1).
* :func:`clip_value` — clip every element to [-v, v] (the course notes,
  Karpathy's min-char-rnn).
* Per-step clipping inside BPTT is ``gradlab.backward(..., clip_step=v)``.

On a ``Grads`` only the parameter gradients (``W_x, W_h, b, b_hn``) are
clipped; ``x``, ``h0``, ``c0`` and the records pass through unchanged. On a
dict every array is a parameter gradient. Inputs are never modified.

A non-finite gradient is never silently turned into a number: ``clip_norm``
returns it unscaled together with its non-finite norm, ``clip_value`` leaves
inf and nan entries as they are, and with ``error_if_nonfinite=True`` both
raise :class:`NonFiniteGradientError`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from .types import Grads

G = TypeVar("G", Grads, dict)


class NonFiniteGradientError(FloatingPointError):
    """A gradient holds inf or nan where a finite one is required."""


def _arrays(grads: Any) -> dict[str, np.ndarray]:
    if isinstance(grads, Grads):
        return grads.params()
    if isinstance(grads, dict):
        for k, v in grads.items():
            if not isinstance(v, np.ndarray):
                raise TypeError(f"grads[{k!r}]: expected a NumPy array, got {type(v).__name__}")
        return grads
    raise TypeError(f"grads: expected gradlab.Grads or a dict of arrays, got {type(grads).__name__}")


def _rebuild(grads: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(grads, Grads):
        return grads.replace(**arrays)
    return dict(arrays)


def global_norm(grads: Grads | dict) -> float:
    """The L2 norm of all parameter gradients taken together, ‖(g_1, …, g_n)‖₂.

    Computed in float64 whatever the gradients' dtype, scaled by the largest
    magnitude first so that finite gradients up to the float64 limit give a
    finite norm; inf or nan if any entry is.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in _arrays(grads).values()]
    if not arrays:
        return 0.0
    peak = max(float(np.max(np.abs(a), initial=0.0)) for a in arrays)
    if not np.isfinite(peak) or any(np.isnan(a).any() for a in arrays):
        return float("nan") if any(np.isnan(a).any() for a in arrays) else float("inf")
    if peak == 0.0:
        return 0.0
    total = sum(float(np.sum(np.square(a / peak))) for a in arrays)
    return peak * float(np.sqrt(total))


def is_finite(grads: Grads | dict) -> bool:
    """True if no parameter gradient holds inf or nan."""
    return all(bool(np.isfinite(a).all()) for a in _arrays(grads).values())


def clip_norm(grads: G, max_norm: float, *, error_if_nonfinite: bool = False) -> tuple[G, float]:
    """Rescale the gradients so their global norm is at most ``max_norm``.

    ĝ = g · max_norm / ‖g‖ when ‖g‖ > max_norm, else g (Pascanu et al. 2013).

    Parameters
    ----------
    grads : Grads or dict of arrays
    max_norm : float
        The threshold, > 0.
    error_if_nonfinite : bool
        Raise :class:`NonFiniteGradientError` if the norm is inf or nan;
        otherwise such gradients come back unscaled with their norm, for the
        caller to skip.

    Returns
    -------
    (clipped, norm)
        Gradients of the same kind as ``grads`` (new arrays) and the pre-clip global norm.
    """
    max_norm = _positive("max_norm", max_norm)
    arrays = _arrays(grads)
    norm = global_norm(grads)
    if not np.isfinite(norm):
        if error_if_nonfinite:
            raise NonFiniteGradientError(f"grads: the global gradient norm is {norm}; refusing to clip it")
        return _rebuild(grads, {k: a.copy() for k, a in arrays.items()}), norm
    factor = max_norm / norm if norm > max_norm else 1.0
    clipped = {k: (a * a.dtype.type(factor)) if factor != 1.0 else a.copy() for k, a in arrays.items()}
    return _rebuild(grads, clipped), norm


def clip_value(grads: G, value: float, *, error_if_nonfinite: bool = False) -> G:
    """Clip every gradient element to [-value, value].

    Finite entries are clipped; inf and nan entries are left as they are, so
    a later finiteness check still sees them (``np.clip`` alone would turn an
    inf into ``value``). With ``error_if_nonfinite`` they raise instead.
    """
    value = _positive("value", value)
    arrays = _arrays(grads)
    out = {}
    for k, a in arrays.items():
        finite = np.isfinite(a)
        if not finite.all() and error_if_nonfinite:
            raise NonFiniteGradientError(f"grads[{k!r}]: {int((~finite).sum())} non-finite entries; refusing to clip")
        out[k] = np.where(finite, np.clip(a, -value, value), a).astype(a.dtype, copy=False)
    return _rebuild(grads, out)


def _positive(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a positive number, got {type(v).__name__}")
    v = float(v)
    if not (v > 0 and np.isfinite(v)):
        raise ValueError(f"{name}: expected a positive finite number, got {v}")
    return v


__all__ = ["NonFiniteGradientError", "clip_norm", "clip_value", "global_norm", "is_finite"]
