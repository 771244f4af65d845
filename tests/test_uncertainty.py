"""Two-level bootstrap and claim verdicts on hand-made runs (predictions generated here)."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from backbone_bench import report
from backbone_bench.analysis import claims, ranking, uncertainty

LABELS = np.repeat([0, 1], 50)


def predictions_with(accuracy: float, seed: int) -> np.ndarray:
    """Predicted classes with the given share of test images right (a generated run)."""
    rng = np.random.default_rng(seed)
    right = rng.permutation(len(LABELS)) < round(accuracy * len(LABELS))
    return np.where(right, LABELS, 1 - LABELS)


def make_runs(spec):
    """spec: (dataset, shots, backbone, mode, seed, accuracy, subset_shared) -> table and predictions."""
    rows, preds = [], {}
    for i, (dataset, shots, backbone, mode, seed, acc, shared) in enumerate(spec):
        key = f"run{i}"
        preds[key] = predictions_with(acc, 1000 * i + seed)
        rows.append(dict(key=key, dataset=dataset, shots=shots, backbone=backbone, mode=mode, seed=seed, status="ok",
                         subset_shared=shared, test_balanced_accuracy=balanced_accuracy_score(LABELS, preds[key])))
    return pd.DataFrame(rows), lambda row: (LABELS, preds[row["key"]])


def test_resampled_balanced_accuracy_matches_sklearn_on_every_resample():
    rng = np.random.default_rng(0)
    predicted = np.stack([predictions_with(0.7, 1), predictions_with(0.9, 2)])
    weights = rng.multinomial(100, np.full(100, 0.01), size=5)
    fast = uncertainty.resampled_balanced_accuracy(LABELS, predicted, weights)
    for b in range(5):
        index = np.repeat(np.arange(100), weights[b])
        for r in range(2):
            assert fast[b, r] == pytest.approx(balanced_accuracy_score(LABELS[index], predicted[r][index]))


def test_identical_subset_cell_gets_a_nonzero_interval_from_test_resampling():
    # three seeds that share one training subset and made identical predictions: seed sd is 0
    runs, preds = make_runs([("breastmnist", 1000, "a", "linear_probe", s, 0.8, True) for s in range(3)])
    preds_same = lambda row: (LABELS, predictions_with(0.8, 7))  # noqa: E731 - literally the same predictions
    cells = uncertainty.cell_draws(runs, preds_same, n_boot=300)
    t = cells.interval().iloc[0]
    assert t["n_subsets"] == 1 and t["n_runs"] == 3
    assert t["hi"] - t["lo"] > 0.05  # 100 test images: about +-0.08
    text = report.cell_table(cells).iloc[0, 0]
    assert "[" in text and "n=1‡" in text  # ‡: seeds that share one subset
    assert "± 0.000" not in text


def test_single_seed_cell_never_shows_a_degenerate_interval():
    runs, preds = make_runs([("cifar10", 10, "a", "finetune", 0, 0.6, False),
                             ("cifar10", 10, "b", "finetune", 0, 0.7, False)])
    cells = uncertainty.cell_draws(runs, preds, n_boot=300)
    for text in report.cell_table(cells)["finetune"]:
        lo, hi = text.split("[")[1].split("]")[0].split(", ")
        assert float(lo) < float(hi) and " n=1†" in text
    # ranking intervals of one-seed cells have width too
    scores = ranking.bootstrap(runs, {"cifar10": "natural"}, preds, n=300)
    assert (scores["score_hi"] > scores["score_lo"]).all()
    # a perfect run: every resample gives 1.0, and the text says so instead of "[1.000, 1.000]"
    assert uncertainty.fmt(1.0, 1.0, 1.0) == "1.000 (every resample gave this value)"
    assert uncertainty.fmt(0.5, 0.4996, 0.5004) == "0.5000 [0.4996, 0.5004]"


def test_intervals_cover_the_point_and_pair_backbones_on_the_same_test_resample():
    runs, preds = make_runs([("cifar10", 10, b, "finetune", s, acc, False)
                             for b, acc in (("a", 0.9), ("b", 0.6), ("c", 0.55)) for s in range(3)])
    ranked = ranking.bootstrap(runs, {"cifar10": "natural"}, preds, n=300)
    scores = ranked.set_index(["domain", "backbone"])
    assert (scores["score_lo"] <= scores["score"] + 1e-9).all() and (scores["score"] <= scores["score_hi"] + 1e-9).all()
    assert report.separable(ranked, "natural", "a", "b")
    assert not report.separable(ranked, "natural", "b", "c")
    assert "clearly ahead of b" in report.recommendation(ranked, "natural")


def claim_scores(spec, domains):
    runs, preds = make_runs(spec)
    cells = uncertainty.cell_draws(runs, preds, n_boot=300)
    return ranking.bootstrap(runs[runs["mode"] == "finetune"], domains, preds, draws=cells.of("finetune")), cells


def test_claim_verdicts_agree_disagree_inconclusive_and_not_testable():
    # pretraining helps more at 10 shots (+0.35) than at 1000 (+0.05): agree
    spec = [("cifar10", k, "a", m, s, acc, False) for k, ft, sc in ((10, 0.85, 0.5), (1000, 0.9, 0.85))
            for m, acc in (("finetune", ft), ("scratch", sc)) for s in range(3)]
    spec += [("cifar10", k, "b", "finetune", s, 0.7, False) for k in (10, 1000) for s in range(3)]
    scores, cells = claim_scores(spec, {"cifar10": "natural"})
    table = claims.check_claims(scores, cells).set_index("claim")["verdict"]
    assert table["ImageNet pretraining helps most when labelled data is scarce"] == "agree"
    # the opposite: more help at 1000 shots -> disagree
    flipped = [(d, k, b, m, s, (0.5 if k == 10 else 0.45) if m == "scratch" else acc, sh)
               for d, k, b, m, s, acc, sh in spec]
    flipped = [(d, k, b, m, s, 0.55 if (m == "finetune" and k == 10 and b == "a") else acc, sh)
               for d, k, b, m, s, acc, sh in flipped]
    scores, cells = claim_scores(flipped, {"cifar10": "natural"})
    assert claims.check_claims(scores, cells).set_index("claim")["verdict"][
        "ImageNet pretraining helps most when labelled data is scarce"] == "disagree"
    # equal gains within test noise -> inconclusive
    even = [(d, k, b, m, s, 0.8 if m == "finetune" else 0.6, sh) for d, k, b, m, s, acc, sh in spec]
    scores, cells = claim_scores(even, {"cifar10": "natural"})
    assert claims.check_claims(scores, cells).set_index("claim")["verdict"][
        "ImageNet pretraining helps most when labelled data is scarce"] == "inconclusive"
    # one shot level only: missing evidence is "not testable here", never a comparison with NaN
    ten = [row for row in spec if row[1] == 10]
    scores, cells = claim_scores(ten, {"cifar10": "natural"})
    result = claims.check_claims(scores, cells).set_index("claim")
    assert result.loc["ImageNet pretraining helps most when labelled data is scarce", "verdict"] == "not testable here"
    assert "nan" not in " ".join(result["evidence"]).lower()
    assert result.loc["ConvNeXt-T is best overall", "verdict"] == "not testable here"


def test_winner_claim_needs_separation():
    spec = [("cifar10", 10, b, "finetune", s, acc, False)
            for b, acc in (("convnext_tiny.fb_in1k", 0.9), ("resnet18", 0.6), ("x", 0.58)) for s in range(3)]
    scores, cells = claim_scores(spec, {"cifar10": "natural"})
    verdicts = claims.check_claims(scores, cells).set_index("claim")["verdict"]
    assert verdicts["ConvNeXt-T is best on natural images"] == "agree"
    close = [(d, k, b, m, s, 0.61 if b.startswith("convnext") else acc, sh) for d, k, b, m, s, acc, sh in spec]
    scores, cells = claim_scores(close, {"cifar10": "natural"})
    assert claims.check_claims(scores, cells).set_index("claim")["verdict"]["ConvNeXt-T is best on natural images"] == "inconclusive"


FAMILY_CLAIM = "Newer lightweight families (EfficientNet-Lite, RegNet) beat older ones (SqueezeNet, MobileNetV1)"
TOP1_CLAIM = "Better ImageNet models transfer better (ImageNet top-1 and transfer rank alike)"


def test_newer_against_older_families_is_decided_per_shot_level():
    # issue 48: at 10 shots the newer families lead by 0.3 (agree); at 100 shots they are even
    acc = {(10, "tf_efficientnet_lite0"): 0.9, (10, "regnetx_002"): 0.85, (10, "squeezenet1_1"): 0.55,
           (10, "mobilenetv1_100"): 0.6, (10, "mobilenetv2_100"): 0.1}  # mobilenetv2 is in neither group
    acc |= {(100, b): 0.8 for b in ("tf_efficientnet_lite0", "regnetx_002", "squeezenet1_1", "mobilenetv1_100")}
    spec = [(d, k, b, "finetune", s, a, False) for (k, b), a in acc.items() for d in ("cifar10", "uc_merced")
            for s in range(3)]
    scores, cells = claim_scores(spec, {"cifar10": "natural", "uc_merced": "remote_sensing"})
    result = claims.check_claims(scores, cells).set_index("claim")
    ten, hundred = result.loc[f"{FAMILY_CLAIM}, at 10 shots"], result.loc[f"{FAMILY_CLAIM}, at 100 shots"]
    assert ten["verdict"] == "agree" and hundred["verdict"] == "inconclusive"
    assert "+0.30" in ten["evidence"] and "2 datasets" in ten["evidence"] and "mobilenetv2" not in ten["evidence"]
    # without an older family in the results: not testable, said per level
    newer_only = [row for row in spec if not row[2].startswith(("squeezenet", "mobilenetv1"))]
    scores, cells = claim_scores(newer_only, {"cifar10": "natural", "uc_merced": "remote_sensing"})
    assert claims.check_claims(scores, cells).set_index("claim").loc[f"{FAMILY_CLAIM}, at 10 shots",
                                                                    "verdict"] == "not testable here"


def test_imagenet_top1_against_transfer_is_a_rank_correlation_over_the_backbones_that_report_one():
    backbones = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6, "e": 0.5, "f": 0.95}
    spec = [("cifar10", 10, b, "finetune", s, acc, False) for b, acc in backbones.items() for s in range(3)]
    scores, cells = claim_scores(spec, {"cifar10": "natural"})
    top1 = pd.Series({"a": 78.0, "b": 76.0, "c": 72.0, "d": 70.0, "e": 65.0, "f": None})
    row = claims.check_claims(scores, cells, top1=top1).set_index("claim").loc[TOP1_CLAIM]
    assert row["verdict"] == "agree" and "5 backbones" in row["evidence"] and "none reported for f" in row["evidence"]
    reversed_top1 = pd.Series({"a": 65.0, "b": 70.0, "c": 72.0, "d": 76.0, "e": 78.0})
    assert claims.check_claims(scores, cells, top1=reversed_top1).set_index("claim").loc[TOP1_CLAIM,
                                                                                        "verdict"] == "disagree"
    assert claims.check_claims(scores, cells).set_index("claim").loc[TOP1_CLAIM, "verdict"] == "not testable here"


def test_a_cells_interval_does_not_depend_on_the_other_cells_of_the_page():
    # a domain page computes fewer cells than the intro; the same cell must get the same replicates
    spec = [(d, 10, b, "finetune", s, acc, False) for d in ("cifar10", "uc_merced")
            for b, acc in (("a", 0.8), ("b", 0.6)) for s in range(3)]
    runs, preds = make_runs(spec)
    every = uncertainty.cell_draws(runs, preds, n_boot=200).interval()
    one = uncertainty.cell_draws(runs[runs["dataset"] == "uc_merced"], preds, n_boot=200).interval()
    both = every[every["dataset"] == "uc_merced"].reset_index(drop=True)
    pd.testing.assert_frame_equal(both[["backbone", "lo", "hi"]], one[["backbone", "lo", "hi"]])


def test_seeds_that_share_images_count_as_fewer_and_widen_only_the_seed_part_of_the_interval():
    runs, preds = make_runs([("galaxy_zoo1", 1000, "a", "finetune", s, acc, False)
                             for s, acc in enumerate((0.6, 0.7, 0.8))])
    free = uncertainty.cell_draws(runs, preds, n_boot=2000)
    shared = uncertainty.cell_draws(runs, preds, n_boot=2000, overlap={("galaxy_zoo1", 1000): 0.71})
    assert free.cells.loc[0, "n_effective"] == 3 and shared.cells.loc[0, "n_effective"] == pytest.approx(3 / 2.42)
    assert np.array_equal(free.test_draws, shared.test_draws)  # the test images' part is the same
    seed_part = lambda c: np.std(c.draws - c.test_draws)  # noqa: E731
    assert seed_part(shared) == pytest.approx(seed_part(free) * np.sqrt(2.42), rel=1e-6)
    lo, hi = shared.interval().loc[0, ["lo", "hi"]]
    flo, fhi = free.interval().loc[0, ["lo", "hi"]]
    assert hi - lo > fhi - flo
    text = report.cell_table(shared).iloc[0, 0]
    assert "n=3≈1.2 (71% shared)" in text


def test_the_committed_subsets_of_galaxy_zoo1_at_1000_shots_share_most_of_their_images():
    from conftest import requires_mirror  # noqa: F401 (the splits are committed; the labels need the mirror)
    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.splits import load_splits
    from backbone_bench.errors import DataMissingError

    try:
        splits = load_splits(prepare("galaxy_zoo1", progress=False))
    except DataMissingError:
        pytest.skip("no dataset mirror")
    assert splits.subset_overlap(1000) == pytest.approx(0.713, abs=0.01)
    assert splits.subset_overlap(10) < 0.1 and not splits.shared_subset(1000)
