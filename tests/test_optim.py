"""gradlab.optim: SGD, momentum, Adam against torch.optim; schedules; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradlab import optim


def problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
    grads = [{"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4)} for _ in range(5)]
    return params, grads


def run_torch(params, grads, make):
    tensors = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = make(list(tensors.values()))
    for g in grads:
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        opt.step()
    return {k: t.detach().numpy() for k, t in tensors.items()}


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: optim.SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        (lambda: optim.SGD(0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        (lambda: optim.SGD(0.05, momentum=0.5, nesterov=True),
         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5, nesterov=True)),
        (lambda: optim.Adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
        (lambda: optim.Adam(0.02, betas=(0.5, 0.9), eps=1e-6),
         lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.5, 0.9), eps=1e-6)),
    ],
)
def test_matches_torch(ours, theirs):
    params, grads = problem()
    expected = run_torch(params, grads, theirs)
    opt = ours()
    for g in grads:
        opt.step(params, g)
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-14)


def test_updates_in_place_keep_dtype_and_arrays():
    params = {"W": np.ones((2, 2), np.float32)}
    ref = params["W"]
    optim.Adam(0.1).step(params, {"W": np.ones((2, 2), np.float32)})
    assert params["W"] is ref and ref.dtype == np.float32
    np.testing.assert_allclose(ref, 0.9, rtol=1e-6)  # Adam's first step is lr · sign(g)


def test_explicit_lr_overrides_base():
    params = {"w": np.array([1.0])}
    opt = optim.SGD(0.1)
    opt.step(params, {"w": np.array([1.0])}, lr=0.5)
    assert params["w"][0] == pytest.approx(0.5)


def test_schedules():
    assert optim.Constant()(0.1, 1000) == 0.1
    s = optim.StepDecay(every=10, factor=0.5)
    assert [s(1.0, k) for k in (1, 10, 11, 20, 21, 31)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]
    assert isinstance(optim.make_schedule(None), optim.Constant)
    assert optim.make_schedule(s) is s


def test_make_optimizer():
    assert isinstance(optim.make_optimizer("adam"), optim.Adam)
    m = optim.make_optimizer("momentum", 0.2)
    assert isinstance(m, optim.SGD) and m.momentum == 0.9 and m.lr == 0.2
    assert optim.make_optimizer("sgd").lr == optim.SGD.default_lr
    given = optim.Adam(0.3)
    assert optim.make_optimizer(given) is given


def test_bad_input():
    with pytest.raises(ValueError, match="optimizer: unknown optimizer 'rmsprop'"):
        optim.make_optimizer("rmsprop")
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(-1.0)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="every"):
        optim.StepDecay(0)
    with pytest.raises(ValueError, match="factor"):
        optim.StepDecay(10, factor=2.0)
    with pytest.raises(ValueError, match="schedule"):
        optim.make_schedule("cosine")
    with pytest.raises(ValueError, match="grads: keys"):
        optim.SGD().step({"a": np.zeros(2)}, {"b": np.zeros(2)})
    with pytest.raises(ValueError, match=r"grads\['a'\]: shape"):
        optim.SGD().step({"a": np.zeros(2)}, {"a": np.zeros(3)})
