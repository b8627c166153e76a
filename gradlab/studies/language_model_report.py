"""Figures, tables and the reading of the ``language_model`` study (kept apart from its grid point)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .language_model import COLORS, CORPUS_ENV, DEFAULT, STAGES, TEMPERATURES, corpus_label, split_kinds

STAGE_STYLE = {"initialisation": ("tab:grey", ":"), "early": (None, "--"), "late": (None, "-")}
SAMPLE_LINES = 3
CLAMP = (1e-30, 1e30)


ORDER = ("rnn_tanh", "rnn_relu", "gru", "gru_simple", "gru_cudnn", "lstm")


def _cells(df: pd.DataFrame) -> list[str]:
    present = set(df["cell"])
    return [c for c in ORDER if c in present] + sorted(present - set(ORDER))


def _q(s: pd.Series, q: float) -> float:
    return float(s.quantile(q))


def _fmt(v: float, digits: int = 3) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


# ---------------------------------------------------------------------- tables

def final_table(final: pd.DataFrame, info: dict) -> pd.DataFrame:
    """Per cell: the final held-out nats/char over seeds (median, quartiles, range) and how many beat H₁/2."""
    rows = []
    for cell in _cells(final):
        s = final[final["cell"] == cell]["heldout"]
        tr = final[final["cell"] == cell]["train"]
        rows.append({"cell": cell, "seeds": len(s), "median": s.median(), "q25": _q(s, 0.25), "q75": _q(s, 0.75),
                     "min": s.min(), "max": s.max(), "training batches (median)": tr.median(),
                     "bits/char (median)": s.median() / math.log(2),
                     "vs unigram": s.median() / info["unigram_heldout"],
                     "seeds below H₁/2": int((s <= info["H1"] / 2).sum())})
    return pd.DataFrame(rows)


def fit_table(fits: pd.DataFrame) -> pd.DataFrame:
    """Per cell and stage: ρ of the single-step profile over seeds, its e-folding length, the ratio at k = 20."""
    single = fits[fits["loss"] == "single"]
    rows = []
    for cell in _cells(single):
        for stage in STAGES:
            s = single[(single["cell"] == cell) & (single["stage"] == stage)]
            if not len(s):
                continue
            rho = s["rho"]
            med = rho.median()
            rows.append({"cell": cell, "stage": stage, "step": int(s["step"].median()),
                         "ρ per char (median)": med, "ρ q25": _q(rho, 0.25), "ρ q75": _q(rho, 0.75),
                         "e-folding length (chars)": -1 / med if med < 0 else float("inf"),
                         "ratio at k = 20 (median)": s["median_k20"].median(),
                         "ratio at k = k_fit (median)": s["median_kfit"].median(), "k_fit": int(s["k_fit"].min())})
    return pd.DataFrame(rows)


def starts_like_a_line(texts: pd.Series, initials: str) -> float:
    """The share of the non-empty ``texts`` whose first character begins some corpus line (NaN if all are empty)."""
    t = texts[texts.str.len() > 0]
    return float(t.str[0].isin(set(initials)).mean()) if len(t) else float("nan")


def sample_table(samples: pd.DataFrame, initials: str) -> pd.DataFrame:
    """Per cell and temperature: the shares of new, fragment, copy and empty lines, unfinished, word validity."""
    rows = []
    for cell in _cells(samples):
        for tau in TEMPERATURES:
            s = samples[(samples["cell"] == cell) & (samples["temperature"] == tau)]
            if not len(s):
                continue
            per_seed = s.groupby("replicate")["status"].apply(lambda x: (x == "new").mean())
            rows.append({"cell": cell, "τ": tau, "lines": len(s),
                         "new": (s["status"] == "new").mean(),
                         "new, range over seeds": f"{per_seed.min():.2f} … {per_seed.max():.2f}",
                         "fragment": (s["status"] == "fragment").mean(), "copy": (s["status"] == "copy").mean(),
                         "empty": (s["status"] == "empty").mean(), "unfinished": 1 - s["ended"].mean(),
                         "words found in corpus": s["valid_words"].mean(),
                         "starts like a corpus line": starts_like_a_line(s["text"], initials),
                         "mean length (chars)": s["length"].mean()})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- figures

def _loss_figure(rep, curves: pd.DataFrame, info: dict):
    fig, ax = rep.figure(width=6.4, height=4.2)
    summary = curves.groupby(["cell", "step"])[["heldout", "train"]].quantile([0.25, 0.5, 0.75]).unstack()
    for cell in _cells(curves):
        s = summary.loc[cell]
        steps = s.index.to_numpy()
        ax.fill_between(steps, s[("heldout", 0.25)], s[("heldout", 0.75)], color=COLORS.get(cell), alpha=0.2, lw=0)
        ax.plot(steps, s[("heldout", 0.5)], color=COLORS.get(cell), label=f"{cell}, held-out")
        ok = np.isfinite(s[("train", 0.5)].to_numpy())
        ax.plot(steps[ok], s[("train", 0.5)].to_numpy()[ok], color=COLORS.get(cell), lw=0.8, ls="--", alpha=0.8)
    ax.plot([], [], color="black", lw=0.8, ls="--", label="training batches (any cell)")
    ax.axhline(info["logV"], color="grey", ls=":", lw=1, label=f"uniform, log V = {info['logV']:.2f}")
    ax.axhline(info["unigram_heldout"], color="black", ls="-.", lw=1,
               label=f"unigram (context-free) = {info['unigram_heldout']:.2f}")
    ax.axhline(info["H1"] / 2, color="black", ls=":", lw=0.8, label=f"H₁/2 = {info['H1'] / 2:.2f}")
    ax.set_xlabel("optimiser steps (batches of lines)")
    ax.set_ylabel("loss per character (nats)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    summary.columns = [f"{a}_{'q25' if b == 0.25 else 'q75' if b == 0.75 else 'median'}" for a, b in summary.columns]
    return fig, summary.reset_index()


def still_falling(curves: pd.DataFrame, fraction: float = 0.2, tol: float = 0.02) -> list[str]:
    """The cells whose median held-out loss fell by more than ``tol`` over the last ``fraction`` of the steps."""
    med = curves.groupby(["cell", "step"])["heldout"].median()
    last = curves["step"].max()
    start = curves.loc[curves["step"] <= last * (1 - fraction), "step"].max()
    return [c for c in _cells(curves) if med.loc[(c, start)] - med.loc[(c, last)] > tol]


def profile_summary(profiles: pd.DataFrame, value: str) -> pd.DataFrame:
    """Median and quartiles of ``value`` over sequences and seeds per cell, stage, loss and k."""
    g = profiles.groupby(["cell", "stage", "loss", "k"])[value]
    out = g.quantile([0.25, 0.5, 0.75]).unstack()
    out.columns = ["q25", "median", "q75"]
    out["n"] = g.size()
    return out.reset_index()


def _profile_figure(rep, summary: pd.DataFrame, loss: str, ylabel: str):
    cells = _cells(summary)
    fig, axes = rep.figure(1, len(cells), width=3.3, height=3.3, sharey=True, squeeze=False)
    for ax, cell in zip(axes[0], cells):
        for stage in STAGES:
            s = summary[(summary["cell"] == cell) & (summary["stage"] == stage) & (summary["loss"] == loss)]
            if not len(s):
                continue
            color, ls = STAGE_STYLE[stage]
            color = color or COLORS.get(cell)
            alpha = 0.55 if stage == "early" else 1.0
            k = s["k"].to_numpy()
            ax.fill_between(k, s["q25"].clip(*CLAMP), s["q75"].clip(*CLAMP), color=color, alpha=0.12, lw=0)
            ax.plot(k, s["median"].clip(*CLAMP), color=color, ls=ls, alpha=alpha, label=stage)
        ax.set_yscale("log")
        ax.set_title(cell)
        ax.set_xlabel("distance k (characters)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=7)
    return fig


def _sample_figure(rep, samples: pd.DataFrame):
    per_seed = (samples.assign(new=samples["status"] == "new")
                .groupby(["cell", "temperature", "replicate"])[["new", "valid_words"]].mean() * 100)
    q = per_seed.groupby(["cell", "temperature"]).quantile([0.25, 0.5, 0.75]).unstack()
    fig, axes = rep.figure(1, 2, width=4.2, height=3.3)
    for i, cell in enumerate(_cells(samples)):
        s = q.loc[cell]
        tau = s.index.to_numpy() + (i - 1) * 0.015  # a small offset so that the bars do not hide each other
        for ax, col in zip(axes, ("new", "valid_words")):
            med = s[(col, 0.5)].to_numpy()
            err = np.vstack([med - s[(col, 0.25)].to_numpy(), s[(col, 0.75)].to_numpy() - med])
            ax.errorbar(tau, med, yerr=err, marker="o", capsize=3, color=COLORS.get(cell), label=cell)
    axes[0].set_ylabel("sampled lines that are new (%)")
    axes[1].set_ylabel("sampled words found in the corpus (%)")
    for ax in axes:
        ax.set_xlabel("sampling temperature τ")
        ax.set_xticks(TEMPERATURES)
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------- the report

def _best_seed_samples(samples: pd.DataFrame, final: pd.DataFrame) -> str:
    blocks = []
    for cell in _cells(final):
        f = final[final["cell"] == cell].sort_values("heldout")
        best = f.iloc[0]
        s = samples[(samples["cell"] == cell) & (samples["replicate"] == best["replicate"])]
        lines = [f"{cell}, seed {int(best['seed'])} (held-out {best['heldout']:.3f} nats/char):"]
        for tau in TEMPERATURES:
            for _, r in s[s["temperature"] == tau].head(SAMPLE_LINES).iterrows():
                text = str(r["text"]) if isinstance(r["text"], str) else ""
                lines.append(f"  τ={tau:<4g} [{r['status']:>8}] {text}")
        blocks.append("\n".join(lines))
    return "```text\n" + "\n\n".join(blocks) + "\n```"


def _corpus_part(rep, df: pd.DataFrame, info: dict, s: dict, prefix: str, heading: str) -> dict:
    k = split_kinds(df)
    curves, fits, profiles, samples, final = k["curve"], k["fit"], k["profile"], k["sample"], k["final"]
    samples = samples.assign(text=samples["text"].where(samples["text"].notna(), ""),
                             ended=samples["ended"].astype(bool))
    cells = _cells(final)
    ft = final_table(final, info)
    by_cell = ft.set_index("cell")
    best_cell = by_cell["median"].idxmin()
    fits_t = fit_table(fits)
    st = sample_table(samples, info["initials"])
    out = {"final": ft, "fits": fits_t, "samples": st, "best_cell": best_cell, "info": info,
           "still_falling": still_falling(curves)}

    rep.section(heading)
    rep.text(
        f"Corpus: `{info['path']}` — {info['lines']} lines, {info['characters']} characters, V = {info['V']} "
        f"symbols (with the end token); {info['train_pieces']} line-pieces trained on, {info['heldout_pieces']} "
        f"held out and scored. Unigram entropy H₁ = {info['H1']:.3f} nats/char, uniform log V = {info['logV']:.3f}; "
        f"the unigram model fitted on the training lines scores {info['unigram_heldout']:.3f} nats/char on the "
        "held-out lines — the context-free baseline.")

    fig, curve_summary = _loss_figure(rep, curves, info)
    last = curves[curves["step"] == curves["step"].max()]
    rep.add_figure(
        fig, f"{prefix}loss_curves",
        caption=(f"Held-out loss per character (solid: median over {s['replicates']} seeds, band: quartiles) and the "
                 "training batches' loss per character (dashed: median of the mean over each evaluation interval), "
                 f"against optimiser steps; one-layer networks of H = {s['H']}, Adam lr {s['lr']}, batches of "
                 f"{s['batch']} lines, elementwise clipping at 5."),
        takeaway=(f"After {int(last['step'].max())} steps the median held-out loss is "
                  + ", ".join(f"{c} {by_cell.loc[c, 'median']:.2f}" for c in cells)
                  + f" nats/char, against {info['unigram_heldout']:.2f} for the unigram model and "
                    f"{info['logV']:.2f} for a uniform guess."))
    rep.add_table(ft, caption=("Final held-out loss per character (nats) over seeds: median, quartiles, range; the "
                               "training batches' loss per character over the last evaluation interval; bits "
                               "per character of the median; the median's ratio to the unigram baseline; how many "
                               "seeds reached the task's criterion H₁/2."))
    rep.add_data(curve_summary, f"{prefix}loss_curves", describe="median and quartiles over seeds of the held-out and "
                 "training loss per character at every evaluation step")
    rep.add_data(final, f"{prefix}final", describe="one row per trained network: final held-out and training loss, "
                 "clipping share, cost in seconds")

    prof_rel = profile_summary(profiles, "relative")
    fig = _profile_figure(rep, prof_rel, "single", "‖∂L_T/∂h_{T−k}‖ / ‖∂L_T/∂h_T‖")
    late = fits_t[fits_t["stage"] == "late"].set_index("cell")
    init = fits_t[fits_t["stage"] == "initialisation"].set_index("cell")
    rep.add_figure(
        fig, f"{prefix}profiles_single_step",
        caption=("Single-step gradient profile: the loss of the last scored character of each held-out line only "
                 "(the end token; for a wrapped long line, the last character of its piece), its gradient with respect to the hidden state k characters earlier, relative to "
                 f"k = 0; median (line) and quartiles (band) over {info['probe_lines']} lines × "
                 f"{s['replicates']} seeds, at initialisation, after {s['early']} steps (early) and after "
                 f"{s['steps']} (late). Log scale."),
        takeaway=("Late in training one character's gradient decays by e^(ρk) with ρ = "
                  + ", ".join(f"{late.loc[c, 'ρ per char (median)']:.3g} ({c})" for c in cells if c in late.index)
                  + " per character (at initialisation "
                  + ", ".join(f"{init.loc[c, 'ρ per char (median)']:.3g}" for c in cells if c in init.index)
                  + ")."))
    rep.add_table(fits_t, caption=(
        "Decay of the single-step profile: ρ is the least-squares slope of the log median relative profile against "
        "k over 0 ≤ k ≤ k_fit (every probe line is at least k_fit + 1 characters long), median and quartiles over "
        "seeds; the e-folding length is −1/ρ characters; the ratios are the median relative gradient at k = 20 and "
        "at k = k_fit."))

    prof_abs = profile_summary(profiles, "grad_norm")
    tot = prof_abs[prof_abs["loss"] == "total"]
    fig = _profile_figure(rep, tot, "total", "‖∂L/∂h_t‖ of the whole-line loss")
    k_fit = int(fits_t["k_fit"].min())
    k_near = min(5, k_fit)
    far_near, k0_small = {}, True
    for cell in cells:
        m = tot[(tot["cell"] == cell) & (tot["stage"] == "late")].set_index("k")["median"]
        far_near[cell] = float(m.loc[k_fit] / m.loc[k_near]) if m.loc[k_near] > 0 else float("nan")
        k0_small &= bool(m.loc[0] < 0.5 * m.loc[k_near])
    total_flat = all(v > 0.1 for v in far_near.values())
    rep.add_figure(
        fig, f"{prefix}profiles_total",
        caption=("Total gradient ‖∂L/∂h_t‖ of the training loss (every character of the line scored), at the same "
                 "positions, k characters before the line's last scored step; median and quartiles, absolute "
                 "values, log scale. It sums the contributions of every later character, so it does not vanish "
                 "with k even when each contribution does."),
        takeaway=(f"Late in training the whole-line gradient {k_fit} characters before the end is "
                  + ", ".join(f"{far_near[c]:.2g}× ({c})" for c in cells)
                  + f" its value {k_near} characters before: summed over the scored characters, it "
                  + ("does not vanish with distance" if total_flat else "still shrinks with distance for some cells")
                  + ("; it is small only at k = 0, where the end token's loss alone contributes." if k0_small
                     else ".")))
    out["total_flat"] = total_flat
    rep.add_data(pd.concat([prof_rel[prof_rel["loss"] == "single"], tot]), f"{prefix}profiles",
                 describe="median and quartiles of the single-step profile (relative to k = 0) and of the total "
                          "profile (absolute) per cell, stage and distance k")
    rep.add_data(fits, f"{prefix}decay_fits", describe="one row per network, stage and loss: ρ and its 95 % CI, "
                 "the median ratios at k = 20 and k_fit")

    fig = _sample_figure(rep, samples)
    t1 = st[st["τ"] == 1.0].set_index("cell")
    rep.add_figure(
        fig, f"{prefix}samples",
        caption=(f"Left: the share of sampled lines that are new (non-empty and not a substring of any corpus line), "
                 f"of {s['n_samples']} lines per temperature and seed. Right: the share of their words (runs of "
                 f"letters) that occur in the corpus. Median over {s['replicates']} seeds, bars from the lower to the "
                 "upper quartile."),
        takeaway=("At τ = 1, " + ", ".join(f"{100 * t1.loc[c, 'new']:.0f} % ({c})" for c in cells if c in t1.index)
                  + " of the sampled lines are new (pooled over seeds), and "
                  + ", ".join(f"{100 * t1.loc[c, 'words found in corpus']:.0f} %" for c in cells if c in t1.index)
                  + " of their words are corpus words."))
    rep.add_table(st, caption=(
        "Sampled lines by temperature, pooled over seeds: new = non-empty and not a contiguous substring of any "
        "corpus line (training or held-out); fragment = a proper substring of a corpus line; copy = a whole "
        f"corpus line; empty = the end token drawn first; unfinished = no end token within {s['max_length']} "
        "characters (a loop); words found in corpus: the share of the sampled words (runs of letters) that occur in "
        "the corpus; starts like a corpus line: the share of non-empty samples whose first character begins some "
        f"corpus line ({', '.join(info['initials'])})."))
    rep.text(f"Lines sampled from the best seed (lowest held-out loss) of each cell, {SAMPLE_LINES} per "
             "temperature, with their class:")
    rep.text(_best_seed_samples(samples, final))
    keep = ["cell", "replicate", "seed", "temperature", "index", "status", "ended", "length", "words",
            "valid_words", "text"]
    rep.add_data(samples[keep], f"{prefix}samples", describe="every sampled line with its class")
    return out


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _reading(rep, parts: dict, s: dict) -> None:
    p = parts[DEFAULT]
    ft, fits_t, st, info = p["final"].set_index("cell"), p["fits"], p["samples"], p["info"]
    cells = list(ft.index)
    late = fits_t[fits_t["stage"] == "late"].set_index("cell")
    initf = fits_t[fits_t["stage"] == "initialisation"].set_index("cell")
    gated = [c for c in cells if c != "rnn_tanh"]
    best, worst = ft["median"].idxmin(), ft["median"].idxmax()
    beat = [c for c in cells if ft.loc[c, "max"] < info["unigram_heldout"]]
    has_tanh = "rnn_tanh" in ft.index
    tanh = ft.loc["rnn_tanh", "median"] if has_tanh else float("nan")
    better = [c for c in gated if has_tanh and ft.loc[c, "q75"] < ft.loc["rnn_tanh", "q25"]]
    worse = [c for c in gated if has_tanh and ft.loc[c, "q25"] > ft.loc["rnn_tanh", "q75"]]
    reached = int(ft["seeds below H₁/2"].sum())
    gap = {c: ft.loc[c, "median"] - ft.loc[c, "training batches (median)"] for c in cells}
    overfit = [c for c in cells if gap[c] > 0.1]

    rep.section("Reading")
    if len(beat) == len(cells):
        first = (f"Every cell ends below the context-free (unigram) baseline of {info['unigram_heldout']:.2f} "
                 "nats/char on every seed, so each has learned to use the preceding characters")
    else:
        first = (f"{_join(beat) if beat else 'No cell'} end{'s' if len(beat) == 1 else ''} below the context-free "
                 f"(unigram) baseline of {info['unigram_heldout']:.2f} nats/char on every seed; "
                 f"{_join([c for c in cells if c not in beat])} do{'es' if len(cells) - len(beat) == 1 else ''} not "
                 "on all seeds")
    if better and not worse:
        ranking = (f"gradlab agrees at this size: {_join(better)} end{'s' if len(better) == 1 else ''} clearly below "
                   f"the tanh RNN (interquartile ranges apart; tanh RNN median {tanh:.3f})")
    elif better:
        ranking = (f"gradlab agrees only in part: {_join(better)} end{'s' if len(better) == 1 else ''} clearly below "
                   f"the tanh RNN (median {tanh:.3f}), but {_join(worse)} end{'s' if len(worse) == 1 else ''} clearly "
                   "above it")
    else:
        ranking = (f"gradlab does not reproduce that ranking at this size: no gated cell's interquartile range lies "
                   f"below the tanh RNN's (median {tanh:.3f})"
                   + (f", and {_join(worse)} end{'s' if len(worse) == 1 else ''} clearly above it" if worse else ""))
    regime = ("" if better and not worse else
              f" The regime differs from theirs: {s['steps']} steps of {s['batch']} lines of a "
              f"{info['characters'] // 1000}k-character corpus of short lines, where long memory buys little and how "
              "fast a cell learns per step matters more"
              + (f"; {_join(p['still_falling'])} {'is' if len(p['still_falling']) == 1 else 'are'} still improving "
                 "over the last fifth of training (median held-out loss down by more than 0.02 nats/char)."
                 if p["still_falling"] else "."))
    rep.text(
        f"{first}: the best cell ({best}) reaches a median {ft.loc[best, 'median']:.3f} nats/char "
        f"({ft.loc[best, 'bits/char (median)']:.2f} bits), the worst ({worst}) {ft.loc[worst, 'median']:.3f}; "
        f"{reached} of {int(ft['seeds'].sum())} networks reach the task's criterion H₁/2 = {info['H1'] / 2:.2f}. "
        "Karpathy, Johnson & Fei-Fei (2015) found the LSTM and the GRU clearly better than the vanilla RNN at "
        f"character modelling, on megabyte corpora trained to convergence; {ranking}.{regime}"
        + (f" The training batches end below the held-out lines by "
           + ", ".join(f"{gap[c]:.2f} ({c})" for c in overfit)
           + " nats/char: on a corpus this small the models begin to fit the training lines themselves."
           if overfit else ""))

    rho_late = {c: late.loc[c, "ρ per char (median)"] for c in cells if c in late.index}
    rho_init = {c: initf.loc[c, "ρ per char (median)"] for c in cells if c in initf.index}
    g = [c for c in gated if c in late.index]
    if has_tanh and "rnn_tanh" in late.index:
        t_lo, t_hi = late.loc["rnn_tanh", "ρ q25"], late.loc["rnn_tanh", "ρ q75"]
        longer = [c for c in g if late.loc[c, "ρ q25"] > t_hi]
        shorter = [c for c in g if late.loc[c, "ρ q75"] < t_lo]
    else:
        longer, shorter = [], []
    same = [c for c in g if c not in longer and c not in shorter]
    clauses = []
    if longer:
        clauses.append(f"{_join(longer)} keep{'s' if len(longer) == 1 else ''} one character's gradient alive "
                       "longer than the tanh RNN (interquartile ranges of ρ apart), as the notes lead one to expect")
    if same:
        clauses.append(f"{_join(same)} cannot be told apart from the tanh RNN by ρ (overlapping interquartile "
                       "ranges)")
    if shorter:
        clauses.append(f"{_join(shorter)} lose{'s' if len(shorter) == 1 else ''} it faster than the tanh RNN, "
                       "contrary to that expectation")
    verdict = "; ".join(clauses) if clauses else "there is no tanh RNN to compare with"
    ratio20 = {c: late.loc[c, "ratio at k = 20 (median)"] for c in cells if c in late.index}
    rep.text(
        "The notes motivate the GRU and LSTM by the vanishing gradient of the basic RNN: the loss of a late word "
        "hardly reaches the state that saw an early one. The single-step profile measures exactly that for the loss "
        "of the last character of a held-out line. Late in training its median decays by ρ = "
        + ", ".join(f"{rho_late[c]:.3g} ({c})" for c in rho_late)
        + " per character, an e-folding length of "
        + ", ".join(f"{-1 / rho_late[c]:.1f}" if rho_late[c] < 0 else "∞" for c in rho_late)
        + " characters; at initialisation "
        + ", ".join(f"{rho_init[c]:.3g} ({c})" for c in rho_init)
        + ". Twenty characters back the median gradient is "
        + ", ".join(f"{ratio20[c]:.2g} ({c})" for c in ratio20)
        + f" of its value at the scored step. Trained, {verdict}. A straight line summarises these profiles only "
          "roughly: a trained profile can fall quickly over the first few characters and then flatten (the figure). "
          "Two cautions in reading this. The scored step is the end token"
        + (f", and {100 * info['probe_period_share']:.0f} % of the probe lines end with a full stop, so that prediction "
           "needs only the last character or two and a trained network has little reason to carry its gradient far"
           if info["probe_period_share"] >= 0.5 else "")
        + (". And the whole-line loss that training follows does not vanish with k (the second profile figure), "
           "because every position is a few characters from a scored one: what vanishes is the long-range part of "
           "the gradient, which a corpus of short lines rarely needs." if p["total_flat"] else
           ". The whole-line loss that training follows shrinks with k too for some cells (the second profile "
           "figure)."))

    lo, hi = min(TEMPERATURES), max(TEMPERATURES)
    by = st.groupby("τ")[["new", "words found in corpus", "unfinished", "copy", "fragment"]].mean()
    words = by["words found in corpus"].to_numpy()
    unfinished = by["unfinished"].to_numpy()
    falls = bool(np.all(np.diff(words) < 0))
    loops = bool(unfinished[0] > unfinished[-1])
    karpathy = ("as Karpathy's char-rnn write-up describes: a lower temperature gives more conservative, more "
                "word-like samples, a higher one more diverse and more mistaken ones"
                if falls else "only in part as Karpathy's char-rnn write-up describes (lower temperature, more "
                "conservative and word-like samples; higher, more diverse and more mistaken)")
    rep.text(
        f"Sampling with temperature behaves {karpathy}. Averaged over cells, the share of sampled words that are "
        f"corpus words is " + ", ".join(f"{100 * w:.0f} %" for w in words)
        + f" at τ = {', '.join(f'{t:g}' for t in TEMPERATURES)}, and the share of lines that never draw the end "
          f"token within {s['max_length']} characters (loops such as \"the the the\") is "
        + ", ".join(f"{100 * u:.0f} %" for u in unfinished)
        + (" — the low-temperature loops Karpathy warns of." if loops else ".")
        + " The notes sample from ŷ itself (τ = 1). New lines make up "
        + ", ".join(f"{100 * by.loc[t, 'new']:.0f} %" for t in TEMPERATURES)
        + " of the samples, whole copies of a corpus line "
        + ", ".join(f"{100 * by.loc[t, 'copy']:.0f} %" for t in TEMPERATURES)
        + ("; at this size the models do not memorise lines, and what the temperature changes is how word-like the "
           "new lines are, not whether they are new." if by["copy"].max() < 0.1 else
           "; a visible share of the samples reproduces training lines verbatim (memorisation), most at low "
           "temperature."))
    start = st[st["τ"] == 1.0]["starts like a corpus line"].mean()
    if start < 0.9:
        rep.text(
            f"One flaw shows in the samples: at τ = 1 only {100 * start:.0f} % of the sampled lines begin with a "
            f"character that begins some corpus line (one of {len(info['initials'])}; every corpus line does, by "
            "definition). In the notes' convention x⟨1⟩ = 0, the first hidden state is a function of the biases "
            "alone, so the first character's distribution has to be carried by parameters that every other step "
            "also uses; the samples show it is learned poorly in this budget. Karpathy's char-rnn trains on "
            "fixed-length windows cut from one continuous stream of text, so it has no line start to get right.")
    if len(parts) > 1:
        rep.text("The user-given corpora (" + ", ".join(f"`{v['info']['path']}`" for k, v in parts.items() if k != DEFAULT)
                 + f", from the environment variable {CORPUS_ENV}) have their own part above; this reading is that "
                   "of the default corpus.")


def write(rep, results: dict[str, pd.DataFrame], infos: dict[str, dict], s: dict) -> None:
    """Fill ``rep``: one part per corpus (the default first), then the reading."""
    rep.section("Setup")
    rep.text(
        f"Each of {', '.join(s['cells'])} is trained as the notes' character model (x⟨1⟩ = 0, x⟨t+1⟩ = the one-hot of "
        "the previous character, softmax over the vocabulary at every step, loss summed over the characters of a "
        f"line and averaged over the batch): one layer of H = {s['H']} units, Adam at lr {s['lr']}, batches of "
        f"{s['batch']} lines drawn from the training lines, elementwise gradient clipping at 5 (the notes' "
        f"sampling exercise, Karpathy's min-char-rnn), {s['steps']} steps, {s['replicates']} seeds per cell "
        "(weights, batches and samples all derived from the seed). Every tenth line of the corpus is held out; "
        f"the held-out loss per character is measured every {s['eval_every']} steps. After training, "
        f"{s['n_samples']} lines are sampled at each temperature τ ∈ {{{', '.join(f'{t:g}' for t in TEMPERATURES)}}} "
        f"(softmax(z/τ), at most {s['max_length']} characters). Set the environment variable {CORPUS_ENV} to a "
        "UTF-8 text file to train on it as well (one part of this report per corpus).")
    rep.text(
        "Which gradient profile is plotted. In a language model every step is scored, so ‖∂L/∂h_t‖ of the training "
        "loss sums the gradients of all later characters' losses; it cannot show how far back one prediction's "
        "gradient reaches. The report therefore shows the **single-step profile** ‖∂L_T/∂h_{T−k}‖ / ‖∂L_T/∂h_T‖ of "
        "the loss of the last scored character of each held-out line alone (a mask scoring that one step), against "
        "the distance k in characters — the quantity of Pascanu et al. (2013) — and, separately, the **total "
        "profile** of the whole-line loss at the same positions.")
    users = [infos[p]["path"] for p in results if p != DEFAULT]
    if users:
        rep.text(f"This run also trained on {', '.join(f'`{u}`' for u in users)}: to reproduce it, set "
                 f"`{CORPUS_ENV}={users[0]}` in the environment of the command under *Reproduce*.")
    parts = {}
    for path, df in results.items():
        info = infos[path]
        heading = "Default corpus" if path == DEFAULT else f"User corpus: {corpus_label(path)}"
        prefix = "" if path == DEFAULT else f"{corpus_label(path)}_"
        prefix = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in prefix)
        parts[path] = _corpus_part(rep, df, info, s, prefix, heading)
    p = parts[DEFAULT]
    ft, t1 = p["final"].set_index("cell"), p["samples"]
    new1 = t1[t1["τ"] == 1.0]["new"].mean()
    rep.set_headline(
        f"After {s['steps']} steps the held-out loss per character is "
        + ", ".join(f"{ft.loc[c, 'median']:.2f} ({c})" for c in ft.index)
        + f" nats (median of {s['replicates']} seeds; unigram baseline {p['info']['unigram_heldout']:.2f}, "
          f"log V {p['info']['logV']:.2f}); at τ = 1, {100 * new1:.0f} % of sampled lines are new.")
    _reading(rep, parts, s)
