"""Rankings per STUDY.md: z-scores per (dataset, shots) cell, domain and overall scores, mean
ranks, two-level bootstrap intervals (uncertainty.py), and rank correlation between domains.

Input is the tidy runs table (one row per run). A cell's value for a backbone is the mean over
seeds of the primary metric; z-scores are taken across the backbones present in the cell
(population standard deviation; a cell where all backbones tie scores 0 for all). A domain's
score is the mean of its cells' z-scores; the overall score weights each domain equally.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from backbone_bench.engine.metrics import PRIMARY

CELL = ["dataset", "shots"]


def select(table: pd.DataFrame, mode: str = "finetune") -> pd.DataFrame:
    """Successful runs of one mode, with the metric columns the rankings use."""
    ok = table[(table["status"] == "ok") & (table["mode"] == mode)]
    return ok.copy()


def cell_means(runs: pd.DataFrame, metric: str = f"test_{PRIMARY}") -> pd.DataFrame:
    """Seed mean, standard deviation and count per (dataset, shots, backbone)."""
    g = runs.groupby(CELL + ["backbone"])[metric]
    return pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n_seeds": g.size()}).reset_index()


def _score_matrix(cells: pd.DataFrame, values: np.ndarray, domains: dict):
    """z-scores and ranks per (dataset, shots) cell, then per-domain and overall means, for every
    column of ``values`` (one column per bootstrap replicate; one column for the point estimate).

    Returns the (domain, backbone) keys and two (keys x columns) arrays: score and mean rank."""
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=float).reshape(len(cells), -1)
    z, rank = np.zeros_like(values), np.zeros_like(values)
    for _, idx in cells.groupby(CELL).indices.items():
        v = values[idx]
        sd = v.std(0)
        z[idx] = np.where(sd > 0, (v - v.mean(0)) / np.where(sd > 0, sd, 1), 0.0)
        rank[idx] = rankdata(-v, axis=0, method="average")
    keyed = cells[CELL + ["backbone"]].assign(domain=cells["dataset"].map(domains)).reset_index(drop=True)
    keys, score, mean_rank = [], [], []
    for (domain, backbone), idx in keyed.groupby(["domain", "backbone"]).indices.items():
        keys.append((domain, backbone))
        score.append(z[idx].mean(0))
        mean_rank.append(rank[idx].mean(0))
    keys = pd.DataFrame(keys, columns=["domain", "backbone"])
    score, mean_rank = np.stack(score), np.stack(mean_rank)
    overall_keys = []
    for backbone, idx in keys.groupby("backbone").indices.items():  # each domain weighs the same
        overall_keys.append(("overall", backbone))
        score = np.vstack([score, score[idx].mean(0)])
        mean_rank = np.vstack([mean_rank, mean_rank[idx].mean(0)])
    keys = pd.concat([keys, pd.DataFrame(overall_keys, columns=["domain", "backbone"])], ignore_index=True)
    return keys, score, mean_rank


def zscores(means: pd.DataFrame) -> pd.DataFrame:
    """Adds ``z`` (across backbones within a cell) and ``rank`` (1 = best, ties share the mean rank)."""
    out = means.copy()
    grouped = out.groupby(CELL)["mean"]
    sd = grouped.transform(lambda v: v.std(ddof=0))
    out["z"] = np.where(sd > 0, (out["mean"] - grouped.transform("mean")) / sd.where(sd > 0, 1), 0.0)
    out["rank"] = grouped.rank(ascending=False, method="average")
    return out


def scores(runs: pd.DataFrame, domains: dict, metric: str = f"test_{PRIMARY}") -> pd.DataFrame:
    """Per backbone: score (mean z) and mean rank per domain, then overall (domains weighted equally)."""
    means = cell_means(runs, metric)
    keys, score, rank = _score_matrix(means, means["mean"].to_numpy(), domains)
    return keys.assign(score=score[:, 0], mean_rank=rank[:, 0])


def bootstrap(runs: pd.DataFrame, domains: dict, predictions, n: int = 1000, seed: int = 0,
              level: float = 0.95, draws=None) -> pd.DataFrame:
    """Scores and mean ranks with two-level bootstrap intervals (uncertainty.py: seeds, then test
    images within each run). ``runs``: one mode's successful runs. The replicates of the scores
    are kept in ``.attrs["score_draws"]`` (domain, backbone) x B for the claims."""
    from backbone_bench.analysis.uncertainty import cell_draws, quantiles

    draws = draws if draws is not None else cell_draws(runs, predictions, n, seed)
    keys, score, rank = _score_matrix(draws.cells, draws.draws, domains)
    score_lo, score_hi = quantiles(score, level)
    rank_lo, rank_hi = quantiles(rank, level)
    out = keys.assign(score_lo=score_lo, score_hi=score_hi, rank_lo=rank_lo, rank_hi=rank_hi)
    out = scores(runs, domains).merge(out, on=["domain", "backbone"])
    out = out.sort_values(["domain", "score"], ascending=[True, False]).reset_index(drop=True)
    out.attrs["score_draws"] = pd.DataFrame(score, index=pd.MultiIndex.from_frame(keys))
    return out


def domain_correlation(domain_scores: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation between domains of the backbones' domain scores."""
    wide = domain_scores[domain_scores["domain"] != "overall"].pivot(index="backbone", columns="domain", values="score")
    if wide.shape[1] < 2 or wide.shape[0] < 3:
        return pd.DataFrame(index=wide.columns, columns=wide.columns, dtype=float)
    rho = spearmanr(wide.to_numpy(), nan_policy="omit").statistic
    rho = np.atleast_2d(rho) if wide.shape[1] > 2 else np.array([[1.0, rho], [rho, 1.0]])
    return pd.DataFrame(rho, index=wide.columns, columns=wide.columns)
