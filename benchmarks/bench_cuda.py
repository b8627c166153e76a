"""asv benchmarks of the ``"cuda"`` backend: forward and forward + full BPTT on a GPU.

Inputs, weights and the upstream gradient live on the device (numba device
arrays), so no host–device copy is timed, and every timed body ends with
``cuda.synchronize()``: kernel launches are asynchronous, and without it asv
would time the launches only. ``setup`` runs each case once, so Numba's
compilation is never timed. Without a GPU (no driver, or only the CUDA
simulator, whose timings mean nothing) ``setup`` raises NotImplementedError,
asv's way of skipping a benchmark.

Shapes are labels ``"TxBxH"`` with D = H, those of the GPU comparison
(``benchmarks/gpu_compare.py``).
"""

from __future__ import annotations

import numpy as np

import gradlab

CELLS = ("rnn_tanh", "gru", "gru_cudnn", "lstm")
DTYPES = ("float32", "float64")
SHAPES = ("1000x1x32", "100x8x128", "100x64x128", "200x32x256", "100x64x512", "100x256x1024")


def parse_shape(label: str) -> tuple[int, int, int]:
    """``"TxBxH"`` -> ``(T, B, H)``."""
    T, B, H = (int(v) for v in label.split("x"))
    return T, B, H


def require_gpu():
    """The cuda backend module, or NotImplementedError (asv: skip) when there is no real GPU."""
    from gradlab.kernels import cuda as gcuda

    if not gcuda.available() or gcuda.simulating():
        raise NotImplementedError("no CUDA GPU (or only the CUDA simulator): cuda benchmarks skipped")
    return gcuda


class CudaKernels:
    """Forward and forward + full BPTT of the cuda backend, device-resident, synchronised."""

    params = (CELLS, DTYPES, SHAPES)
    param_names = ("cell", "dtype", "shape")
    timeout = 300

    def setup(self, cell, dtype, shape):
        gcuda = require_gpu()
        cuda = gcuda.cuda_module()
        T, B, H = parse_shape(shape)
        p = gradlab.init_params(cell, H, H, dtype=np.dtype(dtype), seed=0)
        x = np.random.default_rng(0).standard_normal((T, B, H)).astype(dtype)
        self.sync = gcuda.synchronize
        self.p = gradlab.Params(**{k: cuda.to_device(v) for k, v in p.arrays().items()})
        self.x = cuda.to_device(x)
        self.dh = cuda.to_device(np.ones((T, B, H), dtype))
        self.time_bptt(cell, dtype, shape)  # compile (or load) every kernel outside the timing

    def time_forward(self, cell, dtype, shape):
        gradlab.forward(cell, self.p, self.x, backend="cuda")
        self.sync()

    def time_bptt(self, cell, dtype, shape):
        tr = gradlab.forward(cell, self.p, self.x, backend="cuda")
        gradlab.backward(cell, self.p, tr, self.dh, backend="cuda")
        self.sync()
