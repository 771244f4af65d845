"""Decode a dataset once into uint8 arrays, curated and de-duplicated, cached by content hash.

Training never decodes a JPEG: it memory-maps ``images.npy`` (N, S, S, C) from the cache.
The cache key hashes the source files' bytes, the registry fields that shape the arrays and
the de-duplication rule, so a changed source, curation or dedup rule prepares afresh.
Duplicates are found on decoded pixels (data/dedup.py); near-duplicate pairs are listed in
the metadata and kept out of the test split when they cross splits (data/splits.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from backbone_bench import paths
from backbone_bench.data.bundled import find_bundle, load_bundle
from backbone_bench.data import dedup
from backbone_bench.data.registry import DatasetSpec, get_dataset
from backbone_bench.data.sources import decode, offline
from backbone_bench.errors import BenchError, CorruptImageError, DataMissingError

PREPARE_VERSION = 3                       # bump when the decoding below changes its output
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


@dataclass
class Prepared:
    spec: DatasetSpec
    key: str                    # content hash: sources + curation + prepare version
    images: np.ndarray          # (N, S, S, C) uint8, memory-mapped
    labels: np.ndarray          # (N,) int16, index into spec.classes
    source_split: np.ndarray    # (N,) int8, SPLIT_CODES of the split the source put it in
    meta: dict                  # source, duplicates, corrupt files, timing

    def __len__(self) -> int:
        return len(self.labels)

    def has_split(self, split: str) -> bool:
        return bool((self.source_split == SPLIT_CODES[split]).any())


def resolve_source(spec: DatasetSpec):
    """The first source that has the data: mirrors, then cache/download. Raises with where to put it."""
    tried = []
    for source in spec.sources:
        if source.download and offline():
            tried.append(f"{source.describe()}: skipped, offline (HF_HUB_OFFLINE/BACKBONE_BENCH_OFFLINE set)")
            continue
        try:
            where = source.locate()
        except BenchError:
            raise
        except Exception as err:  # network down, host unreachable, HTTP error
            tried.append(f"{source.describe()}: {type(err).__name__}: {str(err)[:200]}")
            continue
        if where is not None:
            return source, where
        tried.append(f"{source.describe()}: not in any mirror folder")
    mirrors = [s for s in spec.sources if not s.download]
    mirror_dirs = [str(p) for p in paths.data_mirrors()] or ["(BACKBONE_BENCH_DATA is not set)"]
    hint = (f"Put {mirrors[0].describe()} inside a folder named by BACKBONE_BENCH_DATA "
            f"(now: {', '.join(mirror_dirs)}); on the project's machines: "
            f"export BACKBONE_BENCH_DATA=../shared/data." if mirrors else
            "This dataset is served only by the public internet: connect, and unset HF_HUB_OFFLINE.")
    raise DataMissingError(f"dataset {spec.name!r}: no source has it. {hint}\nTried:\n  " + "\n  ".join(tried))


def content_key(spec: DatasetSpec, source, where: Path) -> str:
    recipe = dict(v=PREPARE_VERSION, name=spec.name, classes=spec.classes, label_map=spec.label_map,
                  size=spec.storage_size, channels=spec.channels, source=type(source).__name__,
                  dedup=dedup.RULE)
    files = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in source.files_of(where))
    return _hash(json.dumps(recipe, sort_keys=True, default=str), files)


@lru_cache(maxsize=32)
def _hash(recipe: str, files: tuple) -> str:
    """Every run calls prepare: files unchanged since (same size and mtime) are not read again here."""
    h = hashlib.sha256()
    h.update(recipe.encode())
    for name, _, _ in files:
        h.update(Path(name).name.encode())
        with open(name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def prepare(name: str, on_corrupt: str = "skip", progress: bool = True) -> Prepared:
    """Prepared arrays for ``name``, from the cache when the sources are unchanged.

    on_corrupt: "skip" drops undecodable images and lists them in meta["corrupt"] (with a
    warning naming them); "error" stops at the first one, naming its file.
    """
    if on_corrupt not in ("skip", "error"):
        raise ValueError(f"on_corrupt must be 'skip' or 'error', not {on_corrupt!r}")
    spec = get_dataset(name)
    bundle = find_bundle(spec.name)  # a bundle of just the images some runs read
    if bundle is not None:
        arrays = load_bundle(bundle)
        return Prepared(spec=spec, **{k: v for k, v in arrays.items() if k != "dataset"})
    source, where = resolve_source(spec)
    key = content_key(spec, source, where)
    folder = (Path(spec.prepared_root) if spec.prepared_root else paths.cache_dir() / "prepared") / f"{spec.name}-{key}"
    if not (folder / "meta.json").exists():
        _build(spec, source, where, key, folder, on_corrupt, progress)
    return load_prepared(folder, spec)


def load_prepared(folder: Path, spec: DatasetSpec) -> Prepared:
    meta = json.loads((folder / "meta.json").read_text())
    return Prepared(spec=spec, key=meta["key"], images=np.load(folder / "images.npy", mmap_mode="r"),
                    labels=np.load(folder / "labels.npy"), source_split=np.load(folder / "source_split.npy"),
                    meta=meta)


def _build(spec, source, where, key, folder, on_corrupt, progress) -> None:
    start = time.perf_counter()
    images, labels, splits, names, hashes, byte_hashes = [], [], [], [], [], []
    corrupt, dropped, modes = [], defaultdict(int), defaultdict(int)
    class_index = {c: i for i, c in enumerate(spec.classes)}
    for raw in tqdm(source.read(where), desc=f"prepare {spec.name}", unit="img", disable=not progress):
        label = spec.map_label(raw.label)
        if label is None:
            dropped[raw.label] += 1
            continue
        if label not in class_index:
            raise BenchError(f"{spec.name}: source label {raw.label!r} ({raw.name}) is not a registry class; "
                             "add it to classes or label_map in data/registry.py.")
        try:
            native, stored, mode = decode(raw.payload, spec.channels, spec.storage_size)
        except Exception as err:
            if on_corrupt == "error":
                raise CorruptImageError(f"{spec.name}: cannot decode {raw.name}: {err}. Replace the file, "
                                        "or prepare with on_corrupt='skip' to drop it.") from err
            corrupt.append(f"{raw.name}: {type(err).__name__}: {err}")
            continue
        modes[mode] += 1
        images.append(stored)
        labels.append(class_index[label])
        splits.append(SPLIT_CODES[raw.split])
        names.append(raw.name)
        hashes.append(dedup.pixel_hash(stored))  # duplicates are the same pixels, whatever the file bytes
        byte_hashes.append(hashlib.sha1(raw.payload).hexdigest() if isinstance(raw.payload, bytes) else hashes[-1])
    if corrupt:
        warnings.warn(f"{spec.name}: skipped {len(corrupt)} undecodable image(s): " + "; ".join(corrupt[:5]))
    keep, duplicates = dedup.deduplicate(hashes, labels, splits, names)
    duplicates["byte_identical_groups"] = dedup.deduplicate(byte_hashes, labels, splits, names)[1]["groups"]
    kept = [images[i] for i in keep]
    near = dedup.near_duplicates(*dedup.signatures(kept))
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")  # one per process: two may prepare at once
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "images.npy", np.stack(kept))
    np.save(tmp / "labels.npy", np.asarray([labels[i] for i in keep], dtype=np.int16))
    np.save(tmp / "source_split.npy", np.asarray([splits[i] for i in keep], dtype=np.int8))
    meta = dict(key=key, dataset=spec.name, source=source.describe(), source_location=str(where),
                n_read=len(images) + len(corrupt) + sum(dropped.values()), n_kept=len(keep),
                dropped_by_curation=dict(dropped), corrupt=corrupt, source_modes=dict(modes), duplicates=duplicates,
                near_duplicates=dict(rule=dedup.RULE, pairs=near),
                names=[names[i] for i in keep], storage_size=spec.storage_size, channels=spec.channels,
                prepare_seconds=round(time.perf_counter() - start, 2), prepare_version=PREPARE_VERSION)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    if folder.exists() and not (folder / "meta.json").exists():
        shutil.rmtree(folder, ignore_errors=True)  # an entry left incomplete by an older version
    try:
        tmp.rename(folder)  # the cache entry appears whole or not at all
    except OSError:  # another process finished the same entry first: the same content, keep theirs
        shutil.rmtree(tmp, ignore_errors=True)

