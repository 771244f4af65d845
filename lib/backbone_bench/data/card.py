"""Dataset cards: counts per class and split, curation and duplicates, a grid of samples."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backbone_bench.data.prepare import Prepared
from backbone_bench.data.splits import SUBSET_SEEDS, Splits

CARD_SHOTS = (10, 100, 1000)


def class_counts(prepared: Prepared, splits: Splits) -> pd.DataFrame:
    """Images per class in each split, and in the seed-0 shot subsets."""
    classes = list(prepared.spec.classes)
    columns = {"pool (train)": splits.pool, "val": splits.val, "test": splits.test}
    columns |= {f"{k}-shot": splits.train(k, SUBSET_SEEDS[0]) for k in CARD_SHOTS}
    table = pd.DataFrame({name: np.bincount(prepared.labels[idx], minlength=len(classes))
                          for name, idx in columns.items()}, index=pd.Index(classes, name="class"))
    table.loc["total"] = table.sum()
    return table


def split_names(prepared: Prepared, splits: Splits) -> np.ndarray:
    """Per prepared image: pool, val, test, or "test (removed)" for a near-duplicate taken out of test."""
    part = np.full(len(prepared), "", dtype=object)
    for name in ("pool", "val", "test", "removed"):
        part[getattr(splits, name)] = "test (removed)" if name == "removed" else name
    return part


def near_duplicate_counts(prepared: Prepared, splits: Splits) -> dict:
    """Near-duplicate pairs: all, those crossing the final splits, and test images removed for them."""
    part = split_names(prepared, splits)
    pairs = prepared.meta.get("near_duplicates", {}).get("pairs", [])
    crossing = sum(part[i] != part[j] for i, j, *_ in pairs)
    return dict(near_duplicate_pairs=len(pairs), near_duplicate_pairs_across_splits=crossing,
                near_duplicates_removed_from_test=len(splits.removed))


def twin_counts(prepared: Prepared, splits: Splits) -> dict:
    """Test and validation images with a near-twin in what a model learns from (data/twins.py), by the
    dataset's rules: per rule (and how many matched mirrored; 'off' where the rule does not apply to
    the dataset), and the union of the rules."""
    from backbone_bench.data import twins

    found = twins.load_twins(prepared, splits)
    words = twins.rule_words(prepared.spec)
    out = {}
    for split, against in (("test", "pool or val"), ("val", "pool")):
        for rule in twins.RULES:
            d = found[split][rule]
            out[f"{split} twins in {against}, {rule} rule (mirrored)"] = (
                "off" if words[rule] == "off" else f"{len(d['index'])} ({int(d['mirrored'].sum())})")
        every = twins.left_out(found, split)
        out[f"{split} twins in {against}, any rule"] = f"{len(every)} of {len({'test': splits.test, 'val': splits.val}[split])}"
    return out


def summary(prepared: Prepared, splits: Splits) -> dict:
    m = prepared.meta
    return dict(dataset=prepared.spec.name, domain=prepared.spec.domain, classes=prepared.spec.num_classes,
                pool=len(splits.pool), val=len(splits.val), test=len(splits.test),
                byte_identical_groups=m["duplicates"].get("byte_identical_groups"),
                duplicate_groups=m["duplicates"]["groups"], duplicates_removed=m["duplicates"]["removed"],
                duplicate_groups_across_splits=m["duplicates"]["across_splits"],
                **near_duplicate_counts(prepared, splits), **twin_counts(prepared, splits),
                dropped_by_curation=sum(m["dropped_by_curation"].values()), corrupt=len(m["corrupt"]),
                storage=f"{m['storage_size']} px x {m['channels']} ch", flip_ok=prepared.spec.flip_ok,
                source=m["source"], prepare_seconds=m["prepare_seconds"])


def sample_grid(prepared: Prepared, splits: Splits, path: Path, per_class: int = 8, max_classes: int = 10):
    """A PNG with ``per_class`` training images for each class (the first ``max_classes``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = prepared.spec.classes[:max_classes]
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9 + 1.2, len(classes) * 0.9 + 0.4), squeeze=False)
    for row, name in enumerate(classes):
        members = splits.pool[prepared.labels[splits.pool] == row]
        picks = rng.choice(members, size=min(per_class, len(members)), replace=False) if len(members) else []
        for col, ax in enumerate(axes[row]):
            ax.set_axis_off()
            if col < len(picks):
                _draw(ax, prepared.images[picks[col]])
        axes[row][0].text(-0.1, 0.5, name, transform=axes[row][0].transAxes, ha="right", va="center", fontsize=8)
    return _save(fig, f"{prepared.spec.name}: training images per class", path)


def _draw(ax, image) -> None:
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", interpolation="nearest")


def _save(fig, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def near_duplicate_grid(prepared: Prepared, splits: Splits, path: Path, pairs: int = 8):
    """A PNG of near-duplicate pairs (top row and bottom row), crossing pairs first; None if none."""
    found = prepared.meta.get("near_duplicates", {}).get("pairs", [])
    if not found:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    where = split_names(prepared, splits)
    found = sorted(found, key=lambda p: where[p[0]] == where[p[1]])[:pairs]
    fig, axes = plt.subplots(2, len(found), figsize=(1.5 * len(found) + 0.4, 3.6), squeeze=False)
    for col, (i, j, bits, corr) in enumerate(found):
        for row, k in enumerate((i, j)):
            ax = axes[row][col]
            _draw(ax, prepared.images[k])
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_xlabel(where[k] or "unused", fontsize=9)
        axes[0][col].set_title(f"{bits} bits, r={corr:.3f}", fontsize=9)
    return _save(fig, f"{prepared.spec.name}: near-duplicate pairs (columns), with the split of each image", path)
