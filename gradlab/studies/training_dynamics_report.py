"""Figures, tables and the reading of the ``training_dynamics`` study (kept apart from its grid points)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .training_dynamics import CELLS, COLORS, MEMORY_KEEP, PATIENCE, TBPTT_CELL, TRAIN

CHANCE = 1.0 / 6.0
CRITERION = 0.01
CLAMP = (1e-30, 1e30)
GATED = ("gru", "lstm")
KEEP_NAME = {"gru": "GRU keep gate 1 − u", "lstm": "LSTM forget gate f"}
WRITE_NAME = {"gru": "GRU update gate u", "lstm": "LSTM input gate i"}
ARM_COLORS = {"k = 10": "tab:orange", "k = 50": "tab:purple", "full": "black"}


def rows_of(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The rows of one kind (``checkpoint``, ``profile``, ``curve``, ``summary``)."""
    return df[df["row"] == kind].reset_index(drop=True)


def tidy(df: pd.DataFrame, keep: tuple[str, ...] = ("solved_at",)) -> pd.DataFrame:
    """``df`` for a data file: without the ``row`` column and the columns that are empty in every row (but ``keep``)."""
    empty = [c for c in df.columns if c not in keep and df[c].isna().all()]
    return df.drop(columns=empty + (["row"] if "row" in df else []))


def quartiles(values) -> tuple[float, float, float]:
    """(q25, median, q75) of the finite values, NaNs if none."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (math.nan,) * 3
    q25, med, q75 = np.quantile(v, [0.25, 0.5, 0.75])
    return float(q25), float(med), float(q75)


def over_seeds(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Median and quartiles of ``value`` over the rows of each group (seeds, or sequences × seeds)."""
    g = df.groupby(by)[value]
    out = g.quantile([0.25, 0.5, 0.75]).unstack()
    out.columns = ["q25", "median", "q75"]
    return out.reset_index()


def arm_label(k: int, T: int, delay: int) -> str:
    """``full`` for full BPTT (k ≥ T + delay), else ``k = …``."""
    return "full" if k >= T + delay else f"k = {k}"


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _fmt_q(q: tuple[float, float, float], digits: int = 3) -> str:
    if not np.isfinite(q[1]):
        return "–"
    return f"{_fmt(q[1], digits)} [{_fmt(q[0], digits)}, {_fmt(q[2], digits)}]"


def _band(ax, x, s: pd.DataFrame, color, label, ls="-", alpha=0.18, clamp=None):
    lo, med, hi = s["q25"].to_numpy(), s["median"].to_numpy(), s["q75"].to_numpy()
    if clamp is not None:
        lo, med, hi = (np.clip(a, *clamp) for a in (lo, med, hi))
    ax.fill_between(x, lo, hi, color=color, alpha=alpha, linewidth=0)
    ax.plot(x, med, color=color, ls=ls, label=label)


# ---------------------------------------------------------------------- the evolution sweep

def checkpoint_table(cp: pd.DataFrame) -> pd.DataFrame:
    """Per cell and checkpoint: medians over seeds (quartiles for the MSE and ρ)."""
    out = []
    for (cell, step), g in cp.groupby(["cell", "step"], sort=True):
        def med(col):
            return float(g[col].median()) if col in g and g[col].notna().any() else math.nan
        out.append({
            "cell": cell, "step": int(step), "held-out MSE": _fmt_q(quartiles(g["mse"])),
            "ρ per step": _fmt_q(quartiles(g["rho"])), "λ₁ per step": med("lambda1"),
            "‖∂L/∂h‖ at X1 / at T": med("grad_at_x1"),
            "keep gate median": med("keep_q50"), "keep, top unit": med("keep_top_unit"),
            f"units keep ≥ {MEMORY_KEEP}": med("memory_units"),
            "write gate at markers": med("write_marker"), "write gate elsewhere": med("write_other"),
        })
    t = pd.DataFrame(out)
    t["cell"] = pd.Categorical(t["cell"], [c for c in CELLS if c in set(t["cell"])], ordered=True)
    return t.sort_values(["cell", "step"]).reset_index(drop=True)


def _learning_figure(rep, curve: pd.DataFrame, cp: pd.DataFrame, s: dict):
    fig, ax = rep.figure(width=6, height=3.8)
    for cell in CELLS:
        c = curve[curve["cell"] == cell]
        if len(c):
            summ = over_seeds(c, ["step"], "curve_mse")
            _band(ax, summ["step"].to_numpy(), summ, COLORS[cell], f"{cell} (training batches)")
        h = over_seeds(cp[cp["cell"] == cell], ["step"], "mse")
        ax.plot(h["step"], h["median"], "o", color=COLORS[cell], ms=4, label=f"{cell} (held out)")
    ax.axhline(CHANCE, color="grey", ls="--", lw=0.8, label="chance 1/6")
    ax.axhline(CRITERION, color="grey", ls=":", lw=0.8, label=f"solved ≤ {CRITERION}")
    ax.set_yscale("log")
    ax.set_xlabel("training step (Adam updates, batch 32)")
    ax.set_ylabel("adding-problem MSE")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def _rho_lambda_figure(rep, cp: pd.DataFrame):
    fig, axes = rep.figure(1, 2, width=4.6, height=3.6, sharey=True)
    for ax, col, title in zip(axes, ("rho", "lambda1"), ("gradient decay rate ρ (task loss, probe batch)",
                                                          "top Lyapunov exponent λ₁ (probe inputs)")):
        for cell in CELLS:
            summ = over_seeds(cp[cp["cell"] == cell], ["step"], col)
            if len(summ):
                _band(ax, summ["step"].to_numpy(), summ, COLORS[cell], cell)
                ax.plot(summ["step"], summ["median"], "o", color=COLORS[cell], ms=3)
        ax.axhline(0, color="grey", lw=0.7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("rate per step (natural log)")
    axes[0].legend(fontsize=8)
    return fig


def _profiles_figure(rep, prof: pd.DataFrame, T: int):
    import matplotlib.pyplot as plt

    steps = sorted(prof["step"].unique())
    cmap = plt.get_cmap("viridis")
    fig, axes = rep.figure(1, len(CELLS), width=4.0, height=3.5, sharey=True)
    summaries = []
    for ax, cell in zip(np.atleast_1d(axes), CELLS):
        sub = prof[prof["cell"] == cell]
        for i, step in enumerate(steps):
            summ = over_seeds(sub[sub["step"] == step], ["k"], "dh_rel")
            summaries.append(summ.assign(cell=cell, step=int(step)))
            color = cmap(i / max(len(steps) - 1, 1))
            band = 0.15 if step in (steps[0], steps[-1]) else 0.0
            _band(ax, summ["k"].to_numpy(), summ, color, f"step {int(step)}", alpha=band, clamp=CLAMP)
        ax.set_yscale("log")
        ax.set_title(cell)
        ax.set_xlabel("distance k = T − t (steps)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel(r"$\|\partial L/\partial h_{T-k}\| \,/\, \|\partial L/\partial h_T\|$")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    return fig, pd.concat(summaries, ignore_index=True)


def _cell_vs_hidden_figure(rep, prof: pd.DataFrame):
    sub = prof[prof["cell"] == "lstm"]
    steps = sorted(sub["step"].unique())
    first, last = steps[0], steps[-1]
    fig, axes = rep.figure(1, 2, width=4.6, height=3.6, sharey=True)
    summaries = []
    for ax, step in zip(axes, (first, last)):
        at = sub[sub["step"] == step]
        for col, color, label in (("dh_rel", "tab:red", "‖∂L/∂h_{T−k}‖"), ("dc_rel", "tab:brown", "‖∂L/∂c_{T−k}‖")):
            summ = over_seeds(at, ["k"], col)
            summaries.append(summ.assign(step=int(step), state=col[:2]))
            _band(ax, summ["k"].to_numpy(), summ, color, label, ls="-" if col == "dh_rel" else "--", clamp=CLAMP)
        ax.set_yscale("log")
        ax.set_title(f"LSTM, step {int(step)}" + (" (initialisation)" if step == 0 else ""))
        ax.set_xlabel("distance k = T − t (steps)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("norm / ‖∂L/∂h_T‖")
    axes[0].legend(fontsize=8)
    return fig, pd.concat(summaries, ignore_index=True)


def _gates_figure(rep, cp: pd.DataFrame):
    fig, axes = rep.figure(2, 2, width=4.6, height=3.2, sharex=True)
    for j, cell in enumerate(GATED):
        g = cp[cp["cell"] == cell]
        med = g.groupby("step")[["keep_q05", "keep_q25", "keep_q50", "keep_q75", "keep_q95", "keep_top_unit",
                                 "write_marker", "write_other"]].median().reset_index()
        ax = axes[0, j]
        x = med["step"].to_numpy()
        ax.fill_between(x, med["keep_q05"], med["keep_q95"], color=COLORS[cell], alpha=0.12, lw=0, label="5–95 %")
        ax.fill_between(x, med["keep_q25"], med["keep_q75"], color=COLORS[cell], alpha=0.3, lw=0, label="25–75 %")
        ax.plot(x, med["keep_q50"], color=COLORS[cell], label="median")
        ax.plot(x, med["keep_top_unit"], color=COLORS[cell], ls="--", label="most persistent unit (mean)")
        ax.set_ylim(0, 1)
        ax.set_title(KEEP_NAME[cell], fontsize=9)
        ax.set_ylabel("activation (over steps, sequences, units)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        ax = axes[1, j]
        for col, ls, label in (("write_marker", "-", "at the two marked steps"), ("write_other", "--", "at other steps")):
            summ = over_seeds(g, ["step"], col)
            _band(ax, summ["step"].to_numpy(), summ, COLORS[cell], label, ls=ls)
        ax.set_ylim(0, 1)
        ax.set_title(f"{WRITE_NAME[cell]}, mean", fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylabel("mean activation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------- the tbptt sweep

def tbptt_table(summ: pd.DataFrame) -> pd.DataFrame:
    """Per variant (delay) and BPTT arm: success, steps to solve, MSE, the floor, the marker coefficients."""
    out = []
    for (delay, k), g in summ.groupby(["delay", "k"], sort=True):
        T = int(g["T"].iloc[0])
        solved = g["solved_at"].notna()
        out.append({
            "blank steps before the loss": int(delay), "BPTT": arm_label(int(k), T, int(delay)),
            "window (steps)": int(g["window"].iloc[0]), "gradient reached (steps)": int(g["grad_reach"].max()) + 1,
            "solved": f"{int(solved.sum())}/{len(g)}",
            "steps to solve (median)": float(g.loc[solved, "solved_at"].median()) if solved.any() else math.nan,
            "held-out MSE": _fmt_q(quartiles(g["mse"])), "window floor": float(g["floor"].iloc[0]),
            "b1 (X1)": _fmt_q(quartiles(g["b1"]), 2), "b2, X2 inside window": _fmt_q(quartiles(g["b2_in"]), 2),
            "b2, X2 outside": _fmt_q(quartiles(g["b2_out"]), 2),
            "final ρ": float(g["rho"].median()), "final λ₁": float(g["lambda1"].median()),
            "keep gate median": float(g["keep_q50"].median()),
        })
    return pd.DataFrame(out)


def _tbptt_curves_figure(rep, curve: pd.DataFrame, summ: pd.DataFrame):
    delays = sorted(curve["delay"].unique())
    fig, axes = rep.figure(1, len(delays), width=4.8, height=3.6, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, delay in zip(axes, delays):
        c = curve[curve["delay"] == delay]
        for k in sorted(c["k"].unique()):
            T = int(c["T"].iloc[0])
            label = arm_label(int(k), T, int(delay))
            s = over_seeds(c[c["k"] == k], ["step"], "curve_mse")
            color = ARM_COLORS.get(label, "tab:gray")
            _band(ax, s["step"].to_numpy(), s, color, label)
            floor = summ[(summ["delay"] == delay) & (summ["k"] == k)]["floor"]
            if len(floor) and float(floor.iloc[0]) > 0:
                ax.axhline(float(floor.iloc[0]), color=color, ls=":", lw=1.2)
        ax.axhline(CRITERION, color="grey", ls="--", lw=0.7)
        ax.set_yscale("log")
        ax.set_title(f"adding, T = {int(c['T'].iloc[0])}" + (f" + {delay} blank steps" if delay else ""), fontsize=9)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MSE of the training batches")
    axes[0].legend(fontsize=8, title=f"{TBPTT_CELL.upper()}, BPTT", title_fontsize=8)
    return fig


def _coefficient_figure(rep, summ: pd.DataFrame):
    fig, ax = rep.figure(width=6.4, height=3.6)
    groups = [(d, k) for d, k in summ.groupby(["delay", "k"], sort=True).groups]
    names = []
    markers = {"b1": ("o", "X1 (≥ 50 steps back)"), "b2_in": ("s", "X2 inside the window"),
               "b2_out": ("^", "X2 outside the window")}
    for i, (delay, k) in enumerate(groups):
        g = summ[(summ["delay"] == delay) & (summ["k"] == k)]
        T = int(g["T"].iloc[0])
        names.append(f"{arm_label(int(k), T, int(delay))}\n{'+' + str(delay) + ' blank' if delay else 'no delay'}")
        for j, (col, (m, label)) in enumerate(markers.items()):
            v = g[col].to_numpy(np.float64)
            v = v[np.isfinite(v)]
            if v.size:
                xs = i + (j - 1) * 0.22 + np.linspace(-0.05, 0.05, v.size)
                ax.scatter(xs, v, marker=m, color=f"C{j}", s=20, alpha=0.8, label=label if i == 0 or label not in
                           ax.get_legend_handles_labels()[1] else None)
                ax.hlines(np.median(v), i + (j - 1) * 0.22 - 0.09, i + (j - 1) * 0.22 + 0.09, color=f"C{j}")
    ax.axhline(1, color="grey", lw=0.7, ls="--")
    ax.axhline(0, color="grey", lw=0.7)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("least-squares coefficient on the marked value")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return fig


# ---------------------------------------------------------------------- the report

def write(rep, results: dict, s: dict) -> None:
    """Add every section of the report to ``rep``."""
    evo, tb = results["evolution"], results["tbptt"]
    cp, prof, curve, evo_sum = (rows_of(evo, k) for k in ("checkpoint", "profile", "curve", "summary"))
    tb_curve, tb_sum = rows_of(tb, "curve"), rows_of(tb, "summary")
    T, steps = s["T"], s["steps"]
    last = int(cp["step"].max())

    def cell_q(cell, step, col):
        return quartiles(cp[(cp["cell"] == cell) & (cp["step"] == step)][col]) if col in cp else (math.nan,) * 3

    solved = {c: int(evo_sum[evo_sum["cell"] == c]["solved_at"].notna().sum()) for c in CELLS}
    n_seeds = {c: int((evo_sum["cell"] == c).sum()) for c in CELLS}

    # the tbptt numbers the headline and the reading need
    tb_sum = tb_sum.assign(arm=[arm_label(int(k), int(t), int(d)) for k, t, d in zip(tb_sum["k"], tb_sum["T"], tb_sum["delay"])])

    def arm(delay, label):
        return tb_sum[(tb_sum["delay"] == delay) & (tb_sum["arm"] == label)]

    k10, k50, full = arm(0, "k = 10"), arm(0, "k = 50"), arm(0, "full")
    d10, dfull = arm(max(tb_sum["delay"]), "k = 10"), arm(max(tb_sum["delay"]), "full")
    delay = int(max(tb_sum["delay"]))
    mse_k10, mse_d10 = quartiles(k10["mse"]), quartiles(d10["mse"])

    rho0 = {c: cell_q(c, 0, "rho")[1] for c in CELLS}
    rhoL = {c: cell_q(c, last, "rho")[1] for c in CELLS}
    rep.set_headline(
        f"Over {steps} training steps ρ moves from "
        + ", ".join(f"{rho0[c]:.2g} to {rhoL[c]:.2g} ({c})" for c in CELLS)
        + f" per step; BPTT truncated to k = 10 reaches held-out MSE {mse_k10[1]:.3g} on adding T = {int(k10['T'].iloc[0])} "
        f"(floor without longer dependencies {float(k10['floor'].iloc[0]):.3f}; coefficient on X1, ≥ 50 steps back, "
        f"{quartiles(k10['b1'])[1]:.2f}) but {mse_d10[1]:.3g} once {delay} blank steps keep every marker out of its window "
        f"(full BPTT: {quartiles(dfull['mse'])[1]:.3g}).")

    rep.section("Setup")
    rep.text(
        f"Adding problem in the form of Le, Jaitly & Hinton (2015): two input channels (a value U[0, 1] and a marker), one "
        f"marked value X1 in the first half and X2 in the second, target X1 + X2, MSE at chance 1/6 ≈ 0.167, solved at MSE "
        f"≤ {CRITERION} (on {PATIENCE} consecutive training batches). One-layer networks of H = {s['H']} units, linear "
        f"head on the last step, orthogonal initialisation at scale 1, LSTM forget-gate bias 1 (Gers et al. 2000; "
        f"Jozefowicz et al. 2015), GRU biases 0. Adam (lr {TRAIN['lr']}), batch {TRAIN['batch_size']} fresh sequences "
        f"per step, gradient norm clipped at {TRAIN['clip_threshold']}, {evo['dtype'].iloc[0]}. **Evolution sweep**: T = {T}, "
        f"{steps} steps, {s['replicates']} seeds per cell; at steps {', '.join(str(int(x)) for x in sorted(cp['step'].unique()))} "
        f"(0 = initialisation; the measurement is taken after that step's update, inside the training loop, so "
        f"Adam's state is never reset) a fixed probe batch of {s['probe']} sequences gives the profile "
        "‖∂L_T/∂h_{T−k}‖ of the task's own loss relative to its value at k = 0 and its least-squares decay rate ρ "
        "(natural log per step), the top Lyapunov exponent λ₁ of the forward dynamics on the same inputs (QR method; "
        "for the LSTM of the state [h; c]) and the gate activations from the forward trace; "
        f"{s['eval']} held-out sequences give the MSE. **Truncated-BPTT sweep**: the {TBPTT_CELL.upper()} at "
        f"T = {s['tb_T']}, {s['tb_steps']} steps, {s['tb_replicates']} seeds per arm.")

    rep.section("Learning")
    fig = _learning_figure(rep, curve, cp, s)
    rep.add_figure(fig, "learning",
                   caption=(f"MSE of the training batches (median over {s['replicates']} seeds, band: quartiles; "
                            f"median over windows of {s['curve_every']} steps) and of {s['eval']} held-out sequences "
                            "at the checkpoints (dots), T = " f"{T}."),
                   takeaway="Solved within the budget: " + ", ".join(f"{c} {solved[c]}/{n_seeds[c]}" for c in CELLS)
                   + "; held-out MSE at the end " + ", ".join(f"{c} {cell_q(c, last, 'mse')[1]:.3g}" for c in CELLS) + ".")

    rep.section("Gradient profile, decay rate and Lyapunov exponent during training")
    fig, prof_summary = _profiles_figure(rep, prof, T)
    x1 = {c: (cell_q(c, 0, "grad_at_x1")[1], cell_q(c, last, "grad_at_x1")[1]) for c in CELLS}
    rep.add_figure(fig, "profiles",
                   caption=(f"‖∂L_T/∂h_{{T−k}}‖ of the task's loss relative to k = 0 on the probe batch, median over "
                            f"{s['probe']} sequences × {s['replicates']} seeds (bands: quartiles at the first and last "
                            "checkpoint), one line per checkpoint."),
                   takeaway=("The gradient reaching the first marked value (median ratio to ‖∂L/∂h_T‖) went from "
                             + ", ".join(f"{x1[c][0]:.2g} to {x1[c][1]:.2g} ({c})" for c in CELLS) + "."))
    fig = _rho_lambda_figure(rep, cp)
    lam0 = {c: cell_q(c, 0, "lambda1")[1] for c in CELLS}
    lamL = {c: cell_q(c, last, "lambda1")[1] for c in CELLS}
    rep.add_figure(fig, "rho_lambda",
                   caption=f"ρ and λ₁ at every checkpoint, median over {s['replicates']} seeds (band: quartiles).",
                   takeaway=("From initialisation to the end, ρ: " + ", ".join(f"{c} {rho0[c]:.2g} → {rhoL[c]:.2g}" for c in CELLS)
                             + "; λ₁: " + ", ".join(f"{c} {lam0[c]:.2g} → {lamL[c]:.2g}" for c in CELLS) + " per step."))
    rep.add_data(prof_summary, "profiles", describe="median and quartiles of the relative profile per cell, checkpoint and k")

    rep.section("Gates")
    fig = _gates_figure(rep, cp)
    keep0 = {c: cell_q(c, 0, "keep_q50")[1] for c in GATED}
    keepL = {c: cell_q(c, last, "keep_q50")[1] for c in GATED}
    topL = {c: cell_q(c, last, "keep_top_unit")[1] for c in GATED}
    mem = {c: cell_q(c, last, "memory_units")[1] for c in GATED}
    xc = (cell_q("lstm", 0, "grad_c_at_x1")[1], cell_q("lstm", last, "grad_c_at_x1")[1])
    wm = {c: (cell_q(c, last, "write_marker")[1], cell_q(c, last, "write_other")[1]) for c in GATED}
    rep.add_figure(fig, "gates",
                   caption=("Top: distribution of the keep gate over steps, probe sequences and units (median over "
                            "seeds of each quantile) and the mean of its most persistent unit. Bottom: the write gate's "
                            "mean at the two marked steps and elsewhere (median and quartiles over seeds)."),
                   takeaway=("Median keep gate " + ", ".join(f"{c} {keep0[c]:.2f} → {keepL[c]:.2f}" for c in GATED)
                             + "; most persistent unit at the end " + ", ".join(f"{c} {topL[c]:.2f}" for c in GATED)
                             + "; write gate at markers vs elsewhere at the end "
                             + ", ".join(f"{c} {wm[c][0]:.2f} vs {wm[c][1]:.2f}" for c in GATED) + "."))

    fig, cvh = _cell_vs_hidden_figure(rep, prof)
    r0 = (cell_q("lstm", 0, "dc_over_dh_first")[1], cell_q("lstm", 0, "dc_over_dh_last")[1])
    rL = (cell_q("lstm", last, "dc_over_dh_first")[1], cell_q("lstm", last, "dc_over_dh_last")[1])
    rc0, rcL = cell_q("lstm", 0, "rho_c")[1], cell_q("lstm", last, "rho_c")[1]
    rep.add_figure(fig, "lstm_cell_vs_hidden",
                   caption=("LSTM: ‖∂L_T/∂c_{T−k}‖ and ‖∂L_T/∂h_{T−k}‖, both relative to ‖∂L_T/∂h_T‖, at initialisation "
                            f"and after {last} steps (median and quartiles over sequences × seeds)."),
                   takeaway=(f"‖∂L/∂c‖/‖∂L/∂h‖ rises from {r0[0]:.2f} at k = 0 to {r0[1]:.2f} at k = {T - 1} at "
                             f"initialisation ({rL[0]:.2f} → {rL[1]:.2f} after training); ρ of the cell path "
                             f"{rc0:.3g} vs {rho0['lstm']:.3g} of h at initialisation, {rcL:.3g} vs {rhoL['lstm']:.3g} "
                             "after training."))
    rep.add_data(cvh, "lstm_cell_vs_hidden", describe="LSTM: relative ‖∂L/∂h‖ and ‖∂L/∂c‖ per k at the first and last checkpoint")

    table = checkpoint_table(cp)
    rep.add_table(table, caption=("Per cell and checkpoint, medians over seeds ([quartiles]). Keep gate: f (LSTM), 1 − u "
                                  "(GRU); write gate: i (LSTM), u (GRU); top unit: the largest per-unit mean keep gate; "
                                  f"units keep ≥ {MEMORY_KEEP}: units whose mean keep gate is at least {MEMORY_KEEP} "
                                  "(memory of ≳ 10 steps)."))
    rep.add_data(tidy(cp), "checkpoints", describe="one row per network and checkpoint: MSE, ρ, λ₁, gates")
    rep.add_data(tidy(curve), "learning_curves", describe="training-batch MSE per window of steps")
    rep.add_data(tidy(evo_sum), "runs", describe="one row per training run: steps run, step solved, CPU seconds")

    rep.section("Truncated BPTT against full BPTT")
    fig = _tbptt_curves_figure(rep, tb_curve, tb_sum)
    rep.add_figure(fig, "tbptt_curves",
                   caption=(f"{TBPTT_CELL.upper()}, H = {s['tb_H']}: MSE of the training batches, median over "
                            f"{s['tb_replicates']} seeds (band: quartiles). Dotted: the window floor, the best MSE "
                            "of a predictor that uses only the marked values inside the gradient's window. Dashed: "
                            f"solved ({CRITERION})."),
                   takeaway=(f"With k = 10 the held-out MSE ends at {mse_k10[1]:.3g}, "
                             f"{'below' if mse_k10[1] < float(k10['floor'].iloc[0]) else 'not below'} its floor "
                             f"{float(k10['floor'].iloc[0]):.3f}; with {delay} blank steps before the loss it ends at "
                             f"{mse_d10[1]:.3g} against full BPTT's {quartiles(dfull['mse'])[1]:.3g}."))
    fig = _coefficient_figure(rep, tb_sum)
    rep.add_figure(fig, "tbptt_coefficients",
                   caption=("Least-squares coefficients of the trained network's prediction on X1 and on X2 (split by "
                            f"whether X2 lies inside the gradient's window) over {s['tb_eval']} held-out sequences; one "
                            "point per seed, bars at the median. A network that adds the two values has both at 1."),
                   takeaway=(f"No delay: the coefficient on X1 is {quartiles(k10['b1'])[1]:.2f} (k = 10), "
                             f"{quartiles(k50['b1'])[1]:.2f} (k = 50), {quartiles(full['b1'])[1]:.2f} (full); "
                             f"with {delay} blank steps: {quartiles(d10['b1'])[1]:.2f} (k = 10), "
                             f"{quartiles(dfull['b1'])[1]:.2f} (full)."))
    tbt = tbptt_table(tb_sum)
    rep.add_table(tbt, caption=(f"Per arm over {s['tb_replicates']} seeds: window = the last steps the gradient can reach "
                                "(truncation cuts the sequence into windows of k from t = 0, so the loss's window is "
                                "((T + delay − 1) mod k) + 1 steps); gradient reached = the farthest nonzero ‖∂L/∂h_t‖ "
                                "of the last training batch; solved = MSE ≤ 0.01 on "
                                f"{PATIENCE} consecutive batches within {s['tb_steps']} steps; MSE and coefficients: "
                                "median [quartiles] on held-out sequences."))
    rep.add_data(tidy(tb_sum), "tbptt_runs", describe="one row per truncated/full BPTT run")
    rep.add_data(tidy(tb_curve), "tbptt_curves", describe="training-batch MSE per window of steps")

    _reading(rep, locals())


def _reading(rep, v: dict) -> None:
    s, last, solved, n_seeds = v["s"], v["last"], v["solved"], v["n_seeds"]
    rho0, rhoL, lam0, lamL = v["rho0"], v["rhoL"], v["lam0"], v["lamL"]
    keep0, keepL, topL, wm, x1, mem = v["keep0"], v["keepL"], v["topL"], v["wm"], v["x1"], v["mem"]
    r0, rL, rc0, rcL = v["r0"], v["rL"], v["rc0"], v["rcL"]
    cp, k10, k50, full, d10, dfull = v["cp"], v["k10"], v["k50"], v["full"], v["d10"], v["dfull"]
    delay = v["delay"]
    learners = [c for c in GATED if solved[c] > 0]
    gap0 = {c: rho0[c] - lam0[c] for c in CELLS}
    gapL = {c: rhoL[c] - lamL[c] for c in CELLS}
    rep.section("Reading")
    toward_zero = [c for c in learners if abs(rhoL[c]) < abs(rho0[c])]
    tanh_dir = "more negative (faster vanishing)" if rhoL["rnn_tanh"] < rho0["rnn_tanh"] else "closer to zero"
    close0 = max(abs(g) for g in gap0.values()) < 0.05
    slower = [c for c in CELLS if gapL[c] > 0.01]
    dip = {}
    for c in toward_zero:
        med = cp[cp["cell"] == c].groupby("step")["rho"].median()
        if med.min() < rho0[c] - 0.05 and med.idxmin() < last:
            dip[c] = (float(med.min()), int(med.idxmin()))
    xc = v["xc"]
    rep.text(
        "**Gradients during training.** The decay rate of the task's gradient went from "
        + ", ".join(f"{rho0[c]:.2g} to {rhoL[c]:.2g} ({c})" for c in CELLS)
        + " per step, and λ₁ from " + ", ".join(f"{lam0[c]:.2g} to {lamL[c]:.2g} ({c})" for c in CELLS) + ". "
        + (f"The cells that learned the task ({', '.join(toward_zero)}) did so with ρ moving towards 0, to the edge "
           "between vanishing and exploding, and the gradient reaching the first marker X1 rose from "
           + ", ".join(f"{x1[c][0]:.2g} to {x1[c][1]:.2g} of ‖∂L/∂h_T‖ ({c})" for c in toward_zero)
           + (f"; for the LSTM that is the hidden state's share, while the cell carries {xc[0]:.2g} → {xc[1]:.2g} of "
              "‖∂L/∂h_T‖ to the same step" if "lstm" in toward_zero and np.isfinite(xc[1]) else "")
           + ". " if toward_zero else "No cell both learned the task and moved ρ towards 0 within this budget. ")
        + ("".join(f"Before learning, the {c.upper()}'s ρ first fell to {d[0]:.2g} (step {d[1]}): while the network "
                   "predicts the target's mean it forgets faster than at initialisation, and ρ rose only when the "
                   "loss began to fall. " for c, d in dip.items()))
        + f"The tanh RNN solved {solved['rnn_tanh']}/{n_seeds['rnn_tanh']} runs and ended with ρ {tanh_dir} than at "
        f"initialisation; the gradient reaching its first marker ended at {x1['rnn_tanh'][1]:.2g} of ‖∂L/∂h_T‖, so its "
        "updates are driven by the last steps of the sequence. "
        + ("At initialisation ρ follows λ₁ closely" if close0 else "At initialisation ρ and λ₁ differ")
        + " (ρ − λ₁ = " + ", ".join(f"{gap0[c]:.2g} ({c})" for c in CELLS) + "); after training the gap is "
        + ", ".join(f"{gapL[c]:.2g} ({c})" for c in CELLS) + ". "
        + (f"For {', '.join(slower)} the trained task gradient decays more slowly than λ₁: λ₁ is the asymptotic rate "
           "of a generic direction averaged over the whole probe trajectory, while ρ is a "
           f"{s['T']}-step fit of the gradient along the readout direction, which training has tied to the slow "
           "(memory) directions." if slower else
           "ρ stays within 0.05 per step of λ₁ through training." if max(abs(g) for g in gapL.values()) < 0.05 else
           "ρ and λ₁ part during training: λ₁ is an asymptotic rate averaged over the whole probe trajectory, ρ a "
           f"{s['T']}-step fit along the readout direction."))
    responds = [c for c in GATED if wm[c][0] > wm[c][1] + 0.02]
    rep.text(
        "**Gates.** The LSTM starts with its forget gate near σ(1) ≈ 0.73 (forget bias 1, which Gers et al. 2000 "
        "introduced with the gate and Jozefowicz et al. 2015 recommend), a memory of about 1/(1 − 0.73) ≈ 4 steps "
        f"per unit; its median forget gate went from {keep0['lstm']:.2f} to {keepL['lstm']:.2f} and its most "
        f"persistent unit to {topL['lstm']:.2f}. The GRU's keep gate 1 − u started at {keep0['gru']:.2f} and ended "
        f"at {keepL['gru']:.2f} (most persistent unit {topL['gru']:.2f}). "
        + (f"Training did not raise the keep gate of every unit: the median number of units out of {s['H']} whose mean "
           f"keep gate reached {MEMORY_KEEP} was {mem['lstm']:.0f} (LSTM) and {mem['gru']:.0f} (GRU) at the end — "
           "a few memory units, the rest free to forget. " if 0 < max(mem.values()) < s["H"] / 2 else
           f"The median number of units out of {s['H']} whose mean keep gate reached {MEMORY_KEEP} was "
           f"{mem['lstm']:.0f} (LSTM) and {mem['gru']:.0f} (GRU) at the end. ")
        + "At the end the write gate was "
        + ", ".join(f"{wm[c][0]:.2f} at the marked steps against {wm[c][1]:.2f} elsewhere ({c})" for c in GATED)
        + (f": the write gate of the {' and the '.join(c.upper() for c in responds)} opens wider when a value must be "
           "stored, and the keep gate holds it in between — the division of labour Gers et al. designed the forget "
           "gate for. " if responds else ": the write gates do not (yet) single out the marked steps. ")
        + f"Within {s['steps']} steps the LSTM solved {solved['lstm']}/{n_seeds['lstm']} runs and the GRU "
        f"{solved['gru']}/{n_seeds['gru']}; Jozefowicz et al. found that a forget bias of 1 brings the LSTM close to "
        "the GRU on their tasks, and here "
        + ("neither solved the task within this budget. " if solved["lstm"] == solved["gru"] == 0 else
           "the LSTM matched the GRU's success rate. " if solved["lstm"] >= solved["gru"] else
           "the GRU learned in more runs within this short budget. ")
        + f"The LSTM's ‖∂L/∂c‖/‖∂L/∂h‖ goes from {r0[0]:.2f} at the loss (∂L/∂c_T = o ⊙ tanh′(c_T) ⊙ ∂L/∂h_T) to "
        f"{r0[1]:.2f} at k = {s['T'] - 1} at initialisation ({rL[0]:.2f} → {rL[1]:.2f} after training)"
        + (": farther back the cell path, gated only by f, carries more of the gradient than the hidden state, "
           "whose path goes through the gates' derivatives and W_h" if r0[1] > max(r0[0], 1.0) else "")
        + f". The fitted rates are ρ_c = {rc0:.3g} against ρ_h = {rho0['lstm']:.3g} at initialisation and "
        f"{rcL:.3g} against {rhoL['lstm']:.3g} after training.")
    floor10 = float(k10["floor"].iloc[0]) if len(k10) else math.nan
    b1_10, b1_d10 = quartiles(k10["b1"])[1], quartiles(d10["b1"])[1]
    mse10, mse_d10, mse_df = quartiles(k10["mse"])[1], quartiles(d10["mse"])[1], quartiles(dfull["mse"])[1]
    reach_ok = bool((v["tb_sum"]["grad_reach"] + 1 == v["tb_sum"]["window"]).all())
    learned_long = mse10 < floor10 and b1_10 > 0.5
    failed_delay = mse_d10 > 0.5 * CHANCE and abs(b1_d10) < 0.5
    rep.text(
        "**Truncated BPTT.** Williams & Peng (1990) truncate the backward pass to the last k steps: the gradient of a "
        "parameter then contains no path longer than k"
        + (", as the records confirm (in every run the last batch's gradient reached exactly the window's length). "
           if reach_ok else "; the records show a gradient beyond the window in some runs (see the table). ")
        + "The expectation is that a dependency longer than k cannot be learned from the gradient. "
        f"On the plain adding problem the data {'contradict' if learned_long else 'agree with'} that reading: with "
        f"k = 10 the held-out MSE was {mse10:.3g} against a floor of {floor10:.3f} for a network that uses only what "
        f"its window sees, and the coefficient on X1, always ≥ 50 steps back, was {b1_10:.2f} ({solved_str(k10)} "
        f"solved within {s['tb_steps']} steps, against {solved_str(full)} with full BPTT, median step "
        f"{_fmt(full['solved_at'].median())}, and {solved_str(k50)} with k = 50, median step "
        f"{_fmt(k50['solved_at'].median())}"
        + ("; truncation slowed learning" if k50["solved_at"].median() > full["solved_at"].median() else "")
        + "). "
        + ("The reason is weight sharing: in a fifth of the sequences X2 falls inside the last 10 steps, and the "
           "in-window gradient teaches the network to write a marked value into a slowly decaying unit and to keep "
           "what the carried-in state holds; the same weights then store X1 fifty steps earlier, where no gradient "
           "ever reached. " if learned_long else "")
        + f"With {delay} blank steps between the sequence and the loss no marked value ever falls inside the 10-step "
        f"window, and there truncated BPTT {'failed' if failed_delay else 'still learned'}: held-out MSE {mse_d10:.3g} "
        f"(chance {CHANCE:.3f}), coefficient on X1 {b1_d10:.2f}, {solved_str(d10)} solved, while full BPTT solved "
        f"{solved_str(dfull)} (MSE {mse_df:.3g}). "
        + ("So the limit that truncation imposes is on what the gradient can *discover*: a dependency longer than k "
           "is out of reach when no instance of it fits in the window, but a time-invariant rule learned from the "
           "instances that do fit extends to longer ones — truncation biases the gradient (Tallec & Ollivier 2017) "
           "rather than imposing a hard horizon." if learned_long and failed_delay else
           "At this budget the runs do not separate the two cases the way the argument above predicts; see the table."))


def solved_str(g: pd.DataFrame) -> str:
    """``"n/N"`` runs of ``g`` that reached the criterion."""
    return f"{int(g['solved_at'].notna().sum())}/{len(g)}"
