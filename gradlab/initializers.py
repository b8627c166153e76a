"""Parameter initialisation (SPEC §4): the knob of every vanishing/exploding sweep.

``scale`` sets the size of each recurrent block ``W_h[k*H:(k+1)*H]``:

==============  ===========================================================  ===============================
init            recurrent block                                              input weights W_x
==============  ===========================================================  ===============================
orthogonal      Q · scale, Q orthogonal (Saxe et al. 2014): every singular   N(0, 1/D)
                value equals ``scale``
normal          N(0, scale²/H): spectral radius → ``scale`` as H grows       N(0, 1/D)
                (circular law), largest singular value → 2·scale
identity        scale · I (IRNN, Le et al. 2015)                             N(0, 0.001²) (Le et al. 2015)
xavier/uniform  U(-scale/√H, scale/√H); scale = 1 is PyTorch's default       U(-1/√H, 1/√H)
==============  ===========================================================  ===============================

``normalize="sigma_max"`` or ``"radius"`` rescales each drawn recurrent block
so its largest singular value, or its spectral radius, equals ``scale``
exactly, whatever the init. Biases are zero (``uniform``: U(-1/√H, 1/√H), as
PyTorch), the LSTM forget-gate bias is ``forget_bias`` (Gers et al. 2000 use
a positive value so the cell remembers by default), and ``gru_cudnn``'s
``b_hn`` is zero (``uniform``: drawn like the biases).

Everything is drawn in float64 from ``numpy.random.default_rng(seed)`` and
then cast, so the same seed gives the same arrays on every backend and the
float32 parameters are the rounded float64 ones.
"""

from __future__ import annotations

import numpy as np

from .kernels.cells import get_cell
from .types import Params

INITS = ("orthogonal", "normal", "identity", "xavier", "uniform")
NORMALIZE = (None, "sigma_max", "radius")


def orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random n×n orthogonal matrix, uniform (Haar) over the orthogonal group.

    QR of a standard normal matrix with the signs of R's diagonal folded into Q
    (Mezzadri 2007), so Q is not biased by the QR convention.
    """
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _check_real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return float(value)


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def init_params(
    cell: str,
    input_size: int,
    hidden_size: int,
    *,
    init: str = "orthogonal",
    scale: float = 1.0,
    dtype=np.float64,
    seed: int | np.random.SeedSequence | None = 0,
    forget_bias: float = 0.0,
    normalize: str | None = None,
) -> Params:
    """Draw the parameters of one layer of ``cell``.

    Parameters
    ----------
    cell : str
        One of ``gradlab.CELL_NAMES``.
    input_size, hidden_size : int
        D and H.
    init : {"orthogonal", "normal", "identity", "xavier", "uniform"}
        How the recurrent blocks are drawn (see the module docstring).
    scale : float
        Size of each recurrent block: its singular values (orthogonal, identity),
        its entries' standard deviation times √H (normal), or the uniform range
        times √H (xavier/uniform).
    dtype : float32 or float64
        dtype of every array.
    seed : int or SeedSequence
        Seeds ``numpy.random.default_rng``; the same seed gives the same arrays.
    forget_bias : float
        LSTM only: the bias of the forget-gate block.
    normalize : {None, "sigma_max", "radius"}
        Rescale each recurrent block so that its largest singular value, or
        its spectral radius, equals ``scale`` exactly.

    Returns
    -------
    Params
    """
    spec = get_cell(cell)
    D = _check_size("input_size", input_size)
    H = _check_size("hidden_size", hidden_size)
    if init not in INITS:
        raise ValueError(f"init: unknown init {init!r}; expected one of {', '.join(INITS)}")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize: expected one of None, 'sigma_max', 'radius', got {normalize!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    scale = _check_real("scale", scale)
    if scale < 0:
        raise ValueError(f"scale: expected a finite number >= 0, got {scale}")
    forget_bias = _check_real("forget_bias", forget_bias)
    if forget_bias != 0.0 and cell != "lstm":
        raise ValueError(f"forget_bias: only the LSTM has a forget gate, not {cell!r}")

    rng = np.random.default_rng(seed)
    G = spec.num_gates
    blocks = []
    for _ in range(G):
        if init == "orthogonal":
            block = scale * orthogonal(H, rng)
        elif init == "normal":
            block = rng.normal(0.0, scale / np.sqrt(H), (H, H))
        elif init == "identity":
            block = scale * np.eye(H)
        else:
            block = rng.uniform(-scale / np.sqrt(H), scale / np.sqrt(H), (H, H))
        if normalize is not None:
            size = np.linalg.norm(block, 2) if normalize == "sigma_max" else np.abs(np.linalg.eigvals(block)).max()
            block = block * (scale / size) if size > 0 else block
        blocks.append(block)
    W_h = np.concatenate(blocks, axis=0)

    bias_range = 1.0 / np.sqrt(H)
    if init in ("xavier", "uniform"):
        W_x = rng.uniform(-bias_range, bias_range, (G * H, D))
        b = rng.uniform(-bias_range, bias_range, G * H)
        b_hn = rng.uniform(-bias_range, bias_range, H) if spec.has_b_hn else None
    else:
        std = 0.001 if init == "identity" else 1.0 / np.sqrt(D)
        W_x = rng.normal(0.0, std, (G * H, D))
        b = np.zeros(G * H)
        b_hn = np.zeros(H) if spec.has_b_hn else None
    if cell == "lstm":
        b[H : 2 * H] += forget_bias

    def cast(a):
        return None if a is None else np.ascontiguousarray(a, dtype=dtype)

    return Params(W_x=cast(W_x), W_h=cast(W_h), b=cast(b), b_hn=cast(b_hn))
