"""Figures, tables and the reading of the ``long_range`` study (kept apart from its grid points)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .long_range import CELLS, COLORS, TASK_TITLES, TASKS, longest_solved, run_summary, success_table

CELL_LABELS = {"rnn_tanh": "tanh RNN", "irnn": "IRNN (ReLU, identity init)", "gru": "GRU", "lstm": "LSTM"}
METRIC_LABELS = {"mse": "held-out MSE", "fraction_correct": "held-out fraction correct (|error| < 0.04)",
                 "recall_accuracy": "held-out recall accuracy"}
#: H&S (1997, experiment 4): mean training sequences before their stop criterion held at T = 100.
HS_SEQUENCES_T100 = 74_000


def _offset(T: np.ndarray, i: int, n: int) -> np.ndarray:
    """Spread the cells' markers around each T on a log axis so that they do not hide each other."""
    return T * 2 ** (0.07 * (i - (n - 1) / 2))


def _log_T_axis(ax, Ts) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xlim(min(Ts) / 1.5, max(Ts) * 1.5)
    ax.set_xticks(list(Ts), [str(t) for t in Ts])
    ax.minorticks_off()
    ax.set_xlabel("sequence length T (steps)")


def _frac(k, n) -> str:
    return f"{int(k)}/{int(n)}"


def _success_figure(rep, table: pd.DataFrame, tasks: list[str]):
    fig, axes = rep.figure(1, len(tasks), width=4.2, height=3.5, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        t = table[table["task"] == task]
        Ts = sorted(t["T"].unique())
        for i, cell in enumerate(CELLS):
            s = t[t["cell"] == cell].sort_values("T")
            x = _offset(s["T"].to_numpy(float), i, len(CELLS))
            y = s["success_rate"].to_numpy()
            ax.errorbar(x, y, yerr=[y - s["ci_low"].to_numpy(), s["ci_high"].to_numpy() - y], color=COLORS[cell],
                        marker="o", ms=4, capsize=2, lw=1, label=CELL_LABELS[cell])
        _log_T_axis(ax, Ts)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("success rate (share of seeds)")
        ax.set_title(f"{TASK_TITLES[task]}\nbudget {int(t['budget'].iloc[0])} steps", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="best")
    return fig


def _steps_figure(rep, table: pd.DataFrame, tasks: list[str]):
    fig, axes = rep.figure(1, len(tasks), width=4.2, height=3.5, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        t = table[table["task"] == task]
        Ts = sorted(t["T"].unique())
        budget = int(t["budget"].iloc[0])
        patience = int(t["patience"].iloc[0])
        for i, cell in enumerate(CELLS):
            s = t[(t["cell"] == cell) & (t["solved"] > 0)].sort_values("T")
            if not len(s):
                continue
            x = _offset(s["T"].to_numpy(float), i, len(CELLS))
            y = s["steps_median"].to_numpy()
            ax.errorbar(x, y, yerr=[y - s["steps_q25"].to_numpy(), s["steps_q75"].to_numpy() - y],
                        color=COLORS[cell], marker="o", ms=4, capsize=2, lw=1, label=CELL_LABELS[cell])
            for xi, yi, k, n in zip(x, y, s["solved"], s["runs"]):
                ax.annotate(_frac(k, n), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=6,
                            color=COLORS[cell])
        ax.axhline(budget, color="black", ls="--", lw=0.8, label="budget")
        ax.axhline(patience, color="grey", ls=":", lw=0.8, label="patience (fewest possible)")
        ax.set_yscale("log")
        ax.set_ylim(max(patience * 0.7, 1), budget * 1.6)
        _log_T_axis(ax, Ts)
        ax.set_ylabel("steps to solve (optimiser steps)")
        ax.set_title(TASK_TITLES[task], fontsize=9)
        if not (t["solved"] > 0).any():
            ax.text(0.5, 0.5, "no run solved\nwithin the budget", transform=ax.transAxes, ha="center",
                    va="center", fontsize=9, color="grey")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    return fig


def _final_figure(rep, runs: pd.DataFrame, tasks: list[str]):
    fig, axes = rep.figure(1, len(tasks), width=4.2, height=3.5, squeeze=False)
    rng = np.random.default_rng(0)
    for ax, task in zip(axes[0], tasks):
        r = runs[runs["task"] == task]
        Ts = sorted(r["T"].unique())
        for i, cell in enumerate(CELLS):
            s = r[r["cell"] == cell]
            x = _offset(s["T"].to_numpy(float), i, len(CELLS)) * 2 ** rng.uniform(-0.02, 0.02, len(s))
            ok = s["solved"].astype(bool).to_numpy()
            ax.scatter(x[ok], s["final_metric"].to_numpy()[ok], color=COLORS[cell], s=14, alpha=0.7, marker="o",
                       edgecolors="none")
            ax.scatter(x[~ok], s["final_metric"].to_numpy()[~ok], color=COLORS[cell], s=14, alpha=0.7, marker="x",
                       linewidths=0.8)
            med = s.groupby("T")["final_metric"].median()
            ax.plot(_offset(med.index.to_numpy(float), i, len(CELLS)), med.to_numpy(), color=COLORS[cell], lw=1,
                    label=CELL_LABELS[cell])
        base, crit = float(r["baseline"].iloc[0]), float(r["criterion"].iloc[0])
        ax.axhline(base, color="black", ls="--", lw=1, label=f"chance ({base:.3g})")
        ax.axhline(crit, color="grey", ls=":", lw=1, label=f"criterion ({crit:.3g})")
        name = r["metric_name"].iloc[0]
        if name == "mse":
            ax.set_yscale("log")
        else:
            ax.set_ylim(-0.02, 1.02)
        _log_T_axis(ax, Ts)
        ax.set_ylabel(METRIC_LABELS.get(name, name))
        ax.set_title(TASK_TITLES[task], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return fig


def _curves_figure(rep, rows: pd.DataFrame, task: str, series: str = "main"):
    r = rows[(rows["task"] == task) & (rows["series"] == series)]
    Ts = sorted(r["T"].unique())
    fig, axes = rep.figure(1, len(Ts), width=3.4 if len(Ts) > 1 else 6.0, height=3.2, squeeze=False, sharey=True)
    for ax, T in zip(axes[0], Ts):
        for cell in CELLS:
            s = r[(r["T"] == T) & (r["cell"] == cell)]
            for j, (_, g) in enumerate(s.groupby("replicate")):
                ax.plot(g["step"], g["curve_metric"], color=COLORS[cell], lw=0.8, alpha=0.7,
                        label=CELL_LABELS[cell] if j == 0 else None)
        ax.axhline(float(r["baseline"].iloc[0]), color="black", ls="--", lw=1, label="chance")
        ax.axhline(float(r["criterion"].iloc[0]), color="grey", ls=":", lw=1, label="criterion")
        ax.set_yscale("log")
        ax.set_title(f"T = {T}", fontsize=9)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("training-batch MSE (window median)")
    axes[0, 0].legend(fontsize=6)
    return fig


def _table_for_report(table: pd.DataFrame) -> pd.DataFrame:
    def quart(m, a, b):
        return "–" if not np.isfinite(m) else f"{m:.0f} [{a:.0f}, {b:.0f}]"

    return pd.DataFrame({
        "task": table["task"].to_numpy(), "T": table["T"].to_numpy(), "cell": table["cell"].to_numpy(),
        "solved": [_frac(k, n) for k, n in zip(table["solved"], table["runs"])],
        "success 95 % CI": [f"[{a:.2f}, {b:.2f}]" for a, b in zip(table["ci_low"], table["ci_high"])],
        "steps to solve, median [q25, q75]": [quart(m, a, b) for m, a, b in
                                              zip(table["steps_median"], table["steps_q25"], table["steps_q75"])],
        "held-out metric, median [q25, q75]": [f"{m:.3g} [{a:.3g}, {b:.3g}]" for m, a, b in
                                               zip(table["final_median"], table["final_q25"], table["final_q75"])],
        "chance": table["baseline"], "budget (steps)": table["budget"],
    })


def _cell_list(cells) -> str:
    cells = [CELL_LABELS[c] for c in cells]
    if not cells:
        return "none"
    return cells[0] if len(cells) == 1 else ", ".join(cells[:-1]) + " and " + cells[-1]


def _reach(table, task, cell) -> str:
    T = longest_solved(table, task, cell)
    return f"T = {T}" if T is not None else "no length"


def write(rep, rows: pd.DataFrame, s: dict) -> None:
    """Fill ``rep`` with the figures, tables and reading of the study's runs."""
    all_runs = run_summary(rows)
    all_table = success_table(all_runs)
    runs = all_runs[all_runs["series"] == "main"]
    table = all_table[all_table["series"] == "main"]
    long_table = all_table[all_table["series"] == "long"]
    long_runs = all_runs[all_runs["series"] == "long"]
    tasks = [t for t in TASKS if t in set(runs["task"])]
    at = table.set_index(["task", "T", "cell"])
    le, hs, cp = "adding_le2015", "adding_hs1997", "copy"
    batch = s["batch"]
    budget = {t: int(table.loc[table["task"] == t, "budget"].iloc[0]) for t in tasks}  # from the data
    lengths = {t: sorted(int(T) for T in table.loc[table["task"] == t, "T"].unique()) for t in tasks}
    n_seeds = s["replicates"]
    le_T = sorted(table.loc[table["task"] == le, "T"].unique())

    # the headline: how far each cell reached on the Le form within its budget
    reach = {c: longest_solved(table, le, c) for c in CELLS}
    le_solved = table[table["task"] == le].groupby("cell")["solved"].sum()
    le_runs = table[table["task"] == le].groupby("cell")["runs"].sum()
    rep.set_headline(
        f"Within {budget[le]} Adam steps ({budget[le] * batch:,} sequences) on the adding problem (Le et al. form), "
        "the longest T solved by at least half the seeds was "
        + "; ".join(f"{CELL_LABELS[c]} {('T = ' + str(reach[c])) if reach[c] else 'none'} "
                    f"({int(le_solved.get(c, 0))}/{int(le_runs.get(c, 0))} runs solved over T = "
                    f"{', '.join(map(str, le_T))})" for c in CELLS) + ".")

    rep.section("Setup")
    rep.text(
        f"One-layer networks of H = {s['H']} units, trained from scratch with Adam (learning rate {s['lr']:g}), "
        f"global-norm gradient clipping at {s['clip']:g}, batches of {batch} fresh sequences per step, float64, "
        f"{n_seeds} seeds per configuration (a seed sets the weights, the training batches and the held-out set). "
        "The cells: the tanh RNN (orthogonal recurrent initialisation), the IRNN — the ReLU RNN with W_h = I and "
        "input weights N(0, 0.001²) (Le et al. 2015) — the GRU and the LSTM (forget-gate bias 1). All cells share "
        "one learning rate, chosen for the IRNN: in a preliminary check at T = 25 (1000 to 1500 steps, not part of "
        "this report's data) Adam at 0.01 took the IRNN off the chance plateau sooner than 0.001, 0.003 or 0.03.")
    rep.text(
        "Tasks and criteria. **Adding, Le et al. (2015) form**: values U[0, 1], one marked value in each half, "
        f"target their sum; chance MSE 1/6 ≈ 0.167; a run is solved when the batch MSE is ≤ 0.01 for "
        f"{int(at.loc[(le, le_T[0], 'lstm'), 'patience'])} consecutive steps. "
        "**Adding, Hochreiter & Schmidhuber (1997) form**: values U[−1, 1], X₁ among the first 10 pairs and X₂ "
        "among the first T/2 − 1, length drawn from [T, 1.1 T], target 0.5 + (X₁ + X₂)/4; a sequence is correct "
        "when |error| < 0.04; solved when every sequence of "
        f"{int(table.loc[table['task'] == hs, 'patience'].iloc[0]) if hs in tasks else '–'} consecutive batches is "
        "correct (their 2000 sequences in a row). **Copy memory** (Arjovsky et al. 2016): recall 10 symbols "
        "out of 8 after a delay of T steps; chance recall accuracy 1/8; solved at ≥ 0.99 for "
        f"{int(at.loc[(cp, table.loc[table['task'] == cp, 'T'].iloc[0], 'lstm'), 'patience']) if cp in tasks else '–'} "
        "consecutive steps. ")
    rep.text(
        "Budgets (optimiser steps per run, early stop once solved): "
        + "; ".join(f"{TASK_TITLES[t]} {budget[t]} steps = {budget[t] * batch:,} sequences at "
                    f"T = {', '.join(map(str, lengths[t]))}" for t in tasks)
        + ". **A run that is not solved means \"not solved within this budget\", not \"cannot be solved\"**: the "
        "budgets are what a default run of about four minutes on two cores affords; H&S's LSTM needed about "
        f"{HS_SEQUENCES_T100:,} sequences at T = 100, {HS_SEQUENCES_T100 / (budget[le] * batch):.0f}× the "
        "Le-form budget here, and Le et al. trained far longer still. Steps to solve is the step at which the "
        "criterion had held for the whole patience window (so it is at least the patience). The held-out metric "
        f"is measured on {256} fresh sequences when training stopped.")

    rep.section("Success rate against T")
    fig = _success_figure(rep, table, tasks)
    best_le = max(CELLS, key=lambda c: (reach[c] or 0, le_solved.get(c, 0)))
    rep.add_figure(
        fig, "success_vs_T",
        caption=(f"Share of the {n_seeds} seeds that met the task's criterion within the budget, per cell and length "
                 "(markers offset around each T for legibility); bars are 95 % Wilson intervals."),
        takeaway=(f"On the Le-form adding problem the {CELL_LABELS[best_le]} reached furthest "
                  f"({_reach(table, le, best_le)} in at least half the seeds); the tanh RNN solved "
                  f"{int(le_solved.get('rnn_tanh', 0))} and the IRNN {int(le_solved.get('irnn', 0))} of their "
                  f"{int(le_runs.get('rnn_tanh', 0))} runs."))

    rep.section("Steps to solve")
    fig = _steps_figure(rep, table, tasks)
    solved_le = table[(table["task"] == le) & (table["solved"] > 0)]
    growth = []
    for c in CELLS:
        sc = solved_le[solved_le["cell"] == c].sort_values("T")
        if len(sc) >= 2:
            growth.append(f"{CELL_LABELS[c]} {sc['steps_median'].iloc[0]:.0f} at T = {sc['T'].iloc[0]} → "
                          f"{sc['steps_median'].iloc[-1]:.0f} at T = {sc['T'].iloc[-1]}")
    rep.add_figure(
        fig, "steps_to_solve",
        caption=("Median (marker) and quartiles (bars) of the steps to solve over the solved runs only; the "
                 "label gives how many runs that is. Dashed: the budget; dotted: the patience window."),
        takeaway=("Steps to solve (median over solved runs) on the Le form: " + "; ".join(growth) + "."
                  if growth else "Too few lengths were solved by any cell to show a trend in steps to solve."))

    rep.section("Held-out metric against T, with the chance baseline")
    fig = _final_figure(rep, runs, tasks)
    tanh_le = table[(table["task"] == le) & (table["cell"] == "rnn_tanh")]
    near = int((tanh_le["final_median"] > 0.8 * tanh_le["baseline"]).sum())
    solved_runs = runs[(runs["task"] == le) & runs["solved"].astype(bool)]
    held = int((solved_runs["final_metric"] <= solved_runs["criterion"]).sum())
    rep.add_figure(
        fig, "metric_vs_T",
        caption=("Each marker is one run's metric on held-out sequences when training stopped (o: solved, × not "
                 "solved within the budget); lines join the "
                 "medians per cell. Dashed: the task's chance baseline; dotted: the success criterion."),
        takeaway=(f"The tanh RNN's held-out MSE stayed within 20 % of chance at {near} of {len(tanh_le)} lengths "
                  f"of the Le form; {held} of the {len(solved_runs)} solved Le-form runs also met the criterion "
                  f"(MSE ≤ 0.01) on fresh sequences, the worst at {solved_runs['final_metric'].max():.3g}."
                  if len(solved_runs) else
                  f"The tanh RNN's held-out MSE stayed within 20 % of chance at {near} of {len(tanh_le)} lengths "
                  "of the Le form; no Le-form run was solved."))
    rep.add_table(_table_for_report(table), caption=(
        "Per task, length and cell: solved runs out of seeds, the 95 % Wilson interval of the success rate, steps "
        "to solve over the solved runs, the held-out metric over all runs (MSE for the Le form, fraction correct "
        "for the H&S form, recall accuracy for copy), the chance baseline and the budget."))
    rep.add_data(all_table, "success", describe="per series (main, long budget), task, T and cell: successes, Wilson interval, steps-to-solve and "
                                            "held-out metric quartiles, chance, budget")
    rep.add_data(all_runs, "runs", describe="one row per training run: solved, solved_at, steps run, held-out metric, "
                                        "chance, criterion, CPU seconds")

    rep.section("Learning curves (adding, Le et al. form)")
    fig = _curves_figure(rep, rows, le)
    unsolved = runs[(runs["task"] == le) & ~runs["solved"].astype(bool)]
    plateau = int((unsolved["last_batch_metric"] > 0.8 * unsolved["baseline"]).sum())
    rep.add_figure(
        fig, "curves_adding_le2015",
        caption=("The training-batch MSE (median over windows of the budget) of every run, one line per seed; "
                 "a line ends where its run was solved. Dashed: chance; dotted: the criterion."),
        takeaway=(f"{plateau} of the {len(unsolved)} unsolved runs ended their budget with a batch MSE within "
                  "20 % of chance or above it; the solved runs met the criterion after a median of "
                  f"{runs.loc[(runs['task'] == le) & runs['solved'].astype(bool), 'solved_at'].median():.0f} steps."
                  if len(unsolved) else "Every run was solved within the budget."))
    curves = rows[["series", "task", "T", "cell", "replicate", "step", "curve_metric"]]
    rep.add_data(curves, "curves", describe="learning curves: window-median batch metric per run and step")

    if len(long_table):
        _long_section(rep, rows, long_table, s)

    rep.section("Reading")
    lstm100 = at.loc[(le, 100, "lstm")] if (le, 100, "lstm") in at.index else None
    text = []
    if lstm100 is not None:
        seq = lstm100["steps_median"] * batch if lstm100["solved"] else float("nan")
        text.append(
            f"**Hochreiter & Schmidhuber (1997).** Their LSTM — a small network of memory-cell blocks without a "
            "forget gate, trained by online gradient descent — solved the adding problem at T = 100, stopping after "
            f"about {HS_SEQUENCES_T100:,} training sequences on average. Here, on the Le form at T = 100, the LSTM "
            f"solved {_frac(lstm100['solved'], lstm100['runs'])} runs within {budget[le]} steps "
            f"({budget[le] * batch:,} sequences)"
            + (f", the median solved run after {lstm100['steps_median']:.0f} steps ({seq:,.0f} sequences)"
               if lstm100["solved"] else "")
            + ". ")
    if hs in tasks:
        hs_t = table[table["task"] == hs]
        hs_ok = int(hs_t["solved"].sum())
        lstm_hs = hs_t[hs_t["cell"] == "lstm"].set_index("T")
        text.append(
            f"In their own form, with their strict criterion, {hs_ok} of {int(hs_t['runs'].sum())} runs at "
            f"T = {', '.join(map(str, sorted(hs_t['T'].unique())))} met it within {budget[hs]} steps "
            f"({budget[hs] * batch:,} sequences); the LSTM's median held-out fraction correct was "
            + ", ".join(f"{r['final_median']:.2f} at T = {T}" for T, r in lstm_hs.iterrows())
            + f" (chance {hs_t['baseline'].iloc[0]:.3f}); the highest median of any cell was "
            + ", ".join(f"{g.loc[g['final_median'].idxmax(), 'final_median']:.2f} "
                        f"({CELL_LABELS[g.loc[g['final_median'].idxmax(), 'cell']]}) at T = {T}"
                        for T, g in hs_t.groupby("T"))
            + ". "
            + _hs_verdict(hs_ok, lstm_hs["final_median"], float(hs_t["baseline"].iloc[0])))
    tanh_ok, irnn_ok = int(le_solved.get("rnn_tanh", 0)), int(le_solved.get("irnn", 0))
    gated = [c for c in ("gru", "lstm") if (reach[c] or 0) > 0]
    text.append(
        f"\n\n**Le, Jaitly & Hinton (2015).** They report that the IRNN, like the LSTM, solves the adding problem at "
        "T = 150 to 400 where the tanh RNN stalls at the chance MSE, with training far longer than this budget. "
        f"Here the tanh RNN solved {tanh_ok} of {int(le_runs.get('rnn_tanh', 0))} runs; its median held-out MSE was "
        + ", ".join(f"{r['final_median']:.3g} at T = {r['T']}" for _, r in tanh_le.iterrows())
        + f" (chance {tanh_le['baseline'].iloc[0]:.3g}), "
        + ("so it stalled at chance at every length, in agreement with their tanh result. " if near == len(tanh_le)
           else f"near chance at {near} of {len(tanh_le)} lengths: it partly learns the shortest lags and stays at "
                "chance at the longer ones, in line with their result at T ≥ 150. "
           if tanh_ok == 0 else "so it does learn some of these lengths, unlike their tanh RNN at T ≥ 150. ")
        + (f"The gated cells ({_cell_list(gated)}) solved lengths up to "
           + ", ".join(f"{_reach(table, le, c)} ({CELL_LABELS[c]})" for c in gated) + " in at least half the seeds. "
           if gated else "Neither gated cell solved any length in at least half the seeds within the budget. ")
        + (f"The IRNN solved {irnn_ok} of {int(le_runs.get('irnn', 0))} runs: within this budget it did not match "
           "the LSTM, unlike in Le et al.'s results. "
           if irnn_ok < int(le_solved.get("lstm", 0)) else
           f"The IRNN solved {irnn_ok} of {int(le_runs.get('irnn', 0))} runs, at least as many as the LSTM "
           f"({int(le_solved.get('lstm', 0))}), in agreement with Le et al.'s finding that the IRNN matches it. ")
        + _long_reading(long_table))
    if cp in tasks:
        cp_t = table[table["task"] == cp]
        cp_runs = runs[runs["task"] == cp]
        blank = int((cp_runs["final_metric"] < 0.5 * cp_runs["baseline"]).sum())
        best = cp_t.loc[cp_t["final_median"].idxmax()]
        text.append(
            f"\n\n**Copy memory.** {int(cp_t['solved'].sum())} of {int(cp_t['runs'].sum())} runs met the criterion "
            f"within {budget[cp]} steps; the best median held-out recall accuracy was {best['final_median']:.2f} "
            f"({CELL_LABELS[best['cell']]}, T = {best['T']}) against chance {best['baseline']:.3f}"
            + (f"; {blank} of the {len(cp_runs)} runs scored below half the chance level, consistent with a network "
               "that still emits the blank symbol (the most frequent target) at the recall steps"
               if blank else "")
            + ". Recalling ten "
            "symbols takes many more updates than this budget (Arjovsky et al. 2016 train for thousands of "
            "iterations), so at this size the copy task measures only the first departure from chance.")
    rep.text("".join(text))
    cpu = runs.groupby("task")["cpu_time"].sum()
    rep.text(
        "**Cost.** CPU seconds summed over the runs: "
        + ", ".join(f"{TASK_TITLES[t]} {cpu.get(t, 0):.0f} s" for t in tasks)
        + (f", the longer budget {long_runs['cpu_time'].sum():.0f} s" if len(long_runs) else "")
        + f", {all_runs['cpu_time'].sum():.0f} s in all (each run on one thread). A longer budget is the obvious extension: "
        "`sizes()` in `gradlab/studies/long_range.py` sets the lengths and steps.")


def _long_reading(long_table: pd.DataFrame) -> str:
    """A sentence on the longer budget at one length, for the comparison with Le et al."""
    if not len(long_table):
        return ""
    lt = long_table.set_index("cell")
    T, steps = int(long_table["T"].iloc[0]), int(long_table["budget"].iloc[0])
    irnn = lt.loc["irnn"]
    parts = [f"With {steps} steps at T = {T}, the IRNN solved {_frac(irnn['solved'], irnn['runs'])} runs"]
    if irnn["solved"]:
        parts.append(f" (median {irnn['steps_median']:.0f} steps, against "
                     + ", ".join(f"{lt.loc[c, 'steps_median']:.0f} for the {CELL_LABELS[c]}" for c in ("gru", "lstm")
                                 if lt.loc[c, "solved"]) + ")")
    tanh = lt.loc["rnn_tanh"]
    parts.append(f" and the tanh RNN {_frac(tanh['solved'], tanh['runs'])}")
    verdict = ("; so the IRNN does learn the task when given longer, more slowly than the gated cells, which is "
               "consistent with Le et al.'s result being reached with far longer training."
               if irnn["solved"] > tanh["solved"] else
               "; even the longer budget does not separate the IRNN from the tanh RNN here.")
    return "".join(parts) + verdict


def _long_section(rep, rows: pd.DataFrame, long_table: pd.DataFrame, s: dict) -> None:
    """The longer budget at one length of the Le-form adding problem."""
    T, steps = int(long_table["T"].iloc[0]), int(long_table["budget"].iloc[0])
    rep.section(f"A longer budget at T = {T} (adding, Le et al. form)")
    fig = _curves_figure(rep, rows, "adding_le2015", series="long")
    lt = long_table.set_index("cell")
    rep.add_figure(
        fig, "curves_long",
        caption=(f"Every cell at T = {T} with {steps} steps ({steps * s['batch']:,} sequences), one line per seed; "
                 "training-batch MSE, median over windows of the budget."),
        takeaway=("Within the longer budget: " + "; ".join(
            f"{CELL_LABELS[c]} solved {_frac(lt.loc[c, 'solved'], lt.loc[c, 'runs'])}"
            + (f" (median {lt.loc[c, 'steps_median']:.0f} steps)" if lt.loc[c, "solved"] else "")
            for c in CELLS if c in lt.index) + "."))
    rep.add_table(_table_for_report(long_table), caption=(
        f"The longer budget: every cell at T = {T}, {steps} steps, the same criteria and seeds count as above."))


def _hs_verdict(solved: int, lstm_median: pd.Series, chance: float) -> str:
    """Whether the H&S-form runs agree with H&S, worded from the outcome."""
    learned = [int(T) for T, v in lstm_median.items() if v > 2 * chance]
    if solved:
        return (f"{solved} runs met their criterion, within a budget well below the {HS_SEQUENCES_T100:,} sequences "
                "they needed at T = 100.")
    if learned:
        return (f"The LSTM is well above chance at T = {', '.join(map(str, learned))}, in agreement with H&S in "
                "direction, but this budget is far too short for their criterion of 2000 correct sequences in a "
                f"row, which took them about {HS_SEQUENCES_T100:,} sequences at T = 100.")
    return ("The LSTM did not rise clearly above chance within this budget: this does not test H&S's result, "
            f"which took about {HS_SEQUENCES_T100:,} sequences at T = 100.")
