"""Argument checks with clear errors, run before any kernel.

Every error names the argument, what was expected and what came. Shapes and
names raise :class:`ValueError`; wrong types and dtypes raise :class:`TypeError`.
Non-contiguous arrays are accepted and copied to C order, never read wrongly.

numba.cuda device arrays (for the ``"cuda"`` backend) get the same shape and
dtype checks; they must already be C-contiguous (there is no copy to make one
on the device here), and the finite check copies each one to the host once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .kernels.cells import CellSpec, get_cell
from .types import Params, Trace

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _shape_str(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def is_device_array(a: Any) -> bool:
    """True for a numba.cuda device array (or the CUDA simulator's stand-in for one)."""
    return (
        a is not None
        and not isinstance(a, np.ndarray)
        and callable(getattr(a, "copy_to_host", None))
        and hasattr(a, "shape")
        and hasattr(a, "dtype")
    )


def check_array(name: str, a: Any, shape: tuple[Any, ...], dtype: np.dtype | None = None) -> np.ndarray:
    """Check one array argument and return it C-contiguous.

    Parameters
    ----------
    name : str
        The argument's name, used in error messages.
    a : ndarray
        The value to check.
    shape : tuple
        Expected shape; an entry that is a string (``"T"``) only names the axis
        and accepts any size, an int must match exactly.
    dtype : dtype, optional
        The dtype every argument of this call must share; None accepts float32
        or float64.

    A device array (:func:`is_device_array`) is checked the same way and
    returned as it is; it must be C-contiguous.
    """
    device = is_device_array(a)
    if not device and not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(
            f"{name}: dtype {a.dtype} does not match the parameters' dtype {dtype}; "
            "gradlab never converts between float32 and float64 silently, cast it yourself"
        )
    if a.ndim != len(shape):
        raise ValueError(f"{name}: expected {len(shape)} dimensions with shape {_shape_str(shape)}, got shape {a.shape}")
    for axis, (want, got) in enumerate(zip(shape, a.shape)):
        if isinstance(want, int) and want != got:
            raise ValueError(f"{name}: expected shape {_shape_str(shape)}, got {a.shape} (axis {axis} should be {want})")
    if device:
        if not a.is_c_contiguous():
            raise ValueError(f"{name}: device arrays must be C-contiguous; make a contiguous copy on the device first")
        return a
    return np.ascontiguousarray(a)


def check_finite(name: str, a: np.ndarray) -> None:
    """Raise if ``a`` holds inf or nan, saying how many and where the first is.

    A device array is checked on the device (one flag comes back); only when
    it does hold a non-finite value is it copied to the host, for the message.
    """
    checks = FiniteChecks()
    checks.add(name, a)
    checks.run()


class FiniteChecks:
    """The finiteness checks of one call: host arrays at once, device arrays together.

    Device arrays are checked on the device when :meth:`run` is called, one
    flag each and a single copy of the flags back to the host, so a call with
    several device arrays pays one round trip, not one per array. The error
    names the first argument (in the order added) found to hold inf or nan.
    """

    def __init__(self) -> None:
        self.device: list[tuple[str, Any]] = []

    def add(self, name: str, a: Any) -> None:
        """Check a host array now; keep a device array for :meth:`run`."""
        if is_device_array(a):
            self.device.append((name, a))
        else:
            _raise_if_nonfinite(name, a)

    def run(self) -> None:
        """Check the device arrays added so far."""
        if not self.device:
            return
        from .kernels.cuda import device_nonfinite_flags

        arrays, self.device = self.device, []
        for (name, a), bad in zip(arrays, device_nonfinite_flags([a for _, a in arrays])):
            if bad:
                _raise_if_nonfinite(name, a.copy_to_host())


def _raise_if_nonfinite(name: str, a: np.ndarray) -> None:
    finite = np.isfinite(a)
    if not finite.all():
        bad = np.argwhere(~finite)
        raise ValueError(
            f"{name}: expected finite values, found {len(bad)} non-finite "
            f"(first at index {tuple(int(i) for i in bad[0])}: {a[tuple(bad[0])]})"
        )


def check_params(cell: str, params: Params, *, finite: bool = True,
                 checks: FiniteChecks | None = None) -> tuple[CellSpec, Params]:
    """Validate a cell name and its parameters; return the cell's spec and contiguous params.

    With ``checks``, the finiteness checks of device arrays are added to it
    (the caller runs them) instead of being run here.
    """
    spec = get_cell(cell)
    if not isinstance(params, Params):
        raise TypeError(f"params: expected gradlab.Params, got {type(params).__name__}")
    W_h = params.W_h
    if not isinstance(W_h, np.ndarray) and not is_device_array(W_h):
        raise TypeError(f"params.W_h: expected a NumPy array, got {type(W_h).__name__}")
    if W_h.ndim != 2:
        raise ValueError(f"params.W_h: expected a 2-D array of shape (G*H, H), got shape {W_h.shape}")
    dtype = W_h.dtype
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"params.W_h: expected dtype float32 or float64, got {dtype}")
    G, H = spec.num_gates, W_h.shape[1]
    if H == 0:
        raise ValueError("params.W_h: hidden size H must be at least 1, got 0")
    W_h = check_array("params.W_h", W_h, (G * H, H), dtype)
    W_x = check_array("params.W_x", params.W_x, (G * H, "D"), dtype)
    b = check_array("params.b", params.b, (G * H,), dtype)
    if spec.has_b_hn:
        if params.b_hn is None:
            raise ValueError(f"params.b_hn: cell {cell!r} needs b_hn of shape ({H},), got None")
        b_hn = check_array("params.b_hn", params.b_hn, (H,), dtype)
    else:
        if params.b_hn is not None:
            raise ValueError(f"params.b_hn: only 'gru_cudnn' has b_hn; expected None for cell {cell!r}")
        b_hn = None
    out = Params(W_x=W_x, W_h=W_h, b=b, b_hn=b_hn)
    if finite:
        own = checks is None
        checks = FiniteChecks() if own else checks
        for name, a in out.arrays().items():
            checks.add(f"params.{name}", a)
        if own:
            checks.run()
    return spec, out


def check_forward(cell: str, params: Params, x: Any, h0: Any, c0: Any):
    """Validate the arguments of :func:`gradlab.forward`.

    Returns ``(spec, params, x, h0, c0)`` with contiguous arrays, zeros filled
    in for missing initial states (``c0`` stays None for cells without a cell state).
    """
    checks = FiniteChecks()
    spec, params = check_params(cell, params, checks=checks)
    dtype, D, H = params.dtype, params.input_size, params.hidden_size
    x = check_array("x", x, ("T", "B", D), dtype)
    T, B = x.shape[0], x.shape[1]
    if T == 0:
        raise ValueError(f"x: expected at least one timestep (T >= 1), got shape {x.shape}")
    if B == 0:
        raise ValueError(f"x: expected at least one sequence (B >= 1), got shape {x.shape}")
    checks.add("x", x)
    if h0 is None:
        h0 = np.zeros((B, H), dtype)
    else:
        h0 = check_array("h0", h0, (B, H), dtype)
        checks.add("h0", h0)
    if spec.has_cell_state:
        if c0 is None:
            c0 = np.zeros((B, H), dtype)
        else:
            c0 = check_array("c0", c0, (B, H), dtype)
            checks.add("c0", c0)
    elif c0 is not None:
        raise ValueError(f"c0: only 'lstm' has a cell state; expected None for cell {cell!r}")
    checks.run()
    return spec, params, x, h0, c0


def check_backward(cell: str, params: Params, trace: Trace, dh: Any, dc_last: Any, clip_step: Any):
    """Validate the arguments of :func:`gradlab.backward`.

    Returns ``(spec, params, dh, dc_last, clip_step)``; ``dc_last`` is None or
    a contiguous array, ``clip_step`` None or a positive float.
    """
    checks = FiniteChecks()
    spec, params = check_params(cell, params, checks=checks)
    if not isinstance(trace, Trace):
        raise TypeError(f"trace: expected the gradlab.Trace returned by forward, got {type(trace).__name__}")
    if trace.cell != cell:
        raise ValueError(f"trace: it was computed for cell {trace.cell!r}, not {cell!r}")
    dtype, H = params.dtype, params.hidden_size
    T, B = trace.h.shape[0], trace.h.shape[1]
    if trace.h.dtype != dtype:
        raise TypeError(f"trace: computed in {trace.h.dtype}, but params are {dtype}")
    if trace.h.shape[2] != H or trace.x.shape[2] != params.input_size:
        raise ValueError(
            f"trace: computed with hidden states {trace.h.shape} {trace.h.dtype}, "
            f"which do not match params (H={H}, D={params.input_size}, {dtype})"
        )
    dh = check_array("dh", dh, (T, B, H), dtype)
    checks.add("dh", dh)
    if dc_last is not None:
        if not spec.has_cell_state:
            raise ValueError(f"dc_last: only 'lstm' has a cell state; expected None for cell {cell!r}")
        dc_last = check_array("dc_last", dc_last, (B, H), dtype)
        checks.add("dc_last", dc_last)
    if clip_step is not None:
        if isinstance(clip_step, bool) or not isinstance(clip_step, (int, float, np.integer, np.floating)):
            raise TypeError(f"clip_step: expected a positive number or None, got {type(clip_step).__name__}")
        clip_step = float(clip_step)
        if not (clip_step > 0 and np.isfinite(clip_step)):
            raise ValueError(f"clip_step: expected a positive finite number or None, got {clip_step}")
    checks.run()
    return spec, params, dh, dc_last, clip_step
