"""Shared fixtures and helpers for the gradlab test suite."""

from __future__ import annotations

import os
import sys

# The "cuda" backend runs on the CUDA simulator throughout the suite unless
# NUMBA_ENABLE_CUDASIM is set explicitly: `NUMBA_ENABLE_CUDASIM=0 pytest ...` on
# a machine with an NVIDIA GPU tests the real device (scripts/gpu_check.sh).
# This must happen before anything imports numba.cuda, which reads it once.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if os.environ["NUMBA_ENABLE_CUDASIM"] == "1":
    # The simulator runs each CUDA thread as a Python thread and polls them; a
    # short GIL switch interval makes its syncthreads several times faster.
    sys.setswitchinterval(5e-5)

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import gradlab  # noqa: E402

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def make_problem(cell, T=4, B=2, D=3, H=3, dtype=np.float64, seed=0, scale=1.0, init="orthogonal"):
    """Random parameters, inputs, initial states and upstream gradients for one cell.

    Biases (and b_hn) are drawn at random too, so that every gradient field is
    exercised with non-trivial values.
    """
    rng = np.random.default_rng(seed)
    spec = gradlab.CELLS[cell]
    p = gradlab.init_params(cell, D, H, init=init, scale=scale, seed=seed, dtype=np.float64)
    p.b = rng.normal(0, 0.5, p.b.shape)
    if p.b_hn is not None:
        p.b_hn = rng.normal(0, 0.5, p.b_hn.shape)
    x = rng.normal(0, 1, (T, B, D))
    h0 = rng.normal(0, 0.5, (B, H))
    c0 = rng.normal(0, 0.5, (B, H)) if spec.has_cell_state else None
    dh = rng.normal(0, 1, (T, B, H))
    dc_last = rng.normal(0, 1, (B, H)) if spec.has_cell_state else None

    def cast(a):
        return None if a is None else a.astype(dtype)

    p = gradlab.Params(W_x=cast(p.W_x), W_h=cast(p.W_h), b=cast(p.b), b_hn=cast(p.b_hn))
    return p, cast(x), cast(h0), cast(c0), cast(dh), cast(dc_last)
