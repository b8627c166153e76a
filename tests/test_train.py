"""gradlab.train: learning, the history, clipping policies, non-finite gradients, divergence, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import gradlab
from gradlab import tasks
from gradlab.clip import NonFiniteGradientError


def adding_net(T=10, cell="gru", H=4, seed=0, **kwargs):
    task = tasks.Adding(T)
    return task, task.network(cell, H, seed=seed, backend="numpy", **kwargs)


def test_lstm_solves_the_le2015_adding_problem_at_T30():
    task = tasks.Adding(30)
    net = task.network("lstm", 32, seed=0, backend="numpy")
    hist = gradlab.train(net, task, 600, batch_size=32, lr=0.01, clip="norm", clip_threshold=1.0, seed=0)
    assert hist.attrs["status"] == "solved"
    assert hist.attrs["solved_at"] == hist["step"].iloc[-1] < 600
    test = task.sample(1000, 12345)
    mse = task.metric(net.predict(test.x), test)
    assert mse < 0.2 * task.baseline  # 1/6 is chance
    assert hist["loss"].iloc[:10].mean() > 0.8 * task.baseline


def test_history_columns_types_and_reproducibility():
    task, net = adding_net()
    net2 = net.copy()
    h1 = gradlab.train(net, task, 15, batch_size=8, optimizer="momentum", lr=0.05, seed=3, until_solved=False)
    h2 = gradlab.train(net2, task, 15, batch_size=8, optimizer="momentum", lr=0.05, seed=3, until_solved=False)
    assert list(h1.columns) == ["step", "loss", "metric", "grad_norm", "clipped", "nonfinite", "lr", "wall_time"]
    assert h1["step"].tolist() == list(range(1, 16))
    assert h1["clipped"].dtype == bool and h1["nonfinite"].dtype == bool
    assert h1["wall_time"].is_monotonic_increasing
    pd.testing.assert_frame_equal(h1.drop(columns="wall_time"), h2.drop(columns="wall_time"))
    for k in net.params:
        np.testing.assert_array_equal(net.params[k], net2.params[k])
    h3 = gradlab.train(adding_net()[1], task, 15, batch_size=8, seed=4, until_solved=False)
    assert not np.array_equal(h3["loss"], h1["loss"])
    assert h1.attrs["status"] == "max_steps" and h1.attrs["skipped"] == 0
    assert h1.attrs["metric"] == "mse" and h1.attrs["baseline"] == pytest.approx(1 / 6)
    # on the adding problem with K = 1 the metric is the loss
    np.testing.assert_allclose(h1["metric"], h1["loss"], rtol=1e-12)


def one_sgd_step(clip, threshold, lr=0.1):
    """Train one SGD step; return the parameter change, the raw gradient and the history."""
    task, net = adding_net(T=8, cell="rnn_tanh", H=3, scale=1.5)
    before = {k: v.copy() for k, v in net.params.items()}
    batch = task.sample(4, np.random.default_rng(0))
    raw = net.loss_and_grads(batch.x, batch.y, clip_step=threshold if clip == "step" else None).grads
    hist = gradlab.train(net, task, 1, batch_size=4, optimizer="sgd", lr=lr, clip=clip, clip_threshold=threshold, seed=0)
    delta = {k: net.params[k] - before[k] for k in before}
    return delta, raw, hist


def test_norm_clipping_scales_to_exactly_the_threshold():
    delta, raw, hist = one_sgd_step("norm", 1e-3)
    norm = gradlab.clip.global_norm(raw)
    assert hist["grad_norm"].iloc[0] == pytest.approx(norm, rel=1e-12) and norm > 1e-3
    assert bool(hist["clipped"].iloc[0])
    assert gradlab.clip.global_norm(delta) == pytest.approx(0.1 * 1e-3, rel=1e-9)
    for k in delta:
        np.testing.assert_allclose(delta[k], -0.1 * raw[k] * 1e-3 / norm, rtol=1e-9, atol=1e-15)


def test_norm_clipping_leaves_small_gradients_untouched():
    delta, raw, hist = one_sgd_step("norm", 1e6)
    assert not hist["clipped"].iloc[0]
    for k in delta:
        np.testing.assert_allclose(delta[k], -0.1 * raw[k], rtol=1e-9, atol=1e-15)


def test_value_clipping():
    v = 1e-3
    delta, raw, hist = one_sgd_step("value", v)
    assert bool(hist["clipped"].iloc[0])
    for k in delta:
        np.testing.assert_allclose(delta[k], -0.1 * np.clip(raw[k], -v, v), rtol=1e-9, atol=1e-15)


def test_step_clipping_is_applied_inside_bptt():
    delta, clipped_raw, hist = one_sgd_step("step", 1e-3)
    assert bool(hist["clipped"].iloc[0])
    assert hist["grad_norm"].iloc[0] == pytest.approx(gradlab.clip.global_norm(clipped_raw), rel=1e-12)
    for k in delta:
        np.testing.assert_allclose(delta[k], -0.1 * clipped_raw[k], rtol=1e-9, atol=1e-15)
    _, _, loose = one_sgd_step("step", 1e6)
    assert not loose["clipped"].iloc[0]


class Planted(gradlab.Network):
    """A network whose gradient gets ``value`` planted at chosen steps (inf and nan alternate by default)."""

    bad_steps: tuple = ()
    value = None
    calls = 0

    def loss_and_grads(self, *args, **kwargs):
        res = super().loss_and_grads(*args, **kwargs)
        Planted.calls += 1
        if Planted.calls in self.bad_steps:
            bad = (np.inf if Planted.calls % 2 else np.nan) if self.value is None else self.value
            res.grads["layer0.forward.W_h"][0, 0] = bad
        return res


def planted(bad_steps, value=None):
    task = tasks.Adding(6)
    net = Planted("gru", 2, 3, 1, head="linear", mode="many_to_one", backend="numpy")
    net.bad_steps, net.value = bad_steps, value
    Planted.calls = 0
    return task, net


def test_planted_nonfinite_gradients_are_skipped_counted_and_never_applied():
    task, net = planted((2, 5))
    snapshots = []
    hist = gradlab.train(net, task, 6, batch_size=4, optimizer="adam", lr=0.01, clip="norm", clip_threshold=1.0,
                         until_solved=False, callback=lambda step, res: snapshots.append(
                             {k: v.copy() for k, v in net.params.items()}))
    assert hist["nonfinite"].tolist() == [False, True, False, False, True, False]
    assert hist.attrs["skipped"] == 2 and hist.attrs["status"] == "max_steps"
    assert not np.isfinite(hist["grad_norm"].iloc[1]) and np.isfinite(hist["loss"].iloc[1])
    assert all(np.isfinite(v).all() for v in net.params.values())
    for skipped in (1, 4):  # the parameters did not move at the skipped steps
        for k in net.params:
            np.testing.assert_array_equal(snapshots[skipped][k], snapshots[skipped - 1][k])
    for applied in (2, 3, 5):
        assert not np.array_equal(snapshots[applied]["head.W_y"], snapshots[applied - 1]["head.W_y"])


def test_nonfinite_raise_policy_carries_the_history():
    task, net = planted((3,))
    with pytest.raises(NonFiniteGradientError, match="step 3") as info:
        gradlab.train(net, task, 10, batch_size=4, nonfinite="raise", until_solved=False)
    hist = info.value.history
    assert len(hist) == 3 and hist["nonfinite"].tolist() == [False, False, True]


def test_too_many_skips_in_a_row_is_divergence():
    task, net = planted(tuple(range(1, 100)))
    hist = gradlab.train(net, task, 50, batch_size=4, max_consecutive_skips=4, until_solved=False)
    assert hist.attrs["status"] == "diverged" and len(hist) == 4 and hist["nonfinite"].all()


def test_forward_overflow_stops_cleanly_with_the_history():
    """An IRNN with recurrent weights 2·I overflows within 1100 steps: the loss is not finite."""
    task = tasks.Adding(1100)
    net = task.network("rnn_relu", 4, init="identity", scale=2.0, backend="numpy")
    net.params["layer0.forward.W_x"][:] = 1.0
    before = {k: v.copy() for k, v in net.params.items()}
    with np.errstate(over="ignore", invalid="ignore"):
        hist = gradlab.train(net, task, 5, batch_size=2, until_solved=False)
        assert hist.attrs["status"] == "diverged" and hist.attrs["skipped"] == 1
        assert len(hist) == 1 and np.isnan(hist["loss"].iloc[0]) and hist["nonfinite"].iloc[0]
        for k in before:
            np.testing.assert_array_equal(net.params[k], before[k])
        with pytest.raises(NonFiniteGradientError, match="step 1: the loss is nan"):
            gradlab.train(net, task, 5, batch_size=2, nonfinite="raise")


def test_an_update_that_overflows_the_parameters_is_undone():
    task, net = planted((2,), value=1e308)  # finite, but lr · g overflows
    snapshots = []
    with np.errstate(over="ignore"):
        hist = gradlab.train(net, task, 5, batch_size=2, optimizer="sgd", lr=10.0, until_solved=False,
                             callback=lambda step, res: snapshots.append({k: v.copy() for k, v in net.params.items()}))
    assert hist.attrs["status"] == "diverged" and len(hist) == 2
    assert np.isfinite(hist["grad_norm"].iloc[1]) and not hist["nonfinite"].iloc[1]
    for k in net.params:
        np.testing.assert_array_equal(net.params[k], snapshots[0][k])


def test_truncated_bptt_and_schedule():
    task, net = adding_net(T=12, cell="lstm")
    full = gradlab.train(net.copy(), task, 5, batch_size=4, seed=1, until_solved=False)
    same = gradlab.train(net.copy(), task, 5, batch_size=4, seed=1, tbptt=12, until_solved=False)
    pd.testing.assert_frame_equal(full.drop(columns="wall_time"), same.drop(columns="wall_time"))
    cut = gradlab.train(net.copy(), task, 5, batch_size=4, seed=1, tbptt=4, until_solved=False)
    assert cut["loss"].iloc[0] == pytest.approx(full["loss"].iloc[0], rel=1e-12)  # same parameters, same batch
    assert cut["grad_norm"].iloc[0] != pytest.approx(full["grad_norm"].iloc[0], rel=1e-6)
    dec = gradlab.train(net.copy(), task, 7, batch_size=2, lr=0.1, optimizer="sgd", until_solved=False,
                        schedule=gradlab.StepDecay(every=3, factor=0.5))
    assert dec["lr"].tolist() == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]


def test_patience_and_solved_at():
    task = tasks.Adding(5)
    net = task.network("gru", 4, backend="numpy")
    hist = gradlab.train(net, task, 5, batch_size=2, until_solved=False)
    solved = [task.solved(m) for m in hist["metric"]]
    expected = next((i + 1 for i, s in enumerate(solved) if s), None)
    assert hist.attrs["solved_at"] == expected
    # a criterion that always holds stops at once, or after `patience` steps
    task.criterion = 1e9
    assert len(gradlab.train(net, task, 10, batch_size=2)) == 1
    hist = gradlab.train(net, task, 10, batch_size=2, patience=3)
    assert len(hist) == 3 and hist.attrs["solved_at"] == 3 and hist.attrs["status"] == "solved"


def test_progress_line(capsys):
    task, net = adding_net()
    gradlab.train(net, task, 3, batch_size=2, progress=True, until_solved=False)
    err = capsys.readouterr().err
    assert task.name in err


def test_seq2seq_and_many_to_many_tasks_train():
    for task in (tasks.SequenceReversal(3, symbols=3), tasks.CopyMemory(3, length=2, symbols=3)):
        net = task.network("gru", 8, backend="numpy")
        hist = gradlab.train(net, task, 60, batch_size=16, lr=0.05, seed=0, until_solved=False)
        assert hist["loss"].iloc[-10:].mean() < 0.8 * hist["loss"].iloc[:5].mean(), task.name


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"optimizer": "rmsprop"}, ValueError, "optimizer: unknown optimizer"),
        ({"clip": "global"}, ValueError, "clip: unknown clipping policy"),
        ({"clip": "norm"}, ValueError, "clip_threshold: clip='norm' needs a threshold"),
        ({"clip": "value", "clip_threshold": -1.0}, ValueError, "clip_threshold"),
        ({"clip_threshold": 1.0}, ValueError, "clip_threshold: given without"),
        ({"nonfinite": "ignore"}, ValueError, "nonfinite: unknown policy"),
        ({"steps": 0}, ValueError, "steps"),
        ({"batch_size": -2}, ValueError, "batch_size"),
        ({"tbptt": 0}, ValueError, "tbptt"),
        ({"patience": 0}, ValueError, "patience"),
        ({"schedule": "cosine"}, ValueError, "schedule"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"seed": "x"}, TypeError, "seed"),
        ({"backend": "gpu"}, ValueError, "backend: unknown backend 'gpu'"),
        ({"callback": 3}, TypeError, "callback"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    task, net = adding_net()
    args = {"steps": 2, **kwargs}
    with pytest.raises(error, match=match):
        gradlab.train(net, task, **args)


def test_network_must_fit_the_task():
    task = tasks.Adding(10)
    with pytest.raises(ValueError, match="network: does not fit the task"):
        gradlab.train(gradlab.Network("gru", 2, 3, 1), task)  # softmax, many_to_many
    with pytest.raises(ValueError, match="output_size"):
        gradlab.train(gradlab.Network("gru", 2, 3, 2, head="linear", mode="many_to_one"), task)
    with pytest.raises(TypeError, match="task"):
        gradlab.train(task.network("gru", 3), "adding")
    bi = task.network("gru", 3, bidirectional=True)
    with pytest.raises(ValueError, match="tbptt"):
        gradlab.train(bi, task, 2, tbptt=3)
