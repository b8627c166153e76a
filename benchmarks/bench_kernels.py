"""asv benchmarks of gradlab's kernels: forward, full BPTT, peak memory, cold start.

:class:`Kernels` times one forward pass and one forward + full BPTT pass (the
loss is the sum of all outputs, so ∂L/∂h_t = 1) for every cell, backend, dtype
and shape, and records the peak memory of the latter. Every kernel runs once
in ``setup``, so Numba's compilation (or its on-disk cache load) is never
timed. :class:`FirstCall` measures exactly that cost instead: a fresh
interpreter imports gradlab and runs one tiny problem on the ``"cpu"`` backend.

Shapes are labels ``"TxBxH"`` with D = H: a long thin sequence, a mid-sized
batch and a wide layer.
"""

from __future__ import annotations

import numpy as np

import gradlab

CELLS = gradlab.CELL_NAMES
BACKENDS = ("cpu", "numpy")
DTYPES = ("float32", "float64")
SHAPES = ("1000x1x32", "100x64x128", "100x64x512")

#: The code :meth:`FirstCall.timeraw_import_and_first_call` runs in a new interpreter.
FIRST_CALL_CODE = """
import numpy as np
import gradlab
params = gradlab.init_params("lstm", 4, 4, dtype=np.{dtype})
x = np.ones((3, 2, 4), np.{dtype})
trace = gradlab.forward("lstm", params, x, backend="cpu")
gradlab.backward("lstm", params, trace, np.ones_like(trace.h), backend="cpu")
"""


def parse_shape(label: str) -> tuple[int, int, int]:
    """``"TxBxH"`` -> ``(T, B, H)``."""
    T, B, H = (int(v) for v in label.split("x"))
    return T, B, H


def make_problem(cell: str, dtype: str, shape: str, seed: int = 0):
    """Parameters, inputs and upstream gradient ∂L/∂h = 1 for one benchmark case.

    Returns
    -------
    params : gradlab.Params
    x : ndarray, shape (T, B, H)
        Standard normal inputs (D = H).
    dh : ndarray, shape (T, B, H)
        Ones: the gradient of L = sum of all outputs.
    """
    T, B, H = parse_shape(shape)
    params = gradlab.init_params(cell, H, H, dtype=np.dtype(dtype), seed=seed)
    x = np.random.default_rng(seed).standard_normal((T, B, H)).astype(dtype)
    return params, x, np.ones((T, B, H), dtype)


def forward_backward(cell: str, params, x, dh, backend: str):
    """One forward pass and one full BPTT pass; returns the :class:`gradlab.Grads`."""
    trace = gradlab.forward(cell, params, x, backend=backend)
    return gradlab.backward(cell, params, trace, dh, backend=backend)


class Kernels:
    """Forward and forward + full BPTT for every cell, backend, dtype and shape."""

    params = (CELLS, BACKENDS, DTYPES, SHAPES)
    param_names = ("cell", "backend", "dtype", "shape")
    timeout = 300

    def setup(self, cell, backend, dtype, shape):
        self.weights, self.x, self.dh = make_problem(cell, dtype, shape)
        forward_backward(cell, self.weights, self.x, self.dh, backend)

    def time_forward(self, cell, backend, dtype, shape):
        gradlab.forward(cell, self.weights, self.x, backend=backend)

    def time_bptt(self, cell, backend, dtype, shape):
        forward_backward(cell, self.weights, self.x, self.dh, backend)

    def peakmem_bptt(self, cell, backend, dtype, shape):
        forward_backward(cell, self.weights, self.x, self.dh, backend)


class FirstCall:
    """Cold start of the ``"cpu"`` backend: import, then compile or load the kernels from Numba's cache."""

    params = DTYPES
    param_names = ("dtype",)
    timeout = 600

    def timeraw_import_and_first_call(self, dtype):
        return FIRST_CALL_CODE.format(dtype=dtype)
