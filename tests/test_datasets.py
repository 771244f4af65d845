"""The six mirrored datasets, prepared from the real mirror: sizes, classes and splits pinned."""
import numpy as np
import pytest

from backbone_bench.data import get_dataset
from backbone_bench.data.card import class_counts, sample_grid, summary
from backbone_bench.data.prepare import prepare
from backbone_bench.data.splits import SUBSET_SEEDS, load_splits, make_splits
from backbone_bench.errors import UnknownNameError
from conftest import requires_mirror

# name: (classes, storage (S, C), pool, val, test, pixel duplicates removed, dropped by curation)
# The test sizes are after near-duplicates crossing splits were removed from test (cifar10: 7,
# brain_tumor_mri: 11, breastmnist: 45).
EXPECTED = {
    "cifar10": (10, (32, 3), 45000, 5000, 9993, 0, 0),
    "uc_merced": (21, (256, 3), 1511, 168, 420, 1, 0),
    "brain_tumor_mri": (4, (256, 1), 2300, 256, 303, 394, 0),
    "galaxy_zoo1": (4, (212, 3), 4600, 512, 1279, 0, 55),
    "breastmnist": (2, (28, 1), 545, 78, 110, 2, 0),
    "pneumoniamnist": (2, (28, 1), 3857, 524, 621, 28, 0),
}


@requires_mirror
@pytest.mark.parametrize("name", EXPECTED)
def test_prepared_dataset_matches_its_pinned_shape(name, results, committed_splits):
    classes, (size, channels), n_pool, n_val, n_test, n_dup, n_dropped = EXPECTED[name]
    prepared = prepare(name, progress=False)
    splits = load_splits(prepared, committed_splits)
    assert prepared.spec.num_classes == classes == len(np.unique(prepared.labels))
    assert prepared.images.shape == (len(prepared), size, size, channels)
    assert prepared.images.dtype == np.uint8
    assert (len(splits.pool), len(splits.val), len(splits.test)) == (n_pool, n_val, n_test)
    assert prepared.meta["duplicates"]["removed"] == n_dup
    assert sum(prepared.meta["dropped_by_curation"].values()) == n_dropped
    assert prepared.meta["corrupt"] == []
    # the three parts and the near-duplicates removed from test cover every prepared image exactly once
    everything = np.concatenate([splits.pool, splits.val, splits.test, splits.removed])
    assert np.array_equal(np.sort(everything), np.arange(len(prepared)))
    # no image is both trained on and tested on, even as a duplicate copy
    names = np.asarray(prepared.meta["names"])
    assert not set(names[splits.test]) & set(names[splits.pool])


@requires_mirror
@pytest.mark.parametrize("name", EXPECTED)
def test_no_test_or_val_image_has_a_pixel_identical_copy_elsewhere(name, committed_splits):
    """On the real mirror: hash every prepared image's pixels; each test and val image is unique.

    (Byte hashing, the old rule, left 57 brain_tumor_mri test images with a pixel copy in train.)"""
    import hashlib

    prepared = prepare(name, progress=False)
    splits = load_splits(prepared, committed_splits)
    used = np.concatenate([splits.pool, splits.val, splits.test])
    digest = {int(i): hashlib.sha1(np.ascontiguousarray(prepared.images[i]).tobytes()).hexdigest() for i in used}
    counts = {}
    for h in digest.values():
        counts[h] = counts.get(h, 0) + 1
    clashes = [int(i) for i in np.concatenate([splits.val, splits.test]) if counts[digest[int(i)]] > 1]
    assert clashes == [], f"{len(clashes)} val/test images have a pixel-identical copy"
    # and no near-duplicate pair joins a test image to a training or validation image
    in_test = set(splits.test.tolist())
    pairs = prepared.meta["near_duplicates"]["pairs"]
    assert not [p for p in pairs if (p[0] in in_test) != (p[1] in in_test) and {p[0], p[1]} & set(used.tolist()) == {p[0], p[1]}]
    assert set(splits.removed.tolist()).isdisjoint(used.tolist())


@requires_mirror
@pytest.mark.parametrize("name", EXPECTED)
def test_committed_splits_regenerate_bit_for_bit(name, committed_splits):
    prepared = prepare(name, progress=False)
    committed = load_splits(prepared, committed_splits)
    fresh = make_splits(prepared)
    for part in ("test", "val", "pool"):
        assert np.array_equal(getattr(committed, part), getattr(fresh, part)), part
    for seed in SUBSET_SEEDS:
        assert np.array_equal(committed.order[seed], fresh.order[seed])


@requires_mirror
@pytest.mark.parametrize("name", ["uc_merced", "galaxy_zoo1", "breastmnist"])
def test_shot_subsets_are_nested_capped_and_seeded(name, committed_splits):
    prepared = prepare(name, progress=False)
    splits = load_splits(prepared, committed_splits)
    per_class = np.bincount(prepared.labels[splits.pool])
    for seed in SUBSET_SEEDS:
        previous = np.array([], dtype=np.int64)
        for shots in (10, 100, 1000):
            subset = splits.train(shots, seed)
            assert set(previous) <= set(subset)
            assert set(subset) <= set(splits.pool)
            counts = np.bincount(prepared.labels[subset], minlength=len(per_class))
            assert np.array_equal(counts, np.minimum(per_class, shots))
            previous = subset
    assert not np.array_equal(splits.train(10, 0), splits.train(10, 1))


def test_galaxy_zoo1_curation_merges_spirals_and_forbids_flips():
    spec = get_dataset("galaxy_zoo1")
    assert spec.map_label("spiral_cw") == spec.map_label("spiral_acw") == "spiral"
    assert spec.map_label("dont_know") is None
    assert not spec.flip_ok


def test_unknown_dataset_lists_close_names():
    with pytest.raises(UnknownNameError, match="cifar10") as err:
        get_dataset("cifar-10")
    assert "Did you mean" in str(err.value)


@requires_mirror
def test_card_counts_and_sample_grid(tmp_path, committed_splits):
    prepared = prepare("uc_merced", progress=False)
    splits = load_splits(prepared, committed_splits)
    counts = class_counts(prepared, splits)
    assert counts.loc["total", "test"] == 420
    assert counts.loc["total", "10-shot"] == 210
    assert summary(prepared, splits)["duplicates_removed"] == 1
    assert summary(prepared, splits)["near_duplicates_removed_from_test"] == 0
    png = sample_grid(prepared, splits, tmp_path / "grid.png")
    from PIL import Image

    image = np.asarray(Image.open(png).convert("L"))
    assert image.std() > 10  # real pictures, not a blank canvas


def test_near_duplicates_need_both_hash_and_correlation():
    """Generated images: a brightness-shifted copy is a near-duplicate, an unrelated image is not,
    and two flat images with equal hashes but no shared structure are not either."""
    from backbone_bench.data import dedup

    rng = np.random.default_rng(0)
    base = (rng.random((32, 32, 3)) * 200).astype(np.uint8)
    smooth = np.kron(rng.random((4, 4, 3)), np.ones((8, 8, 1)))
    picture = (smooth * 200 + base * 0.1).astype(np.uint8)
    brighter = np.clip(picture.astype(int) + 12, 0, 255).astype(np.uint8)
    other = (np.kron(rng.random((4, 4, 3)), np.ones((8, 8, 1))) * 200).astype(np.uint8)
    pairs = dedup.near_duplicates(*dedup.signatures([picture, brighter, other]))
    assert [p[:2] for p in pairs] == [[0, 1]]
    assert dedup.pixel_hash(picture) != dedup.pixel_hash(brighter)
    assert dedup.pixel_hash(picture) == dedup.pixel_hash(picture.copy())


@requires_mirror
def test_data_export_takes_a_split_and_the_help_lists_it(tmp_path):
    import subprocess
    import sys

    from backbone_bench.data.export import export
    from backbone_bench.errors import InvalidParameterError

    written = export("breastmnist", tmp_path / "test", per_class=3, split="test")
    assert dict(written) == {"malignant": 3, "normal_or_benign": 3}
    with pytest.raises(InvalidParameterError, match="galaxy_zoo1 has no test images in its source"):
        export("galaxy_zoo1", tmp_path / "none", per_class=1, split="test")
    helped = subprocess.run([sys.executable, "-m", "backbone_bench", "--help"], capture_output=True, text=True).stdout
    assert "list, prepare, card, export" in helped
