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


def summary(prepared: Prepared, splits: Splits) -> dict:
    m = prepared.meta
    return dict(dataset=prepared.spec.name, domain=prepared.spec.domain, classes=prepared.spec.num_classes,
                pool=len(splits.pool), val=len(splits.val), test=len(splits.test),
                duplicates_removed=m["duplicates"]["removed"], duplicate_groups=m["duplicates"]["groups"],
                duplicate_groups_across_splits=m["duplicates"]["across_splits"],
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
                image = prepared.images[picks[col]]
                ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", interpolation="nearest")
        axes[row][0].text(-0.1, 0.5, name, transform=axes[row][0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{prepared.spec.name}: training images per class", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
