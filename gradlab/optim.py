"""Optimisers and learning-rate schedules acting on a dict of parameter arrays (SPEC §5).

An optimiser updates ``params`` (a dict of arrays, e.g. ``Network.params``)
in place from ``grads`` (a dict with the same keys):

* :class:`SGD` — θ ← θ − η g (Robbins & Monro 1951).
* :class:`SGD` with ``momentum=μ`` — v ← μ v + g, θ ← θ − η v (the heavy ball
  of Polyak 1964, in PyTorch's form; Sutskever et al. 2013 for RNNs);
  ``nesterov=True`` steps along g + μ v instead.
* :class:`Adam` — m ← β₁ m + (1 − β₁) g, v ← β₂ v + (1 − β₂) g²,
  θ ← θ − η m̂ / (√v̂ + ε) with m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ)
  (Kingma & Ba 2015).

Schedules give the learning rate of step s = 1, 2, …:

* :class:`Constant` — η_s = η.
* :class:`StepDecay` — η_s = η · factor^⌊(s − 1) / every⌋.

Optimisers never check finiteness: :func:`gradlab.train` does, and never
hands them a non-finite gradient.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam")


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and np.isfinite(value)):
        raise ValueError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} finite number, got {value}")
    return value


def _check_pair(params: dict, grads: dict) -> None:
    if not isinstance(params, dict):
        raise TypeError(f"params: expected a dict of arrays, got {type(params).__name__}")
    if not isinstance(grads, dict):
        raise TypeError(f"grads: expected a dict of arrays, got {type(grads).__name__}")
    if params.keys() != grads.keys():
        raise ValueError(f"grads: keys {sorted(grads)} do not match the parameters' {sorted(params)}")
    for k, p in params.items():
        if grads[k].shape != p.shape:
            raise ValueError(f"grads[{k!r}]: shape {grads[k].shape} does not match the parameter's {p.shape}")


class Optimizer(ABC):
    """Base class: ``step(params, grads, lr)`` updates ``params`` in place.

    Parameters
    ----------
    lr : float
        The base learning rate η (a schedule may scale it per step).
    """

    name = "optimizer"
    default_lr = 1e-2

    def __init__(self, lr: float | None = None):
        self.lr = _positive("lr", self.default_lr if lr is None else lr)
        self.t = 0

    def step(self, params: dict, grads: dict, lr: float | None = None) -> None:
        """Apply one update with learning rate ``lr`` (the base rate when None)."""
        _check_pair(params, grads)
        lr = self.lr if lr is None else _positive("lr", lr)
        self.t += 1
        for k, p in params.items():
            p -= self._direction(k, grads[k]).astype(p.dtype, copy=False) * p.dtype.type(lr)

    @abstractmethod
    def _direction(self, key: str, g: np.ndarray) -> np.ndarray:
        """The update direction for parameter ``key`` given its gradient ``g`` (before the learning rate)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Parameters
    ----------
    lr : float
    momentum : float
        μ in [0, 1); 0 is plain SGD.
    nesterov : bool
        Step along g + μ v (Sutskever et al. 2013) instead of v.
    """

    name = "sgd"
    default_lr = 1e-2

    def __init__(self, lr: float | None = None, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(lr)
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum: expected a number in [0, 1), got {self.momentum}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.velocity: dict[str, np.ndarray] = {}

    def _direction(self, key, g):
        if self.momentum == 0:
            return g
        v = self.velocity.get(key)
        v = g.copy() if v is None else self.momentum * v + g
        self.velocity[key] = v
        return g + self.momentum * v if self.nesterov else v

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov})"


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias-corrected moments.

    Parameters
    ----------
    lr : float
    betas : (float, float)
        β₁, β₂ in [0, 1).
    eps : float
        ε added to √v̂.
    """

    name = "adam"
    default_lr = 1e-3

    def __init__(self, lr: float | None = None, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        b1, b2 = (_positive("betas", b, allow_zero=True) for b in betas)
        if b1 >= 1 or b2 >= 1:
            raise ValueError(f"betas: expected values in [0, 1), got {betas!r}")
        self.betas = (b1, b2)
        self.eps = _positive("eps", eps)
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def _direction(self, key, g):
        b1, b2 = self.betas
        m = self.m.get(key, np.zeros_like(g))
        v = self.v.get(key, np.zeros_like(g))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (g * g)
        self.m[key], self.v[key] = m, v
        m_hat = m / (1 - b1**self.t)
        v_hat = v / (1 - b2**self.t)
        return m_hat / (np.sqrt(v_hat) + self.eps)

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr}, betas={self.betas}, eps={self.eps})"


def make_optimizer(optimizer: str | Optimizer, lr: float | None = None, **options: Any) -> Optimizer:
    """An optimiser from its name (``"sgd"``, ``"momentum"`` — SGD with μ = 0.9 —, ``"adam"``) or as given.

    ``lr`` None takes the optimiser's default (0.01 for SGD, 0.001 for Adam);
    ``options`` go to its constructor (``momentum``, ``nesterov``, ``betas``, ``eps``).
    """
    if isinstance(optimizer, Optimizer):
        if lr is not None or options:
            raise ValueError("optimizer: pass lr and options to the optimizer you built, not here")
        return optimizer
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)} or an Optimizer")
    if optimizer == "adam":
        return Adam(lr, **options)
    if optimizer == "momentum":
        options.setdefault("momentum", 0.9)
    return SGD(lr, **options)


class Constant:
    """η_s = η at every step."""

    def __call__(self, lr: float, step: int) -> float:
        return lr

    def __repr__(self) -> str:
        return "Constant()"


class StepDecay:
    """η_s = η · factor^⌊(s − 1) / every⌋: multiply the rate by ``factor`` every ``every`` steps.

    Parameters
    ----------
    every : int
        Steps between decays (≥ 1).
    factor : float
        In (0, 1]; 0.5 halves the rate.
    """

    def __init__(self, every: int, factor: float = 0.5):
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every: expected a positive integer, got {every!r}")
        self.every = int(every)
        self.factor = _positive("factor", factor)
        if self.factor > 1:
            raise ValueError(f"factor: expected a number in (0, 1], got {self.factor}")

    def __call__(self, lr: float, step: int) -> float:
        return lr * self.factor ** ((step - 1) // self.every)

    def __repr__(self) -> str:
        return f"StepDecay(every={self.every}, factor={self.factor})"


def make_schedule(schedule: Any):
    """``None`` or ``"constant"`` -> :class:`Constant`; a :class:`StepDecay` (or any callable(lr, step)) as given."""
    if schedule is None or schedule == "constant":
        return Constant()
    if isinstance(schedule, str) or not callable(schedule):
        raise ValueError(f"schedule: expected None, 'constant' or a schedule such as StepDecay(every, factor), got {schedule!r}")
    return schedule


__all__ = ["Adam", "Constant", "OPTIMIZERS", "Optimizer", "SGD", "StepDecay", "make_optimizer", "make_schedule"]
