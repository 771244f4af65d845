"""The pairs behind each dataset's near-twin threshold, to look at: results/twins/<dataset>_pairs.png.

For every test image of a dataset, its most similar training-pool or validation image under the
thumbnail rule (data/twins.py: 16x16 grayscale, mean-centred cosine), as is and, where training
flips that dataset, mirrored. The pairs are shown in bands of that cosine, a row of pairs per band
(the test image above its match), sampled evenly within the band, with the band's count; a
dataset's threshold (registry: ``twin_cosine``) is the lowest band whose pairs are still the same
picture. Also writes results/twins/bands.csv: per dataset and band, the test and validation images
whose best match falls in it.

    python benchmarks/twin_pairs.py [--datasets cifar10,galaxy_zoo1]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from backbone_bench import paths
from backbone_bench.data import twins
from backbone_bench.data.prepare import prepare
from backbone_bench.data.registry import get_dataset
from backbone_bench.data.splits import load_splits
from backbone_bench.study.presets import STUDY_DATASETS

BANDS = (1.0, 0.995, 0.99, 0.985, 0.98, 0.97, 0.95)
PER_BAND = 8
OUT = paths.REPO_ROOT / "results" / "twins"


def best_matches(dataset: str, split: str = "test"):
    """(query indices, best cosine, matched index, matched mirrored) for ``split`` against the pool
    (and validation, for test), mirrored matches only where the dataset's training flips."""
    prepared = prepare(dataset, progress=False)
    s = load_splits(prepared)
    refs = np.concatenate([s.pool, s.val]) if split == "test" else s.pool
    query = {"test": s.test, "val": s.val}[split]
    small_q = twins._small(prepared.images[query])
    score, match = twins._best(small_q, twins._small(prepared.images[refs]))
    mirrored = np.zeros(len(query), bool)
    if get_dataset(dataset).flip_ok:
        m_score, m_match = twins._best(small_q, twins._small(twins._mirrored(prepared.images[refs])))
        better = m_score > score
        score, match, mirrored = np.where(better, m_score, score), np.where(better, m_match, match), better
    return prepared, query, score, refs[match], mirrored


def grid(dataset: str, out: Path) -> pd.DataFrame:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prepared, query, score, match, mirrored = best_matches(dataset)
    bands = list(zip(BANDS[1:], BANDS[:-1]))
    fig, axes = plt.subplots(2 * len(bands), PER_BAND, figsize=(PER_BAND * 1.1, 2 * len(bands) * 1.15))
    rows = []
    for b, (lo, hi) in enumerate(bands):
        inside = np.flatnonzero((score >= lo) & (score < hi if hi < 1 else score <= hi))
        rows.append(dict(dataset=dataset, split="test", band=f"[{lo}, {hi})", images=len(inside), of=len(query)))
        pick = inside[np.linspace(0, len(inside) - 1, min(PER_BAND, len(inside))).astype(int)] if len(inside) else []
        for k in range(PER_BAND):
            top, bottom = axes[2 * b, k], axes[2 * b + 1, k]
            for ax in (top, bottom):
                ax.set_xticks([]), ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
            if k < len(pick):
                i = pick[k]
                image = prepared.images[match[i]]
                if mirrored[i]:
                    image = image[:, ::-1]
                cmap = "gray" if prepared.images.shape[-1] == 1 else None
                top.imshow(prepared.images[query[i]].squeeze(), cmap=cmap)
                bottom.imshow(image.squeeze(), cmap=cmap)
                bottom.set_xlabel(f"{score[i]:.4f}{' m' if mirrored[i] else ''}", fontsize=6)
        axes[2 * b, 0].set_ylabel(f"{lo}-{hi}\n{len(inside)} test", fontsize=7)
    fig.suptitle(f"{dataset}: each test image (upper) and its most similar pool or validation image (lower), by "
                 "thumbnail cosine band" + (" (m: matched mirrored)" if get_dataset(dataset).flip_ok else ""), fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=64)
    plt.close(fig)
    return pd.DataFrame(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(STUDY_DATASETS))
    args = p.parse_args()
    tables = [grid(d, OUT / f"{d}_pairs.png") for d in args.datasets.split(",")]
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(OUT / "bands.csv", index=False)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
