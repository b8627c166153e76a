"""``forward`` and ``backward``: validate the arguments, then dispatch to a backend's kernels.

A backend is a module with ``forward(spec, params, x, h0, c0) -> Trace`` and
``backward(spec, params, trace, dh, dc_last, clip_step) -> Grads`` that receive
validated, contiguous arrays. ``backend=None`` picks the fastest one installed.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from . import validate
from .types import Grads, Params, Trace

#: Backend name -> module implementing it, fastest first.
BACKENDS: dict[str, str] = {
    "cpu": "gradlab.kernels.cpu",
    "numpy": "gradlab.kernels.reference",
    "cuda": "gradlab.kernels.cuda",
}

#: Order in which ``backend=None`` looks for a backend.
DEFAULT_ORDER: tuple[str, ...] = ("cpu", "numpy")


def available_backends() -> tuple[str, ...]:
    """Names of the backends this installation provides."""
    return tuple(BACKENDS)


def default_backend() -> str:
    """The backend used when ``backend=None``: the fastest CPU backend installed."""
    return DEFAULT_ORDER[0]


def get_backend(backend: str | None) -> ModuleType:
    """The module of a backend, with an error listing the valid names."""
    name = default_backend() if backend is None else backend
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"backend: unknown backend {name!r}; expected one of {', '.join(BACKENDS)} or None")
    return importlib.import_module(BACKENDS[name])


def _host_only(backend: str | None, **arrays) -> None:
    """Reject GPU device arrays on the host backends, naming the argument."""
    name = default_backend() if backend is None else backend
    if name == "cuda":
        return
    for arg, value in arrays.items():
        values = value.arrays().items() if isinstance(value, Params) else [("", value)]
        for field, a in values:
            if validate.is_device_array(a):
                label = f"{arg}.{field}" if field else arg
                raise TypeError(f"{label}: backend {name!r} takes NumPy arrays, got a GPU device array; "
                                "use backend='cuda' or copy it to the host first")


def forward(cell: str, params: Params, x, h0=None, c0=None, *, backend: str | None = None) -> Trace:
    """Run a recurrent cell over a sequence.

    Parameters
    ----------
    cell : str
        One of ``rnn_tanh``, ``rnn_relu``, ``gru_simple``, ``gru``, ``gru_cudnn``, ``lstm``.
    params : Params
        The layer's weights (see :class:`gradlab.Params`).
    x : ndarray, shape (T, B, D)
        Inputs, time-major; float32 or float64, the same dtype as ``params``.
    h0, c0 : ndarray, shape (B, H), optional
        Initial hidden state and (LSTM only) cell state; zeros when None.
    backend : str, optional
        ``"numpy"`` (the reference) or a faster backend; None picks the fastest installed.

    Returns
    -------
    Trace
        ``trace.h`` (T, B, H), ``trace.c`` (LSTM) and what the backward pass needs.
    """
    module = get_backend(backend)
    _host_only(backend, params=params, x=x, h0=h0, c0=c0)
    spec, params, x, h0, c0 = validate.check_forward(cell, params, x, h0, c0)
    return module.forward(spec, params, x, h0, c0)


def backward(
    cell: str,
    params: Params,
    trace: Trace,
    dh,
    dc_last=None,
    *,
    backend: str | None = None,
    clip_step: float | None = None,
) -> Grads:
    """Full backpropagation through time.

    Parameters
    ----------
    cell, params : as in :func:`forward`.
    trace : Trace
        What :func:`forward` returned for these parameters.
    dh : ndarray, shape (T, B, H)
        ∂L/∂h_t arriving from outside the recurrence at every step (zeros but
        the last step for a many-to-one loss).
    dc_last : ndarray, shape (B, H), optional
        LSTM only: ∂L/∂c_T arriving from outside; None means zero.
    backend : str, optional
        As in :func:`forward`.
    clip_step : float, optional
        Clip the total ∂L/∂h_t (and ∂L/∂c_t) elementwise to [-clip_step,
        clip_step] at every step before it flows further back. The recorded
        norms are taken before the clip.

    Returns
    -------
    Grads
        Gradients of ``W_x, W_h, b, b_hn, x, h0, c0`` and the per-step records
        ``dh_norm`` (T, B) and, for the LSTM, ``dc_norm``.
    """
    module = get_backend(backend)
    _host_only(backend, params=params, dh=dh, dc_last=dc_last)
    spec, params, dh, dc_last, clip_step = validate.check_backward(cell, params, trace, dh, dc_last, clip_step)
    return module.backward(spec, params, trace, dh, dc_last, clip_step)
