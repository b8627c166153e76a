"""Figures, tables and the reading of the ``clipping`` study (kept apart from its grid point)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .clipping import PASCANU_THRESHOLD, POLICIES, TASK_LABELS, TASKS, policy_summary, run_summary

LOSS_CLAMP = (1e-3, 1e8)
NORM_CLAMP = (1e-4, 1e12)
SPIKE = 10.0  # a run spikes when some batch loss exceeds SPIKE × its first batch loss (or it diverges)
CELL_COLORS = {"rnn_tanh": "tab:blue", "gru": "tab:green", "lstm": "tab:red"}
POLICY_COLORS = {"none": "black", "norm 0.25": "tab:purple", "norm 1": "tab:blue", "norm 4": "tab:cyan",
                 "value 0.1": "tab:orange", "step 0.01": "tab:olive"}


def _pct(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{100 * x:.0f} %"


def _count(k: int, n: int) -> str:
    return f"{k}/{n}"


def spike_table(steps: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per run: the largest batch loss over the first one (inf when the loss overflowed) and whether it spiked."""
    def one(g):
        loss = g["loss"].to_numpy()
        peak = np.inf if not np.all(np.isfinite(loss)) else float(np.max(loss))
        return pd.Series({"peak_over_first": peak / loss[0]})

    sp = steps.groupby(["task", "cell", "policy", "pair"], sort=False).apply(one, include_groups=False).reset_index()
    out = runs.merge(sp, on=["task", "cell", "policy", "pair"])
    out["spiked"] = out["diverged"].astype(bool) | (out["peak_over_first"] >= SPIKE)
    return out


# ---------------------------------------------------------------------- figures

def _loss_figure(rep, steps: pd.DataFrame, runs: pd.DataFrame, task: str, cells, policies):
    fig, axes = rep.figure(len(cells), len(policies), width=2.6, height=2.1, sharex=True, sharey=True, squeeze=False)
    pairs = sorted(steps["pair"].unique())
    cmap = __import__("matplotlib").pyplot.get_cmap("tab10")
    lo, hi = LOSS_CLAMP
    sub = steps[steps["task"] == task]
    finite = sub["loss"][np.isfinite(sub["loss"])]
    top = hi if (len(finite) < len(sub) or not len(finite)) else float(np.clip(finite.max() * 3, 10.0, hi))
    for i, cell in enumerate(cells):
        for j, policy in enumerate(policies):
            ax = axes[i, j]
            panel = sub[(sub["cell"] == cell) & (sub["policy"] == policy)]
            for p in pairs:
                g = panel[panel["pair"] == p]
                if not len(g):
                    continue
                loss = g["loss"].to_numpy()
                shown = np.clip(np.where(np.isfinite(loss), loss, hi), lo, hi)
                ax.plot(g["step"], shown, color=cmap(p % 10), lw=0.7, alpha=0.85)
                r = runs[(runs["task"] == task) & (runs["cell"] == cell) & (runs["policy"] == policy)
                         & (runs["pair"] == p)].iloc[0]
                if r["diverged"]:
                    ax.plot(g["step"].iloc[-1], shown[-1], "x", color="red", ms=7, mew=1.8)
                elif r["solved"]:
                    ax.plot(g["step"].iloc[-1], shown[-1], "o", color=cmap(p % 10), ms=4)
            ax.set_yscale("log")
            ax.set_ylim(lo, top * 3)
            if top == hi:
                ax.axhline(hi, color="grey", lw=0.5, ls=":")
            ax.grid(alpha=0.3, which="major")
            if i == 0:
                ax.set_title(policy, fontsize=9)
            if i == len(cells) - 1:
                ax.set_xlabel("training step")
            if j == 0:
                ax.set_ylabel(f"{cell}\nbatch loss ({'MSE' if task == 'adding' else 'nats'})", fontsize=8)
    return fig


def _norm_ecdf_figure(rep, steps: pd.DataFrame, cells, policies):
    fig, axes = rep.figure(len(TASKS), len(cells), width=3.4, height=2.8, sharex=True, sharey=True, squeeze=False)
    lo, hi = NORM_CLAMP
    thresholds = sorted({t for p in policies for c, t in [POLICIES[p]] if c == "norm"})
    for i, task in enumerate(TASKS):
        for j, cell in enumerate(cells):
            ax = axes[i, j]
            panel = steps[(steps["task"] == task) & (steps["cell"] == cell)]
            for policy in policies:
                n = panel.loc[panel["policy"] == policy, "grad_norm"].to_numpy()
                n = np.sort(np.clip(np.where(np.isnan(n), hi, n), lo, hi))
                if len(n):
                    ax.step(n, np.arange(1, len(n) + 1) / len(n), where="post", color=POLICY_COLORS[policy],
                            lw=1.1, label=policy)
            for t in thresholds:
                ax.axvline(t, color="grey", lw=0.7, ls="--")
            ax.set_xscale("log")
            ax.set_xlim(lo, hi)
            ax.grid(alpha=0.3)
            ax.set_title(f"{task.replace('_', ' ')}, {cell}", fontsize=9)
            if i == len(TASKS) - 1:
                ax.set_xlabel("pre-clip gradient norm ‖g‖₂ (per step)")
            if j == 0:
                ax.set_ylabel("fraction of steps ≤ x")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    return fig


def _success_figure(rep, pol: pd.DataFrame, cells, policies):
    fig, axes = rep.figure(2, len(TASKS), width=5.2, height=2.9, sharex=True, squeeze=False)
    x = np.arange(len(policies))
    width = 0.8 / len(cells)
    for j, task in enumerate(TASKS):
        for k, cell in enumerate(cells):
            s = pol[(pol["task"] == task) & (pol["cell"] == cell)].set_index("policy").reindex(list(policies))
            off = x + (k - (len(cells) - 1) / 2) * width
            rate = s["success_rate"].to_numpy(float)
            axes[0, j].errorbar(off, rate, yerr=[rate - s["success_low"], s["success_high"] - rate], fmt="o",
                                color=CELL_COLORS[cell], ms=4, capsize=2, lw=1, label=cell)
            med = s["steps_to_solve_median"].to_numpy(float)
            axes[1, j].errorbar(off, med, yerr=[med - s["steps_to_solve_q25"], s["steps_to_solve_q75"] - med],
                                fmt="s", color=CELL_COLORS[cell], ms=4, capsize=2, lw=1, label=cell)
        axes[0, j].set_title(TASK_LABELS[task], fontsize=9)
        axes[0, j].set_ylim(-0.05, 1.05)
        axes[0, j].set_ylabel("runs solved (fraction)")
        axes[1, j].set_ylabel("steps to solve (solved runs)")
        axes[1, j].set_xticks(x, list(policies), rotation=30, fontsize=8)
        axes[1, j].set_xlabel("clipping policy")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    return fig


def _frequency_figure(rep, runs: pd.DataFrame, cells, policies):
    fig, axes = rep.figure(2, len(TASKS), width=5.2, height=2.7, sharex=True, squeeze=False)
    x = np.arange(len(policies))
    width = 0.8 / len(cells)
    for j, task in enumerate(TASKS):
        for k, cell in enumerate(cells):
            g = runs[(runs["task"] == task) & (runs["cell"] == cell)].groupby("policy")
            off = x + (k - (len(cells) - 1) / 2) * width
            med = g["clipped_fraction"].median().reindex(list(policies)).to_numpy(float)
            q1 = g["clipped_fraction"].quantile(0.25).reindex(list(policies)).to_numpy(float)
            q3 = g["clipped_fraction"].quantile(0.75).reindex(list(policies)).to_numpy(float)
            axes[0, j].bar(off, med, width, color=CELL_COLORS[cell], alpha=0.8, label=cell)
            axes[0, j].errorbar(off, med, yerr=[med - q1, q3 - med], fmt="none", ecolor="black", lw=0.8, capsize=1.5)
            div = g["diverged"].sum().reindex(list(policies)).to_numpy(float)
            nf = g["nonfinite_steps"].sum().reindex(list(policies)).to_numpy(float)
            n = g.size().reindex(list(policies)).to_numpy(float)
            axes[1, j].bar(off, div / n, width, color=CELL_COLORS[cell], alpha=0.8, label=cell)
            for xx, d, f in zip(off, div, nf):
                if f > 0:
                    axes[1, j].annotate(f"{int(f)}", (xx, d / n.max()), textcoords="offset points", xytext=(0, 2),
                                        ha="center", fontsize=6)
        axes[0, j].set_title(TASK_LABELS[task], fontsize=9)
        axes[0, j].set_ylabel("steps clipped (fraction)")
        axes[0, j].set_ylim(0, 1.05)
        axes[1, j].set_ylabel("runs diverged (fraction)")
        axes[1, j].set_ylim(0, 1.05)
        axes[1, j].set_xticks(x, list(policies), rotation=30, fontsize=8)
        axes[1, j].set_xlabel("clipping policy")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3, axis="y")
    axes[0, 0].legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------- tables

def _report_table(pol: pd.DataFrame, spikes: pd.DataFrame) -> pd.DataFrame:
    sp = spikes.groupby(["task", "cell", "policy"], sort=False)["spiked"].sum()

    def iqr(r):
        if not r["solved"]:
            return "–"
        return f"{r['steps_to_solve_median']:.0f} [{r['steps_to_solve_q25']:.0f}, {r['steps_to_solve_q75']:.0f}]"

    return pd.DataFrame({
        "task": pol["task"].str.replace("_", " "), "cell": pol["cell"], "policy": pol["policy"],
        "solved": [_count(k, n) for k, n in zip(pol["solved"], pol["runs"])],
        "95 % interval": [f"{lo:.2f}–{hi:.2f}" for lo, hi in zip(pol["success_low"], pol["success_high"])],
        "steps to solve, median [IQR]": [iqr(r) for _, r in pol.iterrows()],
        "spiked (≥10× first loss)": [int(sp.loc[key]) for key in zip(pol["task"], pol["cell"], pol["policy"])],
        "diverged": pol["diverged"], "non-finite steps": pol["nonfinite_steps"],
        "steps clipped (median)": [_pct(v) for v in pol["clipped_fraction_median"]],
        "applied ÷ pre-clip norm (median)": pol["step_shrink_median"],
        "‖g‖ median": pol["norm_median"], "‖g‖ 99th pct (median run)": pol["norm_q99_median"],
        "‖g‖ max": pol["norm_max"], "held-out metric (median)": pol["test_metric_median"],
    })


def _pooled(runs: pd.DataFrame, spikes: pd.DataFrame, policies) -> pd.DataFrame:
    g = spikes.groupby("policy")
    out = pd.DataFrame({"runs": g.size(), "solved": g["solved"].sum(), "diverged": g["diverged"].sum(),
                        "spiked": g["spiked"].sum()}).reindex(list(policies))
    return out


# ---------------------------------------------------------------------- the report

def write(rep, steps: pd.DataFrame, s: dict) -> None:
    """Fill ``rep`` with the figures, tables and reading of the study's sweep."""
    cells = [c for c in s["cells"] if c in set(steps["cell"])]
    policies = [p for p in s["policies"] if p in set(steps["policy"])]
    runs = run_summary(steps)
    pol = policy_summary(runs)
    spikes = spike_table(steps, runs)
    pooled = _pooled(runs, spikes, policies)
    n_cells = len(TASKS) * len(cells)

    none = pooled.loc["none"]
    clipped_pols = [p for p in policies if p != "none"]
    top = max(int(pooled.loc[p, "solved"]) for p in clipped_pols)
    best = " and ".join(p for p in clipped_pols if int(pooled.loc[p, "solved"]) == top)
    pas = "norm 1" if "norm 1" in policies else clipped_pols[0]
    rep.set_headline(
        f"Over {n_cells} task × cell combinations × {s['pairs']} seeds with an exploding initialisation "
        f"(scale {s['scale']:g}) and SGD+momentum at lr {s['lr']:g}, no clipping solved {int(none['solved'])}/"
        f"{int(none['runs'])} runs and diverged in {int(none['diverged'])}; global-norm clipping at 1 solved "
        f"{int(pooled.loc[pas, 'solved'])}/{int(pooled.loc[pas, 'runs'])} and diverged in "
        f"{int(pooled.loc[pas, 'diverged'])}; the most runs solved under a clipping policy: {top}/"
        f"{int(pooled.loc[pas, 'runs'])} ({best}).")

    # ------------------------------------------------------------------ setup
    rep.section("Setup")
    thr = ", ".join(f"{p}" for p in clipped_pols)
    rep.text(
        f"Networks: one layer of H = {s['H']} units ({', '.join(cells)}), orthogonal recurrent blocks scaled to "
        f"a largest singular value of {s['scale']:g} (an exploding initialisation: the top Lyapunov exponent of "
        f"the tanh RNN is positive there, see the vanishing_exploding study), many-to-one head. Tasks at T = "
        f"{s['T']}: the adding problem in the Le et al. (2015) form (values U[0, 1], target X1 + X2, solved when the "
        f"batch MSE ≤ 0.01; chance 0.167) and the temporal-order problem of Hochreiter & Schmidhuber (1997, 4 "
        f"classes; solved when a whole batch of {s['B']} is classified correctly; chance 0.25). Training: SGD with "
        f"heavy-ball momentum {s['momentum']:g} at the aggressive learning rate {s['lr']:g}, batches of {s['B']} "
        f"fresh sequences, at most {s['steps']} steps, stopping once the criterion has held for {s['patience']} "
        f"consecutive batches (the run is then *solved* at that step); a run *diverges* when its loss or its "
        f"parameters overflow (training stops there). A non-finite gradient is never applied (skipped and counted). "
        f"Policies: none, {thr} — `norm τ` rescales the whole gradient to norm τ when above it (Pascanu et al. "
        f"2013), `value v` clips every element to [−v, v], `step v` clips ∂L/∂h_t (and the LSTM's ∂L/∂c_t) "
        f"elementwise inside BPTT at every step; value and step thresholds are in the units of the batch-mean loss. "
        f"Run k of every policy starts from the same weights and sees the same batches (common random numbers), so "
        f"the policies are compared on paired runs. The held-out metric is measured after training on "
        f"{s['test_batch']} fresh sequences.")

    # ------------------------------------------------------------------ loss curves
    rep.section("Loss curves: spikes and divergence")
    for task in TASKS:
        fig = _loss_figure(rep, steps, runs, task, cells, policies)
        sp = spikes[spikes["task"] == task].groupby("policy")["spiked"].agg(["sum", "size"]).reindex(policies)
        parts = [f"{p} {int(sp.loc[p, 'sum'])}/{int(sp.loc[p, 'size'])}" for p in policies]
        rep.add_figure(
            fig, f"loss_{task}",
            caption=(f"{TASK_LABELS[task]}, T = {s['T']}: batch loss per step of every run (one colour per seed, "
                     f"the same seed across a row's policies), log scale; × marks a diverged run's last step, a dot a "
                     f"solved run's; losses above {LOSS_CLAMP[1]:.0e} or non-finite are drawn at that level "
                     "(dotted line, if any)."),
            takeaway=(f"Runs whose loss rose to at least {SPIKE:g}× its first value or diverged: " + ", ".join(parts)
                      + "."))

    # ------------------------------------------------------------------ pre-clip norms
    rep.section("How large do the gradients get?")
    fig = _norm_ecdf_figure(rep, steps, cells, policies)
    none_runs = runs[runs["policy"] == "none"]
    exceeded = int(none_runs["exceeded_pascanu"].sum())
    big = runs.assign(big=runs["norm_max"] > 100).groupby("policy")["big"].agg(["sum", "size"]).reindex(policies)
    rep.add_figure(
        fig, "grad_norms",
        caption=("Empirical distribution (ECDF) of the gradient norm before clipping, over every step of every run, "
                 f"per policy; log x; dashed lines: the global-norm thresholds. Norms above {NORM_CLAMP[1]:.0e} "
                 "or non-finite are drawn at the right edge."),
        takeaway=(f"The unclipped runs exceeded the cutoff of {PASCANU_THRESHOLD:g} at least once in {exceeded}/"
                  f"{len(none_runs)} runs; runs whose pre-clip norm ever exceeded 100: "
                  + ", ".join(f"{p} {int(big.loc[p, 'sum'])}/{int(big.loc[p, 'size'])}" for p in policies) + "."))

    # ------------------------------------------------------------------ success
    rep.section("Success rate and steps to solve")
    fig = _success_figure(rep, pol, cells, policies)
    rep.add_figure(
        fig, "success",
        caption=(f"Top: fraction of the {s['pairs']} runs per cell that solved the task, with the 95 % Wilson score "
                 "interval. Bottom: steps to solve among the solved runs, median and quartiles (no marker: no run "
                 "solved)."),
        takeaway=("Runs solved, pooled over tasks and cells: "
                  + ", ".join(f"{p} {int(pooled.loc[p, 'solved'])}/{int(pooled.loc[p, 'runs'])}" for p in policies)
                  + "."))

    # ------------------------------------------------------------------ clipping frequency
    rep.section("How often each policy clipped, and non-finite gradients")
    fig = _frequency_figure(rep, runs, cells, policies)
    cf = runs.groupby("policy")["clipped_fraction"].median().reindex(policies)
    nf_total = int(runs["nonfinite_steps"].sum())
    rep.add_figure(
        fig, "clip_frequency",
        caption=("Top: fraction of a run's steps at which the policy changed the gradient (median over runs, bars; "
                 "quartiles, whiskers); for `step` the flag means some ‖∂L/∂h_t‖ exceeded v, necessary for the "
                 "elementwise clip to bind. Bottom: fraction of runs that diverged; the number above a bar is the "
                 "count of steps with a non-finite loss or gradient."),
        takeaway=("Median fraction of steps clipped: " + ", ".join(f"{p} {_pct(cf[p])}" for p in clipped_pols)
                  + f"; {nf_total} non-finite steps in all."))

    rep.section("Numbers")
    rep.add_table(_report_table(pol, spikes), caption=(
        f"Per task, cell and policy over {s['pairs']} seeds. solved: runs that met the criterion, with the 95 % "
        "Wilson interval of the rate; steps to solve: median and quartiles over the solved runs; spiked: runs whose "
        f"loss reached {SPIKE:g}× its first value or diverged; ‖g‖: pre-clip gradient norm; held-out metric: MSE "
        "(adding) or accuracy (temporal order) on fresh sequences after training."))
    rep.add_data(runs, "runs", describe="one row per run: outcome, steps to solve, clipped fraction, non-finite "
                                        "steps, pre-clip norm quantiles, head share at the peak, held-out metric")
    rep.add_data(pol, "policies", describe="per task, cell and policy: success rate and Wilson interval, steps to "
                                           "solve (median, quartiles), divergences, clipping")
    keep = steps[(steps["step"] % 10 == 0) | (steps["step"] == 1) | ~np.isfinite(steps["loss"])
                 | steps["nonfinite"].astype(bool)]
    rep.add_data(keep[["task", "cell", "policy", "pair", "step", "loss", "metric", "grad_norm", "clipped",
                       "nonfinite", "applied_norm"]], "curves",
                 describe="every 10th step of every run (and its first and any non-finite step): loss, metric, "
                          "pre-clip and applied gradient norm, clip and non-finite flags")

    # ------------------------------------------------------------------ reading
    rep.section("Reading, and the comparison with Pascanu et al. (2013)")
    _reading(rep, steps, runs, spikes, pooled, s, cells, policies)


def _reading(rep, steps, runs, spikes, pooled, s, cells, policies) -> None:
    clipped_pols = [p for p in policies if p != "none"]
    norm_pols = [p for p in clipped_pols if POLICIES[p][0] == "norm"]
    none = pooled.loc["none"]
    none_runs = runs[runs["policy"] == "none"]
    norm_rows = steps[steps["clip"] == "norm"]
    worst_ratio = float((norm_rows["applied_norm"] / norm_rows["threshold"]).max()) if len(norm_rows) else np.nan
    paired = spikes.pivot_table(index=["task", "cell", "pair"], columns="policy", values="solved", aggfunc="first")
    base = paired["none"].astype(bool)
    rescued_by = {p: int((~base & paired[p].astype(bool)).sum()) for p in clipped_pols}
    lost_by = {p: int((base & ~paired[p].astype(bool)).sum()) for p in clipped_pols}
    div_none = int(none["diverged"])
    div = {p: int(pooled.loc[p, "diverged"]) for p in clipped_pols}
    spk = {p: int(pooled.loc[p, "spiked"]) for p in policies}

    rep.text(
        f"**What clipping did here.** Without clipping, {spk['none']} of {int(none['runs'])} runs spiked "
        f"(loss ≥ {SPIKE:g}× its first value) and {div_none} diverged. Global-norm clipping bounds every applied "
        f"update: the largest gradient norm the optimiser received under it was {worst_ratio:.4f} × τ (measured "
        "inside the optimiser), so no clipped step exceeds lr·τ before momentum, and the runs that diverged under it "
        "numbered " + ", ".join(f"{div[p]} ({p})" for p in norm_pols) + f", the runs that spiked "
        + ", ".join(f"{spk[p]} ({p})" for p in norm_pols) + ". "
        f"On the same seeds ({len(paired)} paired runs), a clipping policy solved a run the unclipped one did not in "
        + ", ".join(f"{rescued_by[p]} ({p})" for p in clipped_pols)
        + " pairs, and failed a run the unclipped one solved in "
        + ", ".join(f"{lost_by[p]} ({p})" for p in clipped_pols) + " pairs.")

    # where the large gradients came from
    first_gain = none_runs.groupby("cell")["gain_first"].median().reindex(cells)
    typical_gain = none_runs.groupby("cell")["gain_median"].median().reindex(cells)
    diverged_none = none_runs[none_runs["diverged"].astype(bool)]
    parts = [f"At the first step, ‖∂L/∂h_1‖/‖∂L/∂h_T‖ (median over seeds) was "
             + ", ".join(f"{first_gain[c]:.3g} ({c})" for c in cells)
             + f" over T = {s['T']} steps: "
             + ("only " + " and ".join(c for c in cells if first_gain[c] > 1)
                + " started with a gradient that grows on its way back through time, the exploding regime of "
                  "Pascanu et al.; the others' gates shrink it even at this scale."
                if (first_gain > 1).any() else "no cell started with a gradient that grows back through time.")]
    saturated = "rnn_tanh" in cells and typical_gain["rnn_tanh"] < 1e-6
    if "rnn_tanh" in cells:
        parts.append(f"During the unclipped tanh runs the same ratio was a median {typical_gain['rnn_tanh']:.2g} "
                     "at a typical step" + (": the units saturate after the first updates, and the gradient "
                                            "through time vanishes instead." if saturated else "."))
    if len(diverged_none):
        share = float(diverged_none["head_share_last20"].median())
        parts.append(
            f"In the {len(diverged_none)} unclipped runs that diverged ("
            + ", ".join(f"{k} {c}" for c, k in diverged_none["cell"].value_counts().items())
            + f"), the output layer held a median {_pct(share)} of the squared gradient norm over their last 20 steps"
            + (": the loss blew up through the linear readout, consistent with a readout step too large for "
               "saturated hidden features (|h| ≈ 1), a state the first, exploding updates had led to."
               if share > 0.5 and saturated else "."))
    rep.text("**Where the large gradients came from.** " + " ".join(parts))

    # the gated cells: clipping without explosion
    gated = []
    for cell in [c for c in cells if c != "rnn_tanh"]:
        nr = none_runs[none_runs["cell"] == cell]
        mx = float(nr["norm_max"].max())
        k_none = int(nr["solved"].sum())
        per = runs[runs["cell"] == cell].groupby("policy")["solved"].sum().reindex(policies)
        n = len(nr)
        text = (f"The unclipped {cell} reached a largest pre-clip norm of {mx:.3g} and solved {k_none}/{n} runs; "
                + ", ".join(f"{p} solved {int(per[p])}/{n}" for p in clipped_pols) + ".")
        gated.append(text)
    calm = [c for c in cells if c != "rnn_tanh"
            and float(none_runs.loc[none_runs["cell"] == c, "norm_max"].max()) < 10
            and runs[(runs["cell"] == c) & (runs["policy"] != "none")].groupby("policy")["solved"].sum().max()
            > int(none_runs.loc[none_runs["cell"] == c, "solved"].sum())]
    if calm:
        shrink = runs.groupby("policy")["step_shrink"].median().reindex(clipped_pols)
        smallest = min(norm_pols, key=lambda p: POLICIES[p][1]) if norm_pols else None
        gated.append(
            f"For the {' and '.join(calm)} the unclipped gradient never exceeded 10, so clipping cannot have rescued "
            "those runs from an explosion, yet some clipping policy solved more of them: clipping shortens the steps "
            + (f"(under `{smallest}` the median applied gradient was {shrink[smallest]:.2g}× the pre-clip one), "
               if smallest else "")
            + "which acts like a smaller learning rate on the steps it touches — with an aggressive rate, that "
              "alone can decide success.")
    if gated:
        rep.text("**The gated cells.** " + " ".join(gated))

    extra = []
    if "step 0.01" in policies:
        extra.append(
            "Per-step clipping bounds only the messages ∂L/∂h_t travelling back through time; the output layer's "
            f"gradient and the sum over steps are left unbounded: it spiked in {spk['step 0.01']} runs and diverged "
            f"in {div['step 0.01']} (against {spk['none']} and {div_none} without clipping).")
    if "value 0.1" in policies:
        extra.append(f"Elementwise value clipping, which also turns the gradient's direction, spiked in "
                     f"{spk['value 0.1']} runs, diverged in {div['value 0.1']} and solved "
                     f"{int(pooled.loc['value 0.1', 'solved'])}/{int(pooled.loc['value 0.1', 'runs'])}.")
    if extra:
        rep.text(" ".join(extra))

    gated_n1 = runs[(runs["policy"] == "norm 1") & (runs["cell"] != "rnn_tanh")]
    n1_frac = float(gated_n1["clipped_fraction"].median()) if len(gated_n1) else float("nan")
    gated_none = none_runs[none_runs["cell"] != "rnn_tanh"]
    gated_norm = float(gated_none["norm_median"].median()) if len(gated_none) else float("nan")
    tanh_solved = int(runs[runs["cell"] == "rnn_tanh"]["solved"].sum()) if "rnn_tanh" in cells else 0
    tanh_n = int((runs["cell"] == "rnn_tanh").sum())
    removed = all(div[p] == 0 for p in norm_pols)
    rep.text(
        "**Against Pascanu et al. (2013).** They explain exploding gradients as steep walls of the loss surface, "
        "where an ordinary step throws the parameters far away, and propose rescaling the gradient to a fixed norm "
        "whenever it exceeds a cutoff, which bounds the step without changing its direction; they suggest setting "
        "the cutoff from the average gradient norm, and they test it with minibatch SGD on the synthetic problems of "
        "Hochreiter & Schmidhuber (1997), the adding and temporal-order problems among them. "
        + (f"gradlab agrees on the mechanism: where the unclipped runs diverged, norm clipping "
           + ("removed every divergence" if removed else "reduced the divergences")
           + f" ({div_none} without clipping; " + ", ".join(f"{div[p]} at τ = {POLICIES[p][1]:g}" for p in norm_pols)
           + "). " if div_none else
           "No unclipped run diverged here, so the comparison rests on spikes and success rates. ")
        + f"It does not follow that clipping makes the task solvable: the tanh RNN solved {tanh_solved} of {tanh_n} "
          f"runs over all policies within {s['steps']} steps, so for it clipping bought stability, not success — in "
          "line with their argument that clipping treats only the exploding side, with a separate regulariser (not "
          "in gradlab) for the vanishing side. "
        + (f"The median pre-clip norm of the unclipped gated runs was {gated_norm:.2g}, so τ = 1 is "
           f"{1 / gated_norm:.2g}× the typical norm (their heuristic puts the cutoff near the average norm); "
           f"`norm 1` clipped a median {_pct(n1_frac)} of those cells' steps. "
           if np.isfinite(n1_frac) and np.isfinite(gated_norm) else "")
        + "The setup differs from theirs in ways that "
          f"matter: T = {s['T']} rather than 50–200, H = {s['H']} rather than 50 units, {s['steps']} steps rather "
          f"than millions of sequences, momentum {s['momentum']:g} where they used plain minibatch SGD, gated cells "
          "besides the tanh RNN, a deliberately exploding initialisation, and success judged on consecutive training "
          "batches rather than a test set; the success rates here are therefore not comparable number for number "
          "with theirs.")
