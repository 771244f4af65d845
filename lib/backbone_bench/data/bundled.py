"""Bundles as a data source: the prepared arrays rebuilt from a bundle a sweep made elsewhere
(study/bundle.py writes them; see there for the layout), found in the data mirrors first."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from backbone_bench import paths
from backbone_bench.data.registry import get_dataset
from backbone_bench.data.sources import decode

BUNDLE_VERSION = 1


def find_bundle(dataset: str) -> Path | None:
    for root in paths.data_mirrors():
        folder = root / f"{dataset}.bundle"
        if (folder / "manifest.json").exists():
            return folder
    return None


def load_bundle(folder: Path) -> dict:
    """The prepared arrays rebuilt from a bundle (the fields of a Prepared but its spec, plus the
    dataset's name): the same key, labels and indices as the full data."""
    stat = (folder / "images.parquet").stat()
    return _load_bundle(str(folder), stat.st_size, stat.st_mtime)


@lru_cache(maxsize=4)
def _load_bundle(folder: str, size: int, mtime: float) -> dict:  # decoded once per process
    import pyarrow.parquet as pq

    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    spec = get_dataset(manifest["dataset"])  # its channels and stored size
    images = np.zeros([manifest["n"]] + manifest["shape"], dtype=np.uint8)
    table = pq.read_table(folder / "images.parquet").to_pydict()
    for i, payload, is_array, shape in zip(table["index"], table["payload"], table["is_array"], table["shape"]):
        raw = np.frombuffer(payload, dtype=np.uint8).reshape(shape) if is_array else payload
        images[i] = decode(raw, spec.channels, spec.storage_size)[1]
    with np.load(folder / "arrays.npz") as f:
        labels, source_split = f["labels"], f["source_split"]
    meta = manifest["meta"] | dict(source=f"bundle {folder}", bundle_images=manifest["images"])
    return dict(dataset=manifest["dataset"], key=manifest["key"], images=images, labels=labels,
                source_split=source_split, meta=meta)
