"""Rankings per STUDY.md: z-scores per (dataset, shots) cell, domain and overall scores, mean
ranks, bootstrap intervals over seeds, and rank correlation between domains.

Input is the tidy runs table (one row per run). A cell's value for a backbone is the mean over
seeds of the primary metric; z-scores are taken across the backbones present in the cell
(population standard deviation; a cell where all backbones tie scores 0 for all). A domain's
score is the mean of its cells' z-scores; the overall score weights each domain equally.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from backbone_bench.metrics import PRIMARY

CELL = ["dataset", "shots"]


def select(table: pd.DataFrame, mode: str = "finetune") -> pd.DataFrame:
    """Successful runs of one mode, with the metric columns the rankings use."""
    ok = table[(table["status"] == "ok") & (table["mode"] == mode)]
    return ok.copy()


def cell_means(runs: pd.DataFrame, metric: str = f"test_{PRIMARY}") -> pd.DataFrame:
    """Seed mean, standard deviation and count per (dataset, shots, backbone)."""
    g = runs.groupby(CELL + ["backbone"])[metric]
    return pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n_seeds": g.size()}).reset_index()


def zscores(means: pd.DataFrame) -> pd.DataFrame:
    """Adds ``z`` (across backbones within a cell) and ``rank`` (1 = best, ties share the mean rank)."""
    out = means.copy()
    grouped = out.groupby(CELL)["mean"]
    sd = grouped.transform(lambda v: v.std(ddof=0))
    out["z"] = np.where(sd > 0, (out["mean"] - grouped.transform("mean")) / sd.where(sd > 0, 1), 0.0)
    out["rank"] = grouped.rank(ascending=False, method="average")
    return out


def aggregate(cells: pd.DataFrame, domains: dict) -> pd.DataFrame:
    """Per backbone: score and mean rank per domain, then overall (domains weighted equally)."""
    cells = cells.assign(domain=cells["dataset"].map(domains))
    per_domain = cells.groupby(["domain", "backbone"])[["z", "rank"]].mean().reset_index()
    overall = per_domain.groupby("backbone")[["z", "rank"]].mean().reset_index().assign(domain="overall")
    return pd.concat([per_domain, overall], ignore_index=True).rename(columns={"z": "score", "rank": "mean_rank"})


def scores(runs: pd.DataFrame, domains: dict, metric: str = f"test_{PRIMARY}") -> pd.DataFrame:
    return aggregate(zscores(cell_means(runs, metric)), domains)


def bootstrap(runs: pd.DataFrame, domains: dict, n: int = 1000, seed: int = 0, level: float = 0.95,
              metric: str = f"test_{PRIMARY}") -> pd.DataFrame:
    """Score and mean-rank intervals from resampling each (cell, backbone)'s seeds with replacement."""
    rng = np.random.default_rng(seed)
    groups = [(key, g[metric].to_numpy()) for key, g in runs.groupby(CELL + ["backbone"])]
    keys = pd.DataFrame([k for k, _ in groups], columns=CELL + ["backbone"])
    draws = []
    for b in range(n):
        means = keys.assign(mean=[v[rng.integers(0, len(v), len(v))].mean() for _, v in groups])
        draws.append(aggregate(zscores(means), domains).assign(draw=b))
    draws = pd.concat(draws)
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    q = draws.groupby(["domain", "backbone"]).agg(
        score_lo=("score", lambda s: s.quantile(lo)), score_hi=("score", lambda s: s.quantile(hi)),
        rank_lo=("mean_rank", lambda s: s.quantile(lo)), rank_hi=("mean_rank", lambda s: s.quantile(hi)))
    point = scores(runs, domains, metric).set_index(["domain", "backbone"])
    return point.join(q).reset_index().sort_values(["domain", "score"], ascending=[True, False])


def mean_interval(values, n: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval; the interval is NaN with fewer than two values."""
    from scipy.stats import bootstrap as scipy_bootstrap

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) < 2:
        return (float(v.mean()) if len(v) else np.nan), np.nan, np.nan
    ci = scipy_bootstrap((v,), np.mean, n_resamples=n, confidence_level=level, method="percentile",
                         random_state=seed).confidence_interval
    return float(v.mean()), float(ci.low), float(ci.high)


def domain_correlation(domain_scores: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation between domains of the backbones' domain scores."""
    wide = domain_scores[domain_scores["domain"] != "overall"].pivot(index="backbone", columns="domain", values="score")
    if wide.shape[1] < 2 or wide.shape[0] < 3:
        return pd.DataFrame(index=wide.columns, columns=wide.columns, dtype=float)
    rho = spearmanr(wide.to_numpy(), nan_policy="omit").statistic
    rho = np.atleast_2d(rho) if wide.shape[1] > 2 else np.array([[1.0, rho], [rho, 1.0]])
    return pd.DataFrame(rho, index=wide.columns, columns=wide.columns)


def pretraining_gain(table: pd.DataFrame, metric: str = f"test_{PRIMARY}") -> pd.DataFrame:
    """Seed-mean metric per (dataset, shots, backbone) and mode, with finetune-minus-scratch and
    finetune-minus-linear-probe differences."""
    ok = table[table["status"] == "ok"]
    wide = ok.groupby(CELL + ["backbone", "mode"])[metric].mean().unstack("mode")
    for mode in ("finetune", "scratch", "linear_probe"):
        if mode not in wide:
            wide[mode] = np.nan
    wide["gain_over_scratch"] = wide["finetune"] - wide["scratch"]
    wide["gain_over_probe"] = wide["finetune"] - wide["linear_probe"]
    return wide.reset_index()
