"""Near-twins, as is and mirrored (data/twins.py), on images generated here and on the committed
files of the real datasets; the clean subset rescored from saved predictions."""
import numpy as np
import pytest

from conftest import REPO, requires_mirror

from backbone_bench.data import twins
from backbone_bench.data.prepare import Prepared
from backbone_bench.data.registry import DATASETS
from backbone_bench.data.splits import Splits


def generated(n=40, size=32, seed=0):
    """Smooth random images (so a 16 px thumbnail keeps their structure), one mirrored copy of a
    pool image planted in test, one exact copy planted in validation."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (n, 8, 8, 3)).astype(np.uint8)
    images = np.repeat(np.repeat(small, size // 8, 1), size // 8, 2)
    images[30] = images[3][:, ::-1]        # test image 30: pool image 3, mirrored
    images[20] = images[5]                 # validation image 20: pool image 5 as is
    return images


def test_mirrored_and_plain_twins_are_found_and_said_to_be_mirrored():
    images = generated()
    spec = DATASETS["uc_merced"]
    prepared = Prepared(spec=spec, key="k", images=images, labels=np.zeros(len(images), np.int16),
                        source_split=np.zeros(len(images), np.int8), meta={})
    splits = Splits(dataset="generated", key="k", pool=np.arange(0, 20), val=np.arange(20, 30),
                    test=np.arange(30, 40), order={}, labels=prepared.labels, removed=np.array([], np.int64))
    found = twins.find_twins(prepared, splits)
    for rule in ("package", "thumbnail"):
        test = found["test"][rule]
        assert list(test["index"]) == [30] and list(test["match"]) == [3] and list(test["mirrored"]) == [True], rule
        val = found["val"][rule]
        assert list(val["index"]) == [20] and list(val["match"]) == [5] and list(val["mirrored"]) == [False], rule
    assert list(twins.left_out(found)) == [30]
    assert len(found["test"]["catalogue"]["index"]) == 0  # uc_merced has no catalogue


def test_a_dataset_that_is_never_flipped_has_no_mirrored_twins_and_a_catalogue_names_one_object_twice():
    """galaxy_zoo1's rule: no pixel rule (its pairs at any cosine were different galaxies), no
    mirrored match (training never flips it: handedness is a label), the SDSS objID instead."""
    images = generated()
    spec = DATASETS["galaxy_zoo1"]
    names = [f"galaxy_zoo1/train.parquet:5888489015{i:08d}.jpeg" for i in range(len(images))]
    names[35] = names[7]  # test image 35 is pool image 7's object, photographed otherwise
    prepared = Prepared(spec=spec, key="k", images=images, labels=np.zeros(len(images), np.int16),
                        source_split=np.zeros(len(images), np.int8), meta=dict(names=names))
    splits = Splits(dataset="generated", key="k", pool=np.arange(0, 20), val=np.arange(20, 30),
                    test=np.arange(30, 40), order={}, labels=prepared.labels, removed=np.array([], np.int64))
    found = twins.find_twins(prepared, splits)
    assert list(found["test"]["catalogue"]["index"]) == [35] and list(found["test"]["catalogue"]["match"]) == [7]
    assert list(twins.left_out(found)) == [35]  # image 30, pool image 3 mirrored, is no twin here
    assert list(twins.left_out(found, "val")) == []  # an exact copy, but the pixel rules are off for galaxies
    words = twins.rule_words(spec)
    assert words["thumbnail"] == "off" and words["package"] == "off" and "sdss_objid" in words["catalogue"]
    assert "no mirrored match" not in twins.rule_words(DATASETS["cifar10"])["thumbnail"]


@requires_mirror
@pytest.mark.parametrize("name", ["breastmnist", "brain_tumor_mri", "cifar10"])
def test_the_committed_twins_reproduce_the_independent_checks_counts(name):
    """The independent check found 15 (breastmnist), 6 (brain_tumor_mri) and 42, 11 of them
    mirrored (cifar10) test images with a twin at cosine 0.985; each dataset's own threshold, set from
    its pair grid (results/twins/), finds those and the further pairs that were still the same
    picture (cifar10 and breastmnist at 0.97, brain_tumor_mri at 0.98)."""
    from backbone_bench.data.prepare import prepare

    found = twins.committed(name, prepare(name, progress=False).key)
    assert found is not None, "results/splits/<dataset>.twins.npz is committed for every study dataset"
    test = found["test"]["thumbnail"]
    expected = {"breastmnist": (15, 19), "brain_tumor_mri": (8, 12), "cifar10": (120, 160)}[name]
    assert expected[0] <= len(test["index"]) <= expected[1]
    assert (REPO / "results" / "twins" / f"{name}_pairs.png").exists()  # the pairs behind its threshold
    if name == "cifar10":
        assert test["mirrored"].sum() >= 11


@requires_mirror
def test_galaxy_zoo1s_committed_twins_are_catalogue_identities_only():
    """The 0.985 thumbnail rule flagged 270 of its 1,279 test images; none shared an SDSS objID, and
    their pair grid shows different galaxies at every cosine: now none is a twin."""
    from backbone_bench.data.prepare import prepare

    prepared = prepare("galaxy_zoo1", progress=False)
    found = twins.committed("galaxy_zoo1", prepared.key)
    assert found is not None
    objids = [twins.CATALOGUES["sdss_objid"](n) for n in prepared.meta["names"]]
    assert all(o.isdigit() and len(o) == 18 for o in objids[:100])
    assert len(twins.left_out(found)) == len(found["test"]["catalogue"]["index"]) == 0


@requires_mirror
def test_clean_scores_are_the_saved_predictions_without_the_test_twins():
    from sklearn.metrics import balanced_accuracy_score

    from backbone_bench import report
    from backbone_bench.study.store import read_arrays

    table = report.load("cpu", REPO / "results", datasets=["breastmnist"], modes=["linear_probe"])
    if table.empty:
        pytest.skip("no committed breastmnist probes")
    row = table[table["status"] == "ok"].iloc[0]
    arrays = read_arrays(row["key"], REPO / "results")
    keep = ~np.isin(arrays["test_index"], report.twins_left_out(table)["breastmnist"])
    assert keep.sum() == row["n_test_clean"] < len(keep)
    assert row["test_balanced_accuracy"] == pytest.approx(balanced_accuracy_score(arrays["test_label"][keep],
                                                                                  arrays["test_pred"][keep]))
    assert row["test_balanced_accuracy_full"] == pytest.approx(balanced_accuracy_score(arrays["test_label"],
                                                                                       arrays["test_pred"]))
    diffs = report.clean_differences(table)
    assert list(diffs["dataset"]) == ["breastmnist"] and int(diffs["left_out"].iat[0]) == len(keep) - keep.sum()
