"""The pointwise gate math of every cell, forward and backward, written once.

Each function here acts on scalars (one hidden unit of one sequence) and is a
Numba ``@njit`` function: the CPU kernels call them inside their loops, where
LLVM inlines and vectorises them, and the CUDA kernels call the same functions
as device functions. The equations are those of SPEC §2 and
:mod:`gradlab.kernels.reference`; here they are split per element.

Transcendentals dominate the pointwise cost at small shapes, and a libm call
inside a loop stops LLVM from vectorising it. So ``exp``, ``sigmoid`` and
``tanh`` are written without libm and without data-dependent branches:

* :func:`exp_nonpos` computes e^x for x <= 0 (all the gates need) by range
  reduction x = k ln 2 + r, |r| <= ln2/2, a degree-13 Taylor polynomial for e^r
  (truncation error below 2e-16), and 2^k built in the exponent bits. Results
  below 2^-1022 are flushed to zero; nan propagates.
* :func:`sigmoid` = 1 / (1 + e^{-|z|}) folded by sign, never overflowing.
* :func:`tanh` = sign(x) (1 - e^{-2|x|}) / (1 + e^{-2|x|}) for |x| >= 1/4 and
  its odd Taylor series to x^19 below, where the quotient would cancel.

Both stay within a few ulp of NumPy's (tested at ±0, ±inf, nan, tiny and huge
arguments). The kernels compile with :data:`FASTMATH`, a flag set without
``nnan``/``ninf``, so an exploding network still produces inf and nan.

One definition, two targets. Every function below is written once and
compiled for each target that calls it: the CPU kernels inline them, and the
CUDA kernels call the same ``@njit`` functions, which numba-cuda recompiles
as device functions. The only things that differ per target are the
transcendental primitives :func:`exp_nonpos`, :func:`sigmoid` and
:func:`tanh`: plain Python functions (their readable definitions, run as is
under ``NUMBA_DISABLE_JIT`` and the CUDA simulator) whose compiled
implementations are chosen per target with ``numba.extending.overload``. The
CPU overloads, registered here, are the branch-free forms above (libm would
stop vectorisation). The CUDA overloads, registered by
:mod:`gradlab.kernels._cuda_kernels` when that backend loads, are libdevice's
``exp`` and ``tanh`` in the argument's own precision, and for the sigmoid a
reciprocal by Newton's iteration instead of IEEE division (whose slow-path
branch serialises the gates of a step): a GPU thread runs these one element
at a time, where the float64 polynomials would be a long chain of dependent
double-precision operations for every float32 gate. All the gate
equations are shared unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.core import types
from numba.extending import intrinsic, overload

#: LLVM fast-math flags for the kernels: contraction into FMA, reciprocal
#: approximation allowed, signed zeros ignored. No ``nnan``/``ninf``/``reassoc``:
#: inf and nan must survive, and reassociation would break the range reduction.
FASTMATH = frozenset({"nsz", "contract", "arcp"})

JIT = dict(fastmath=set(FASTMATH), error_model="numpy", nogil=True)

#: The constants of the gate equations below, as float32: exact in either precision, so an equation keeps its
#: data's precision (a Python float would make float32 data compute in float64, on a GPU with a conversion
#: to and from float64 around every such term).
ONE, ZERO = np.float32(1), np.float32(0)


@intrinsic
def _bits_to_float(typingctx, bits):
    """Reinterpret an int64 as a float64 (no conversion, a bitcast)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


@intrinsic
def _float_to_bits(typingctx, value):
    """Reinterpret a float64 as an int64 (no conversion, a bitcast)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2^52: adding it rounds to an integer kept in the low mantissa bits
_ROUND_BITS = 0x4338000000000000
_EXP_MIN = -708.3  # below this e^x is subnormal: flushed to zero


def exp_nonpos(x):
    """e^x for x <= 0 (x > 0 is clamped to 0, i.e. returns 1); nan propagates.

    The one primitive whose compiled form is per target: this Python body is
    the definition (used when nothing is compiled); the CPU implementation is
    :func:`_exp_nonpos_cpu`, the CUDA one ``math.exp`` (see the module docstring).
    """
    return x if x != x else math.exp(min(x, 0.0))


def _exp_nonpos_cpu(x):
    """e^x for x <= 0 (x > 0 is clamped to 0, i.e. returns 1), branch-free and vectorisable."""
    xc = min(max(x, _EXP_MIN), 0.0)
    shifted = xc * _LOG2E + _ROUND
    k = shifted - _ROUND
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 + r * (
        1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800 + r * (
            1.0 / 39916800 + r * (1.0 / 479001600 + r * (1.0 / 6227020800)))))))))))))
    two_k = _bits_to_float((_float_to_bits(shifted) - _ROUND_BITS + 1023) << 52)
    result = p * two_k
    result = 0.0 if x < _EXP_MIN else result
    return x if x != x else result


@overload(exp_nonpos, target="cpu", jit_options=JIT)
def _exp_nonpos_cpu_overload(x):
    """The CPU implementation of :func:`exp_nonpos`, compiled with :data:`JIT`."""
    return _exp_nonpos_cpu


def sigmoid(z):
    """σ(z) = 1 / (1 + e^{-z}), computed from e^{-|z|} so it never overflows.

    A per-target primitive: this body is the definition and the CPU
    implementation; the CUDA one is registered by the CUDA backend.
    """
    e = exp_nonpos(-abs(z))
    s = 1.0 / (1.0 + e)
    return s if z >= 0.0 else e * s  # nan propagates through e


@overload(sigmoid, target="cpu", jit_options=JIT)
def _sigmoid_cpu(z):
    """The CPU implementation of :func:`sigmoid`: its own body, compiled with :data:`JIT`."""
    return sigmoid


# Taylor coefficients of tanh(x) = Σ c_k x^{2k+1} (Bernoulli numbers), enough for
# double precision on |x| < 1/4.
_T3, _T5, _T7, _T9 = -1.0 / 3, 2.0 / 15, -17.0 / 315, 62.0 / 2835
_T11, _T13, _T15 = -1382.0 / 155925, 21844.0 / 6081075, -929569.0 / 638512875
_T17, _T19 = 6404582.0 / 10854718875, -443861162.0 / 1856156927625


def tanh(x):
    """tanh(x), branch-free: the quotient form for |x| >= 1/4, the Taylor series below.

    The two forms are blended arithmetically (w·small + (1-w)·big) rather than
    selected: LLVM turns a select between two long expressions into a branch,
    and a branch stops the loop from vectorising. The series' argument is
    capped so that its unused value stays finite. A per-target primitive, like
    :func:`sigmoid`.
    """
    ax = abs(x)
    e = exp_nonpos(-2.0 * ax)
    big = (1.0 - e) / (1.0 + e)
    axs = min(ax, 0.25)
    x2 = axs * axs
    small = axs * (1.0 + x2 * (_T3 + x2 * (_T5 + x2 * (_T7 + x2 * (_T9 + x2 * (
        _T11 + x2 * (_T13 + x2 * (_T15 + x2 * (_T17 + x2 * _T19)))))))))
    w = 1.0 if ax < 0.25 else 0.0
    return math.copysign(w * small + (1.0 - w) * big, x)


@overload(tanh, target="cpu", jit_options=JIT)
def _tanh_cpu(x):
    """The CPU implementation of :func:`tanh`: its own body, compiled with :data:`JIT`."""
    return tanh


@njit(**JIT)
def relu(a):
    """max(a, 0), nan kept."""
    return a if (a > ZERO or a != a) else ZERO


@njit(**JIT)
def clip(v, bound):
    """v clipped to [-bound, bound]; nan stays nan. (Two selects, no branch: both comparisons are false for
    nan.)"""
    lo = -bound
    above = bound if v > bound else v
    return lo if v < lo else above


# ---------------------------------------------------------------------------
# Forward, per element. Each gate block is activated by sigmoid, tanh or relu
# above; these combine the activated gates into the new state. (The CPU
# kernels run each as its own short loop over a row, so every loop vectorises;
# the CUDA kernels call them in sequence per thread.)
# ---------------------------------------------------------------------------


@njit(**JIT)
def gru_mix(u, n, h_prev):
    """h_t = u ⊙ n + (1 - u) ⊙ h_{t-1} (every GRU form)."""
    return u * n + (ONE - u) * h_prev


@njit(**JIT)
def reset_after(ax_n, r, hn):
    """The cuDNN candidate pre-activation: W_xn x_t + b_n + r ⊙ (W_hn h_{t-1} + b_hn)."""
    return ax_n + r * hn


@njit(**JIT)
def lstm_cell(i, f, g, c_prev):
    """c_t = f ⊙ c_{t-1} + i ⊙ g."""
    return f * c_prev + i * g


# ---------------------------------------------------------------------------
# Backward, per element. ``dh`` and ``dc`` are the total gradients at step t.
# ---------------------------------------------------------------------------


@njit(**JIT)
def tanh_backward(dh, h):
    """da = dh (1 - h²) for h = tanh(a)."""
    return dh * (ONE - h * h)


@njit(**JIT)
def relu_backward(dh, h):
    """da = dh [h > 0] for h = max(a, 0)."""
    return dh if h > ZERO else ZERO


@njit(**JIT)
def gru_update_backward(dh, u, n, h_prev):
    """The update path of every GRU form. Returns (da_u, dn, dh_direct).

    da_u = dh (n - h_{t-1}) u (1 - u), dn = dh u, dh_direct = dh (1 - u).
    """
    return dh * (n - h_prev) * u * (ONE - u), dh * u, dh * (ONE - u)


@njit(**JIT)
def gru_cudnn_backward(dh, r, u, n, hn, h_prev):
    """Returns (da_r, da_u, da_n, dhn, dh_direct), dhn the gradient of W_hn h_{t-1} + b_hn.

    da_n = dh u (1 - n²), da_r = da_n hn r (1 - r), dhn = da_n r.
    """
    da_u, dn, dh_direct = gru_update_backward(dh, u, n, h_prev)
    da_n = dn * (ONE - n * n)
    return da_n * hn * r * (ONE - r), da_u, da_n, da_n * r, dh_direct


@njit(**JIT)
def gru_reset_backward(ds, r, h_prev):
    """Full GRU (reset before the product), given ds = ∂L/∂(r ⊙ h_{t-1}).

    Returns (da_r, dh_through_s): ds h_{t-1} r (1 - r) and ds r.
    """
    return ds * h_prev * r * (ONE - r), ds * r


@njit(**JIT)
def lstm_cell_grad(dh, dc_next, o, tanh_c):
    """Total ∂L/∂c_t = dc_next + dh ⊙ o ⊙ (1 - tanh²(c_t)), given tanh(c_t)."""
    return dc_next + dh * o * (ONE - tanh_c * tanh_c)


@njit(**JIT)
def lstm_backward(dh, dc, i, f, g, o, c_prev, tanh_c):
    """Returns (da_i, da_f, da_g, da_o, dc_prev) given the total dh and dc at step t."""
    return (
        dc * g * i * (ONE - i),
        dc * c_prev * f * (ONE - f),
        dc * i * (ONE - g * g),
        dh * tanh_c * o * (ONE - o),
        dc * f,
    )
