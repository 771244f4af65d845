"""Frozen-backbone features, computed once per image and kept on disk for every later probe.

A linear probe's cost is its feature extraction; the head itself fits in seconds. So the
features of each (backbone weights, prepared data, resolution, precision) are extracted once,
one forward pass per image without augmentation, stored as float16 in the cache
(BACKBONE_BENCH_CACHE/features/), and reused by every probe of every shot level and seed, every
refit with a new regularisation grid, and every later session. Only the rows a probe asks for
are extracted (a test cap, a training subset), and rows are added as later probes ask for more.

Features are rounded to float16 whether they come from the disk or were just computed, so a
probe's result does not depend on what the cache held.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from backbone_bench import paths


def features_dir() -> Path:
    return paths.cache_dir() / "features"


def cache_path(weights, data_key: str, size: int, precision: str) -> Path:
    name = f"{weights.backbone}-{(weights.sha256 or weights.provenance or 'none')[:16]}-{data_key}-{size}px-{precision}.npz"
    return features_dir() / name


class FeatureCache:
    """Features by (weights, data, resolution, precision): in memory for this process, on disk for all."""

    def __init__(self, max_entries: int = 8):
        self.entries: dict = {}
        self.max_entries = max_entries
        self.extracted = 0   # images passed through a backbone by this process (tests and logs read it)

    def get(self, weights, prepared, index: np.ndarray, split, batch: int, device, bf16: bool = False) -> np.ndarray:
        """Features of ``prepared``'s rows ``index`` (``split`` holds those rows' images, in order)."""
        from backbone_bench.engine.speed import precision

        key = (weights.backbone, weights.provenance, weights.sha256, prepared.key, split.size, bool(bf16))
        if key not in self.entries:
            if len(self.entries) >= self.max_entries:
                self.entries.pop(next(iter(self.entries)))
            path = cache_path(weights, prepared.key, split.size, precision(dict(bf16=bf16)))
            self.entries[key] = dict(path=path, model=None, **_load(path))
        entry = self.entries[key]
        index = np.asarray(index, dtype=np.int64)
        have = np.isin(index, entry["index"])
        if not have.all():
            missing = np.unique(index[~have])
            position = {int(i): p for p, i in enumerate(index.tolist())}
            sub = type(split)(split.images[[position[int(i)] for i in missing]], split.labels[:0], split.size)
            feats = self._extract(entry, weights, sub, batch, device, bf16)
            order = np.argsort(np.concatenate([entry["index"], missing]), kind="stable")
            entry["index"] = np.concatenate([entry["index"], missing])[order]
            entry["feats"] = np.concatenate([entry["feats"].reshape(-1, feats.shape[1]), feats])[order]
            _save(entry["path"], entry["index"], entry["feats"])
        rows = np.searchsorted(entry["index"], index)
        return entry["feats"][rows].astype(np.float32)

    def _extract(self, entry, weights, sub, batch, device, bf16) -> np.ndarray:
        from backbone_bench.models.backbones import create_model
        from backbone_bench.engine.train import extract_features

        if entry["model"] is None:
            entry["model"] = create_model(weights, resolution=sub.size).to(device)
            entry["model"].reset_classifier(0)  # the network now returns pooled features
        self.extracted += len(sub.images)
        return extract_features(entry["model"], sub, weights.mean, weights.std, batch, device, bf16).astype(np.float16)


def _load(path: Path) -> dict:
    empty = dict(index=np.zeros(0, np.int64), feats=np.zeros((0, 0), np.float16))
    if not path.exists():
        return empty
    try:
        with np.load(path) as f:
            return dict(index=f["index"].astype(np.int64), feats=f["feats"])
    except Exception:  # a damaged cache file costs a re-extraction, never a wrong feature
        return empty


def _save(path: Path, index: np.ndarray, feats: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, index=index, feats=feats)
    os.replace(tmp, path)  # atomic: a reader sees the old file or the new one


FEATURES = FeatureCache()
