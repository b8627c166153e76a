"""The cuda backend's matrix products against NumPy: transposes, bias, accumulation, partial tiles, split K.

On the CUDA simulator (the default, see tests/conftest.py) the tiles are tiny,
so small shapes already cut into several tiles, partial tiles and K splits; on
a GPU the same cases take the larger shapes :func:`cases` derives from the
device's tile sizes and split thresholds.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradlab.kernels import cuda as gcuda

pytestmark = pytest.mark.skipif(not gcuda.available(), reason="backend 'cuda' unavailable: no CUDA driver and no simulator")


def product(M, N, K, ta, tb, bias, accumulate, dtype=np.float64, seed=0, strided=False):
    """Run cuda._gemm on random operands; return (result, NumPy's result, the kernel used, its K parts)."""
    cuda = gcuda.cuda_module()
    K_, k = gcuda._ker(dtype)
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    C0 = rng.standard_normal((M, N)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype) if bias else None
    dA, dB = cuda.to_device(A), cuda.to_device(B)
    if strided:  # operands that are column slices of wider arrays, as dW_h's are
        wide = np.zeros((A.shape[0], A.shape[1] + 3), dtype)
        wide[:, 1:1 + A.shape[1]] = A
        dA = cuda.to_device(wide)[:, 1:1 + A.shape[1]]
    dC = cuda.to_device(C0)
    gcuda._gemm(cuda, K_, k, dA, dB, dC, ta=ta, tb=tb, bias=None if b is None else cuda.to_device(b),
                accumulate=accumulate)
    want = (A.T if ta else A).astype(np.float64) @ (B.T if tb else B).astype(np.float64)
    if bias:
        want += b
    if accumulate:
        want += C0
    g, splits = gcuda._gemm_plan(K_, k, M, N, K)
    return dC.copy_to_host(), want, g, splits


def cases(dtype=np.float64):
    """(M, N, K) of three products: one whose K is split, one of big tiles (some partial), one of small tiles."""
    K_, k = gcuda._ker(dtype)
    split = (5, 3, max(13, 2 * K_.GEMM_MIN_K_PART, -(-K_.GEMM_MIN_SPLIT_WORK // 15)))
    side = int(np.ceil(np.sqrt(K_.GEMM_TARGET_BLOCKS)))  # enough big tiles to fill the device
    big = (side * k.gemm_big.tile.BM + 1, side * k.gemm_big.tile.BN + 3, 3)
    return split, big, (6, 3, 3)


@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("ta", [False, True])
def test_transposes_bias_accumulate(ta, tb, bias, accumulate):
    for M, N, K in cases():
        got, want, _, _ = product(M, N, K, ta, tb, bias, accumulate)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_both_tile_shapes_and_a_split_are_exercised():
    K_, k = gcuda._ker(np.float64)
    split, big, small = cases()
    plans = {shape: gcuda._gemm_plan(K_, k, *shape) for shape in (split, big, small)}
    assert plans[split][1] > 1, plans
    assert plans[big][0] is k.gemm_big and plans[small][0] is k.gemm_small, plans


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edges(dtype):
    """K = 0 leaves bias (+ C); K shorter than a slice; one row; strided operands; float32 within its precision."""
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for M, N, K, kw in ((4, 5, 0, dict(bias=True, accumulate=True)), (7, 2, 1, {}), (1, 9, 6, dict(bias=True)),
                        (6, 5, 11, dict(strided=True, accumulate=True))):
        args = dict(ta=False, tb=False, bias=False, accumulate=False) | kw
        got, want, _, _ = product(M, N, K, dtype=dtype, seed=M + K, **args)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


def test_deterministic_split():
    M, N, K = cases()[0]
    a = product(M, N, K, True, False, False, False, seed=3)
    b = product(M, N, K, True, False, False, False, seed=3)
    assert a[3] > 1 and a[0].tobytes() == b[0].tobytes()
