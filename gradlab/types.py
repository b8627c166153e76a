"""The three containers of the public API: :class:`Params`, :class:`Trace`, :class:`Grads`.

They are plain dataclasses of NumPy arrays (or device arrays for the CUDA
backend). Shapes follow SPEC §1: time-major ``(T, B, ·)``, gate blocks stacked
along the first axis of the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass
class Params:
    """Parameters of one recurrent layer.

    Parameters
    ----------
    W_x : ndarray, shape (G*H, D)
        Input weights, gate blocks stacked along axis 0.
    W_h : ndarray, shape (G*H, H)
        Recurrent weights, gate blocks stacked along axis 0. The notes'
        ``W_a = [W_aa | W_ax]`` is ``W_h`` and ``W_x`` side by side.
    b : ndarray, shape (G*H,)
        Bias of every gate block.
    b_hn : ndarray, shape (H,), optional
        ``gru_cudnn`` only: the bias inside the reset product,
        ``r * (W_hn h + b_hn)``. None for every other cell.

    Any arrays of the right shapes and one float dtype work: ``Params`` does no
    copying or checking itself; :func:`gradlab.forward` validates them.
    """

    W_x: Any
    W_h: Any
    b: Any
    b_hn: Any = None

    @property
    def hidden_size(self) -> int:
        """H, read from ``W_h``."""
        return int(self.W_h.shape[1])

    @property
    def input_size(self) -> int:
        """D, read from ``W_x``."""
        return int(self.W_x.shape[1])

    @property
    def dtype(self) -> np.dtype:
        """The dtype of ``W_h``."""
        return np.dtype(self.W_h.dtype)

    def arrays(self) -> dict[str, Any]:
        """The arrays that are present, by name (``b_hn`` omitted when None)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def copy(self) -> "Params":
        """A deep copy."""
        return Params(**{k: np.array(v, copy=True) for k, v in self.arrays().items()})


@dataclass
class Trace:
    """What :func:`gradlab.forward` computed, and what :func:`gradlab.backward` needs.

    Attributes
    ----------
    cell : str
        The cell that produced it.
    h : ndarray, shape (T, B, H)
        Hidden states h_1 ... h_T.
    c : ndarray, shape (T, B, H) or None
        LSTM memory cells c_1 ... c_T; None for other cells.
    x, h0, c0 : ndarray
        The inputs (``c0`` None except for the LSTM), kept for the backward pass.
    gates : ndarray, shape (T, B, G*H)
        Gate activations after their nonlinearity, blocks in the cell's order.
    hn : ndarray, shape (T, B, H) or None
        ``gru_cudnn`` only: the recurrent candidate term ``W_hn h_{t-1} + b_hn``.
    backend : str
        The backend that ran the forward pass.
    """

    cell: str
    h: Any
    c: Any
    x: Any
    h0: Any
    c0: Any
    gates: Any
    hn: Any = None
    backend: str = "numpy"

    @property
    def h_last(self) -> Any:
        """h_T, shape (B, H)."""
        return self.h[-1]

    @property
    def c_last(self) -> Any:
        """c_T for the LSTM, else None."""
        return None if self.c is None else self.c[-1]


PARAM_GRAD_FIELDS: tuple[str, ...] = ("W_x", "W_h", "b", "b_hn")


@dataclass
class Grads:
    """Gradients from full BPTT, and the per-step records of the dynamics.

    Attributes
    ----------
    W_x, W_h, b : ndarray
        Gradients of the loss with respect to the parameters.
    b_hn : ndarray or None
        ``gru_cudnn`` only.
    x : ndarray, shape (T, B, D)
        ∂L/∂x_t.
    h0 : ndarray, shape (B, H)
        ∂L/∂h_0.
    c0 : ndarray, shape (B, H) or None
        ∂L/∂c_0, LSTM only.
    dh_norm : ndarray, shape (T, B)
        ``dh_norm[t, b]`` is the L2 norm over hidden units of the total
        ∂L/∂h_t (the gradient arriving from outside at step t plus what flows
        back from step t+1), recorded before any per-step clipping.
    dc_norm : ndarray, shape (T, B) or None
        The same for ∂L/∂c_t, LSTM only.
    """

    W_x: Any
    W_h: Any
    b: Any
    b_hn: Any
    x: Any
    h0: Any
    c0: Any
    dh_norm: Any
    dc_norm: Any = None

    def params(self) -> dict[str, Any]:
        """The parameter gradients that are present, by name (what clipping acts on)."""
        return {k: getattr(self, k) for k in PARAM_GRAD_FIELDS if getattr(self, k) is not None}

    def as_params(self) -> Params:
        """The parameter gradients as a :class:`Params`, e.g. for an optimiser."""
        return Params(W_x=self.W_x, W_h=self.W_h, b=self.b, b_hn=self.b_hn)

    def replace(self, **changes: Any) -> "Grads":
        """A shallow copy with some fields replaced."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Grads(**values)


__all__ = ["Params", "Trace", "Grads", "PARAM_GRAD_FIELDS"]
