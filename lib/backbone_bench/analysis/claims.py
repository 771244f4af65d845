"""The earlier studies' claims (STUDY.md), each checked against our results where it can be.

Each claim is turned into a statistic whose sign decides it (positive supports the claim), and
the statistic's two-level bootstrap interval (uncertainty.py) gives the verdict:

    agree          the whole 95 % interval is above zero
    disagree       the whole interval is below zero
    inconclusive   the interval contains zero: these results cannot tell
    not testable here   the evidence is missing (a backbone not in the panel, one shot level, ...)

The evidence column gives the numbers that decided it. Nothing here is typed in by hand but the
claims themselves.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from backbone_bench.analysis.uncertainty import decided, fmt, paired_differences, quantiles

JS = "Jeevan & Sethi 2025"
BOB = "Goldblum et al. 2023 (BoB)"
KORNBLITH = "Kornblith et al. 2019"
NOT_TESTABLE = "not testable here"

#: Lightweight families by the prefix of their timm/torchvision names: the 2019-2020 designs against
#: the 2016-2017 ones, for the claim that some families are consistently ahead (issue 48)
NEWER = {"tf_efficientnet_lite": "EfficientNet-Lite", "regnet": "RegNet"}
OLDER = {"squeezenet": "SqueezeNet", "mobilenetv1": "MobileNetV1"}


def _arch(name: str) -> str:
    return name.partition(".")[0]


def verdict(point: float, reps: np.ndarray) -> tuple[str, str]:
    """Verdict from a statistic (positive supports the claim) and its replicates, with its interval."""
    if point is None or np.isnan(point) or reps is None or np.all(np.isnan(reps)):
        return NOT_TESTABLE, "no evidence"
    lo, hi = quantiles(np.asarray(reps, dtype=float))
    word = {1: "agree", -1: "disagree", 0: "inconclusive"}[decided(lo, hi)]
    return word, fmt(point, lo, hi, 2, signed=True)


def _draws(scores: pd.DataFrame) -> pd.DataFrame | None:
    d = scores.attrs.get("score_draws")
    return d if d is not None and len(d) else None


def _point(scores, domain):
    return scores[scores["domain"] == domain].set_index("backbone")["score"]


def _winner_claim(scores, domain, arch):
    have = {_arch(b): b for b in scores["backbone"]}
    if arch not in have:
        return NOT_TESTABLE, f"{arch} is not in these results (no weights on this machine)"
    point, draws = _point(scores, domain), _draws(scores)
    if point.empty or draws is None or len(point) < 2:
        return NOT_TESTABLE, f"fewer than two ranked backbones in {domain}"
    d = draws.xs(domain, level="domain")
    others = [b for b in d.index if b != have[arch]]
    stat = point[have[arch]] - point[others].max()
    word, interval = verdict(stat, d.loc[have[arch]].to_numpy() - d.loc[others].max().to_numpy())
    return word, f"{have[arch]}'s {domain} score minus the best other's: {interval}"


def check_claims(scores: pd.DataFrame, cells=None, cost: pd.DataFrame | None = None,
                 top1: pd.Series | None = None) -> pd.DataFrame:
    """scores: ranking.bootstrap output (fine-tune); cells: uncertainty.CellDraws of every mode;
    top1: the ImageNet top-1 each backbone's weights report (the records' weights_reported_top1)."""
    rows = []

    def add(study, claim, verdict_evidence):
        rows.append(dict(study=study, claim=claim, verdict=verdict_evidence[0], evidence=verdict_evidence[1]))

    add(JS, "ConvNeXt-T is best on natural images", _winner_claim(scores, "natural", "convnext_tiny"))
    add(JS, "ConvNeXt-T is best overall", _winner_claim(scores, "overall", "convnext_tiny"))
    add(JS, "ResNeXt-50 is best on remote sensing", _winner_claim(scores, "remote_sensing", "resnext50_32x4d"))
    add(JS, "WaveMix is best on astronomy and medical images",
        (NOT_TESTABLE, "WaveMix is in neither timm nor torchvision, so not in this study's panels"))
    add(JS, "Attention-based models do poorly with little data", _attention_claim(scores))
    add(BOB, "EfficientNet-B0 > RegNetX-400MF > ResNet-18", _order_claim(scores, ["efficientnet_b0", "regnetx_004", "resnet18"]))
    add(BOB, "Backbone rankings are strongly correlated across tasks (Spearman often > 0.8)", _correlation_claim(scores))
    add(BOB, "Throughput and score are negatively correlated (Spearman -0.41)", _throughput_claim(scores, cost))
    add(JS, "ImageNet pretraining helps most when labelled data is scarce", _scarcity_claim(cells))
    for claim, result in _family_claims(cells):
        add(JS, claim, result)
    add(KORNBLITH, "Better ImageNet models transfer better (ImageNet top-1 and transfer rank alike)",
        _top1_claim(scores, top1))
    return pd.DataFrame(rows)


def family(backbone: str, families: dict) -> str | None:
    return next((name for prefix, name in families.items() if _arch(backbone).startswith(prefix)), None)


def _family_claims(cells) -> list[tuple[str, tuple[str, str]]]:
    """Per shot level: the newer families' mean fine-tune score minus the older ones', per dataset
    (where both ran), averaged over the datasets, replicates paired on the same test resamples."""
    claim = (f"Newer lightweight families ({', '.join(NEWER.values())}) beat older ones "
             f"({', '.join(OLDER.values())})")
    ft = None if cells is None else cells.of("finetune")
    if ft is None or ft.cells.empty:
        return [(claim, (NOT_TESTABLE, "no fine-tune results"))]
    c = ft.cells
    newer = c["backbone"].map(lambda b: family(b, NEWER) is not None).to_numpy()
    older = c["backbone"].map(lambda b: family(b, OLDER) is not None).to_numpy()
    out = []
    for shots in sorted(c["shots"].unique()):
        points, reps, names = [], [], set()
        for dataset in sorted(c.loc[c["shots"] == shots, "dataset"].unique()):
            at = ((c["shots"] == shots) & (c["dataset"] == dataset)).to_numpy()
            a, b = at & newer, at & older
            if a.any() and b.any():
                points.append(c["mean"].to_numpy()[a].mean() - c["mean"].to_numpy()[b].mean())
                reps.append(ft.draws[a].mean(0) - ft.draws[b].mean(0))
                names.update(c["backbone"][a | b])
        label = f"{claim}, at {shots} shots"
        if not points:
            out.append((label, (NOT_TESTABLE, f"no dataset has fine-tunes of both at {shots} shots in these results")))
            continue
        word, interval = verdict(float(np.mean(points)), np.mean(reps, axis=0))
        older_names = ", ".join(sorted(n for n in names if family(n, OLDER)))
        newer_names = ", ".join(sorted(n for n in names if family(n, NEWER)))
        out.append((label, (word, f"mean balanced accuracy of {newer_names} minus {older_names}, averaged over "
                                  f"{len(points)} datasets: {interval}")))
    return out


def _top1_claim(scores, top1):
    overall, draws = _point(scores, "overall"), _draws(scores)
    reported = pd.Series(dtype=float) if top1 is None else pd.to_numeric(top1, errors="coerce").dropna()
    common = [b for b in overall.index if b in reported.index]
    without = [b for b in overall.index if b not in reported.index]
    if len(common) < 3 or draws is None:
        return NOT_TESTABLE, (f"the weights report an ImageNet top-1 for {len(common)} of the ranked backbones; "
                              "a rank correlation needs 3")
    d = draws.xs("overall", level="domain").loc[common]
    rho = spearmanr(reported[common], overall[common]).statistic
    reps = np.array([spearmanr(reported[common], d[b]).statistic for b in d.columns])
    word, interval = verdict(rho, reps[~np.isnan(reps)])
    return word, (f"Spearman(reported ImageNet top-1, overall fine-tune score) over the {len(common)} backbones whose "
                  f"weights report one: {interval}" + (f"; none reported for {', '.join(without)}" if without else ""))


ATTENTION = {"swin", "vit", "deit", "swinv2", "mobilevit", "efficientformer", "fastvit"}


def _attention_claim(scores):
    overall, draws = _point(scores, "overall"), _draws(scores)
    attention = [b for b in overall.index if _arch(b).split("_")[0] in ATTENTION]
    if not attention:
        return NOT_TESTABLE, "no attention-based backbone has weights on this machine"
    conv = [b for b in overall.index if b not in attention]
    if not conv or draws is None:
        return NOT_TESTABLE, "needs attention-based and convolutional backbones"
    d = draws.xs("overall", level="domain")
    word, interval = verdict(overall[conv].mean() - overall[attention].mean(),
                             d.loc[conv].mean().to_numpy() - d.loc[attention].mean().to_numpy())
    return word, f"mean overall z, convolutional minus attention: {interval}"


def _order_claim(scores, order):
    overall, draws = _point(scores, "overall"), _draws(scores)
    have = {_arch(b): b for b in overall.index}
    missing = [t for t in order if t not in have]
    if missing or draws is None:
        return NOT_TESTABLE, f"missing: {', '.join(missing) or 'intervals'}"
    d = draws.xs("overall", level="domain")
    names = [have[t] for t in order]
    gaps = [(overall[a] - overall[b], d.loc[a].to_numpy() - d.loc[b].to_numpy()) for a, b in zip(names, names[1:])]
    # the order holds when every gap holds: the smallest gap decides
    word, interval = verdict(min(g for g, _ in gaps), np.minimum.reduce([r for _, r in gaps]))
    return word, f"smallest gap between neighbours in the claimed order (overall z): {interval}"


def _median_rho(wide: pd.DataFrame) -> float:
    rho = spearmanr(wide.to_numpy()).statistic
    rho = np.array([[1, rho], [rho, 1]]) if np.ndim(rho) == 0 else rho
    return float(np.median(rho[np.triu_indices_from(rho, 1)]))


def _correlation_claim(scores):
    draws = _draws(scores)
    per_domain = scores[scores["domain"] != "overall"]
    wide = per_domain.pivot(index="backbone", columns="domain", values="score")
    if wide.shape[0] < 3 or wide.shape[1] < 2 or draws is None:
        return NOT_TESTABLE, "needs at least 3 backbones and 2 domains"
    d = draws.drop(index="overall", level="domain")
    reps = np.array([_median_rho(d[b].unstack("domain").loc[wide.index, wide.columns]) for b in d.columns])
    word, interval = verdict(_median_rho(wide) - 0.8, reps - 0.8)
    return word, f"median Spearman between domains minus 0.8: {interval}"


def _throughput_claim(scores, cost):
    if cost is None or cost.empty:
        return NOT_TESTABLE, "no cost measurements yet"
    overall, draws = _point(scores, "overall"), _draws(scores)
    thr = cost.groupby("backbone")["infer_images_per_s"].median()
    common = [b for b in overall.index if b in thr.index]
    if len(common) < 3 or draws is None:
        return NOT_TESTABLE, "fewer than 3 backbones with both scores and cost"
    d = draws.xs("overall", level="domain").loc[common]
    rho = spearmanr(overall[common], thr[common]).statistic
    reps = np.array([spearmanr(d[b], thr[common]).statistic for b in d.columns])
    word, interval = verdict(-rho, -reps)
    return word, f"minus Spearman(score, inference images/s) over {len(common)} backbones: {interval}"


def _scarcity_claim(cells):
    if cells is None:
        return NOT_TESTABLE, "no fine-tune and scratch results"
    keys, reps = paired_differences(cells, "finetune", "scratch")
    levels = sorted(keys["shots"].unique())
    if len(levels) < 2:
        have = f"only at {levels[0]} shots" if levels else "at no shot level"
        return NOT_TESTABLE, f"this edition has fine-tune runs with scratch twins {have}: nothing to compare across shot levels"
    low, high = levels[0], levels[-1]
    pairs = keys.reset_index().pivot_table(index=["dataset", "backbone"], columns="shots", values="index")
    pairs = pairs[[low, high]].dropna()  # pairs with both ends; a missing middle level does not matter
    if pairs.empty:
        return NOT_TESTABLE, f"no (dataset, backbone) pair has both {low} and {high} shots"
    a, b = pairs[low].astype(int).to_numpy(), pairs[high].astype(int).to_numpy()
    point = keys["diff"].to_numpy()
    word, interval = verdict(point[a].mean() - point[b].mean(), reps[a].mean(0) - reps[b].mean(0))
    return word, f"gain over scratch at {low} shots minus at {high} shots, {len(a)} pairs: {interval}"
