"""gradlab.losses: values, gradients by finite differences, stability, masks, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from gradlab import losses


def fd_grad(f, a, eps=1e-6):
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        up = f(a)
        a[idx] = old - eps
        down = f(a)
        a[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


def test_cross_entropy_value_is_sum_over_steps_mean_over_batch():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 3, 4))
    y = rng.integers(0, 4, (5, 3))
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    expected = -np.log(p[np.arange(5)[:, None], np.arange(3)[None], y]).sum() / 3
    loss, _ = losses.softmax_cross_entropy(z, y)
    assert loss == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("masked", [False, True])
def test_cross_entropy_gradient(masked):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, 3, 5))
    y = rng.integers(0, 5, (4, 3))
    mask = (rng.random((4, 3)) < 0.5).astype(float) if masked else None
    _, g = losses.softmax_cross_entropy(z, y, mask)
    fd = fd_grad(lambda a: losses.softmax_cross_entropy(a, y, mask)[0], z)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    if masked:
        np.testing.assert_array_equal(g[mask == 0], 0.0)


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]])
    loss, g = losses.softmax_cross_entropy(z, np.array([1, 2]))
    assert loss == pytest.approx((1e4 + np.log(2)) / 2, rel=1e-12)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g.sum(-1), 0.0, atol=1e-15)
    z32 = np.array([[300.0, -300.0]], np.float32)
    loss32, g32 = losses.softmax_cross_entropy(z32, np.array([1]))
    assert loss32 == pytest.approx(600.0, rel=1e-6) and g32.dtype == np.float32


@pytest.mark.parametrize("masked", [False, True])
def test_mean_squared_error_value_and_gradient(masked):
    rng = np.random.default_rng(2)
    pred, y = rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 3, 2))
    mask = (rng.random((4, 3)) < 0.5).astype(float) if masked else None
    w = np.ones((4, 3)) if mask is None else mask
    loss, g = losses.mean_squared_error(pred, y, mask)
    assert loss == pytest.approx((((pred - y) ** 2).mean(-1) * w).sum() / 3, rel=1e-13)
    fd = fd_grad(lambda a: losses.mean_squared_error(a, y, mask)[0], pred)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_one_step_shape_is_a_batch():
    pred, y = np.array([[1.0], [3.0]]), np.array([[0.0], [1.0]])
    loss, g = losses.mean_squared_error(pred, y)
    assert loss == pytest.approx((1 + 4) / 2)
    np.testing.assert_allclose(g, [[1.0], [2.0]])


def test_boolean_mask_equals_float_mask():
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(3, 2, 4)), rng.integers(0, 4, (3, 2))
    m = rng.random((3, 2)) < 0.5
    a = losses.softmax_cross_entropy(z, y, m)
    b = losses.softmax_cross_entropy(z, y, m.astype(float))
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


def test_accuracy():
    z = np.array([[[0.0, 1.0], [2.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    y = np.array([[1, 1], [1, 0]])
    assert losses.accuracy(z, y) == 0.5
    assert losses.accuracy(z, y, np.array([[1, 0], [1, 0]])) == 1.0


def test_bad_input():
    z, y = np.zeros((3, 2, 4)), np.zeros((3, 2), np.int64)
    with pytest.raises(ValueError, match=r"y: class targets must lie in \[0, 4\)"):
        losses.softmax_cross_entropy(z, y + 4)
    with pytest.raises(TypeError, match="y: class targets must have an integer dtype"):
        losses.softmax_cross_entropy(z, y.astype(float))
    with pytest.raises(ValueError, match="y: expected shape"):
        losses.softmax_cross_entropy(z, y[:2])
    with pytest.raises(ValueError, match="mask: expected shape"):
        losses.softmax_cross_entropy(z, y, np.ones((2, 2)))
    with pytest.raises(ValueError, match="mask: expected finite, non-negative"):
        losses.softmax_cross_entropy(z, y, -np.ones((3, 2)))
    with pytest.raises(TypeError, match="logits: expected dtype float32 or float64"):
        losses.softmax_cross_entropy(z.astype(np.int64), y)
    with pytest.raises(TypeError, match="y: dtype float32 does not match"):
        losses.mean_squared_error(np.zeros((2, 1)), np.zeros((2, 1), np.float32))
    with pytest.raises(ValueError, match="y: expected finite"):
        losses.mean_squared_error(np.zeros((2, 1)), np.full((2, 1), np.nan))
