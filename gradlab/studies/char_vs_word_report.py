"""Figures, tables and the reading of the ``char_vs_word`` study (kept apart from its grid point)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .char_vs_word import (CLIP_NORM, COLORS, MODELS, PROBE_MIN_TOKENS, REACH_LEVEL, STYLES, TEMPERATURE,
                           corpora)

CLAMP = (1e-30, 1e30)
LABEL = {"word": "word model", "char": "character model"}
YLABEL = r"$\|\partial L_T/\partial h_t\| \,/\, \|\partial L_T/\partial h_T\|$"


def _rows(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    return df[df["kind"] == kind].dropna(axis=1, how="all").reset_index(drop=True)


def quartiles(values) -> tuple[float, float, float]:
    """(q25, median, q75) of ``values`` (NaN ignored)."""
    q = np.nanquantile(np.asarray(values, np.float64), [0.25, 0.5, 0.75])
    return float(q[0]), float(q[1]), float(q[2])


def unigram_perplexity() -> float:
    """Held-out per-word perplexity of the training sentences' unigram distribution over the word vocabulary."""
    words, _ = corpora()
    ids = np.concatenate(words.encode_sentences(None))
    return float(np.exp(-words.unigram_log_probs[ids].mean()))


def summarize(rows: pd.DataFrame, by: list[str], x: str, value: str = "relative") -> pd.DataFrame:
    """Median and quartiles of ``value`` over probe sentences and seeds, per ``by`` and ``x``."""
    g = rows.groupby(by + [x])[value]
    out = g.quantile([0.25, 0.5, 0.75]).unstack()
    out.columns = ["q25", "median", "q75"]
    out["n"] = g.count()
    return out.reset_index()


def profile_summaries(profile: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The profile against steps (k up to the distance every probe covers) and against words (aligned states)."""
    k_max = profile.groupby(["model", "replicate", "cell", "sequence"])["k"].max().groupby("model").min()
    d_max = profile[profile["model"] == "word"].groupby(["replicate", "cell", "sequence"])["k"].max().min()
    steps = profile[profile["k"] <= profile["model"].map(k_max)]
    words = profile[profile["aligned"] & (profile["words"] <= d_max)]
    return summarize(steps, ["cell", "model", "stage"], "k"), summarize(words, ["cell", "model", "stage"], "words")


def _band(ax, s: pd.DataFrame, x: str, color, ls, label):
    xs = s[x].to_numpy()
    ax.fill_between(xs, s["q25"].clip(*CLAMP), s["q75"].clip(*CLAMP), color=color, alpha=0.15, linewidth=0)
    ax.plot(xs, s["median"].clip(*CLAMP), color=color, ls=ls, label=label)


def _profile_figure(rep, by_k: pd.DataFrame, by_w: pd.DataFrame, cells):
    fig, axes = rep.figure(2, 2, width=4.8, height=3.4, sharey="row")
    for row, stage in enumerate(("trained", "initialisation")):
        for col, (summary, x, xlabel) in enumerate(
                ((by_k, "k", "distance from the loss (steps: characters or words)"),
                 (by_w, "words", "distance from the loss (words of text)"))):
            ax = axes[row, col]
            for cell in cells:
                for model in MODELS:
                    s = summary[(summary["cell"] == cell) & (summary["model"] == model) & (summary["stage"] == stage)]
                    _band(ax, s, x, COLORS[cell], STYLES[model], f"{cell}, {LABEL[model]}")
            ax.set_yscale("log")
            ax.axhline(REACH_LEVEL, color="grey", lw=0.8, ls=":")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(YLABEL)
            ax.set_title(f"{stage}: against {'steps' if x == 'k' else 'words'}")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    return fig


def _perplexity_figure(rep, final: pd.DataFrame, cells, unigram: float):
    fig, ax = rep.figure(width=5.6, height=3.8)
    offsets = {"word": -0.15, "char": 0.15}
    markers = {"word": "o", "char": "s"}
    for i, cell in enumerate(cells):
        for model in MODELS:
            v = final[(final["cell"] == cell) & (final["model"] == model)]["ppl_word"].to_numpy()
            x = i + offsets[model]
            q25, med, q75 = quartiles(v)
            ax.scatter(np.full(len(v), x), v, color=COLORS[cell], marker=markers[model], s=18, alpha=0.6,
                       label=LABEL[model] if i == 0 else None)
            ax.plot([x - 0.08, x + 0.08], [med, med], color="black", lw=1.5)
            ax.plot([x, x], [q25, q75], color="black", lw=0.8)
    ax.axhline(unigram, color="grey", ls="--", lw=0.8, label=f"unigram word model ({unigram:.0f})")
    ax.set_xticks(range(len(cells)), cells)
    ax.set_yscale("log")
    ax.set_ylabel("held-out perplexity per word (log scale)")
    ax.set_xlabel("cell (circles: word model, squares: character model)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return fig


def _curve_figure(rep, curves: pd.DataFrame, cells, unigram: float):
    fig, axes = rep.figure(1, len(cells), width=4.4, height=3.4, sharey=True, squeeze=False)
    summary = summarize(curves, ["cell", "model"], "step", "nats_per_word")
    for ax, cell in zip(axes[0], cells):
        for model in MODELS:
            s = summary[(summary["cell"] == cell) & (summary["model"] == model)]
            _band(ax, s, "step", COLORS[cell], STYLES[model], LABEL[model])
        ax.axhline(np.log(unigram), color="grey", ls=":", lw=0.8, label="unigram word model")
        ax.set_title(cell)
        ax.set_xlabel("optimiser step (same batches for both models)")
        ax.set_ylabel("training cross-entropy (nats per word)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    return fig, summary


def _ratio_table(fits: pd.DataFrame) -> pd.DataFrame:
    """Per cell and seed: the trained models' reach in words and the ratio character / word."""
    t = fits[fits["stage"] == "trained"].pivot_table(index=["cell", "replicate"], columns="model",
                                                      values=["reach_words", "rho_word", "rho_step"])
    ext = fits[fits["stage"] == "trained"].pivot_table(index=["cell", "replicate"], columns="model",
                                                        values="reach_extrapolated", aggfunc="max")
    out = pd.DataFrame({
        "reach_word": t[("reach_words", "word")], "reach_char": t[("reach_words", "char")],
        "extrapolated_word": ext["word"].astype(bool), "extrapolated_char": ext["char"].astype(bool),
        "rho_word_word": t[("rho_word", "word")], "rho_word_char": t[("rho_word", "char")],
        "rho_step_word": t[("rho_step", "word")], "rho_step_char": t[("rho_step", "char")],
    })
    out["ratio"] = out["reach_char"] / out["reach_word"]
    out["efold_ratio"] = out["rho_word_word"] / out["rho_word_char"]
    return out.reset_index()


def _scored(fw: pd.DataFrame, words) -> str:
    n = int(fw["sentences_heldout"].iloc[0])
    return "all scored" if n == len(words.holdout_sentences) else f"{n} of them, evenly spaced, scored"


def _seeds(n: int) -> str:
    return "one seed" if n == 1 else f"median of {n} seeds"


def _fmt_iqr(v) -> str:
    q25, med, q75 = quartiles(v)
    return f"{med:.3g} [{q25:.3g}, {q75:.3g}]"


def write(rep, df: pd.DataFrame, s: dict) -> None:
    """All figures, tables and text of the report."""
    cells = [c for c in s["cells"] if c in set(df["cell"])]
    final, fits = _rows(df, "final"), _rows(df, "fit")
    profile, curves, samples = _rows(df, "profile"), _rows(df, "curve"), _rows(df, "sample")
    words, _ = corpora()
    unigram = unigram_perplexity()
    n_seeds = int(final["replicate"].nunique())
    fw, fc = final[final["model"] == "word"], final[final["model"] == "char"]
    cpu = final.pivot_table(index=["cell", "replicate"], columns="model", values="train_cpu_s")
    cpu_ratios = (cpu["char"] / cpu["word"]).to_numpy()
    chars_per_word = float(fc["symbols"].iloc[0] / fc["words_heldout"].iloc[0])
    ppl = final.groupby(["cell", "model"])["ppl_word"].median()
    ratios = _ratio_table(fits)
    ratio_med = ratios.groupby("cell")["ratio"].median()
    reach_med = ratios.groupby("cell")[["reach_word", "reach_char"]].median()
    by_k, by_w = profile_summaries(profile)
    d_max = int(by_w["words"].max())

    rep.set_headline(
        "Same sentences, same steps: held-out perplexity per word "
        + "; ".join(f"{c} word {ppl[(c, 'word')]:.3g} vs character {ppl[(c, 'char')]:.3g}" for c in cells)
        + f" ({_seeds(n_seeds)}); the gradient of −log P(⟨EOS⟩) reaches "
        + "; ".join(f"{c} {reach_med.loc[c, 'reach_char']:.2g} words back in the character model vs "
                    f"{reach_med.loc[c, 'reach_word']:.2g} in the word model (ratio {ratio_med[c]:.2g})" for c in cells)
        + f" at the 10⁻³ level.")

    rep.section("Setup")
    rep.text(
        f"The default word corpus (gradlab/tasks/data/words.txt): {words.num_sentences:,} training and "
        f"{len(words.holdout_sentences):,} held-out sentences ({_scored(fw, words)}), word vocabulary "
        f"V = {words.vocab_size} (words seen at least 3 times, ⟨EOS⟩ and ⟨UNK⟩; ⟨UNK⟩ replaces "
        f"{words.holdout_unk_rate:.1%} of the held-out words). The "
        f"character model reads the same training sentences, detokenized, one per line (V = "
        f"{int(fc['V'].iloc[0])} characters with the end token). A held-out sentence is {chars_per_word:.2f} times "
        "longer in characters (end token included) than in word tokens (words and punctuation marks, ⟨EOS⟩ "
        "included).")
    rep.text(
        f"**The same budget.** For each cell and seed a word model and a character model, one layer of "
        f"H = {s['H']} units each, take {s['steps']} Adam steps (learning rate {s['lr']:g}, global norm clipping at "
        f"{CLIP_NORM:g}) on batches of {s['batch']} sentences, and both draw **the same sentences in the same order** "
        f"(one data seed per pair): {s['steps'] * s['batch']:,} sentences each, with the same hidden size and "
        "optimiser. The compute is not the same: the character model makes about "
        f"{chars_per_word:.1f} times as many (cheaper) predictions; its training took "
        f"{_fmt_iqr(cpu_ratios)} times the word model's CPU time "
        f"(median [quartiles] over pairs). {n_seeds} seed{'s' if n_seeds > 1 else ''} per cell"
        + ("" if n_seeds >= 5 else " (the reduced run: every seed is shown)") + ".")
    rep.text(
        "**Perplexity per word.** The word model's held-out perplexity is exp(−Σ log P / N) over the N word tokens "
        "of the held-out sentences, one ⟨EOS⟩ per sentence included. The character model's total −log P of the same "
        "sentences (every character and its end token, which plays ⟨EOS⟩'s part) is divided by the same N. Both "
        "are the probability each model gives the same held-out text, except that the word model pays only for the "
        f"⟨UNK⟩ class where a rare word stands ({words.holdout_unk_rate:.1%} of held-out words), which favours it "
        "slightly.")
    rep.text(
        f"**Gradient reach.** For {s['probes']} fixed held-out probe sentences of at least {PROBE_MIN_TOKENS} word "
        "tokens, the loss of the last step alone, L_T = −log P(⟨EOS⟩ | sentence) (a mask scoring one step), is "
        "back-propagated and ‖∂L_T/∂h_t‖ / ‖∂L_T/∂h_T‖ recorded at every earlier step. A state that predicts a "
        "symbol of word token j, in a sentence of N tokens, is N − j words from the loss; for the character model "
        "a space counts with the word after it, and the *word-aligned* states are those predicting the first "
        "character of a word, which have read exactly what the word model's state predicting that word has read. "
        f"ρ per word is the slope of the log of the median word-aligned profile over distances 0 … {d_max} words "
        f"(covered by every probe). The reach is the distance in words where that median falls below "
        f"{REACH_LEVEL:g}, read off the data when it falls that low within {d_max} words and otherwise "
        "extrapolated along the fitted line (ln 10⁻³ / ρ).")

    rep.section("Perplexity per word")
    fig = _perplexity_figure(rep, final, cells, unigram)
    best_char = min(cells, key=lambda c: ppl[(c, "char")])
    rep.add_figure(
        fig, "perplexity",
        caption=(f"Held-out perplexity per word of every model (one point per seed), median (bar) and quartiles "
                 f"(line), after {s['steps']} steps; the dashed line is the unigram word model."),
        takeaway=("At the same budget the word models reach "
                  + ", ".join(f"{ppl[(c, 'word')]:.3g} ({c})" for c in cells)
                  + " and the character models "
                  + ", ".join(f"{ppl[(c, 'char')]:.3g} ({c})" for c in cells)
                  + f" per word (unigram {unigram:.0f})."))
    table = final.groupby(["cell", "model"], sort=False).agg(
        ppl=("ppl_word", lambda v: _fmt_iqr(v)), nats_word=("nats_per_word", "median"),
        nats_symbol=("nats_per_symbol", "median"), cpu=("train_cpu_s", "median"),
        clipped=("clipped_share", "median")).reset_index()
    table.columns = ["cell", "model", "perplexity per word, median [q25, q75]", "nats per word",
                     "nats per symbol (word or character)", "training CPU s", "share of steps clipped"]
    rep.add_table(table, caption=f"Held-out scores, medians over {n_seeds} seed(s); unigram word perplexity "
                                 f"{unigram:.1f} ({np.log(unigram):.3f} nats per word).")
    rep.add_data(final, "final", describe="per cell, seed and model: held-out perplexity per word, nats per word "
                                          "and per symbol, training CPU and wall seconds")

    rep.section("Training curves on the same batches")
    fig, curve_summary = _curve_figure(rep, curves, cells, unigram)
    last = curve_summary[curve_summary["step"] == curve_summary["step"].max()].set_index(["cell", "model"])["median"]
    rep.add_figure(
        fig, "curves",
        caption=(f"Training cross-entropy in nats per word on each step's batch (the character model's total over "
                 f"the batch divided by its word tokens), averaged over windows of {s['curve_every']} steps; median "
                 "and quartiles over seeds."),
        takeaway=("After the last window the word models are at "
                  + ", ".join(f"{last[(c, 'word')]:.3g} ({c})" for c in cells)
                  + " and the character models at "
                  + ", ".join(f"{last[(c, 'char')]:.3g} ({c})" for c in cells) + " nats per word."))
    rep.add_data(curves, "curves", describe="training nats per word per window of steps, cell, model and seed")

    rep.section("How far back the gradient of one prediction reaches")
    fig = _profile_figure(rep, by_k, by_w, cells)
    tr_w = by_w[(by_w["stage"] == "trained")].set_index(["cell", "model", "words"])["median"]
    tr_k = by_k[(by_k["stage"] == "trained")].set_index(["cell", "model", "k"])["median"]
    at_w, at_k = min(5, d_max), min(10, d_max)
    rep.add_figure(
        fig, "profiles",
        caption=(f"‖∂L_T/∂h_t‖ relative to the last step for L_T = −log P(⟨EOS⟩ | sentence), median (line) and "
                 f"quartiles (band) over {s['probes']} probe sentences × {n_seeds} seed(s); left against the "
                 "distance in the model's own steps, right against the distance in words of text (word-aligned "
                 f"states); top after training, bottom at initialisation; dotted: {REACH_LEVEL:g}."),
        takeaway=(f"{at_k} steps back the trained models keep "
                  + "; ".join(f"{c} {tr_k.loc[(c, 'word', at_k)]:.2g} (word) and {tr_k.loc[(c, 'char', at_k)]:.2g} "
                              "(character)" for c in cells)
                  + f" of the last step's gradient norm; {at_w} words of text back, "
                  + "; ".join(f"{c} {tr_w.loc[(c, 'word', at_w)]:.2g} and {tr_w.loc[(c, 'char', at_w)]:.2g}"
                              for c in cells) + "."))
    reach_table = ratios.groupby("cell", sort=False).agg(
        reach_word=("reach_word", _fmt_iqr), reach_char=("reach_char", _fmt_iqr), ratio=("ratio", _fmt_iqr),
        rho_w=("rho_word_word", "median"), rho_c=("rho_word_char", "median"), step_w=("rho_step_word", "median"),
        step_c=("rho_step_char", "median"), efold=("efold_ratio", _fmt_iqr), ext_w=("extrapolated_word", "mean"),
        ext_c=("extrapolated_char", "mean")).reset_index()
    reach_table.columns = ["cell", "reach, word model (words)", "reach, character model (words)",
                           "ratio character / word", "ρ per word, word model", "ρ per word, character model",
                           "ρ per step, word model", "ρ per step, character model",
                           "e-folding distance ratio character / word",
                           "share extrapolated (word)", "share extrapolated (character)"]
    rep.add_table(reach_table, caption=(f"Trained models: reach at the {REACH_LEVEL:g} level in words of text, "
                                        "median [q25, q75] over seeds, the ratio taken seed by seed; ρ per word "
                                        "and per step are medians (natural log)."))
    if n_seeds < 5:
        rep.add_table(ratios, caption="Every seed (the reduced run has fewer than 5).")
    init = fits[fits["stage"] == "initialisation"].groupby(["cell", "model"])[["rho_word", "reach_words"]].median()
    rep.add_table(init.reset_index().rename(columns={"rho_word": "ρ per word at initialisation",
                                                     "reach_words": "reach at initialisation (words)"}),
                  caption="The same at initialisation (medians over seeds).")
    rep.add_data(ratios, "reach", describe="per cell and seed: reach in words and ρ of both trained models, and "
                                           "their ratio")
    rep.add_data(fits, "fits", describe="per cell, seed, model and stage: ρ per word and per step, reach in words")
    rep.add_data(by_k, "profiles_steps", describe="median and quartiles of the relative profile against steps")
    rep.add_data(by_w, "profiles_words", describe="median and quartiles of the relative profile against words "
                                                  "(word-aligned states)")

    rep.section("Samples")
    first = samples[samples["replicate"] == samples["replicate"].min()]
    shown = first.groupby(["cell", "model"], sort=False).head(3).copy()
    shown["text"] = shown["text"].fillna("").astype(str).where(lambda t: t.str.strip() != "",
                                                               "(empty: the end token came first)")
    rep.add_table(shown[["cell", "model", "text"]].rename(columns={"text": "sampled sentence"}),
                  caption=(f"Sentences sampled at temperature {TEMPERATURE:g} from the first seed's trained models "
                           "(the word model never draws ⟨UNK⟩: its probability is set to 0 and the rest "
                           "renormalised)."))
    known = samples[samples["model"] == "char"].groupby("cell")["known_words"].median()
    unk = int(samples[samples["model"] == "word"]["unk"].sum())
    rep.text(
        f"Of the character models' sampled tokens, the median share that are words of the corpus is "
        + ", ".join(f"{known[c]:.0%} ({c})" for c in cells)
        + f"; the word models spell only corpus words by construction, and drew ⟨UNK⟩ {unk} times.")
    rep.add_data(samples, "samples", describe="every sampled sentence, its model, cell and seed")

    rep.section("Reading")
    steps_axis = np.sort(curve_summary["step"].unique())
    late = steps_axis[max(int(round(0.8 * len(steps_axis))) - 1, 0)]
    late_steps = int(steps_axis[-1] - late)
    at_late = curve_summary[curve_summary["step"] == late].set_index(["cell", "model"])["median"]
    drop = at_late - last
    factor = {c: ppl[(c, "char")] / ppl[(c, "word")] for c in cells}
    cpu_ratio = float(np.median(cpu_ratios))
    word_better = all(f > 1 for f in factor.values())
    slower = all(drop[(c, "char")] > drop[(c, "word")] for c in cells)
    shorter = all(ratio_med[c] < 1 for c in cells)
    rho = fits[fits["stage"] == "trained"].groupby(["cell", "model"])[["rho_step", "rho_word"]].median()
    efold = {c: rho.loc[(c, "word"), "rho_word"] / rho.loc[(c, "char"), "rho_word"] for c in cells}
    rep.text(
        ("With the same sentences and the same number of updates, the word models reach a lower perplexity per "
         "word than the character models for every cell" if word_better else
         "With the same sentences and the same number of updates, neither level wins for every cell")
        + ": " + "; ".join(f"{c} {ppl[(c, 'word')]:.3g} against {ppl[(c, 'char')]:.3g} (a factor of "
                           f"{factor[c]:.2g})" for c in cells)
        + f", unigram {unigram:.0f}"
        + ("; the character models have not yet reached even the unigram word model's perplexity"
           if all(ppl[(c, "char")] > unigram for c in cells) else "")
        + f". Over the last {late_steps} steps the training cross-entropy still fell by "
        + ", ".join(f"{drop[(c, 'char')]:.2g} ({c})" for c in cells) + " nats per word for the character models "
        "and by " + ", ".join(f"{drop[(c, 'word')]:.2g} ({c})" for c in cells) + " for the word models"
        + ("; the character models are further from where they would end up — a character model must learn to "
           "spell before it can learn which word follows which — so the gap measures speed of learning at this "
           "budget more than the quality either level can reach." if slower else
           "; the character models are not uniformly the slower learners at this budget.")
        + " Mikolov et al. (2012) and Graves (2013) report character-level RNNs behind word-level ones in "
        "per-word perplexity on the Penn Treebank after full training, and Hwang & Sung (2017) attribute the gap to "
        "the longer history a character model must consider; gradlab "
        + ("agrees on the direction" if word_better else "does not reproduce even the direction")
        + f", but after only {s['steps']} updates on a small corpus its factor is not comparable with theirs. Two "
        "caveats: the budget is equal in updates and sentences, not in compute — the character models used "
        f"{_fmt_iqr(cpu_ratios)} times the word models' training CPU time, "
        f"so an equal-compute budget would give them about {1 / cpu_ratio:.2g} times the steps, which this study "
        "does not run; and the "
        f"character model never meets ⟨UNK⟩, which this corpus penalises little ({words.holdout_unk_rate:.1%} of "
        "held-out words).")
    rep.text(
        "The notes' worry is that a character model 'must carry dependencies over many more steps'. Per step of "
        "its own the trained character model's gradient decays at ρ = "
        + ", ".join(f"{rho.loc[(c, 'char'), 'rho_step']:.2g} ({c})" for c in cells)
        + " per character, against "
        + ", ".join(f"{rho.loc[(c, 'word'), 'rho_step']:.2g} ({c})" for c in cells)
        + f" per word for the word model; with {chars_per_word:.2f} characters per word of text, "
        + ("the character model's gradient reaches fewer words back" if shorter else
           "the comparison in words of text is not one-sided")
        + ": " + "; ".join(f"{c} {reach_med.loc[c, 'reach_char']:.2g} words against "
                           f"{reach_med.loc[c, 'reach_word']:.2g} (ratio {ratio_med[c]:.2g}, median over seeds)"
                           for c in cells)
        + f" at the {REACH_LEVEL:g} level; the ratio of the e-folding distances 1/|ρ per word|, which needs no "
        "threshold, is " + ", ".join(f"{efold[c]:.2g} ({c})" for c in cells)
        + ". This is the notes' trade-off seen as gradient dynamics (Bengio et al. 1994; Pascanu et al. 2013): the "
        "error signal of a prediction passes through a product of one Jacobian per step, and the character model "
        "puts several steps where the word model puts one"
        + (f", so every word of text costs it about {chars_per_word:.1f} steps of decay." if shorter else "."))
