"""Two-level bootstrap: every interval in the book comes from here.

A reported number (a cell mean, a gain, a z-score, a rank) varies for two reasons: the training
subset and seed (another draw of 10 images per class gives another model), and the test set (a
finite sample of the domain). One bootstrap replicate resamples both, from the saved predictions:

1. the test images, with replacement, once per test set and replicate; every run evaluated on
   that test set is rescored on the same resample (paired: comparisons between backbones and
   modes do not double-count test noise);
2. the runs of each (dataset, shots, backbone, mode) cell, with replacement (its seeds).

A cell with one seed, or whose seeds share one training subset (the shot level exceeds what a
class has), still carries test-set uncertainty; its ``n_subsets`` says how many independent
training subsets stand behind it. Seeds whose subsets share part of their images (a share rho of
each, when a class has not many more images than the shot level) are not independent either: their
mean varies as that of n_eff = n / (1 + (n - 1) rho) independent seeds (the design effect of
equally correlated draws), so the seed part of such a cell's replicates (the replicate minus the
same test resample's mean over all its seeds) is widened by sqrt(n / n_eff). Intervals are
percentile intervals of the replicates.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

LEVEL = 0.95
CELL = ["dataset", "shots", "backbone", "mode"]
Predictions = Callable[[pd.Series], tuple[np.ndarray, np.ndarray]]  # run row -> (labels, predicted)


def stored_predictions(results: str | Path, exclude: dict | None = None) -> Predictions:
    """Test labels and predicted classes of a recorded run, from its .npz. ``exclude``: dataset ->
    prepared indices of test images to leave out (the test twins of data/twins.py: the clean subset)."""
    from backbone_bench.study import store

    def load(row: pd.Series):
        arrays = store.read_arrays(row["key"], Path(results))
        if "test_label" in arrays:
            labels = arrays["test_label"]
        else:  # records made before labels were stored beside the predictions
            from backbone_bench.data.prepare import prepare

            labels = prepare(row["dataset"], progress=False).labels[arrays["test_index"]]
        labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(arrays["test_pred"], dtype=np.int64)
        if exclude and row["dataset"] in exclude:
            keep = ~np.isin(arrays["test_index"], exclude[row["dataset"]])
            labels, predicted = labels[keep], predicted[keep]
        return labels, predicted

    return load


def resampled_balanced_accuracy(labels: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Balanced accuracy of R runs (predicted: R x n) under B resamples given as counts (B x n).

    Classes absent from a resample are left out of its mean, as scikit-learn does."""
    correct = (predicted == labels[None, :]).astype(np.float32)
    per_class = []
    for c in np.unique(labels):
        mask = labels == c
        w = weights[:, mask].astype(np.float32)
        hits = w @ correct[:, mask].T                      # (B, R)
        total = w.sum(1, keepdims=True)
        per_class.append(np.where(total > 0, hits / np.maximum(total, 1), np.nan))
    return np.nanmean(np.stack(per_class), axis=0)       # (B, R)


def run_draws(runs: pd.DataFrame, predictions: Predictions, n_boot: int, seed: int = 0) -> np.ndarray:
    """(len(runs), n_boot): each run's balanced accuracy on resamples of its test set."""
    out = np.empty((len(runs), n_boot))
    loaded = [predictions(row) for _, row in runs.iterrows()]
    groups: dict = {}
    for position, (labels, _) in enumerate(loaded):  # runs on the same test set share its resamples
        signature = (runs.iloc[position]["dataset"], hashlib.sha1(labels.tobytes()).hexdigest(), len(labels))
        groups.setdefault(signature, []).append(position)
    for signature, members in groups.items():
        labels = loaded[members[0]][0]
        n = len(labels)
        rng = np.random.default_rng([seed, int(hashlib.sha1(repr(signature).encode()).hexdigest()[:8], 16)])
        weights = rng.multinomial(n, np.full(n, 1 / n), size=n_boot)
        predicted = np.stack([loaded[m][1] for m in members])
        out[members] = resampled_balanced_accuracy(labels, predicted, weights).T
    return out


@dataclass
class CellDraws:
    """Per (dataset, shots, backbone, mode) cell: the point mean and its bootstrap replicates."""
    cells: pd.DataFrame     # CELL columns, mean, n_runs, n_subsets, subset_shared
    draws: np.ndarray       # (len(cells), B)
    # (len(cells), B): the same test resamples with every seed of the cell kept (level 1 alone), so
    # draws' variance splits into test-image noise and seed noise (analysis/decision.py: power)
    test_draws: np.ndarray | None = None

    def interval(self, level: float = LEVEL) -> pd.DataFrame:
        lo, hi = quantiles(self.draws, level)
        return self.cells.assign(lo=lo, hi=hi)

    def take(self, keep: np.ndarray) -> "CellDraws":
        """The cells where ``keep`` (a boolean mask or positions), replicates kept."""
        return CellDraws(self.cells[keep].reset_index(drop=True) if keep.dtype == bool
                         else self.cells.iloc[keep].reset_index(drop=True), self.draws[keep],
                         None if self.test_draws is None else self.test_draws[keep])

    def of(self, mode: str) -> "CellDraws":
        return self.take((self.cells["mode"] == mode).to_numpy())


def effective_seeds(n: int, overlap: float) -> float:
    """Independent seeds that ``n`` seeds sharing a share ``overlap`` of their images are worth."""
    return n / (1 + (n - 1) * overlap) if n > 1 else float(n)


def cell_draws(runs: pd.DataFrame, predictions: Predictions, n_boot: int = 1000, seed: int = 0,
               metric: str = "test_balanced_accuracy", overlap: dict | None = None) -> CellDraws:
    """Two-level replicates of every cell's seed mean (``runs``: successful runs only); ``overlap``:
    (dataset, shots) -> the share of training images its seeds' subsets share (default none)."""
    runs = runs.reset_index(drop=True)
    per_run = run_draws(runs, predictions, n_boot, seed)
    rows, draws, test_draws = [], [], []
    shared = runs["subset_shared"] if "subset_shared" in runs else pd.Series(False, index=runs.index)
    for key, group in runs.groupby(CELL, sort=True):
        members = group.index.to_numpy()
        # each cell's seed resamples come from its own stream, so a cell's interval is the same on
        # every page whatever other cells the page holds (one bootstrap per edition)
        rng = np.random.default_rng([seed, 1, int(hashlib.sha1(repr(tuple(map(str, key))).encode()).hexdigest()[:8], 16)])
        pick = rng.integers(0, len(members), size=(n_boot, len(members)))   # seeds, with replacement
        seeds_part = per_run[members[pick], np.arange(n_boot)[:, None]].mean(1)
        test_part = per_run[members].mean(0)
        is_shared = bool(shared[members].fillna(False).any())
        rho = 0.0 if is_shared else float((overlap or {}).get((key[0], key[1]), 0.0))
        n_eff = effective_seeds(len(members), rho)
        # seeds that share images vary less than independent ones: widen the seed part to n_eff seeds
        draws.append(test_part + (seeds_part - test_part) * np.sqrt(len(members) / n_eff))
        test_draws.append(test_part)
        rows.append(dict(zip(CELL, key), mean=group[metric].mean(), n_runs=len(members),
                         n_subsets=1 if is_shared else len(members), subset_shared=is_shared, overlap=rho,
                         n_effective=1.0 if is_shared else n_eff))
    cells = pd.DataFrame(rows, columns=CELL + ["mean", "n_runs", "n_subsets", "subset_shared", "overlap",
                                               "n_effective"])
    empty = np.zeros((0, n_boot))
    return CellDraws(cells, np.stack(draws) if draws else empty, np.stack(test_draws) if test_draws else empty)


def resampled_means(values, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the mean of independent units (e.g. paired differences)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    return values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)


def quantiles(draws: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of replicates along the last axis."""
    draws = np.asarray(draws, dtype=float)
    if draws.size == 0:
        empty = np.full(draws.shape[:-1], np.nan)
        return empty, empty.copy()
    lo, hi = np.nanquantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2], axis=-1)
    return lo, hi


def decided(lo: float, hi: float) -> int:
    """The one verdict rule for a difference's interval: +1 when it lies wholly above zero, -1 when
    wholly below, 0 when it contains zero (these results cannot tell). Claims, the book's prose and
    `recommend`'s report all decide with it."""
    return 1 if lo > 0 else -1 if hi < 0 else 0


def interval_words(n_subsets: int) -> str:
    """What a cell's interval holds: seeds and test images, or, with one training subset (one seed,
    or seeds that share every image), test images only: it leaves out the seed-to-seed spread."""
    return "test images only (one training subset)" if n_subsets <= 1 else f"{n_subsets} seeds, then test images"


def fmt(value: float, lo: float, hi: float, digits: int = 3, signed: bool = False) -> str:
    """"value [lo, hi]", never a zero-width interval: more digits until the ends differ, and a
    plain statement when every replicate gave the same value."""
    if np.isnan(value):
        return ""
    sign = "+" if signed else ""
    if np.isnan(lo) or np.isnan(hi):
        return f"{value:{sign}.{digits}f} (no interval)"
    if hi - lo <= 0:
        return f"{value:{sign}.{digits}f} (every resample gave this value)"
    d = digits
    while f"{lo:.{d}f}" == f"{hi:.{d}f}" and d < 6:
        d += 1
    return f"{value:{sign}.{d}f} [{lo:{sign}.{d}f}, {hi:{sign}.{d}f}]"


def paired_differences(draws: CellDraws, mode: str, minus: str) -> tuple[pd.DataFrame, np.ndarray]:
    """(dataset, shots, backbone) rows where both modes ran: point difference ``mode - minus`` in
    column ``diff``, and its replicates (rows x B), paired on the same test resamples."""
    return differences(draws.of(mode), draws.of(minus))


def differences(a: CellDraws, b: CellDraws) -> tuple[pd.DataFrame, np.ndarray]:
    """(dataset, shots, backbone) rows in both: point difference ``a - b`` in column ``diff`` and its
    replicates (rows x B). Runs scored on one test set share its resamples (paired); on different
    test sets the two sides' resamples are independent."""
    on = ["dataset", "shots", "backbone"]
    both = a.cells.reset_index().merge(b.cells.reset_index(), on=on, suffixes=("_a", "_b"))
    keys = both[on].assign(diff=both["mean_a"].to_numpy() - both["mean_b"].to_numpy(),
                           n_subsets=np.minimum(both["n_subsets_a"], both["n_subsets_b"]))
    ia, ib = both["index_a"].to_numpy(dtype=int), both["index_b"].to_numpy(dtype=int)
    return keys.reset_index(drop=True), a.draws[ia] - b.draws[ib]


def group_means(keys: pd.DataFrame, reps: np.ndarray, by, value: str = "diff") -> pd.DataFrame:
    """Mean of ``value`` per group, with the interval of the replicates' group means."""
    rows = []
    for group, idx in keys.groupby(by).indices.items():
        lo, hi = quantiles(reps[idx].mean(0))
        group = group if isinstance(group, tuple) else (group,)
        rows.append(dict(zip(by, group), mean=keys[value].to_numpy()[idx].mean(), lo=lo, hi=hi, pairs=len(idx)))
    return pd.DataFrame(rows, columns=list(by) + ["mean", "lo", "hi", "pairs"])


def domain_means(draws: CellDraws, domains: dict) -> CellDraws:
    """Cells averaged over a domain's datasets: (domain, shots, backbone, mode) rows, replicates kept."""
    cells = draws.cells.assign(domain=draws.cells["dataset"].map(domains))
    rows, reps, tests = [], [], []
    for key, idx in cells.groupby(["domain", "shots", "backbone", "mode"]).indices.items():
        rows.append(dict(zip(["domain", "shots", "backbone", "mode"], key), mean=cells["mean"].to_numpy()[idx].mean(),
                         datasets=len(idx), n_subsets=int(cells["n_subsets"].to_numpy()[idx].min()),
                         chance=cells["chance"].to_numpy()[idx].mean() if "chance" in cells else np.nan))
        reps.append(draws.draws[idx].mean(0))
        if draws.test_draws is not None:
            tests.append(draws.test_draws[idx].mean(0))
    frame = pd.DataFrame(rows, columns=["domain", "shots", "backbone", "mode", "mean", "datasets", "n_subsets", "chance"])
    empty = np.zeros((0, draws.draws.shape[1]))
    return CellDraws(frame, np.stack(reps) if reps else empty,
                     (np.stack(tests) if tests else empty) if draws.test_draws is not None else None)
