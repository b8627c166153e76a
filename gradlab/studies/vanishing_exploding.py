"""Where do gradients vanish and explode? Profiles, decay rates, Lyapunov exponents and Pascanu's conditions.

For ``rnn_tanh``, ``rnn_relu``, ``gru`` and ``lstm`` at initialisation, with
the recurrent scale (the largest singular value of each recurrent block,
SPEC §4) swept from clearly contracting to clearly expanding, orthogonal and
normal initialisation, random N(0, 1) inputs and a many-to-one loss at the
last step, the study measures

* the gradient profile ‖∂L_T/∂h_{T−k}‖ against the distance k, relative to
  its value at k = 0 (median and quartiles over sequences and seeds);
* its decay rate ρ per step (slope of the log-profile) with a 95 %
  confidence interval, the horizon k* where it falls below 1e-6, and
  whether it explodes;
* the top Lyapunov exponent λ₁ of the same trajectory (QR method), which ρ
  should approach, since ∂L/∂h_t is the product of the transposed step
  Jacobians applied to ∂L/∂h_T;
* Pascanu, Mikolov & Bengio's (2013) sufficient condition for vanishing
  (σ_max(W_h) < 1/γ) and necessary condition for exploding (σ_max > 1/γ);

then the same profile through depth (1, 2 and 4 layers, and a bidirectional
network: the layer × time gradient map), and before against after training
on the adding problem for a fixed budget.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import dynamics, tasks
from ..network import Network
from ..types import Params
from ..train import train

TITLE = "Where do gradients vanish and explode?"
QUESTION = ("How fast does ‖∂L_T/∂h_t‖ shrink or grow with the distance k = T − t in the tanh and ReLU RNN, "
            "the GRU and the LSTM, from a contracting to an expanding recurrent scale; does the measured rate "
            "match the top Lyapunov exponent and Pascanu et al.'s (2013) conditions; and how do depth and "
            "training change it?")

CELLS = ("rnn_tanh", "rnn_relu", "gru", "lstm")
INPUT_SIZE = 4
COLORS = {"rnn_tanh": "tab:blue", "rnn_relu": "tab:orange", "gru": "tab:green", "lstm": "tab:red"}


def sizes(quick: bool) -> dict:
    """The grid's sizes: the default run and the reduced one of ``--quick``."""
    if quick:
        return dict(scales=(0.5, 1.0, 2.0), inits=("orthogonal",), T=40, T_long=80, H=8, B=4, replicates=2,
                    layers=(1, 2), depth_T=30, train_T=20, train_steps=20, train_H=8)
    return dict(scales=(0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0), inits=("orthogonal", "normal"), T=200, T_long=1000,
                H=32, B=8, replicates=3, layers=(1, 2, 4), depth_T=100, train_T=50, train_steps=300, train_H=32)


def stored_distances(T: int, n: int = 51) -> np.ndarray:
    """The distances k kept in the tidy rows: ``n`` evenly spaced from 0 to T − 1 (the fits use every k)."""
    return np.unique(np.linspace(0, T - 1, n).round().astype(int))


def _inputs(seed: int, T: int, B: int, dtype: str) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    return rng.standard_normal((T, B, INPUT_SIZE)).astype(dtype)


def _profile_rows(prof: np.ndarray, T: int, **scalars) -> list[dict]:
    """Tidy rows (k, sequence, relative norm) at the stored distances of a (T, B) profile."""
    rel = prof / prof[:1]
    return [{"k": int(k), "sequence": b, "grad_norm": float(prof[k, b]), "relative": float(rel[k, b]), **scalars}
            for k in stored_distances(T) for b in range(prof.shape[1])]


# ---------------------------------------------------------------------- grid points (run on Dask workers)

def init_point(config: dict, seed: int) -> list[dict]:
    """Profile, ρ, λ₁ and Pascanu's conditions of one freshly initialised one-layer network."""
    cell, T, B = config["cell"], config["T"], config["B"]
    net = Network(cell, INPUT_SIZE, config["H"], 1, head="linear", mode="many_to_one", init=config["init"],
                  scale=config["scale"], dtype=config["dtype"], seed=seed, backend=config["backend"])
    x = _inputs(seed, T, B, config["dtype"])
    prof = dynamics.gradient_profiles(net, x, seed=seed)[0, 0]
    fit = dynamics.decay_rate(prof)
    p = net.layer_params(0)
    p64 = Params(**{k: None if v is None else np.asarray(v, np.float64) for k, v in p.arrays().items()})
    lyap = dynamics.lyapunov_spectrum(cell, p64, x.astype(np.float64), num_exponents=1, seed=seed)
    bounds = dynamics.pascanu_bounds(cell, p64)
    scalars = {
        "rho": fit.rho, "rho_ci_low": fit.ci_low, "rho_ci_high": fit.ci_high,
        "horizon": np.nan if fit.horizon is None else fit.horizon, "exploding": fit.exploding,
        "lambda1": float(np.median(lyap[:, 0])), "sigma_max": bounds.sigma_max, "gamma": bounds.gamma,
        "pascanu_applies": bounds.applicable, "vanishing_sufficient": bounds.vanishing_sufficient,
        "exploding_necessary": bounds.exploding_necessary,
    }
    return _profile_rows(prof, T, **scalars)


def depth_point(config: dict, seed: int) -> list[dict]:
    """The median gradient norm at every layer, direction and step of a stacked (maybe bidirectional) network."""
    T, B = config["T"], config["B"]
    net = Network(config["cell"], INPUT_SIZE, config["H"], 1, num_layers=config["layers"],
                  bidirectional=config["bidirectional"], head="linear", mode="many_to_one", init="orthogonal",
                  scale=config["scale"], dtype=config["dtype"], seed=seed, backend=config["backend"])
    prof = dynamics.gradient_profiles(net, _inputs(seed, T, B, config["dtype"]), seed=seed)
    rows = []
    for layer in range(prof.shape[0]):
        for d in range(prof.shape[1]):
            med = np.median(prof[layer, d], axis=1)
            rows += [{"layer": layer + 1, "direction": ("forward", "backward")[d], "k": k, "median": float(med[k])}
                     for k in range(T)]
    return rows


def trained_point(config: dict, seed: int) -> list[dict]:
    """Profiles on adding-problem sequences at initialisation and after a fixed training budget."""
    task = tasks.Adding(config["T"], "le2015")
    net = task.network(config["cell"], config["H"], dtype=config["dtype"], seed=seed, backend=config["backend"])
    probe = task.sample(config["B"], seed=np.random.SeedSequence(seed).spawn(3)[2], dtype=config["dtype"])
    rows = []
    for stage in ("initialisation", "trained"):
        if stage == "trained":
            hist = train(net, task, config["steps"], batch_size=32, optimizer="adam", lr=0.01, clip="norm",
                         clip_threshold=1.0, seed=seed, until_solved=False, backend=config["backend"])
            metric = float(hist["metric"].tail(20).median())
        else:
            metric = task.metric(net.predict(probe.x), probe)
        prof = dynamics.gradient_profiles(net, probe.x, seed=seed)[0, 0]
        fit = dynamics.decay_rate(prof)
        rows += _profile_rows(prof, config["T"], stage=stage, rho=fit.rho, mse=metric)
    return rows


# ---------------------------------------------------------------------- the study

def grids(quick: bool) -> dict[str, tuple[list[dict], int]]:
    """Every sweep of the study: label -> (configs, replicates)."""
    s = sizes(quick)
    base = {"H": s["H"], "B": s["B"]}
    init = [{"cell": c, "init": i, "scale": sc, "T": s["T"], **base} for c in CELLS for i in s["inits"] for sc in s["scales"]]
    init += [{"cell": c, "init": "orthogonal", "scale": sc, "T": s["T_long"], **base}
             for c in ("gru", "lstm") for sc in (1.0, 1.25)[: 1 if quick else 2]]
    depth = [{"cell": c, "layers": n, "bidirectional": False, "scale": 1.0, "T": s["depth_T"], **base}
             for c in CELLS for n in s["layers"]]
    depth += [{"cell": c, "layers": 2, "bidirectional": True, "scale": 1.0, "T": s["depth_T"], **base}
              for c in ("rnn_tanh", "lstm")]
    trained = [{"cell": c, "T": s["train_T"], "H": s["train_H"], "B": s["B"] * 2, "steps": s["train_steps"]}
               for c in CELLS]
    return {"init": (init, s["replicates"]), "depth": (depth, s["replicates"]), "trained": (trained, s["replicates"])}


def run(ctx) -> None:
    """Run the sweeps and write ``reports/vanishing_exploding/``."""
    from . import vanishing_exploding_report as report

    g = grids(ctx.quick)
    results = {
        "init": ctx.sweep("init", init_point, *g["init"]),
        "depth": ctx.sweep("depth", depth_point, *g["depth"]),
        "trained": ctx.sweep("trained", trained_point, *g["trained"]),
    }
    rep = ctx.report(title=TITLE, question=QUESTION)
    report.write(rep, results, sizes(ctx.quick))
    ctx.finish(rep)


def summarize(rows: pd.DataFrame, by: list[str], value: str = "relative") -> pd.DataFrame:
    """Median and quartiles of ``value`` over sequences and seeds, per ``by`` and distance k."""
    g = rows.groupby(by + ["k"])[value]
    out = g.quantile([0.25, 0.5, 0.75]).unstack()
    out.columns = ["q25", "median", "q75"]
    return out.reset_index()
