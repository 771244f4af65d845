"""The answer's tables and the sentences they decide: cells, decision table, rankings, gains."""
from __future__ import annotations

import numpy as np
import pandas as pd
from IPython.display import Markdown

from backbone_bench.analysis import ranking, uncertainty
from backbone_bench.data.registry import DATASETS
from backbone_bench.report.labels import (DOMAINS_IN_ORDER, GAINS, MODE_NAMES, SHORT_DOMAIN, chance_of, domain_title,
                                          fmt_interval, interval_note)


def cell_table(cells: uncertainty.CellDraws) -> pd.DataFrame:
    """Seed mean [95 % interval] per (dataset, shots, backbone) x mode, what its interval holds (n
    independent training subsets, or test images only), and chance beside it; a cell whose interval
    reaches chance says so."""
    t = _with_chance(cells).interval()
    overlap = t["overlap"] if "overlap" in t else pd.Series(0.0, index=t.index)
    n_eff = t["n_effective"] if "n_effective" in t else t["n_subsets"].astype(float)
    notes = [interval_note(n, bool(shared), runs, o, e)
             for n, shared, runs, o, e in zip(t["n_subsets"], t["subset_shared"], t["n_runs"], overlap, n_eff)]
    t["text"] = [uncertainty.fmt(m, lo, hi) + f" {note}" + (" ≤chance" if lo <= c else "")
                 for m, lo, hi, note, c in zip(t["mean"], t["lo"], t["hi"], notes, t["chance"])]
    wide = t.set_index(["dataset", "shots", "backbone", "mode"])["text"].unstack("mode").fillna("").rename_axis(columns=None)
    chance = t.drop_duplicates("dataset").set_index("dataset")["chance"]
    return wide.assign(chance=[f"{chance[d]:.3f}" for d in wide.index.get_level_values("dataset")])


def cell_display(cells: uncertainty.CellDraws) -> pd.DataFrame:
    """``cell_table`` as a page shows it: short backbone names and mode headings, so that the three
    modes fit beside each other (the long names and headings left the last column 10 px wide)."""
    from backbone_bench.report.labels import SHORT_MODES, short_name

    t = cell_table(cells).reset_index()
    t["backbone"] = t["backbone"].map(short_name)
    return t.rename(columns=SHORT_MODES)


def domain_ranking(table: pd.DataFrame, cells: uncertainty.CellDraws, mode: str = "finetune") -> pd.DataFrame | None:
    ok = ranking.select(table, mode)
    if ok.empty or ok["backbone"].nunique() < 2:
        return None
    domains = {d: DATASETS[d].domain for d in ok["dataset"].unique()}
    return ranking.bootstrap(ok, domains, None, draws=cells.of(mode))


def ranking_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Scores and mean ranks, the overall ranking first (the page's answer), then each domain."""
    t = scores.copy()
    t = t.assign(first=t["domain"] != "overall").sort_values(["first", "domain", "score"], ascending=[True, True, False])
    t["score [95% CI]"] = t.apply(fmt_interval, axis=1)
    t["mean rank [95% CI]"] = t.apply(lambda r: uncertainty.fmt(r["mean_rank"], r["rank_lo"], r["rank_hi"], 2), axis=1)
    return t[["domain", "backbone", "score [95% CI]", "mean rank [95% CI]"]].set_index(["domain", "backbone"])


def separable(scores: pd.DataFrame, domain: str, top: str, second: str) -> bool:
    """The top backbone's score minus the runner-up's, replicate by replicate (paired on the same
    resamples), has a 95 % interval above zero."""
    draws = scores.attrs.get("score_draws")
    if draws is None:
        return False
    lo, hi = uncertainty.quantiles(draws.loc[(domain, top)].to_numpy() - draws.loc[(domain, second)].to_numpy())
    return uncertainty.decided(lo, hi) > 0


def recommendation(scores: pd.DataFrame, domain: str) -> str:
    """The top backbone, and whether it is separable from the runner-up."""
    d = scores[scores["domain"] == domain].sort_values("score", ascending=False)
    if d.empty:
        return "no results"
    top = d.iloc[0]
    text = f"{top['backbone']} (z {fmt_interval(top)})"
    if len(d) > 1:
        second = d.iloc[1]
        verdict = "clearly ahead of" if separable(scores, domain, top["backbone"], second["backbone"]) else "not separable from"
        text += f", {verdict} {second['backbone']} (z {fmt_interval(second)})"
    return text


def gains_summary(cells: uncertainty.CellDraws) -> pd.DataFrame:
    """Mean gain per (domain, shots) over its (dataset, backbone) pairs, with two-level intervals.

    Columns: each GAINS label, the label with " lo" / " hi" for the interval, and " pairs"."""
    parts = []
    for minus, label in GAINS.items():
        keys, reps = uncertainty.paired_differences(cells, "finetune", minus)
        keys = keys.assign(domain=keys["dataset"].map(lambda d: DATASETS[d].domain))
        g = uncertainty.group_means(keys, reps, ["domain", "shots"]).set_index(["domain", "shots"])
        parts.append(g.rename(columns={"mean": label, "lo": f"{label} lo", "hi": f"{label} hi", "pairs": f"{label} pairs"}))
    out = pd.concat(parts, axis=1)
    for label in GAINS.values():
        if label not in out:
            out[[label, f"{label} lo", f"{label} hi", f"{label} pairs"]] = np.nan
    return out.sort_index()


def gains_display(gains: pd.DataFrame):
    """gains_summary as text: mean [low, high]; blank where a mode has no runs (a Markdown line when
    nothing is measured)."""
    def text(row, label):
        return "" if np.isnan(row[label]) else uncertainty.fmt(row[label], row[f"{label} lo"], row[f"{label} hi"], signed=True)

    out = pd.DataFrame({label: gains.apply(text, axis=1, label=label) for label in GAINS.values()})
    out = out[(out != "").any(axis=1)]
    if out.empty:  # a partial edition: neither comparison has both sides yet
        return Markdown("*Not measured in this edition yet: no fine-tuned run has its scratch twin or a linear probe beside it.*")
    return out


def cells_where(gains: pd.DataFrame, label: str, positive: bool) -> str:
    """The (domain, shots) cells whose whole interval for ``label`` lies above (or below) zero."""
    side = gains[f"{label} lo"] > 0 if positive else gains[f"{label} hi"] < 0
    hits = gains[side]
    return "; ".join(f"{domain_title(d).lower()} at {k} shots ("
                     f"{uncertainty.fmt(row[label], row[f'{label} lo'], row[f'{label} hi'], 2, signed=True)})"
                     for (d, k), row in hits.iterrows()) or "no cell"


def range_text(gains: pd.DataFrame, label: str) -> str:
    values = gains[label].dropna()
    if values.empty:
        return "not measured in this edition (no scratch twins)"
    if len(values) == 1:
        return f"{values.iloc[0]:+.2f} balanced accuracy (one domain and shot cell)"
    return f"{values.min():+.2f} to {values.max():+.2f} balanced accuracy across the domain and shot cells"


def _with_chance(cells: uncertainty.CellDraws) -> uncertainty.CellDraws:
    """Cells with their chance level (report.draws adds it; cells made elsewhere get it here)."""
    if "chance" in cells.cells:
        return cells
    return uncertainty.CellDraws(cells.cells.assign(chance=cells.cells["dataset"].map(chance_of)), cells.draws,
                                 cells.test_draws)


def domain_summary(cells: uncertainty.CellDraws) -> uncertainty.CellDraws:
    cells = _with_chance(cells)
    return uncertainty.domain_means(cells, {d: DATASETS[d].domain for d in cells.cells["dataset"].unique()})


def decision_table(cells: uncertainty.CellDraws, domains=DOMAINS_IN_ORDER, modes=("finetune", "linear_probe")):
    """Per (domain, shots): the backbone to use, its balanced accuracy with interval, the runner-up,
    and whether the two are separable. Fine-tuning where this edition has it, else the linear probe
    (said in the mode column). Returns (tidy rows, display frame)."""
    summary = domain_summary(cells)
    t, rows = summary.interval(), []
    for domain in [d for d in domains if d in set(t["domain"])]:
        for shots in sorted(t.loc[t["domain"] == domain, "shots"].unique()):
            for mode in modes:
                idx = t.index[(t["domain"] == domain) & (t["shots"] == shots) & (t["mode"] == mode)]
                if len(idx) >= 2:
                    break
            else:
                continue
            order = t.loc[idx].sort_values("mean", ascending=False).index
            best, second = order[0], order[1]
            gap = summary.draws[best] - summary.draws[second]
            lo, hi = uncertainty.quantiles(gap)
            rows.append(dict(domain=domain, shots=int(shots), mode=mode, backbone=t.at[best, "backbone"],
                             balanced_accuracy=t.at[best, "mean"], lo=t.at[best, "lo"], hi=t.at[best, "hi"],
                             runner_up=t.at[second, "backbone"], runner_up_accuracy=t.at[second, "mean"],
                             gap=t.at[best, "mean"] - t.at[second, "mean"], gap_lo=lo, gap_hi=hi,
                             separable=uncertainty.decided(lo, hi) > 0, datasets=int(t.at[best, "datasets"]),
                             n_subsets=int(t.at[best, "n_subsets"]), chance=t.at[best, "chance"]))
    tidy = pd.DataFrame(rows)
    if tidy.empty:  # decision_text says why
        return tidy, Markdown("")
    shown = pd.DataFrame({
        "domain": [f"{SHORT_DOMAIN[d]}<br>(chance {c:.3f})" for d, c in zip(tidy["domain"], tidy["chance"])],
        "images per class": tidy["shots"],
        "mode": ["fine-tune" if m == "finetune" else "probe<br>(no fine-<br>tuning run)" for m in tidy["mode"]],
        "best (balanced accuracy, 95% CI)": [
            f"{b}<br>{uncertainty.fmt(v, lo, hi)}"
            + ("<br>(one training subset: test images only)" if n <= 1 else "") + ("<br>reaches chance" if lo <= c else "")
            for b, v, lo, hi, n, c in zip(tidy["backbone"], tidy["balanced_accuracy"], tidy["lo"], tidy["hi"],
                                          tidy["n_subsets"], tidy["chance"])],
        "runner-up": tidy["runner_up"] + "<br>" + tidy["runner_up_accuracy"].map("{:.3f}".format),
        "separable?": [f"{'yes' if sep else 'no, within noise'}<br>gap {uncertainty.fmt(g, lo, hi, signed=True)}"
                       for g, lo, hi, sep in zip(tidy["gap"], tidy["gap_lo"], tidy["gap_hi"], tidy["separable"])]})
    return tidy, shown.style.hide(axis="index")


def decision_text(decision: pd.DataFrame) -> str:
    """One sentence over the decision table: where the best backbone is separable from the runner-up."""
    if decision.empty:
        return "No domain has two backbones with results yet."
    sep = decision[decision["separable"]]
    rule = "(separable: the 95 % interval of their gap lies above zero)"
    if sep.empty:
        return (f"In none of the {len(decision)} rows is the best backbone separable from the runner-up {rule}: the "
                "top two are within noise everywhere, so choose between them on cost.")
    where = "; ".join(f"{domain_title(r.domain).lower()} at {r.shots} shots ({r.backbone})" for r in sep.itertuples())
    rest = " Elsewhere the top two are within noise: choose between them on cost." if len(sep) < len(decision) else ""
    return (f"The best backbone is separable from the runner-up {rule} in {len(sep)} of the {len(decision)} rows: "
            f"{where}.{rest}")


def interval_scope(cells: uncertainty.CellDraws, mode: str) -> str:
    """What the intervals of a table built from ``mode``'s cells hold, as a clause for the page."""
    c = cells.of(mode).cells
    if c.empty:
        return "no cell of this mode is recorded yet"
    one = int((c["n_subsets"] <= 1).sum())
    if one == len(c):
        return (f"every {MODE_NAMES.get(mode, mode)} cell of this edition has one training subset, so these intervals "
                "hold test images only, not the seed-to-seed spread")
    if one:
        return (f"{one} of the {len(c)} cells have one training subset (for them the intervals hold test images only); "
                f"the others resample up to {int(c['n_subsets'].max())} seeds, then test images")
    return f"every cell resamples at least {int(c['n_subsets'].min())} seeds, then test images"
