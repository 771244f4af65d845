"""The answer as a decision: which backbone to use, what it costs at most, and how many seeds would
tell the top two apart.

Per row (a domain or a dataset, at one shot level, one mode), over the backbones present on every
dataset of the row:

- regret of a backbone on a dataset = that dataset's best seed mean minus its own; the row's pick
  (``best``) has the smallest regret averaged over the row's datasets, replicate by replicate. With
  raw balanced accuracy the best of every replicate cancels from any difference of two backbones'
  mean regrets, so the pick is the highest mean over the datasets; the datasets are held fixed
  (the interval resamples seeds and test images, not which datasets a domain has);
- ``within noise``: every backbone whose mean-regret difference to the pick has a 95 % interval
  that reaches zero (``uncertainty.decided``, the rule of every verdict in the book);
- ``use``: the cheapest of that set by the cost given (training seconds per run), where it trains at
  least ``MIN_SAVING`` times faster than the pick (run times of one backbone on one host vary by
  several per cent, so a smaller saving is not measured), else the pick; ``at most``: the upper end
  of the 95 % interval of (pick minus use), zero when use is the pick;
- power: the top two's gap splits into test-image noise (the seeds held fixed) and seed noise,
  so ``seeds_needed`` is about how many seeds a normal interval needs to exclude zero at the
  observed gap, and None where test noise alone already exceeds it (no number of seeds would).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from backbone_bench.analysis.uncertainty import CellDraws, decided, quantiles

Z = 1.959964  # two-sided 95 %
MIN_SAVING = 1.1  # a backbone within noise replaces the pick only when it trains this many times faster


def rows_of(cells: CellDraws, group: dict, mode: str = "finetune") -> list[tuple]:
    """(row name, shots, the cells' positions) per row: ``group`` maps a dataset to its row (its
    domain, or itself); a row keeps the backbones present on every one of its datasets."""
    c = cells.cells.reset_index(drop=True)
    c = c.assign(row=c["dataset"].map(group))
    out = []
    for (row, shots), part in c[c["mode"] == mode].groupby(["row", "shots"], sort=False):
        n_sets = part["dataset"].nunique()
        everywhere = part.groupby("backbone")["dataset"].transform("nunique") == n_sets
        part = part[everywhere]
        if part["backbone"].nunique() >= 2:
            out.append((row, int(shots), part.index.to_numpy()))
    return out


def _matrix(cells: CellDraws, positions: np.ndarray, what: np.ndarray):
    """backbones, datasets, (backbones x datasets) point means and (backbones x datasets x B) of ``what``."""
    part = cells.cells.iloc[positions]
    backbones, datasets = sorted(part["backbone"].unique()), sorted(part["dataset"].unique())
    at = {(b, d): p for p, b, d in zip(positions, part["backbone"], part["dataset"])}
    mean = np.array([[cells.cells.at[at[b, d], "mean"] for d in datasets] for b in backbones])
    reps = np.stack([np.stack([what[at[b, d]] for d in datasets]) for b in backbones])
    return backbones, datasets, mean, reps


def decide(cells: CellDraws, group: dict, mode: str = "finetune", seconds: dict | None = None,
           infer: dict | None = None, level: float = 0.95) -> pd.DataFrame:
    """One row per (row, shots): pick, within-noise set, use and what it costs, power; ``seconds``:
    (row, shots) or shots -> {backbone: training seconds per run} (a row's own key first), ``infer``:
    {backbone: inference images/s}."""
    out = []
    for row, shots, positions in rows_of(cells, group, mode):
        backbones, datasets, mean, reps = _matrix(cells, positions, cells.draws)
        regret = (mean.max(0) - mean).mean(1)                           # per backbone
        regret_reps = (reps.max(0, keepdims=True) - reps).mean(1)       # backbones x B
        order = np.argsort(regret, kind="stable")
        best, second = order[0], order[1]
        gaps = regret_reps - regret_reps[best]                          # pick minus each, replicate by replicate
        lo, hi = quantiles(gaps, level)
        near = [i for i in range(len(backbones)) if i == best or decided(lo[i], hi[i]) <= 0]
        cost = (seconds or {}).get((row, shots), (seconds or {}).get(shots, {}))
        priced = [i for i in near if backbones[i] in cost]
        use = min(priced, key=lambda i: (cost[backbones[i]], regret[i])) if priced else best
        if backbones[best] in cost and cost[backbones[best]] < MIN_SAVING * cost[backbones[use]]:
            use = best
        rates = {i: infer[backbones[i]] for i in near if infer and backbones[i] in infer}
        fastest_infer = backbones[max(rates, key=rates.get)] if rates else None
        own = {d: backbones[int(np.argmax(mean[:, j]))] for j, d in enumerate(datasets)}
        n_seeds = int(cells.cells.iloc[positions]["n_runs"].min())
        out.append(dict(
            row=row, shots=shots, mode=mode, datasets=len(datasets), backbones=len(backbones),
            best=backbones[best], best_accuracy=mean[best].mean(), runner_up=backbones[second],
            gap=regret[second] - regret[best], gap_lo=lo[second], gap_hi=hi[second],
            within_noise=[backbones[i] for i in sorted(near, key=lambda i: regret[i])],
            use=backbones[use], use_accuracy=mean[use].mean(), at_most=0.0 if use == best else max(hi[use], 0.0),
            use_worst_dataset=float((mean.max(0) - mean[use]).max()),
            train_seconds_use=cost.get(backbones[use], np.nan), train_seconds_best=cost.get(backbones[best], np.nan),
            fastest_train=backbones[min(priced, key=lambda i: cost[backbones[i]])] if priced else None,
            fastest_infer=fastest_infer, own_picks=own, n_seeds=n_seeds,
            **power(cells, positions, best, second, n_seeds)))
    frame = pd.DataFrame(out)
    if len(frame):
        frame["trains_faster"] = frame["train_seconds_best"] / frame["train_seconds_use"]
    return frame


def power(cells: CellDraws, positions: np.ndarray, best: int, second: int, n_seeds: int) -> dict:
    """The top two's gap: its test-image noise with the seeds held fixed (sd), the seed noise of one
    seed (sd), and about how many seeds would separate them at the observed gap (None: none would)."""
    _, _, mean, reps = _matrix(cells, positions, cells.draws)
    gap = (mean[best] - mean[second]).mean()
    total = np.var((reps[best] - reps[second]).mean(0), ddof=1)
    if cells.test_draws is None:
        return dict(test_sd=np.nan, seed_sd=np.nan, seeds_needed=np.nan, test_floor=False)
    _, _, _, test = _matrix(cells, positions, cells.test_draws)
    test_var = np.var((test[best] - test[second]).mean(0), ddof=1)
    seed_var = max(total - test_var, 0.0) * n_seeds                  # of one seed's gap
    room = (gap / Z) ** 2 - test_var
    if room <= 0:
        needed = None                                                  # the test set's own noise exceeds the gap
    elif seed_var == 0:
        needed = 1
    else:
        needed = max(1, math.ceil(seed_var / room))
    return dict(test_sd=math.sqrt(test_var), seed_sd=math.sqrt(seed_var), seeds_needed=needed, test_floor=needed is None)


def power_words(row) -> str:
    """The power of a row in words: how many seeds would separate the top two, or that none would."""
    if row["seeds_needed"] is None or (isinstance(row["seeds_needed"], float) and math.isnan(row["seeds_needed"])):
        if row.get("test_floor"):
            return (f"no number of seeds: the test set's own noise (sd {row['test_sd']:.3f}) is more than a "
                    f"95 % interval allows at a gap of {row['gap']:.3f}")
        return "not estimated"
    n = int(row["seeds_needed"])
    if n <= row["n_seeds"]:
        return f"{n} seeds would separate them at this gap (sd of the gap: test {row['test_sd']:.3f}, seed {row['seed_sd']:.3f})"
    return (f"about {n} seeds would separate them at this gap ({row['n_seeds']} run; sd of the gap: test "
            f"{row['test_sd']:.3f}, one seed {row['seed_sd']:.3f})")
