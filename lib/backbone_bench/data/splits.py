"""Deterministic splits and nested shot subsets, stored as committed index files.

test  = the source's test split, else a stratified 20 % (seed SPLIT_SEED), less every test image
        with a near-duplicate in val or pool (data/dedup.py): near-copies are never tested on;
val   = the source's validation split, else a stratified 10 % of what remains;
pool  = the rest: the images training subsets are drawn from;
shots = per subset seed, each class's pool images in a seeded order; k shots are the first
        min(k, n_class) of them, so the 10-shot subset lies inside the 100-shot one.
Indices point into the prepared arrays; the file records the data's content key so a file
made for other data is refused instead of silently pointing at the wrong images.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backbone_bench import paths
from backbone_bench.data.prepare import SPLIT_CODES, Prepared
from backbone_bench.errors import BenchError, InvalidParameterError

SPLIT_SEED = 0
SUBSET_SEEDS = (0, 1, 2)
TEST_FRACTION = 0.2
VAL_FRACTION = 0.1


@dataclass
class Splits:
    dataset: str
    key: str
    test: np.ndarray
    val: np.ndarray
    pool: np.ndarray
    order: dict                 # subset seed -> (pool indices in draw order, class-interleaved)
    labels: np.ndarray          # labels of the prepared arrays, for per-class counting
    removed: np.ndarray = None  # test images dropped for a near-duplicate in val or pool

    def digest(self) -> str:
        """A short hash of every index the runs read: records carry it, so a record made on
        splits that no longer exist is recognised (store.current)."""
        import hashlib

        h = hashlib.sha256()
        for part in [self.test, self.val, self.pool] + [self.order[s] for s in sorted(self.order)]:
            h.update(np.asarray(part, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]

    def shared_subset(self, shots: int) -> bool:
        """True when every class's whole pool fits in ``shots``: all subset seeds draw the same images."""
        return shots >= np.bincount(self.labels[self.pool]).max()

    def train(self, shots: int, seed: int) -> np.ndarray:
        """Indices of the ``shots``-per-class training subset drawn with subset seed ``seed``."""
        if shots < 1:
            raise InvalidParameterError(f"shots must be a positive number of images per class, not {shots}")
        if seed not in self.order:
            raise InvalidParameterError(f"subset seed {seed} has no committed subset; choose from {sorted(self.order)}")
        order = self.order[seed]
        rank = np.empty(len(order), dtype=np.int64)
        labels = self.labels[order]
        for c in np.unique(labels):  # rank of each image within its class, in draw order
            rank[labels == c] = np.arange((labels == c).sum())
        return np.sort(order[rank < shots])

    def subset_overlap(self, shots: int, seeds=None) -> float:
        """The share of a seed's training images that another seed's subset also holds, averaged over
        pairs of the committed seeds (0: disjoint subsets; 1: one subset, ``shared_subset``)."""
        import itertools

        subsets = [set(self.train(shots, seed).tolist()) for seed in (seeds or sorted(self.order))]
        pairs = list(itertools.combinations(subsets, 2))
        return float(np.mean([len(a & b) / len(a) for a, b in pairs])) if pairs else 0.0

    def effective_shots(self, shots: int) -> int:
        """The largest class's subset size at ``shots``: equal values mean identical subsets."""
        return int(min(shots, np.bincount(self.labels[self.pool]).max()))


def make_splits(prepared: Prepared) -> Splits:
    from sklearn.model_selection import train_test_split  # here: commands that only check input stay fast

    n = len(prepared)
    labels = prepared.labels.astype(np.int64)
    split = prepared.source_split
    index = np.arange(n)
    if prepared.has_split("test"):
        test, rest = index[split == SPLIT_CODES["test"]], index[split != SPLIT_CODES["test"]]
    else:
        rest, test = train_test_split(index, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED)
    if prepared.has_split("val"):
        val, pool = rest[split[rest] == SPLIT_CODES["val"]], rest[split[rest] == SPLIT_CODES["train"]]
    else:
        pool, val = train_test_split(rest, test_size=VAL_FRACTION, stratify=labels[rest], random_state=SPLIT_SEED)
    test, removed = _without_near_duplicates(test, prepared.meta.get("near_duplicates", {}).get("pairs", []))
    pool = np.sort(pool)
    order = {}
    for seed in SUBSET_SEEDS:
        rng = np.random.default_rng([SPLIT_SEED, seed])
        order[seed] = rng.permutation(pool)
    return Splits(prepared.spec.name, prepared.key, np.sort(test), np.sort(val), pool, order, labels, removed)


def _without_near_duplicates(test: np.ndarray, pairs) -> tuple[np.ndarray, np.ndarray]:
    """Test images whose near-duplicate lies outside the test split are removed from it."""
    in_test = set(test.tolist())
    drop = {i if i in in_test else j for i, j, *_ in pairs if (i in in_test) != (j in in_test)}
    return np.asarray([i for i in test.tolist() if i not in drop], dtype=np.int64), np.asarray(sorted(drop), dtype=np.int64)


def split_file(dataset: str, folder: Path | None = None) -> Path:
    return (folder or paths.splits_dir()) / f"{dataset}.npz"


def save_splits(splits: Splits, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(key=np.array(splits.key), test=splits.test.astype(np.int32), val=splits.val.astype(np.int32),
                  pool=splits.pool.astype(np.int32), removed=np.asarray(splits.removed, dtype=np.int32))
    arrays |= {f"order_seed{s}": o.astype(np.int32) for s, o in splits.order.items()}
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _key_of(path: Path) -> str:
    with np.load(path) as f:
        return str(f["key"])


def load_splits(prepared: Prepared, folder: Path | None = None) -> Splits:
    """The committed splits for this data; made and saved on first use. A results folder without its
    own (a lab's, a test's) uses the repository's where they were drawn from the same data."""
    path = split_file(prepared.spec.name, folder)
    if not path.exists():
        repo = paths.REPO_ROOT / "results" / "splits" / path.name
        if folder is None and repo.exists() and _key_of(repo) == prepared.key:
            path = repo
        else:
            splits = make_splits(prepared)
            save_splits(splits, path)
            return splits
    with np.load(path) as f:
        if str(f["key"]) != prepared.key:
            raise BenchError(
                f"{path} was made for other data (key {f['key']}, prepared data has {prepared.key}): the "
                "source files or curation changed. Delete the file to draw new splits (results made with "
                "the old ones then no longer match), or restore the original source files.")
        order = {int(k.removeprefix("order_seed")): f[k].astype(np.int64) for k in f.files if k.startswith("order_seed")}
        return Splits(prepared.spec.name, prepared.key, f["test"].astype(np.int64), f["val"].astype(np.int64),
                      f["pool"].astype(np.int64), order, prepared.labels.astype(np.int64),
                      f["removed"].astype(np.int64) if "removed" in f.files else np.zeros(0, np.int64))
