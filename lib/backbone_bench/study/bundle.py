"""Bundles: just the images and weights some runs read, for a machine without the mirror or the internet.

``make_bundle(configs, out)`` writes, per dataset, ``out/<dataset>.bundle/`` holding the original
encoded bytes of every image those runs touch (their training subsets, validation and test;
never re-encoded), the labels and source splits of the whole prepared dataset (small integers:
the shot subsets are drawn over the whole pool), and the prepared data's content key; and
``out/weights/`` with the local weights files they start from and their ``weights.json`` entries;
and ``out/runs/`` with the records those runs already have (JSON and arrays), so that a machine that
receives the bundle but not the repository's records skips them as the sweep here would
(``benchmarks/device/setup.sh`` puts them in its ``results/runs``).

With ``BACKBONE_BENCH_DATA=out`` and ``BACKBONE_BENCH_WEIGHTS=out/weights``, ``prepare`` finds the
bundle first and rebuilds the prepared arrays at the same indices (rows no run reads stay zero),
with the same content key, so the committed split files load and every config keeps its key.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from backbone_bench.data.bundled import BUNDLE_VERSION
from backbone_bench.data.prepare import prepare, resolve_source
from backbone_bench.data.sources import decode
from backbone_bench.data.splits import load_splits
from backbone_bench.study import store

def used_indices(configs: list[dict]) -> dict[str, np.ndarray]:
    """Per dataset, the prepared-array indices the configs read."""
    used: dict[str, set] = {}
    for config in configs:
        splits = load_splits(prepare(config["dataset"], progress=False))
        part = used.setdefault(config["dataset"], set())
        part.update(splits.train(config["shots"], config["subset_seed"]).tolist())
        part.update(splits.val.tolist())
        part.update(splits.test.tolist())
    return {name: np.asarray(sorted(index), dtype=np.int64) for name, index in used.items()}


def make_bundle(configs: list[dict], out: Path) -> dict:
    """Write the bundle; returns the bytes written per part."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from backbone_bench.models.backbones import resolve_weights

    out = Path(out)
    sizes = {}
    for name, index in used_indices(configs).items():
        prepared = prepare(name, progress=False)
        # source names need not be unique (cifar10's files repeat across class folders): a source
        # image is matched to a prepared row by its name AND its decoded pixels
        wanted: dict[str, list[int]] = {}
        for i in index.tolist():
            wanted.setdefault(prepared.meta["names"][i], []).append(i)
        source, where = resolve_source(prepared.spec)
        rows = {"index": [], "payload": [], "is_array": [], "shape": []}
        for raw in source.read(where):  # the source's own bytes for each image a run reads
            candidates = wanted.get(raw.name)
            if not candidates:
                continue
            stored = decode(raw.payload, prepared.spec.channels, prepared.spec.storage_size)[1]
            match = next((i for i in candidates if np.array_equal(prepared.images[i], stored)), None)
            if match is None:
                continue
            candidates.remove(match)
            i = match
            array = isinstance(raw.payload, np.ndarray)
            rows["index"].append(i)
            rows["payload"].append(raw.payload.tobytes() if array else raw.payload)
            rows["is_array"].append(array)
            rows["shape"].append(list(raw.payload.shape) if array else [])
        missing = sum(len(v) for v in wanted.values())
        if missing:
            raise RuntimeError(f"{name}: {missing} prepared images not found in the source again; prepare afresh")
        folder = out / f"{name}.bundle"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(rows), folder / "images.parquet", compression="zstd")
        np.savez_compressed(folder / "arrays.npz", labels=prepared.labels, source_split=prepared.source_split)
        meta = {k: v for k, v in prepared.meta.items() if k != "names"}
        (folder / "manifest.json").write_text(json.dumps(dict(
            version=BUNDLE_VERSION, dataset=name, key=prepared.key, n=len(prepared),
            shape=list(prepared.images.shape[1:]), images=len(rows["index"]), meta=meta), indent=1))
        sizes[name] = sum(p.stat().st_size for p in folder.iterdir())
    manifest = {}
    backbones = sorted({c["backbone"] for c in configs})
    for backbone in backbones:
        weights = resolve_weights(backbone)  # the twin of a scratch run reads the same manifest entry
        if weights.provenance != "local":
            continue  # Hub weights: the remote machine needs the Hub (or its cache) for these
        (out / "weights").mkdir(parents=True, exist_ok=True)
        shutil.copy(weights.file, out / "weights" / Path(weights.file).name)
        entry = json.loads((Path(weights.file).parent / "weights.json").read_text())[backbone]
        manifest[backbone] = entry
        sizes[f"weights/{backbone}"] = Path(weights.file).stat().st_size
    if manifest:
        (out / "weights" / "weights.json").write_text(json.dumps(manifest, indent=1))
    copied = copy_records(configs, out / "runs")
    if copied:
        sizes[f"runs ({copied} records)"] = sum(p.stat().st_size for p in (out / "runs").iterdir())
    return sizes


def copy_records(configs: list[dict], folder: Path, results: Path | None = None) -> int:
    """Copy the records (JSON and arrays, times kept) that ``configs`` already have into ``folder``;
    returns how many. Only these cells' records travel, whatever the size of the store."""
    source = store.runs_dir(results)
    copied = 0
    for key in sorted({store.config_key(c) for c in configs}):
        files = [source / f"{key}{suffix}" for suffix in (".json", ".npz")]
        if not files[0].exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for path in filter(Path.exists, files):
            shutil.copy2(path, folder / path.name)
        copied += 1
    return copied
