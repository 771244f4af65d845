"""The book's figures. Each function takes tidy tables and returns a matplotlib Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
import numpy as np
import pandas as pd
import seaborn as sns

from backbone_bench.engine.metrics import PRIMARY

METRIC = f"test_{PRIMARY}"
MODE_ORDER = ["finetune", "linear_probe", "scratch"]
sns.set_theme(style="whitegrid", context="notebook")


def _plain_log_ticks(axis) -> None:
    """Log-axis ticks at 1, 2, 5 x 10^k written as plain numbers, no crowded minor labels."""
    from matplotlib import ticker

    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _spans(value, lo, hi):
    """Error-bar lengths below and above a point. A percentile interval of a z-score or rank (a
    discontinuous statistic) can exclude its point estimate; the bar then ends at the point."""
    value, lo, hi = (np.asarray(v, dtype=float) for v in (value, lo, hi))
    return [np.clip(value - lo, 0, None), np.clip(hi - value, 0, None)]


def calibration(runs: pd.DataFrame, dataset: str):
    """Test ECE per backbone and mode at the smallest shot level (where every mode ran); bars are
    seed means, black lines their spread where there are several seeds."""
    d = runs[(runs["dataset"] == dataset) & (runs["status"] == "ok")]
    d = d[d["shots"] == d["shots"].min()]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    sns.barplot(d, x="backbone", y="test_ece", hue="mode", hue_order=[m for m in MODE_ORDER if m in set(d["mode"])],
                errorbar="sd", ax=ax)
    ax.set(xlabel="", ylabel="calibration error (ECE)",
           title=f"{dataset}, {int(d['shots'].min())} images per class: calibration (lower is better)")
    ax.tick_params(axis="x", rotation=30, labelsize=10)
    ax.legend(fontsize=9, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def confusion(labels: np.ndarray, preds: np.ndarray, classes, title: str):
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(labels, preds, labels=np.arange(len(classes)), normalize="true")
    size = max(4, 0.38 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(cm, annot=len(classes) <= 12, fmt=".2f", cmap="Blues", vmin=0, vmax=1, square=True,
                xticklabels=classes, yticklabels=classes, ax=ax, cbar_kws={"shrink": 0.7})
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def ranking_intervals(table: pd.DataFrame, title: str):
    """Score per backbone with its 95 % interval, one panel per domain (overall first), two a row."""
    domains = list(dict.fromkeys(["overall"] + sorted(d for d in table["domain"].unique() if d != "overall")))
    domains = [d for d in domains if d in set(table["domain"])]
    # two a row, drawn near the width the page shows (about 7.5 in at 100 dpi): 10 pt text stays legible
    cols = min(2, len(domains))
    rows = -(-len(domains) // cols)
    height = 0.32 * table["backbone"].nunique() + 1.3
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols + 1.9, height * rows + 0.5), sharey=True,
                             sharex=True, squeeze=False)
    for ax in axes.flat[len(domains):]:
        ax.set_visible(False)
    order = table[table["domain"] == domains[0]].sort_values("score")["backbone"].tolist()
    for ax, domain in zip(axes.flat, domains):
        t = table[table["domain"] == domain].set_index("backbone").reindex(order)
        y = np.arange(len(order))
        ax.errorbar(t["score"], y, xerr=_spans(t["score"], t["score_lo"], t["score_hi"]), fmt="o", capsize=3)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(domain.replace("_", " "), fontsize=11)
        ax.set_yticks(y, labels=order, fontsize=10)
        ax.tick_params(axis="x", labelsize=10)
    for ax in axes[-1]:
        ax.set_xlabel("z-score", fontsize=10)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def heatmap(cells: pd.DataFrame, value: str = "mean", title: str = ""):
    """(dataset, shots) x backbone heatmap of the seed-mean primary metric: a row per cell, labels
    written horizontally, a column per backbone under its short name, every value printed."""
    from backbone_bench.report.labels import short_name

    cells = cells.sort_values(["dataset", "shots"])
    wide = cells.assign(cell=cells["dataset"] + ", " + cells["shots"].astype(str) + "/class",
                        name=cells["backbone"].map(short_name)).pivot(index="cell", columns="name", values=value)
    wide = wide.reindex(list(dict.fromkeys(cells["dataset"] + ", " + cells["shots"].astype(str) + "/class")))
    fig, ax = plt.subplots(figsize=(min(0.95 * wide.shape[1] + 3.2, 11), 0.36 * wide.shape[0] + 1.6))
    sns.heatmap(wide, annot=wide.shape[1] <= 12, fmt=".2f", cmap="viridis", ax=ax, annot_kws={"fontsize": 9},
                cbar_kws={"label": "balanced accuracy"})
    ax.set(xlabel="", ylabel="", title=title)
    ax.tick_params(axis="x", rotation=0, labelsize=9)
    ax.tick_params(axis="y", rotation=0, labelsize=9)
    ax.xaxis.tick_top()
    fig.tight_layout()
    return fig


def correlation(rho: pd.DataFrame, title: str):
    fig, ax = plt.subplots(figsize=(4.5, 3.8))
    sns.heatmap(rho.astype(float), annot=True, fmt=".2f", cmap="vlag", vmin=-1, vmax=1, square=True, ax=ax)
    ax.set(title=title, xlabel="", ylabel="")
    fig.tight_layout()
    return fig


def rank_agreement(rows: pd.DataFrame, xlabel: str):
    """Rank correlation per dataset (rows) and shot level (colour), with 95 % intervals
    (editions.rank_agreement); a filled marker where both editions choose the same backbone."""
    if rows.empty:
        return None
    datasets = list(dict.fromkeys(rows.sort_values(["domain", "dataset"])["dataset"]))
    levels = sorted(rows["shots"].unique())
    colours = dict(zip(levels, sns.color_palette("viridis", len(levels))))
    fig, ax = plt.subplots(figsize=(7.6, 0.45 * len(datasets) + 1.4))
    for k, shots in enumerate(levels):
        r = rows[rows["shots"] == shots]
        y = np.array([datasets.index(d) for d in r["dataset"]]) + (k - (len(levels) - 1) / 2) * 0.22
        ax.errorbar(r["rho"], y, xerr=_spans(r["rho"], r["lo"], r["hi"]), fmt="none", ecolor=colours[shots], lw=1.2)
        same = r["same"].to_numpy(bool)
        ax.scatter(r["rho"], y, c=[colours[shots] if s else "white" for s in same], edgecolors=[colours[shots]],
                   zorder=3, s=36)
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(range(len(datasets)), datasets, fontsize=11)
    ax.set_xlim(-1.05, 1.05)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel, fontsize=11)
    ax.tick_params(axis="x", labelsize=11)
    # one entry per shot level (its colour) and one for the hollow marker: the data's own markers would
    # list a level twice, or a filled marker no cell has
    handles = [Line2D([], [], ls="none", marker="o", color=colours[s], label=f"{s} per class") for s in levels]
    handles.append(Line2D([], [], ls="none", marker="o", markerfacecolor="white", markeredgecolor="0.35",
                          label="other best backbone"))
    ax.legend(handles=handles, title="filled: same best\nbackbone", fontsize=10, title_fontsize=10,
              loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def pareto(points: pd.DataFrame, x: str, y: str, label: str = "backbone", xlabel: str = "", ylabel: str = ""):
    """Accuracy against a cost, with the Pareto front (cheaper and better) drawn through."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    sns.scatterplot(points, x=x, y=y, hue=label, ax=ax, s=60, legend=False)
    if {f"{y}_lo", f"{y}_hi"} <= set(points):  # the score's 95 % interval on every point
        ax.errorbar(points[x], points[y], yerr=_spans(points[y], points[f"{y}_lo"], points[f"{y}_hi"]),
                    fmt="none", ecolor="grey", capsize=3, lw=1)
    front = pareto_front(points, x, y)
    ax.plot(front[x], front[y], color="black", lw=1, ls="--", label="Pareto front")
    ax.set(xlabel=xlabel or x, ylabel=ylabel or y, xscale="log")
    _plain_log_ticks(ax.xaxis)
    _labels(ax, points[x], points[y], points[label])
    ax.legend(fontsize=9, loc="best")
    fig.tight_layout()
    return fig


def _labels(ax, xs, ys, names) -> None:
    """A label beside each point, moved apart where they would overlap each other or the points
    (adjustText), with a thin leader line where one had to move away."""
    from adjustText import adjust_text

    texts = [ax.text(x, y, name, fontsize=9) for x, y, name in zip(xs, ys, names)]
    ax.figure.canvas.draw()  # text extents as the saved figure has them (the first draw in a process differs)
    adjust_text(texts, x=list(xs), y=list(ys), ax=ax, iter_lim=300,  # not its default time limit: the same figure every build
                arrowprops=dict(arrowstyle="-", color="grey", lw=0.5))


def pareto_front(points: pd.DataFrame, cost: str, value: str) -> pd.DataFrame:
    """Rows not beaten by any cheaper-or-equal row: sorted by cost, keep each new best value."""
    ordered = points.sort_values([cost, value], ascending=[True, False])
    best, keep = -np.inf, []
    for i, v in zip(ordered.index, ordered[value]):
        if v > best:
            keep.append(i)
            best = v
    return ordered.loc[keep]


def accuracy_by_domain(summary: pd.DataFrame, domains, title: str | None = None):
    """The answer at a glance: balanced accuracy against labelled images per class, one panel per
    domain, one line per backbone with its 95 % interval band; fine-tuning solid, linear probe dashed.

    ``summary``: rows (domain, shots, backbone, mode, mean, lo, hi) from report.domain_summary."""
    from backbone_bench.report.labels import domain_title

    return _accuracy_panels(summary, "domain", domains, domain_title, title)


def accuracy_by_dataset(cells: pd.DataFrame, datasets, title: str | None = None):
    """The same figure with one panel per dataset (``cells``: uncertainty.CellDraws.interval())."""
    return _accuracy_panels(cells, "dataset", datasets, str, title)


def _best_per_shot(d: pd.DataFrame) -> list:
    """The backbones a panel's answer names: the best at each shot level (fine-tune where recorded there,
    else the linear probe)."""
    best = []
    for _, at in d.groupby("shots"):
        mode = "finetune" if (at["mode"] == "finetune").sum() >= 2 else "linear_probe"
        pick = at[at["mode"] == mode]
        if len(pick):
            best.append(pick.loc[pick["mean"].idxmax(), "backbone"])
    return list(dict.fromkeys(best))


def _accuracy_panels(summary: pd.DataFrame, facet: str, panels, titles, title=None):
    """One panel per ``facet`` value. The backbones the answer names (best at some shot level) are drawn
    in colour with their 95 % bands and named in the legend; the others thin and grey, so six
    overlapping lines do not hide which one to use."""
    domains = [d for d in panels if d in set(summary[facet])] if len(summary) else []
    if not domains:
        return None  # nothing recorded yet (report.show says so)
    backbones = sorted(summary["backbone"].unique())
    palette = dict(zip(backbones, sns.color_palette("tab10", len(backbones))))
    cols = 1 if len(domains) == 1 else 2
    rows = -(-len(domains) // cols)
    # drawn at about the width the page shows it (7.6 in at 100 dpi), so 10 pt text stays 10 pt
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 0.4, 3.0 * rows + 0.9), sharey=True, squeeze=False)
    for ax in axes.flat[len(domains):]:
        ax.set_visible(False)
    named = set()
    for ax, domain in zip(axes.flat, domains):
        d = summary[summary[facet] == domain]
        best = _best_per_shot(d)
        named.update(best)
        for (backbone, mode), line in d.groupby(["backbone", "mode"]):
            if mode == "scratch":
                continue
            line = line.sort_values("shots")
            # dodge the backbones a little along the log axis so their intervals do not hide each other
            x = line["shots"] * 1.07 ** (backbones.index(backbone) - (len(backbones) - 1) / 2)
            style = "-" if mode == "finetune" else "--"
            marker = "o" if mode == "finetune" else "s"
            if backbone not in best:
                ax.plot(x, line["mean"], style, marker=marker, ms=2.5, color="0.72", lw=0.9, zorder=1)
                continue
            ax.plot(x, line["mean"], style, marker=marker, ms=4.5, color=palette[backbone], lw=2, zorder=3)
            ax.errorbar(x, line["mean"], yerr=_spans(line["mean"], line["lo"], line["hi"]),
                        color=palette[backbone], capsize=2, lw=1, fmt="none", zorder=3)
            if len(line) > 1:
                ax.fill_between(x, line["lo"], line["hi"], color=palette[backbone], alpha=0.12, lw=0, zorder=2)
        if "chance" in d and d["chance"].notna().any():  # guessing's balanced accuracy, 1 / classes
            ax.axhline(d["chance"].mean(), color="0.35", ls=":", lw=1.2, zorder=0)
        shots = sorted(d["shots"].unique())
        ax.set_xscale("log")
        ax.set_xticks(shots, labels=[str(s) for s in shots])
        ax.minorticks_off()
        ax.set_xlim(min(shots) / 1.6, max(shots) * 1.6)
        ax.set(title=titles(domain), xlabel="labelled images per class")
        ax.tick_params(labelsize=10)
    for row in axes:
        row[0].set_ylabel("balanced accuracy (test)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=palette[b], lw=2, label=b) for b in backbones if b in named]
    handles += [Line2D([], [], color="0.72", lw=1, label="other backbones"),
                Line2D([], [], color="k", ls="-", label="fine-tune"), Line2D([], [], color="k", ls="--", label="linear probe")]
    if "chance" in summary and summary["chance"].notna().any():
        handles.append(Line2D([], [], color="0.35", ls=":", label="chance (1 / classes)"))
    legend_rows = -(-len(handles) // 3)
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=10, frameon=False)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0.045 * legend_rows * 2 / rows, 1, 1))
    return fig
