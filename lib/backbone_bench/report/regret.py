"""What following this edition's pick costs at another resolution: per dataset and shot level, the
other edition's best minus its score of this edition's pick (regret), beside a pick at random and
the noise floor, and what a reader at that resolution should therefore do."""
from __future__ import annotations

import numpy as np
import pandas as pd

from backbone_bench import report
from backbone_bench.analysis import uncertainty
from backbone_bench.data.registry import DATASETS
from backbone_bench.report.editions import _common
from backbone_bench.study.presets import get_preset


def resolution_regret(page: uncertainty.CellDraws, other: uncertainty.CellDraws | None,
                      mode: str = "linear_probe") -> pd.DataFrame:
    """What following this edition's pick costs at the other edition's resolution, per (dataset, shots)
    where both have two or more of the same backbones: the other edition's best minus its score of
    this edition's pick (regret, replicate by replicate, so each has an interval), beside the regret
    of a pick at random (the mean over the backbones) and the noise floor: the regret of picking on one
    half of the other edition's replicates and scoring on the other half, which even a pick made at
    its own resolution pays."""
    if other is None:
        return pd.DataFrame()
    page, other = _common(page, other, mode, by_domain=False)
    rows = []
    for (dataset, shots), idx in other.cells.groupby(["dataset", "shots"]).indices.items():
        if len(idx) < 2:
            continue
        names = other.cells["backbone"].to_numpy()[idx]
        mine = page.cells[(page.cells["dataset"] == dataset) & (page.cells["shots"] == shots)]
        pick = mine.sort_values("mean", ascending=False)["backbone"].iloc[0]
        at = int(np.flatnonzero(names == pick)[0])
        mean, reps = other.cells["mean"].to_numpy()[idx], other.draws[idx]
        regret = reps.max(0) - reps[at]
        random = (reps.max(0, keepdims=True) - reps).mean(0)
        half = reps.shape[1] // 2
        first, second = reps[:, :half], reps[:, half:2 * half]
        floor = second.max(0) - second[first.argmax(0), np.arange(half)]
        rows.append(dict(dataset=dataset, domain=DATASETS[dataset].domain, shots=int(shots), mode=mode, pick=pick,
                         best=names[int(np.argmax(mean))], backbones=len(idx), regret=mean.max() - mean[at],
                         regret_reps=regret, random=(mean.max() - mean).mean(), random_reps=random,
                         floor=floor.mean(), floor_reps=floor))
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    for name in ("regret", "random"):
        lo, hi = uncertainty.quantiles(np.stack(out[f"{name}_reps"]))
        out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi
    return out


def regret_summary(rows: pd.DataFrame) -> dict:
    """The mean over cells of the pick's regret, a random pick's and the noise floor, with intervals
    (replicates averaged over the cells, which are held fixed)."""
    out = {}
    for name in ("regret", "random", "floor"):
        reps = np.stack(rows[f"{name}_reps"]).mean(0)
        lo, hi = uncertainty.quantiles(reps)
        out[name] = (float(rows[name].mean()) if name != "floor" else float(reps.mean()), float(lo), float(hi))
    return out


def regret_text(rows: pd.DataFrame, preset: str, other: str | None) -> str:
    """The regret of following this edition at the other's resolution, in a sentence a reader can act on."""
    if rows.empty:
        return ("No dataset and shot level has two or more backbones in both editions yet, so what this edition's "
                "pick costs at the other resolution is not measured.")
    a, b = get_preset(other).resolution, get_preset(preset).resolution
    runs = report.MODE_RUNS[rows["mode"].iloc[0]]
    s = regret_summary(rows)
    same = int((rows["pick"] == rows["best"]).sum())
    # paired on the same replicates: the pick against a random one, cell by cell, then averaged
    lo, hi = uncertainty.quantiles((np.stack(rows["regret_reps"]) - np.stack(rows["random_reps"])).mean(0))
    verdict = {-1: "better than a random pick", 0: "not separable from a random pick",
               1: "worse than a random pick"}[uncertainty.decided(lo, hi)]
    return (f"Over the {len(rows)} dataset and shot cells with {runs} at both resolutions, taking the {b} px pick "
            f"costs {uncertainty.fmt(*s['regret'])} balanced accuracy at {a} px on average (the {a} px best minus "
            f"the {b} px pick; it is the {a} px best in {same} of {len(rows)}), against "
            f"{uncertainty.fmt(*s['random'])} for a backbone picked at random and {s['floor'][0]:.3f} from noise alone "
            f"(picking on one half of the {a} px replicates and scoring on the other). So at {a} px this edition's "
            f"pick is {verdict} (the difference's 95 % interval: [{lo:+.3f}, {hi:+.3f}]).")


def resolution_advice(rows: pd.DataFrame, preset: str, other: str | None) -> str:
    """What a reader training at the other resolution should do, from the regret."""
    b = get_preset(preset).resolution
    a = get_preset(other).resolution if other else 224
    if rows.empty:
        return (f"Whether the {b} px answer holds at {a} px is not measured yet: take the *within noise* set as your "
                f"shortlist and settle it on your own data at your resolution with `backbone-bench recommend`.")
    s = regret_summary(rows)
    return (f"Taking this edition's pick at {a} px costs about {s['regret'][0]:.3f} balanced accuracy on average (a "
            f"random pick {s['random'][0]:.3f}; noise alone {s['floor'][0]:.3f}; from the "
            f"{report.MODE_RUNS[rows['mode'].iloc[0]]} at both resolutions, in \"Does the answer hold at 224 px?\" below). "
            "So take the *within noise* set as your shortlist, expect to lose about that much by taking the pick "
            "unseen, and settle it on your own data at your resolution with `backbone-bench recommend`.")


def regret_display(rows: pd.DataFrame, preset: str, other: str):
    """Per cell: the two picks and the regret with its interval, beside a random pick's."""
    a, b = get_preset(other).resolution, get_preset(preset).resolution
    return pd.DataFrame({
        "dataset, images per class": [f"{r.dataset}, {r.shots}" for r in rows.itertuples()],
        f"{b} px pick": [report.short_name(p) for p in rows["pick"]],
        f"{a} px best": ["(the same)" if p == q else report.short_name(q) for p, q in zip(rows["pick"], rows["best"])],
        f"regret at {a} px": [uncertainty.fmt(r.regret, r.regret_lo, r.regret_hi) for r in rows.itertuples()],
        "random pick": [f"{v:.3f}" for v in rows["random"]],
    }).style.hide(axis="index")
