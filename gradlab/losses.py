"""Loss functions of the course notes, with their gradients (SPEC §5).

Every loss here follows one convention, that of the notes:

    L = (1/B) Σ_b Σ_t m_{t,b} · L⟨t⟩_b

the per-step losses L⟨t⟩ are **summed over the scored steps** t (those with
mask m_{t,b} ≠ 0; every step when there is no mask) and **averaged over the
B sequences of the batch**. A many-to-one loss is the case T = 1.

* :func:`softmax_cross_entropy` — ŷ⟨t⟩ = softmax(z⟨t⟩),
  L⟨t⟩ = −log ŷ⟨t⟩_{y⟨t⟩}, computed from the logits with the log-sum-exp
  trick, log softmax(z)_k = z_k − m − log Σ_j exp(z_j − m), m = max_j z_j, so
  it never overflows; ∂L⟨t⟩/∂z⟨t⟩ = ŷ⟨t⟩ − onehot(y⟨t⟩).
* :func:`mean_squared_error` — L⟨t⟩ = (1/K) Σ_k (ŷ⟨t⟩_k − y⟨t⟩_k)², the mean
  over the K outputs of one step (with K = 1, the squared error the adding
  problem's "MSE" baselines refer to); ∂L⟨t⟩/∂ŷ⟨t⟩ = (2/K)(ŷ⟨t⟩ − y⟨t⟩).

Both return ``(loss, grad)``: the loss as a Python float and ∂L/∂(logits or
predictions) in the inputs' dtype, already weighted by the mask and divided
by B, ready to flow into a network's head. A mask is boolean or numeric of
the targets' step shape; its entries weight the steps (0 = not scored).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .validate import FLOAT_DTYPES

LOSSES = ("cross_entropy", "mse")


def _check_outputs(name: str, a: Any) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    if a.ndim < 1 or a.shape[-1] < 1:
        raise ValueError(f"{name}: expected shape (..., K) with K >= 1 outputs, got {a.shape}")
    return a


def check_mask(mask: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """Validate a mask of the given step shape; return it as weights of ``dtype`` (or None).

    Raises
    ------
    TypeError
        If the mask is not a boolean or real NumPy array.
    ValueError
        If its shape is not ``shape`` or it holds negative or non-finite weights.
    """
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"mask: expected a NumPy array of shape {shape} or None, got {type(mask).__name__}")
    if mask.dtype != np.bool_ and not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
        raise TypeError(f"mask: expected a boolean or numeric array, got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(f"mask: expected shape {tuple(shape)}, got {mask.shape}")
    weights = mask.astype(dtype)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("mask: expected finite, non-negative weights (0 = step not scored)")
    return weights


def check_class_targets(y: Any, shape: tuple[int, ...], num_classes: int) -> np.ndarray:
    """Validate integer class targets of ``shape`` with values in [0, num_classes)."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"y: expected an integer NumPy array of shape {shape}, got {type(y).__name__}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y: class targets must have an integer dtype, got {y.dtype}")
    if y.shape != tuple(shape):
        raise ValueError(f"y: expected shape {tuple(shape)}, got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"y: class targets must lie in [0, {num_classes}), got values in [{y.min()}, {y.max()}]")
    return y


def check_real_targets(y: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Validate real-valued targets of ``shape`` and ``dtype`` (no silent casting)."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"y: expected a NumPy array of shape {shape}, got {type(y).__name__}")
    if y.dtype not in FLOAT_DTYPES:
        raise TypeError(f"y: regression targets must be float32 or float64, got {y.dtype}")
    if y.dtype != dtype:
        raise TypeError(f"y: dtype {y.dtype} does not match the network's dtype {dtype}; cast it yourself")
    if y.shape != tuple(shape):
        raise ValueError(f"y: expected shape {tuple(shape)}, got {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("y: expected finite targets")
    return y


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, by log-sum-exp: z − max z − log Σ exp(z − max z)."""
    m = np.max(z, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    shifted = z - m
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(z / temperature) over the last axis, computed without overflow."""
    return np.exp(log_softmax(z / temperature))


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy, summed over scored steps and averaged over the batch.

    L = (1/B) Σ_b Σ_t m_{t,b} · (−log softmax(z⟨t⟩_b)_{y⟨t⟩_b})

    Parameters
    ----------
    logits : ndarray, shape (..., B, K)
        Unnormalised scores z⟨t⟩ = W_y h⟨t⟩ + b_y; ``(B, K)`` for one step,
        ``(T, B, K)`` for a sequence.
    y : int ndarray, shape (..., B)
        The target class of every step.
    mask : ndarray, shape (..., B), optional
        Weights of the steps, 0 for steps that are not scored.

    Returns
    -------
    loss : float
    dlogits : ndarray, shape of ``logits``
        ∂L/∂z = m · (softmax(z) − onehot(y)) / B.
    """
    logits = _check_outputs("logits", logits)
    y = check_class_targets(y, logits.shape[:-1], logits.shape[-1])
    w = check_mask(mask, logits.shape[:-1], logits.dtype)
    B = logits.shape[-2] if logits.ndim >= 2 else 1
    logp = log_softmax(logits)
    picked = np.take_along_axis(logp, y[..., None].astype(np.intp), axis=-1)[..., 0]  # log ŷ_y
    nll = -picked if w is None else -picked * w
    loss = float(np.sum(nll, dtype=np.float64) / B)
    grad = np.exp(logp)  # softmax(z)
    idx = y[..., None].astype(np.intp)
    np.put_along_axis(grad, idx, np.take_along_axis(grad, idx, axis=-1) - 1, axis=-1)  # − onehot(y)
    if w is not None:
        grad *= w[..., None]
    grad /= B
    return loss, grad


def mean_squared_error(pred: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Squared error, mean over the K outputs of a step, summed over scored steps, mean over the batch.

    L = (1/B) Σ_b Σ_t m_{t,b} · (1/K) Σ_k (ŷ⟨t⟩_{b,k} − y⟨t⟩_{b,k})²

    Parameters
    ----------
    pred : ndarray, shape (..., B, K)
        Predictions ŷ (a linear head's outputs).
    y : ndarray, shape (..., B, K)
        Targets, the same dtype as ``pred``.
    mask : ndarray, shape (..., B), optional
        Weights of the steps, 0 for steps that are not scored.

    Returns
    -------
    loss : float
    dpred : ndarray, shape of ``pred``
        ∂L/∂ŷ = m · 2 (ŷ − y) / (K B).
    """
    pred = _check_outputs("pred", pred)
    y = check_real_targets(y, pred.shape, pred.dtype)
    w = check_mask(mask, pred.shape[:-1], pred.dtype)
    K = pred.shape[-1]
    B = pred.shape[-2] if pred.ndim >= 2 else 1
    err = pred - y
    sq = np.mean(err * err, axis=-1, dtype=np.float64)
    loss = float(np.sum(sq if w is None else sq * w) / B)
    grad = err * pred.dtype.type(2.0 / (K * B))
    if w is not None:
        grad *= w[..., None]
    return loss, grad


def accuracy(logits: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Fraction of scored steps whose most probable class is the target."""
    hit = (np.argmax(logits, axis=-1) == y).astype(np.float64)
    if mask is None:
        return float(hit.mean())
    w = np.asarray(mask, dtype=np.float64)
    return float((hit * w).sum() / max(w.sum(), 1e-300))


__all__ = [
    "LOSSES",
    "accuracy",
    "check_mask",
    "log_softmax",
    "mean_squared_error",
    "softmax",
    "softmax_cross_entropy",
]
