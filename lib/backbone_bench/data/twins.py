"""Near-twins of evaluation images in the images a model learns from, by a rule per dataset.

The splits (splits.py) already take out of test every image with a near-duplicate in training or
validation under the package's rule (dedup.py). What is left to find are twins the split's rule
misses: a thumbnail match, and where training flips a dataset's images, a mirrored match (a
mirrored twin is as good as seen there, and nowhere else). Three rules, each on or off per dataset
(registry: ``twin_package``, ``twin_cosine``, ``catalogue``), each threshold set by looking at the
pairs it would flag band by band (benchmarks/twin_pairs.py writes results/twins/<dataset>_pairs.png):

    package     phash Hamming <= dedup.PHASH_BITS and 32x32 thumbnail correlation >= dedup.MIN_CORRELATION
    thumbnail   16x16 grayscale, mean-centred cosine >= the dataset's ``twin_cosine``
    catalogue   the same catalogue identity in both images (galaxy_zoo1: the SDSS objID its files are
                named by): one object photographed twice, whatever the pixels

Mirrored matches count only where the dataset's training flips (``flip_ok``). A test image is a
twin when a rule pairs it with a pool or validation image; a validation image when a rule pairs it
with a pool image. The splits stay as they are (every record stays valid): runs are scored on the
full test set and on the *clean* subset without the test twins (analysis/uncertainty.py), model
selection scores validation on its clean subset where a recipe asks for it, and the counts per rule
go on the data cards. The result is committed beside the split (results/splits/<dataset>.twins.npz):
prepared indices, so it is small and a rebuild reads it instead of recomputing it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from backbone_bench.data import dedup
from backbone_bench.data.prepare import Prepared
from backbone_bench.data.splits import Splits

SMALL_THUMB = 16
RULES = ("package", "thumbnail", "catalogue")
VERSION = 2  # 1: one thumbnail cosine (0.985) for every dataset, mirrored matches everywhere
#: How a catalogue names the object in an image, from the image's source name (Prepared.meta["names"]).
CATALOGUES = {"sdss_objid": lambda name: Path(name.rpartition(":")[2]).stem}


def rule_words(spec) -> dict:
    """Each rule as it applies to ``spec``'s dataset, in words ('off' where it does not)."""
    mirror = ", the image or its mirror" if spec.flip_ok else " (no mirrored match: training does not flip it)"
    return {"package": (f"phash Hamming <= {dedup.PHASH_BITS} and {dedup.THUMB}x{dedup.THUMB} thumbnail correlation "
                        f">= {dedup.MIN_CORRELATION}{mirror}") if spec.twin_package else "off",
            "thumbnail": (f"{SMALL_THUMB}x{SMALL_THUMB} grayscale cosine >= {spec.twin_cosine}{mirror}"
                          if spec.twin_cosine is not None else "off"),
            "catalogue": f"the same {spec.catalogue} in both images" if spec.catalogue else "off"}


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
    """Per evaluation split ('test' against pool and validation, 'val' against pool) and rule: the
    prepared indices the dataset's rule flags, with the index of the matching image and whether it
    matched mirrored (a rule that is off for the dataset flags nothing)."""
    spec, images = prepared.spec, prepared.images
    pool, val, test = splits.pool, splits.val, splits.test
    parts = {"pool": pool, "val": val, "test": test}
    views = [False, True] if spec.flip_ok else [False]  # mirrored matches only where training flips
    sigs = {(n, m): dedup.signatures(_mirrored(images[i]) if m else images[i]) for n, i in parts.items() for m in views
            if spec.twin_package and (n != "test" or not m)}
    small = {(n, m): _small(_mirrored(images[i]) if m else images[i]) for n, i in parts.items() for m in views
             if spec.twin_cosine is not None and (n != "test" or not m)}
    names = prepared.meta.get("names") if spec.catalogue else None
    ident = np.array([CATALOGUES[spec.catalogue](n) for n in names]) if names is not None else None
    out = {}
    for split, refs in (("test", ("pool", "val")), ("val", ("pool",))):
        ref_index = np.concatenate([parts[r] for r in refs])
        index, n = parts[split], len(parts[split])
        flags = {}
        for rule in RULES:
            hit, match, mirror = np.zeros(n, bool), np.zeros(n, np.int64), np.zeros(n, bool)
            for is_mirror in views:
                if rule == "package" and spec.twin_package:
                    q_hash, q_thumb = sigs[(split, False)]
                    h, m = _package_pairs(q_hash, q_thumb, np.concatenate([sigs[(r, is_mirror)][0] for r in refs]),
                                          np.concatenate([sigs[(r, is_mirror)][1] for r in refs]))
                elif rule == "thumbnail" and spec.twin_cosine is not None:
                    score, m = _best(small[(split, False)], np.concatenate([small[(r, is_mirror)] for r in refs]))
                    h = score >= spec.twin_cosine
                elif rule == "catalogue" and ident is not None and not is_mirror:
                    where = {k: i for i, k in enumerate(ident[ref_index])}
                    m = np.array([where.get(k, -1) for k in ident[index]])
                    h = m >= 0
                    m = np.maximum(m, 0)
                else:
                    continue
                new = h & ~hit
                match[new], mirror[new] = m[new], bool(is_mirror)
                hit |= h
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
    """Prepared indices of the ``split`` images any rule flags (for test: what the clean subset
    leaves out)."""
    return np.unique(np.concatenate([np.asarray(twins[split][rule]["index"], dtype=np.int64) for rule in RULES]))
