"""Two editions of the study side by side: what the 224 px design's recorded runs already say on a
page that reports another edition (the CPU edition until the GPU runs exist), and where they differ.

Only what both editions recorded is compared, and only the recipe fields a mode reads are named as
differences, so a reader sees what else besides resolution moved between them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from backbone_bench import report
from backbone_bench.analysis import uncertainty
from backbone_bench.data.registry import DATASETS
from backbone_bench.study.presets import get_preset

#: The recipe fields each mode's result depends on (train.py): a probe never reads the optimiser's.
READS = {"linear_probe": ("probe_cs", "probe_extend", "eval_limit", "test_limit", "class_weight")}
#: Those fields in words, for the page.
FIELD_WORDS = {"probe_cs": "the probe's grid of C", "probe_extend": "decades the grid may grow",
               "eval_limit": "validation images", "test_limit": "test images", "class_weight": "class weighting"}


def same_resolution(preset: str, other: str) -> bool:
    return get_preset(other).resolution == get_preset(preset).resolution


def records(preset: str, other: str | None, results=None) -> pd.DataFrame:
    """The other edition's records; empty when there is none, or when the page is at its resolution
    (its own preset, or `full`, the same design on a wider panel)."""
    if not other or same_resolution(preset, other):
        return pd.DataFrame()
    return report.load(other, results)


def together(table: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """The page's records and the other edition's, as one table (for checks that pick by resolution)."""
    return table if other.empty else pd.concat([table, other], ignore_index=True)


def recipe_changes(preset: str, other: str, mode: str = "linear_probe") -> str:
    """What ``other`` changes against ``preset`` for ``mode``, in words, from presets.py."""
    a, b = get_preset(preset), get_preset(other)
    parts = [f"resolution {a.resolution} px to {b.resolution} px"] if a.resolution != b.resolution else []
    ra, rb = a.recipe_for(mode, min(a.shots)), b.recipe_for(mode, min(b.shots))
    for field in READS.get(mode, tuple(ra.as_dict())):
        va, vb = (r.test_cap if field == "test_limit" else getattr(r, field) for r in (ra, rb))
        if va != vb:
            parts.append(f"{FIELD_WORDS.get(field, field)} {_value(field, va)} to {_value(field, vb)}")
    return "; ".join(parts) or "nothing this mode reads"


def _value(field, value):
    if field in ("eval_limit", "test_limit") and not value:
        return "all"
    if field == "probe_cs" and value:
        return f"{min(value):g} to {max(value):g}"
    return value


def draws(other: pd.DataFrame, results=None, n_boot: int = 1000) -> uncertainty.CellDraws | None:
    """The other edition's bootstrap, computed once for every comparison on the page (None: no records)."""
    return report.draws(other, results, n_boot) if len(other) else None


def side_by_side(cells: uncertainty.CellDraws, theirs: uncertainty.CellDraws | None,
                 mode: str = "linear_probe") -> pd.DataFrame:
    """``compare`` of the page's cells with the other edition's (empty when it has none)."""
    return compare(cells, theirs, mode) if theirs is not None else pd.DataFrame()


def compare(page: uncertainty.CellDraws, other: uncertainty.CellDraws, mode: str = "linear_probe") -> pd.DataFrame:
    """Per (domain, shots) where both editions have two or more backbones on the same datasets (each
    side restricted to the backbones and datasets both have, so both choose among the same): each
    edition's choice with its accuracy, whether the other's choice is separable from its runner-up,
    and the mean balanced accuracy ``other - page`` over the (dataset, backbone) cells both have,
    with its 95 % interval."""
    page, other = _common(page, other, mode)  # each side chooses among the same backbones and datasets
    theirs, _ = report.decision_table(other, modes=(mode,))
    mine, _ = report.decision_table(page, modes=(mode,))
    if theirs.empty or mine.empty:
        return pd.DataFrame()
    keys, reps = uncertainty.differences(other, page)
    keys = keys.assign(domain=keys["dataset"].map(lambda d: DATASETS[d].domain))
    diff = uncertainty.group_means(keys, reps, ["domain", "shots"])
    counts = keys.groupby(["domain", "shots"])["backbone"].nunique().rename("backbones").reset_index()
    both = theirs.merge(mine, on=["domain", "shots"], suffixes=("", "_page"))
    both = both.merge(diff.rename(columns={"mean": "diff", "lo": "diff_lo", "hi": "diff_hi"}), on=["domain", "shots"])
    both = both.merge(counts, on=["domain", "shots"])
    return both.assign(same=both["backbone"] == both["backbone_page"]).reset_index(drop=True)


def _common(a: uncertainty.CellDraws, b: uncertainty.CellDraws, mode: str, by_domain: bool = True):
    """Both sides' ``mode`` cells, kept only where the other side has the same (dataset, shots, backbone),
    and (``by_domain``) of those only the backbones that every dataset of their (domain, shots) has, so
    that a domain's choice compares means over the same datasets (a partial grid, such as the 224 px
    fine-tunes, has some backbones on one dataset only)."""
    a, b = a.of(mode), b.of(mode)
    on = ["dataset", "shots", "backbone"]
    shared = set(map(tuple, a.cells[on].to_numpy().tolist())) & set(map(tuple, b.cells[on].to_numpy().tolist()))
    if by_domain and shared:
        grid = pd.DataFrame(sorted(shared), columns=on)
        grid["domain"] = grid["dataset"].map(lambda d: DATASETS[d].domain)
        everywhere = grid.groupby(["domain", "shots", "backbone"])["dataset"].transform("nunique") == \
            grid.groupby(["domain", "shots"])["dataset"].transform("nunique")
        shared = set(map(tuple, grid.loc[everywhere, on].to_numpy().tolist()))

    def keep(d):
        return d.take(np.array([tuple(k) in shared for k in d.cells[on].to_numpy().tolist()], dtype=bool))

    return keep(a), keep(b)


def display(rows: pd.DataFrame, preset: str, other: str):
    """``compare`` for the page, as a check of its answer, not a second one: the page's choice, whether
    the other edition's probes pick the same (else which, and whether separably), and the mean
    difference."""
    a, b = get_preset(other).resolution, get_preset(preset).resolution
    return pd.DataFrame({
        "domain, images per class": [f"{report.SHORT_DOMAIN[r.domain]}, {r.shots}<br>({r.backbones} backbones)"
                                     for r in rows.itertuples()],
        f"this edition's {b} px {report.MODE_RUNS[rows['mode'].iloc[0]]} pick": [
            f"{r.backbone_page}<br>{r.balanced_accuracy_page:.3f}" for r in rows.itertuples()],
        f"the {a} px probes pick": [
            "the same" if r.same else
            f"{r.backbone}<br>{'separable from' if r.separable else 'within noise of'} {r.runner_up}"
            for r in rows.itertuples()],
        f"{a} px minus {b} px, mean over backbones (95% CI)": [
            uncertainty.fmt(r.diff, r.diff_lo, r.diff_hi, signed=True) for r in rows.itertuples()],
    }).style.hide(axis="index")


def status_text(other_table: pd.DataFrame, preset: str, other: str | None, mode: str = "linear_probe") -> str:
    """What of the other edition is recorded and still to run, and how its recipe for ``mode`` differs."""
    if not other:
        return "This page compares no other edition."
    b = get_preset(other).resolution
    if same_resolution(preset, other):
        return f"This page is at the {b} px design's resolution: its answer is the one above."
    if other_table.empty:
        return f"No run of the {b} px design (the {other} preset) is recorded yet."
    missing = report.missing_runs(other, other_table).groupby("mode").size()
    todo = ", ".join(f"{report.MODE_NAMES.get(m, m)} ({n} runs)" for m, n in missing.items()) or "nothing"
    return (f"The {other} preset has {report.coverage_text(other_table)} recorded; still to run: {todo}. "
            f"Its {report.MODE_NAMES[mode]} differ from this edition's in: {recipe_changes(preset, other, mode)}.")


def summary_text(rows: pd.DataFrame, preset: str, other: str | None, mode: str = "linear_probe") -> str:
    """The comparison of ``mode`` in one paragraph: agreement of the choices, separability, the difference."""
    if rows.empty:
        return "Nothing to set beside this edition." if not other or same_resolution(preset, other) else \
            f"No domain and shot level has two or more backbones {report.MODE_RAN[mode]} in both editions yet."
    a, b = get_preset(other).resolution, get_preset(preset).resolution
    ran, runs = report.MODE_RAN[mode], report.MODE_RUNS[mode]
    if len(rows) == 1:  # one cell: its own numbers, not a range from a number to itself
        r = rows.iloc[0]
        choice = (f"both editions choose {r['backbone']}" if r["same"] else
                  f"the {a} px {runs} choose {r['backbone']} where the {b} px edition chooses {r['backbone_page']}")
        return (f"In the one domain and shot cell where both editions have two or more backbones {ran} on the same "
                f"datasets ({report.SHORT_DOMAIN[r['domain']]} at {r['shots']} images per class, {r['backbones']} "
                f"backbones), {choice}; the {a} px choice is {'' if r['separable'] else 'not '}separable from its "
                f"runner-up. Mean balanced accuracy, {a} px minus {b} px over the backbones: {r['diff']:+.3f} "
                f"[{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}].")
    same = rows[rows["same"]]
    where = ", ".join(f"{report.SHORT_DOMAIN[r.domain]} at {r.shots} images per class" for r in same.itertuples())
    above, below = rows[rows["diff_lo"] > 0], rows[rows["diff_hi"] < 0]
    return (f"Of the {len(rows)} domain and shot cells where both editions have two or more backbones {ran} on "
            f"the same datasets, the {a} px {runs} choose the {b} px edition's backbone in {len(same)}"
            f"{f' ({where})' if 0 < len(same) < len(rows) else ''}; the {a} px choice is separable from its "
            f"runner-up in {int(rows['separable'].sum())}. Mean balanced accuracy, {a} px minus {b} px over the "
            f"backbones: {rows['diff'].min():+.3f} to {rows['diff'].max():+.3f}; its interval lies above zero in "
            f"{len(above)} and below zero in {len(below)} of the {len(rows)} cells.")


def rank_agreement(page: uncertainty.CellDraws, other: uncertainty.CellDraws | None,
                   mode: str = "linear_probe") -> pd.DataFrame:
    """How far the page's ranking of the backbones holds in the other edition, per (dataset, shots)
    where both ran ``mode`` for three or more of the same backbones: Spearman's rank correlation of
    the backbones' seed means, its 95 % interval (replicate b of one edition against replicate b of
    the other; their resamples are independent, so the interval holds both editions' seeds and test
    images), and whether the two choose the same backbone."""
    from scipy.stats import rankdata, spearmanr

    if other is None:
        return pd.DataFrame()
    page, other = _common(page, other, mode, by_domain=False)  # per dataset: every backbone both have
    where = {key: i for i, key in enumerate(map(tuple, other.cells[["dataset", "shots", "backbone"]].to_numpy()))}
    rows = []
    for (dataset, shots), mine in page.cells.groupby(["dataset", "shots"]):
        if len(mine) < 3:
            continue
        theirs = [where[(dataset, shots, k)] for k in mine["backbone"]]
        ra, rb = rankdata(page.draws[mine.index], axis=0), rankdata(other.draws[theirs], axis=0)
        ra, rb = ra - ra.mean(0), rb - rb.mean(0)
        with np.errstate(invalid="ignore", divide="ignore"):  # a replicate with every backbone tied
            reps = (ra * rb).sum(0) / np.sqrt((ra ** 2).sum(0) * (rb ** 2).sum(0))
        ours, others = mine["mean"].to_numpy(), other.cells["mean"].to_numpy()[theirs]
        lo, hi = uncertainty.quantiles(reps)
        rows.append(dict(dataset=dataset, domain=DATASETS[dataset].domain, shots=int(shots), mode=mode,
                         backbones=len(mine),
                         rho=float(spearmanr(ours, others).statistic), lo=float(lo), hi=float(hi),
                         choice=mine["backbone"].iat[int(ours.argmax())],
                         choice_other=mine["backbone"].iat[int(others.argmax())]))
    out = pd.DataFrame(rows)
    return out.assign(same=out["choice"] == out["choice_other"]) if len(out) else out


def agreement_text(rows: pd.DataFrame, preset: str, other: str | None, mode: str = "linear_probe") -> str:
    """``rank_agreement`` of ``mode`` in one sentence, every number from the rows."""
    if rows.empty:
        return f"No dataset and shot level has three or more backbones {report.MODE_RAN[mode]} at both resolutions yet."
    a, b = get_preset(preset).resolution, get_preset(other).resolution
    if len(rows) == 1:
        r = rows.iloc[0]
        return (f"In the one dataset and shot cell {report.MODE_RAN[mode]} at both {a} px and {b} px ({r['dataset']} at "
                f"{r['shots']} images per class, {r['backbones']} backbones), the rank correlation of the backbones is "
                f"{r['rho']:.2f} (95 % interval {r['lo']:.2f} to {r['hi']:.2f}), and the two resolutions pick "
                + (f"the same best backbone, {r['choice']}." if r["same"] else
                   f"different best backbones: {r['choice']} at {a} px, {r['choice_other']} at {b} px."))
    above = int((rows["lo"] > 0).sum())
    return (f"Over the {len(rows)} dataset and shot cells {report.MODE_RAN[mode]} at both {a} px and {b} px, the "
            f"rank correlation of the backbones has median {rows['rho'].median():.2f} (from {rows['rho'].min():.2f} to "
            f"{rows['rho'].max():.2f}); its 95 % interval lies above zero in {above} of them, and the two "
            f"resolutions pick the same best backbone in {int(rows['same'].sum())} of {len(rows)}"
            + (f" ({', '.join(f'{r.dataset} at {r.shots}' for r in rows[rows['same']].itertuples())})."
               if 0 < rows["same"].sum() < len(rows) <= 8 else "."))


def agreement_axis(preset: str, other: str) -> str:
    return (f"Spearman rank correlation of the backbones, {get_preset(preset).resolution} px against "
            f"{get_preset(other).resolution} px linear probes")
