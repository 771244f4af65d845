"""Near-twins of evaluation images in the images a model learns from, found as is and mirrored.

The splits (splits.py) already take out of test every image with a near-duplicate in training or
validation under the package's rule (dedup.py). Training flips images horizontally, so a test
image whose *mirror* is in the pool is as good as seen, and an independent check found such pairs
with a second rule. Both rules are applied here, each to the image and to its mirror:

    package     phash Hamming <= dedup.PHASH_BITS and 32x32 thumbnail correlation >= dedup.MIN_CORRELATION
    thumbnail   16x16 grayscale, mean-centred cosine >= THUMB_COSINE (the independent check's rule)

A test image is a twin when either rule pairs it with a pool or validation image; a validation
image when either pairs it with a pool image. The splits stay as they are (every record stays
valid): runs are scored on the full test set and on the *clean* subset without the test twins
(analysis/uncertainty.py), and the counts per rule go on the data cards. The result is committed
beside the split (results/splits/<dataset>.twins.npz): prepared indices, so it is small and a
rebuild reads it instead of recomputing it.
"""
from __future__ import annotations

import numpy as np

from backbone_bench.data import dedup
from backbone_bench.data.prepare import Prepared
from backbone_bench.data.splits import Splits

THUMB_COSINE = 0.985  # reproduces the independent check's counts (breastmnist 14 vs 15, brain_tumor_mri 6 vs 6)
SMALL_THUMB = 16
RULES = {"package": f"phash Hamming <= {dedup.PHASH_BITS} and {dedup.THUMB}x{dedup.THUMB} thumbnail correlation >= "
                    f"{dedup.MIN_CORRELATION}, the image or its mirror",
         "thumbnail": f"{SMALL_THUMB}x{SMALL_THUMB} grayscale cosine >= {THUMB_COSINE}, the image or its mirror"}
VERSION = 1


def _mirrored(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images[:, :, ::-1])


def _small(images: np.ndarray) -> np.ndarray:
    return dedup.thumbnails(dedup.grays(images), SMALL_THUMB)


def _best(query: np.ndarray, ref: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each query row: the highest cosine with any reference row, and which."""
    score, match = np.full(len(query), -1.0, np.float32), np.zeros(len(query), np.int64)
    for start in range(0, len(query), chunk):
        sims = query[start:start + chunk] @ ref.T
        match[start:start + chunk] = sims.argmax(1)
        score[start:start + chunk] = sims.max(1)
    return score, match


def _package_pairs(q_hash, q_thumb, r_hash, r_thumb, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """For each query: whether the package's rule pairs it with a reference, and with which."""
    hit, match = np.zeros(len(q_hash), bool), np.zeros(len(q_hash), np.int64)
    for start in range(0, len(q_hash), chunk):
        bits = np.bitwise_count(q_hash[start:start + chunk, None] ^ r_hash[None, :])
        rows, cols = np.nonzero(bits <= dedup.PHASH_BITS)
        if not len(rows):
            continue
        corr = np.einsum("ij,ij->i", q_thumb[rows + start], r_thumb[cols])
        for i, j in zip(rows[corr >= dedup.MIN_CORRELATION], cols[corr >= dedup.MIN_CORRELATION]):
            hit[i + start], match[i + start] = True, j
    return hit, match


def find_twins(prepared: Prepared, splits: Splits) -> dict:
    """Per evaluation split ('test' against pool and validation, 'val' against pool): the prepared
    indices each rule flags, with the index of the matching image and whether it matched mirrored."""
    images = prepared.images
    pool, val, test = splits.pool, splits.val, splits.test
    sigs = {name: dedup.signatures(images[index]) for name, index in (("pool", pool), ("val", val), ("test", test))}
    mirrored = {name: dedup.signatures(_mirrored(images[index])) for name, index in (("pool", pool), ("val", val))}
    small = {name: _small(images[index]) for name, index in (("pool", pool), ("val", val), ("test", test))}
    small_m = {name: _small(_mirrored(images[index])) for name, index in (("pool", pool), ("val", val))}
    out = {}
    for split, refs in (("test", ("pool", "val")), ("val", ("pool",))):
        ref_index = np.concatenate([{"pool": pool, "val": val}[r] for r in refs])
        q_hash, q_thumb = sigs[split]
        flags = {}
        for rule in RULES:
            hit = np.zeros(len(q_hash), bool)
            match, mirror = np.zeros(len(q_hash), np.int64), np.zeros(len(q_hash), bool)
            for is_mirror, (ref_sigs, ref_small) in enumerate(((sigs, small), (mirrored, small_m))):
                if rule == "package":
                    r_hash = np.concatenate([ref_sigs[r][0] for r in refs])
                    r_thumb = np.concatenate([ref_sigs[r][1] for r in refs])
                    h, m = _package_pairs(q_hash, q_thumb, r_hash, r_thumb)
                else:
                    score, m = _best(small[split], np.concatenate([ref_small[r] for r in refs]))
                    h = score >= THUMB_COSINE
                new = h & ~hit
                match[new], mirror[new] = m[new], bool(is_mirror)
                hit |= h
            index = {"test": test, "val": val}[split]
            flags[rule] = dict(index=index[hit], match=ref_index[match[hit]], mirrored=mirror[hit])
        out[split] = flags
    return out


def twins_path(dataset: str):
    from backbone_bench import paths

    return paths.splits_dir() / f"{dataset}.twins.npz"


def committed(dataset: str, key: str) -> dict | None:
    """The committed twins of a dataset made from the prepared data with content key ``key`` (a
    record's ``data_key``); None when there are none for it. Needs no image data. A results folder
    without its own (a lab's, a test's) reads the repository's, which the key check makes safe: the
    splits are drawn deterministically from the same data."""
    from backbone_bench import paths

    for path in dict.fromkeys((twins_path(dataset), paths.REPO_ROOT / "results" / "splits" / twins_path(dataset).name)):
        if not path.exists():
            continue
        with np.load(path) as f:
            if str(f["key"]) != key or int(f["version"]) != VERSION:
                continue
            return {split: {rule: dict(index=f[f"{split}_{rule}_index"], match=f[f"{split}_{rule}_match"],
                                       mirrored=f[f"{split}_{rule}_mirrored"]) for rule in RULES}
                    for split in ("test", "val")}
    return None


def load_twins(prepared: Prepared, splits: Splits) -> dict:
    """The committed twins of a dataset, computed and written once where missing or stale."""
    found = committed(prepared.spec.name, prepared.key)
    if found is not None:
        return found
    found = find_twins(prepared, splits)
    arrays = {f"{split}_{rule}_{k}": v for split, rules in found.items() for rule, d in rules.items() for k, v in d.items()}
    path = twins_path(prepared.spec.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, key=prepared.key, version=VERSION, **{k: v.astype(np.int32) if v.dtype != bool else v
                                                                    for k, v in arrays.items()})
    tmp.replace(path)
    return found


def left_out(twins: dict, split: str = "test") -> np.ndarray:
    """Prepared indices of the ``split`` images either rule flags (for test: what the clean subset
    leaves out)."""
    return np.union1d(twins[split]["package"]["index"], twins[split]["thumbnail"]["index"])
