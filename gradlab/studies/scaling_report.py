"""Figures, tables and the reading of the ``scaling`` study (kept apart from its grid points)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .scaling import AXES, CELLS, INPUT_SIZE, PARALLEL, TRACED, WORK, available_cores, fit_exponent

POINT = ["impl", "cell", "T", "B", "H"]
IMPL_STYLE = {"cpu": ("tab:blue", "o", "gradlab cpu (Numba)"),
              PARALLEL: ("tab:cyan", "v", "gradlab cpu, every core"), "cuda": ("tab:purple", "D", "gradlab cuda"),
              "numpy": ("tab:orange", "s", "gradlab numpy (reference)"), "torch": ("tab:red", "^", "PyTorch CPU")}
AXIS_LABEL = {"T": "sequence length T (steps)", "B": "batch size B (sequences)", "H": "hidden size H (units)"}
MB = 1e6
#: "tight" draws these many-panel log-log figures several times faster than "constrained".
LAYOUT = "tight"


MEMORY = ["peak_bytes", "peak_bytes_max", "returned_bytes", "formula_returned_bytes", "formula_peak_bytes"]


def summarize(timing: pd.DataFrame, memory: pd.DataFrame) -> pd.DataFrame:
    """One row per implementation and shape: median and quartiles of the time, and the memory measured there."""
    g = timing.groupby(POINT, sort=False)
    out = g["seconds"].agg(median_s="median", q25_s=lambda s: s.quantile(0.25), q75_s=lambda s: s.quantile(0.75),
                           min_s="min", repeats="count")
    out = out.join(g["cpu_seconds"].agg(median_cpu_s="median", q25_cpu_s=lambda s: s.quantile(0.25),
                                        q75_cpu_s=lambda s: s.quantile(0.75)))
    out = out.join(g[["first_call_s", "impl_threads", "flops", "load_1min"]].first()).reset_index()
    out = out.merge(memory[POINT + MEMORY], on=POINT, how="left")
    out["gflops_per_s"] = out["flops"] / out["median_s"] / 1e9
    out["ms_per_step"] = out["median_s"] / out["T"] * 1e3
    out["peak_over_formula"] = out["peak_bytes"] / out["formula_peak_bytes"]
    out["returned_matches_formula"] = np.where(out["returned_bytes"].notna(),
                                               out["returned_bytes"] == out["formula_returned_bytes"], np.nan)
    for col, ratio in (("median_s", "ratio_to_cpu"), ("median_cpu_s", "cpu_time_ratio_to_cpu")):
        cpu = out[out["impl"] == "cpu"].set_index(["cell", "T", "B", "H"])[col]
        out[ratio] = [m / cpu.get((c, T, B, H), np.nan) for m, c, T, B, H
                      in zip(out[col], out["cell"], out["T"], out["B"], out["H"])]
    return out


#: The two clocks: wall time, and the CPU time of the process (which the waits of a busy machine do not inflate).
CLOCKS = {"wall time": ("median_s", "q25_s", "q75_s"), "CPU time": ("median_cpu_s", "q25_cpu_s", "q75_cpu_s")}


def on_axis(summary: pd.DataFrame, axis: str, base: dict) -> pd.DataFrame:
    """The rows of the sweep along ``axis``: the other two sizes at the base point, sorted by ``axis``."""
    keep = np.ones(len(summary), bool)
    for other in AXES:
        if other != axis:
            keep &= summary[other].to_numpy() == base[other]
    return summary[keep].sort_values(axis)


def exponents(summary: pd.DataFrame, base: dict) -> pd.DataFrame:
    """Fitted exponents of the median wall and CPU times (every implementation) and of the traced peak memory."""
    rows = []
    for axis in AXES:
        sub = on_axis(summary, axis, base)
        for (impl, cell), s in sub.groupby(["impl", "cell"], sort=False):
            quantities = [(clock, s[cols[0]]) for clock, cols in CLOCKS.items()]
            if impl in TRACED:
                quantities.append(("peak memory", s["peak_bytes"]))
            if len(s) < 2:
                continue
            for what, y in quantities:
                fit = fit_exponent(s[axis], y)
                extra = {}
                if what == "peak memory":  # the formula over the same points
                    extra["formula_exponent"] = fit_exponent(s[axis], s["formula_peak_bytes"])["exponent"]
                rows.append({"quantity": what, "impl": impl, "cell": cell, "axis": axis,
                             "range": f"{s[axis].min():g} … {s[axis].max():g}", **fit,
                             "ci_contains_1": (fit["ci_low"] <= 1 <= fit["ci_high"]) if fit["n"] > 2 else np.nan,
                             **extra})
    # the exponents the counted work and the formula predict over the same ranges
    for axis in AXES:
        for cell in CELLS:
            s = on_axis(summary[(summary["impl"] == "cpu") & (summary["cell"] == cell)], axis, base)
            for what, y in (("FLOPs (SPEC §9)", s["flops"]),):
                fit = fit_exponent(s[axis], y)
                rows.append({"quantity": what, "impl": "model", "cell": cell, "axis": axis,
                             "range": f"{s[axis].min():g} … {s[axis].max():g}", **fit, "ci_contains_1": np.nan})
    return pd.DataFrame(rows)


def _log_axes(ax, xs) -> None:
    """Log-log axes with the swept sizes as x ticks and plain numbers on both axes."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_xscale("log")
    ax.set_yscale("log")
    xs = sorted({float(v) for v in xs})
    ax.set_xticks(xs, [f"{v:g}" for v in xs])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.grid(alpha=0.3, which="major")


def _shown(sub: pd.DataFrame, axis: str) -> pd.DataFrame:
    """The implementations a panel shows: the every-core run only along B, where it was swept."""
    return sub if axis == "B" else sub[sub["impl"] != PARALLEL]


def _time_figure(rep, summary: pd.DataFrame, base: dict, exps: pd.DataFrame, clock: str):
    med, q25, q75 = CLOCKS[clock]
    fig, axes = rep.figure(len(CELLS), len(AXES), width=3.6, height=3.1, squeeze=False, layout=LAYOUT)
    for i, cell in enumerate(CELLS):
        for j, axis in enumerate(AXES):
            ax = axes[i, j]
            sub = _shown(on_axis(summary[summary["cell"] == cell], axis, base), axis)
            for impl, s in sub.groupby("impl", sort=False):
                color, marker, label = IMPL_STYLE.get(impl, ("black", "x", impl))
                x, m = s[axis].to_numpy(float), s[med].to_numpy() * 1e3
                err = np.vstack([m - s[q25].to_numpy() * 1e3, s[q75].to_numpy() * 1e3 - m])
                e = exps[(exps["quantity"] == clock) & (exps["impl"] == impl) & (exps["cell"] == cell)
                         & (exps["axis"] == axis)]
                k = e["exponent"].iloc[0] if len(e) else np.nan
                ax.errorbar(x, m, yerr=err, color=color, marker=marker, ms=4, lw=1.2, capsize=2,
                            label=f"{label}: slope {k:.2f}" if np.isfinite(k) else label)
            _log_axes(ax, sub[axis])
            ax.set_xlabel(AXIS_LABEL[axis])
            ax.set_ylabel(f"forward + BPTT {clock} (ms)")
            others = ", ".join(f"{o} = {base[o]}" for o in AXES if o != axis)
            ax.set_title(f"{cell}: {others}", fontsize=9)
            ax.legend(fontsize=6.5)
    return fig


def _ratio_figure(rep, summary: pd.DataFrame, base: dict):
    fig, axes = rep.figure(1, len(AXES), width=3.7, height=3.2, squeeze=False)
    styles = {"rnn_tanh": "-", "lstm": "--"}
    for ax, axis in zip(axes[0], AXES):
        sub = _shown(on_axis(summary[summary["impl"] != "cpu"], axis, base), axis)
        for (impl, cell), s in sorted(sub.groupby(["impl", "cell"], sort=False), key=lambda kv: kv[0][::-1]):
            color, marker, label = IMPL_STYLE.get(impl, ("black", "x", impl))
            ax.plot(s[axis], s["ratio_to_cpu"], color=color, marker=marker, ms=4, ls=styles.get(cell, ":"),
                    label=f"{label}, {cell}")
        ax.axhline(1, color="grey", lw=0.8)
        _log_axes(ax, sub[axis])
        ax.set_xlabel(AXIS_LABEL[axis])
        ax.set_ylabel("wall time / gradlab cpu wall time (×)")
        ax.legend(fontsize=6.5)
    return fig


def _memory_figure(rep, summary: pd.DataFrame, base: dict):
    fig, axes = rep.figure(len(CELLS), len(AXES), width=3.6, height=3.0, squeeze=False, layout=LAYOUT)
    for i, cell in enumerate(CELLS):
        for j, axis in enumerate(AXES):
            ax = axes[i, j]
            sub = on_axis(summary[summary["cell"] == cell], axis, base)
            model = sub[sub["impl"] == "cpu"]
            ax.plot(model[axis], model["formula_peak_bytes"] / MB, color="black", lw=1.2, label="peak, formula")
            ax.plot(model[axis], model["formula_returned_bytes"] / MB, color="grey", lw=1.0, ls="--",
                    label="returned arrays, formula")
            for impl in TRACED:
                s = sub[sub["impl"] == impl]
                if len(s):
                    color, marker, label = IMPL_STYLE[impl]
                    ax.plot(s[axis], s["peak_bytes"] / MB, ls="none", marker=marker, color=color,
                            mfc="none" if impl == "numpy" else color, ms=6 if impl == "numpy" else 4,
                            label=f"{label}: traced peak")
            _log_axes(ax, model[axis])
            ax.set_xlabel(AXIS_LABEL[axis])
            ax.set_ylabel("memory (MB)")
            others = ", ".join(f"{o} = {base[o]}" for o in AXES if o != axis)
            ax.set_title(f"{cell}: {others}", fontsize=9)
            ax.legend(fontsize=6.5)
    return fig


def throughput_table(tp: pd.DataFrame) -> pd.DataFrame:
    """Per worker count: start-up, warm-up, and the points per second over rounds, against ideal linear scaling."""
    g = tp.groupby("workers", sort=True)
    t = g.agg(startup_s=("startup_s", "first"), warm_s=("warm_s", "first"), close_s=("close_s", "first"),
              rounds=("round", "count"), points=("points", "first"), wall_s=("wall_s", "median"),
              pps=("points_per_s", "median"), pps_min=("points_per_s", "min"), pps_max=("points_per_s", "max"),
              point_s=("point_s_median", "median"), resume_s=("resume_s", "median"),
              pids=("pids", "max")).reset_index()
    one = t.loc[t["workers"] == 1, "pps"]
    ref = float(one.iloc[0]) if len(one) else math.nan
    t["ideal_pps"] = np.where(t["workers"] > 0, t["workers"] * ref, np.nan)
    t["speedup_vs_1"] = t["pps"] / ref
    t["efficiency"] = t["pps"] / t["ideal_pps"]
    # the engine's share of a point: wall time per point on one worker slot, less the sweep call's fixed cost
    # (measured on a store that holds every point) and the point's own compute
    slots = t["workers"].clip(lower=1)
    t["overhead_per_point_s"] = (t["wall_s"] - t["resume_s"]) * slots / t["points"] - t["point_s"]
    return t


def _throughput_figure(rep, t: pd.DataFrame):
    fig, ax = rep.figure(width=5.2, height=3.8)
    cl = t[t["workers"] > 0]
    yerr = np.vstack([cl["pps"] - cl["pps_min"], cl["pps_max"] - cl["pps"]])
    ax.errorbar(cl["workers"], cl["pps"], yerr=yerr, marker="o", capsize=3, color="tab:blue",
                label="measured (median, min–max over rounds)")
    ax.plot(cl["workers"], cl["ideal_pps"], color="black", ls="--", label="ideal: workers × 1-worker rate")
    serial = t[t["workers"] == 0]
    if len(serial):
        ax.axhline(float(serial["pps"].iloc[0]), color="tab:grey", ls=":", label="in-process, no Dask")
        ax.axhline(1 / float(serial["point_s"].iloc[0]), color="tab:green", ls="-.", lw=0.9,
                   label="1 / compute time of a point")
    ax.set_xticks(cl["workers"])
    ax.set_xlabel("Dask workers (1 thread each)")
    ax.set_ylabel("throughput (points per second)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _second_worker(speedup: float, cores: int, busy: bool) -> str:
    """What the second worker added, in words, from the measured speed-up."""
    if speedup >= 1.8:
        return f"so on this {cores}-core machine the second worker adds nearly a whole worker's throughput."
    if speedup > 1.1:
        return f"so on this {cores}-core machine the second worker adds part of a worker's throughput."
    if busy:
        return (f"so here the second worker added no throughput: on this {cores}-core machine the core it would use "
                "was largely taken by other processes (see the load average above).")
    return ("so here the second worker added no throughput: the engine's own cost per point (overhead column) "
            "outweighed the second core.")


def memory_exponent_table(exps: pd.DataFrame) -> pd.DataFrame:
    """Per implementation, cell and axis: the traced peak's exponent, its interval, and the formula's exponent."""
    measured = exps[exps["quantity"] == "peak memory"]
    formula = measured["formula_exponent"].to_numpy()
    inside = [("yes" if r["ci_low"] <= f <= r["ci_high"] else "no") if np.isfinite(r["ci_low"]) else "–"
              for (_, r), f in zip(measured.iterrows(), formula)]
    return pd.DataFrame({"impl": measured["impl"], "cell": measured["cell"], "axis": measured["axis"],
                         "range": measured["range"], "exponent": measured["exponent"],
                         "95 % CI": [_ci(r) for _, r in measured.iterrows()], "formula's exponent": formula,
                         "CI contains the formula's": inside}).sort_values(["axis", "cell", "impl"], kind="stable")


def _ci(row) -> str:
    return "–" if not np.isfinite(row["ci_low"]) else f"[{row['ci_low']:.3g}, {row['ci_high']:.3g}]"


def _exp(exps, quantity, impl, cell, axis):
    e = exps[(exps["quantity"] == quantity) & (exps["impl"] == impl) & (exps["cell"] == cell) & (exps["axis"] == axis)]
    return e.iloc[0] if len(e) else None


def _linear_phrase(row) -> str:
    if row is None or not np.isfinite(row["ci_low"]):
        return "not fitted"
    inside = row["ci_low"] <= 1 <= row["ci_high"]
    wide = row["ci_high"] - row["ci_low"] > 1
    verdict = ("the interval contains 1 but is too wide to tell linear from far slower or faster growth" if inside
               and wide else "linear within the fit's error" if inside else "the interval excludes 1")
    return f"T^{row['exponent']:.3f} (95 % CI [{row['ci_low']:.3f}, {row['ci_high']:.3f}], {verdict})"


def write(rep, results: dict[str, pd.DataFrame], s: dict, *, torch: bool, cuda: bool) -> None:
    """Fill ``rep`` with the figures, tables and reading of the study's three sweeps."""
    timing, memory, first, tp = results["timing"], results["memory"], results["first_call"], results["throughput"]
    base = s["base"]
    summary = summarize(timing, memory)
    exps = exponents(summary, base)
    impls = list(dict.fromkeys(summary["impl"]))
    threads = int(timing["threads"].iloc[0])
    par_threads = int(timing["parallel_threads"].iloc[0])
    cores = available_cores()
    dtype = str(timing["dtype"].iloc[0])
    load = summary["load_1min"]
    tt = throughput_table(tp)

    cpu_T = {c: _exp(exps, "wall time", "cpu", c, "T") for c in CELLS}
    cpu_T_cpu = {c: _exp(exps, "CPU time", "cpu", c, "T") for c in CELLS}
    traced = summary[summary["impl"].isin(TRACED)]
    dev = (traced["peak_over_formula"] - 1).abs()
    n_match = int((traced["returned_matches_formula"] == True).sum())  # noqa: E712
    two = tt[tt["workers"] == 2]
    two_txt = (f"{two['speedup_vs_1'].iloc[0]:.2f}× the points per second of one worker (ideal 2×)"
               if len(two) else "no two-worker measurement")
    rep.set_headline(
        "On the Numba backend (one thread) the CPU time of forward + BPTT grows as "
        + "; ".join(f"{_linear_phrase(cpu_T_cpu[c])} for {c}" for c in CELLS)
        + " (wall time: " + ", ".join(f"{c} T^{cpu_T[c]['exponent']:.2f}" for c in CELLS if cpu_T[c] is not None)
        + f"); the traced peak memory is within {dev.max() * 100:.1f} % of the documented formula at every "
        f"point ({n_match} of {len(traced)} returned-array totals equal it exactly); 2 Dask workers run {two_txt}.")

    # ------------------------------------------------------------------ setup
    rep.section("Setup")
    absent = []
    if not torch:
        absent.append("PyTorch is not installed here, so there is no PyTorch column")
    if not cuda:
        absent.append("no CUDA GPU was found, so the `cuda` backend was not timed")
    rep.text(
        f"Cells `rnn_tanh` (G = 1) and `lstm` (G = 4), D = {INPUT_SIZE} inputs drawn N(0, 1), {dtype}, "
        "orthogonal initialisation, and a many-to-one loss: ∂L/∂h_t is zero except at the last step, where it is a "
        "random unit vector per sequence. One call = `gradlab.forward` + `gradlab.backward` (full BPTT, with the "
        "per-step gradient norms recorded); PyTorch runs `torch.nn.RNN`/`LSTM` with the same weights "
        "(`gradlab.interop.params_to_torch`), forward and `torch.autograd.grad` of the same loss with respect to "
        f"the inputs, the initial state and the weights. Sizes are swept one at a time through the base point "
        f"T = {base['T']}, B = {base['B']}, H = {base['H']}: T ∈ {{{', '.join(map(str, s['T']))}}}, "
        f"B ∈ {{{', '.join(map(str, s['B']))}}}, H ∈ {{{', '.join(map(str, s['H']))}}}; the NumPy reference and "
        f"PyTorch, whose cost per step is dominated by Python or autograd overhead, stop at T = {s['slow_max_T']}. "
        f"Each implementation is called once untimed (the first call: Numba's cache load or compilation), "
        f"then {s['repeats']} timed repeats ({s['slow_repeats']} for the NumPy reference and PyTorch) that go "
        "round-robin over the "
        "implementations in the same process, so that a change of machine load hits them alike. Each call is "
        "timed on two clocks: wall time (`time.perf_counter`) and CPU time, which does not count the time the call "
        "waits for a core on a busy machine: that of the calling thread (`time.thread_time`) for the one-thread "
        "runs, which do all their work on it, and that of the process (`time.process_time`) for the run on every "
        "core; figures show the median and the quartiles over repeats. The timing points run one after another "
        f"in one process, never beside another point, with Numba, BLAS and torch threads all set to {threads}: a "
        "per-core comparison, which the load of a shared machine cannot turn into stalls of a parallel region"
        + (f"; along B the Numba backend is also timed on {par_threads} threads (`{PARALLEL}`, the batch cut into "
           "one chunk per thread), beside the rest. " if PARALLEL in set(timing["impl"]) else ". ")
        + 
        "Exponents are least-squares slopes of log(median time) or log(peak bytes) against log(size), with 95 % "
        "confidence intervals from Student's t (n − 2 degrees of freedom)."
        + (" " + "; ".join(absent)[:1].upper() + "; ".join(absent)[1:] + "." if absent else "")
        + f" The 1-minute load average of the machine during the timing points was {load.median():.1f} "
        f"(median; range {load.min():.1f} … {load.max():.1f}) on {cores} cores"
        + (": other processes competed for the cores, so the wall times carry that noise; CPU times and ratios "
           "measured side by side carry less of it." if float(load.median()) > cores else "."))

    # ------------------------------------------------------------------ time
    rep.section("Time against T, B and H")
    for clock, stem in (("wall time", "time"), ("CPU time", "cpu_time")):
        fig = _time_figure(rep, summary, base, exps, clock)
        fits = {c: _exp(exps, clock, "cpu", c, "T") for c in CELLS}
        rep.add_figure(
            fig, stem,
            caption=(f"Median {clock} of one forward + BPTT call (bars: quartiles over repeats) against each size with "
                     "the other two at the base point; slopes are the fitted exponents."
                     + (" CPU time: the calling thread's; for the run on every core, the process's (all threads)."
                        if clock == "CPU time" else "")),
            takeaway=f"Along T, gradlab cpu's {clock} grows as " + "; ".join(
                f"{_linear_phrase(fits[c])} for {c}" for c in CELLS) + ".")
    ex_tab = exps[exps["quantity"].isin(list(CLOCKS) + ["FLOPs (SPEC §9)"])].copy()
    rep.add_table(pd.DataFrame({
        "quantity": ex_tab["quantity"], "impl": ex_tab["impl"], "cell": ex_tab["cell"], "axis": ex_tab["axis"],
        "range": ex_tab["range"], "exponent": ex_tab["exponent"], "95 % CI": [_ci(r) for _, r in ex_tab.iterrows()],
        "CI contains 1": ex_tab["ci_contains_1"].map({True: "yes", False: "no"}).fillna("–"),
        "R²": ex_tab["r2"], "points": ex_tab["n"]}),
        caption=("Fitted exponents of the median wall and CPU times (time ∝ size^exponent). `model` rows: the "
                 "exponent of the counted floating-point work 6·B·G·H·(D + H)·T over the same range, which a kernel "
                 "running at a fixed rate would show. An exponent below the model's means the larger problems run "
                 "at a higher rate."))
    at_base = summary[(summary["T"] == base["T"]) & (summary["B"] == base["B"]) & (summary["H"] == base["H"])]
    rep.add_table(pd.DataFrame({
        "cell": at_base["cell"], "impl": at_base["impl"], "threads": at_base["impl_threads"],
        "median ms": at_base["median_s"] * 1e3,
        "quartiles ms": [f"{a * 1e3:.3g} … {b * 1e3:.3g}" for a, b in zip(at_base["q25_s"], at_base["q75_s"])],
        "CPU ms": at_base["median_cpu_s"] * 1e3,
        "µs per step": at_base["ms_per_step"] * 1e3, "GFLOP/s": at_base["gflops_per_s"],
        "time / gradlab cpu": at_base["ratio_to_cpu"], "CPU time / gradlab cpu": at_base["cpu_time_ratio_to_cpu"],
        "first call ms": at_base["first_call_s"] * 1e3}),
        caption=(f"At the base point T = {base['T']}, B = {base['B']}, H = {base['H']}, all implementations side "
                 "by side (medians; µs per step and GFLOP/s from the wall time)."))

    if len(impls) > 1:
        fig = _ratio_figure(rep, summary, base)
        ratios = summary[summary["impl"] != "cpu"].groupby(["impl", "cell"])["ratio_to_cpu"]
        lo, hi = ratios.min(), ratios.max()
        rep.add_figure(
            fig, "ratios",
            caption=("Median wall time of each other implementation divided by gradlab cpu's (one thread), "
                     "measured in the same point (same inputs, round-robin repeats); above 1 means gradlab cpu is "
                     "faster."),
            takeaway="Against gradlab cpu, across the sizes measured: " + "; ".join(
                f"{i} {c} takes {lo[(i, c)]:.2g}× to {hi[(i, c)]:.2g}× its time" for i, c in lo.index) + ".")

    rep.add_data(timing, "timing", describe="every timed call: implementation, shape, repeat, seconds, the "
                 "point's first call and the load average")
    rep.add_data(summary, "summary", describe="per implementation and shape: median and quartiles of the time, "
                 "GFLOP/s, ratio to gradlab cpu, traced peak and returned bytes against the formula")
    rep.add_data(exps, "exponents", describe="fitted exponents of time and memory per implementation, cell and "
                 "axis, with 95 % confidence intervals")

    # ------------------------------------------------------------------ memory
    rep.section("Peak memory against the documented formula")
    itemsize = 8 if dtype == "float64" else 4
    rep.text(
        "The formula (module docstring of `gradlab.kernels.cpu`, section *Memory*), in words of "
        f"{itemsize} bytes, G gate blocks, [LSTM] = 1 for the LSTM: the trace keeps h, the gate activations and c, "
        "T·B·H·(1 + G + [LSTM]); the backward pass returns ∂x, the per-step norms, ∂h₀ (∂c₀) and the weight "
        "gradients, T·B·(D + 1 + [LSTM]) + B·H·(1 + [LSTM]) + G·H·(D + H + 1); at its peak it also holds the gate "
        "gradients of every step, T·B·G·H. For `rnn_tanh` the peak is T·B·(3H + D + 1) words to leading order, for "
        "the LSTM T·B·(10H + D + 2). `tracemalloc` sees NumPy's array buffers (NumPy registers them with it); it "
        "does not see the kernels' per-thread scratch, O(B·G·H) words allocated by Numba's runtime, which the "
        "formula leaves out too. It counts what every thread of the process allocates, and a Dask client's event "
        "loop allocates a few hundred kB a second, so the memory is measured apart from the timings, in a fresh "
        "Python process that runs nothing else: the Numba backend is called once untraced (its kernels "
        f"load), then each implementation {s['traced']} time(s) under `tracemalloc` (the smallest peak kept).")
    fig = _memory_figure(rep, summary, base)
    rep.add_figure(
        fig, "memory",
        caption=("Peak bytes allocated during one forward + BPTT call, traced by tracemalloc (markers), and the "
                 "formula (lines): the peak and the arrays the call returns. Inputs x and ∂L/∂h are not counted."),
        takeaway=(f"The traced peak stays within {dev.max() * 100:.2f} % of the formula at all {len(traced)} "
                  f"points (median {dev.median() * 100:.2f} %), and the returned arrays match it byte for byte at "
                  f"{n_match} of {len(traced)}."))
    rep.add_table(memory_exponent_table(exps),
                  caption=("Fitted exponents of the traced peak memory, next to the formula's over the same range "
                           "(below 1 where the formula's terms that do not grow with the size still count)."))
    T_axis = on_axis(traced, "T", base)
    rep.add_table(pd.DataFrame({
        "cell": T_axis["cell"], "impl": T_axis["impl"], "T": T_axis["T"],
        "formula peak MB": T_axis["formula_peak_bytes"] / MB, "traced peak MB": T_axis["peak_bytes"] / MB,
        "traced / formula": T_axis["peak_over_formula"],
        "returned MB": T_axis["returned_bytes"] / MB,
        "returned = formula": T_axis["returned_matches_formula"].map({1.0: "yes", 0.0: "no", True: "yes",
                                                                      False: "no"})}),
        caption=f"Along T (B = {base['B']}, H = {base['H']}); every point of the three axes is in `data/summary.csv`.",
        digits=4)

    # ------------------------------------------------------------------ first call
    rep.section("First call: Numba's compilation or cache load, apart from the timings")
    fc = first.sort_values("order")
    compiled = int(fc["cache_misses"].max()) > 0
    rep.add_table(pd.DataFrame({
        "order in the process": fc["order"], "cell": fc["cell"], "import gradlab s": fc["import_s"],
        "first call ms": fc["first_call_s"] * 1e3, "second call ms": fc["second_call_s"] * 1e3,
        "first − second ms": (fc["first_call_s"] - fc["second_call_s"]) * 1e3,
        "kernels from cache": fc["cache_hits"], "kernels compiled": fc["cache_misses"]}),
        caption=(f"A fresh Python process at the base point (T = {base['T']}, B = {base['B']}, H = {base['H']}, "
                 f"{threads} thread{'s' if threads != 1 else ''}): importing gradlab, then two calls per cell. "
                 "The kernels take the cell as an argument, so only the first cell loads (or compiles) them. "
                 + ("Here some kernels were compiled (the on-disk cache was empty or stale); a cold compile of "
                    "every kernel takes far longer than a cache load." if compiled else
                    "Here every kernel came from Numba's on-disk cache; a cold compile (empty cache) takes far "
                    "longer and is not repeated on every run.")))
    rep.add_data(memory, "memory", describe="per host implementation and shape: traced peak (smallest and largest "
                 "of the traced calls), returned bytes, and the formula")
    rep.add_data(first, "first_call", describe="fresh-process import, first and second call per cell, "
                 "Numba cache hits and compilations")
    inproc = summary.groupby("impl")["first_call_s"].max() * 1e3
    rep.text("In the timing process, the slowest first (untimed) call per implementation over all points was "
             + ", ".join(f"{i} {v:.0f} ms" for i, v in inproc.items())
             + "; these calls are excluded from every time above.")

    # ------------------------------------------------------------------ throughput
    rep.section("The sweep engine's throughput against the number of Dask workers")
    fig = _throughput_figure(rep, tt)
    one = tt[tt["workers"] == 1]
    serial = tt[tt["workers"] == 0]
    best = tt[tt["workers"] > 0].sort_values("workers").iloc[-1]
    rep.add_figure(
        fig, "throughput",
        caption=(f"{int(tt['points'].iloc[0])} identical points, each {int(tp['calls'].iloc[0])} "
                 f"forward + BPTT calls of an LSTM (T = {WORK['T']}, B = {WORK['B']}, H = {WORK['H']}) on one "
                 f"thread, run by `gradlab.sweep.run_sweep` into an empty results store, "
                 f"{int(tt['rounds'].iloc[0])} rounds per cluster; workers were warmed (imports, Numba cache) first."),
        takeaway=(f"{int(best['workers'])} workers run {best['pps']:.2f} points/s, {best['speedup_vs_1']:.2f}× one "
                  f"worker's {float(one['pps'].iloc[0]) if len(one) else math.nan:.2f} (efficiency "
                  f"{best['efficiency'] * 100:.0f} % of ideal linear scaling)"
                  + (f"; in-process without Dask: {float(serial['pps'].iloc[0]):.2f} points/s."
                     if len(serial) else ".")))
    rep.add_table(pd.DataFrame({
        "workers": tt["workers"].map(lambda w: "in-process (no Dask)" if w == 0 else str(int(w))),
        "cluster start s": tt["startup_s"], "warm-up s": tt["warm_s"], "close s": tt["close_s"],
        "round wall s (median)": tt["wall_s"], "points/s (median)": tt["pps"],
        "points/s (min … max)": [f"{a:.3g} … {b:.3g}" for a, b in zip(tt["pps_min"], tt["pps_max"])],
        "ideal points/s": tt["ideal_pps"], "speed-up vs 1 worker": tt["speedup_vs_1"],
        "efficiency": tt["efficiency"], "compute s per point": tt["point_s"],
        "sweep call s (all points done)": tt["resume_s"],
        "engine overhead s per point": tt["overhead_per_point_s"], "worker processes used": tt["pids"]}),
        caption=("Per worker count: start-up of the local cluster (not in the throughput), warm-up, shutdown; "
                 "median over rounds. Sweep call: the same sweep run again on its full store (environment "
                 "metadata, store scan, loading the rows), a fixed cost of every round. Overhead per point = "
                 "(round wall time − sweep call) × worker slots / points − the median compute time of a point: "
                 "scheduling, serialisation, waiting for a core and writing the point's files."))

    rep.add_data(tp, "throughput", describe="one row per worker count and round: start-up, warm-up, wall time, "
                 "points per second, compute time of the points")

    # ------------------------------------------------------------------ reading
    rep.section("Reading")
    t_lin = [c for c in CELLS if cpu_T_cpu[c] is not None and np.isfinite(cpu_T_cpu[c]["ci_low"])
             and cpu_T_cpu[c]["ci_low"] <= 1 <= cpu_T_cpu[c]["ci_high"]]
    others = {i: {c: _exp(exps, "CPU time", i, c, "T") for c in CELLS} for i in impls if i != "cpu"}
    others = {i: {c: r for c, r in d.items() if r is not None and np.isfinite(r["ci_low"])} for i, d in others.items()}
    others = {i: d for i, d in others.items() if d}
    mem_T = {(i, c): _exp(exps, "peak memory", i, c, "T") for i in TRACED for c in CELLS}
    mem_txt = ", ".join(f"{i} {c} {r['exponent']:.4f} (formula {r['formula_exponent']:.4f})"
                        for (i, c), r in mem_T.items() if r is not None)
    B_exp = {c: _exp(exps, "CPU time", "cpu", c, "B") for c in CELLS}
    H_exp = {c: _exp(exps, "CPU time", "cpu", c, "H") for c in CELLS}
    H_model = {c: _exp(exps, "FLOPs (SPEC §9)", "model", c, "H") for c in CELLS}
    rep.text(
        "Full BPTT does a fixed amount of work per step forward and backward and keeps every step's state "
        "(Werbos 1990; Williams & Zipser 1995), so its time and memory should be linear in T; Gruslys et al. "
        "(2016) trade that memory for recomputation, which gradlab does not do. "
        + (f"gradlab's Numba backend agrees for {' and '.join(t_lin)}: the 95 % interval of the T-exponent fitted "
           "to its CPU time contains 1" if t_lin else
           "The T-exponents fitted to the CPU time of gradlab's Numba backend have intervals that exclude 1")
        + (f"{'; for ' if t_lin else ' ('}{', '.join(c for c in CELLS if c not in t_lin)}"
           + (" it does not (" if t_lin else ": ")
           + ", ".join(f"{c} {_linear_phrase(cpu_T_cpu[c])}" for c in CELLS if c not in t_lin)
           + "), which can come from fixed costs per call (argument checks, allocation) that flatten the short "
             "end" if len(t_lin) < len(CELLS) else "")
        + ". The wall-time exponents, "
        + ", ".join(f"{c} {_linear_phrase(cpu_T[c])}" for c in CELLS if cpu_T[c] is not None)
        + (", carry the waits of a busy machine (load average "
           f"{float(load.median()):.1f} on {cores} cores), which fall unevenly on short and long calls. "
           if float(load.median()) > cores else ". ")
        + ("The other implementations' T-exponents of CPU time: " + "; ".join(
            f"{i} " + ", ".join(f"{c} {r['exponent']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
                                for c, r in d.items())
            for i, d in others.items()) + ". " if others else "")
        + f"The traced peak memory's T-exponent is {mem_txt}; the formula's is not exactly 1 because of its "
        f"T-independent terms. The level of the traced peak is within {dev.max() * 100:.2f} % of "
        f"the formula at every point (median {dev.median() * 100:.2f} %); the remainder is the O(B·H + G·H²) "
        "scratch the formula leaves out and Python's own objects.")
    rep.text(_other_axes_text(summary, base, B_exp, H_exp, H_model))
    par = on_axis(summary[summary["impl"] == PARALLEL], "B", base)
    if len(par):
        rep.text(
            f"On {par_threads} threads (`{PARALLEL}`) the Numba backend took "
            + "; ".join(f"{_range_ratio(p)} of its one-thread time for {c}" for c, p in par.groupby("cell", sort=False))
            + " (below 1 is faster; with one sequence there is nothing to split and the kernel runs serially). "
            + " ".join(_faster_from(p, c) for c, p in par.groupby("cell", sort=False))
            + (f" On this machine, whose load average was {float(load.median()):.1f} on {cores} cores, a parallel "
               "region also waits whenever one of its threads is not scheduled." if float(load.median()) > cores
               else ""))
    if len(one) and len(two):
        busy = float(load.median()) > cores
        round_s = float(one["wall_s"].iloc[0])
        start_s = float(two["startup_s"].iloc[0])
        rep.text(
            f"The sweep engine itself: one Dask worker ran {float(one['pps'].iloc[0]):.2f} points/s"
            + (f" against {float(serial['pps'].iloc[0]):.2f} in-process without Dask (a point's own compute took "
               f"{float(one['point_s'].iloc[0]):.3g} s in the worker against {float(serial['point_s'].iloc[0]):.3g} s "
               "in-process)" if len(serial) else "")
            + f"; two ran {float(two['pps'].iloc[0]):.2f}, {float(two['speedup_vs_1'].iloc[0]):.2f}× (ideal 2×), "
            + _second_worker(float(two["speedup_vs_1"].iloc[0]), cores, busy) + " "
            f"Starting the local cluster took {float(one['startup_s'].iloc[0]):.1f} s (1 worker) and "
            f"{start_s:.1f} s (2 workers), {start_s / round_s:.2g}× the wall time of one {int(one['points'].iloc[0])}"
            "-point round on one worker: a cluster pays off for sweeps that are long against its start-up, and "
            "`gradlab study --all` starts one cluster and shares it between the studies. Single-threaded points "
            "can at best run as many at a time as there are cores"
            + (f"; with the machine's load average at {float(load.median()):.1f} on {cores} cores during this run, "
               "other processes took part of the cores, so part of the shortfall from ideal scaling is theirs."
               if busy else "."))


def _faster_from(p: pd.DataFrame, cell: str) -> str:
    """From which batch size on the parallel run beat the one-thread run, in words."""
    p = p[p["B"] > 1].sort_values("B")  # with one sequence both runs are the same serial code
    faster = p[p["ratio_to_cpu"] < 0.95]
    if not len(faster):
        return f"For {cell} it was not 5 % faster at any batch size above 1."
    return f"For {cell} it was at least 5 % faster at B = {', '.join(str(int(b)) for b in faster['B'])}."


def _range_ratio(p: pd.DataFrame) -> str:
    """'a× (B = …) to b× (B = …)' for the ratios to one-thread cpu along B."""
    lo, hi = p.loc[p["ratio_to_cpu"].idxmin()], p.loc[p["ratio_to_cpu"].idxmax()]
    return (f"{lo['ratio_to_cpu']:.2f}× (B = {int(lo['B'])}) to {hi['ratio_to_cpu']:.2f}× (B = {int(hi['B'])})")


def _shape(row) -> str:
    return f"T = {int(row['T'])}, B = {int(row['B'])}, H = {int(row['H'])}"


def _other_axes_text(summary, base, B_exp, H_exp, H_model) -> str:
    """The reading of the B and H exponents and of where the slow implementations lose most, from the data."""
    parts = []
    b = {c: r["exponent"] for c, r in B_exp.items() if r is not None and np.isfinite(r["exponent"])}
    h = {c: (r["exponent"], H_model[c]["exponent"]) for c, r in H_exp.items()
         if r is not None and H_model[c] is not None and np.isfinite(r["exponent"])}
    if b:
        parts.append("Along the batch, gradlab cpu's CPU time grows with exponent "
                     + ", ".join(f"{v:.2f} ({c})" for c, v in b.items())
                     + " against 1 for the counted work")
    if h:
        parts.append("along the hidden size with "
                     + ", ".join(f"{k:.2f} ({c}, against {m:.2f} for the work)" for c, (k, m) in h.items()))
    text = "; ".join(parts) + "." if parts else ""
    below = [c for c in b if b[c] < 0.9] + [c for c in h if h[c][0] < h[c][1] - 0.1]
    if below:
        text += (" An exponent below the work's means the larger problems run at a higher rate: at these sizes the "
                 "sequential recurrence (one small matrix product and the gate arithmetic per step, the batch cut "
                 "into one chunk per thread) is bound by fixed costs per step and per call rather than by "
                 "arithmetic, and a wider B or H first fills idle capacity.")
    slow = summary[summary["impl"].isin(["numpy", "torch"])].dropna(subset=["ratio_to_cpu"])
    if len(slow):
        where = []
        for (impl, cell), s in slow.groupby(["impl", "cell"], sort=False):
            top, low = s.loc[s["ratio_to_cpu"].idxmax()], s.loc[s["ratio_to_cpu"].idxmin()]
            where.append(f"{impl} {cell} from {low['ratio_to_cpu']:.3g}× ({_shape(low)}) to "
                         f"{top['ratio_to_cpu']:.3g}× ({_shape(top)})")
        text += (" Relative to gradlab cpu the slower implementations ranged " + "; ".join(where) + ". The NumPy "
                 "reference pays Python's overhead several times per step and PyTorch's CPU modules autograd's, a "
                 "cost per step that does not grow with B·H, while gradlab cpu runs the whole time loop in "
                 "compiled code.")
    return text


__all__ = ["exponents", "on_axis", "summarize", "throughput_table", "write"]
