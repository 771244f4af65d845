"""Rankings on small hand-made tables whose z-scores and ranks are worked out by hand."""
import numpy as np
import pandas as pd
import pytest

from backbone_bench.analysis import ranking


def runs(rows):
    return pd.DataFrame([dict(dataset=d, shots=k, backbone=b, seed=s, mode="finetune", status="ok",
                              test_balanced_accuracy=v) for d, k, b, s, v in rows])


# Two cells. Cell (A, 10): seed means a=0.8, b=0.6, c=0.4 -> mean 0.6, population sd sqrt(0.08/3)
# = 0.163299 -> z = +1.224745, 0, -1.224745; ranks 1, 2, 3.
# Cell (B, 10): means a=0.5, b=0.9, c=0.5 -> mean 0.633333, sd = 0.188562 -> z = -0.707107,
# +1.414214, -0.707107; ranks 2.5, 1, 2.5 (a and c tie).
TABLE = runs([("A", 10, "a", 0, 0.7), ("A", 10, "a", 1, 0.9), ("A", 10, "b", 0, 0.6), ("A", 10, "b", 1, 0.6),
              ("A", 10, "c", 0, 0.4), ("A", 10, "c", 1, 0.4),
              ("B", 10, "a", 0, 0.5), ("B", 10, "b", 0, 0.9), ("B", 10, "c", 0, 0.5)])
DOMAINS = {"A": "medical", "B": "galaxy"}


def test_zscores_and_ranks_match_hand_computation():
    cells = ranking.zscores(ranking.cell_means(TABLE)).set_index(["dataset", "backbone"])
    assert cells.loc[("A", "a"), "z"] == pytest.approx(1.224745, abs=1e-6)
    assert cells.loc[("A", "b"), "z"] == pytest.approx(0.0, abs=1e-12)
    assert cells.loc[("B", "b"), "z"] == pytest.approx(1.414214, abs=1e-6)
    assert cells.loc[("B", "c"), "z"] == pytest.approx(-0.707107, abs=1e-6)
    assert cells.loc[("B", "a"), "rank"] == 2.5 and cells.loc[("A", "c"), "rank"] == 3
    assert cells.loc[("A", "a"), "sd"] == pytest.approx(np.std([0.7, 0.9], ddof=1))


def test_domain_and_overall_scores_weight_domains_equally():
    s = ranking.scores(TABLE, DOMAINS).set_index(["domain", "backbone"])
    # overall = mean of the two domain scores, e.g. a: (1.224745 - 0.707107) / 2 = 0.258819
    assert s.loc[("overall", "a"), "score"] == pytest.approx(0.258819, abs=1e-6)
    assert s.loc[("overall", "b"), "score"] == pytest.approx(0.707107, abs=1e-6)
    assert s.loc[("overall", "c"), "mean_rank"] == pytest.approx((3 + 2.5) / 2)


def test_a_domain_with_more_datasets_does_not_weigh_more():
    extra = pd.concat([TABLE, runs([("C", 10, "a", 0, 0.9), ("C", 10, "b", 0, 0.1), ("C", 10, "c", 0, 0.5)])])
    s = ranking.scores(extra, DOMAINS | {"C": "medical"}).set_index(["domain", "backbone"])
    medical_a = (1.224745 + 1.224745) / 2  # cell C: a is best by the same z
    assert s.loc[("medical", "a"), "score"] == pytest.approx(medical_a, abs=1e-5)
    assert s.loc[("overall", "a"), "score"] == pytest.approx((medical_a - 0.707107) / 2, abs=1e-5)


def test_domain_correlation():
    s = ranking.scores(TABLE, DOMAINS)
    rho = ranking.domain_correlation(s)
    # ranks medical (a, b, c) = (3, 2, 1), galaxy = (1.5, 3, 1.5): centred (1, 0, -1) . (-0.5, 1, -0.5) = 0
    assert rho.loc["medical", "galaxy"] == pytest.approx(0.0, abs=1e-12)
    same_order = pd.concat([TABLE[TABLE.dataset == "A"], TABLE[TABLE.dataset == "A"].assign(dataset="B")])
    assert ranking.domain_correlation(ranking.scores(same_order, DOMAINS)).loc["medical", "galaxy"] == pytest.approx(1.0)


def test_pareto_front_keeps_only_undominated_points():
    from backbone_bench.report.plots import pareto_front

    points = pd.DataFrame(dict(backbone=list("abcde"), cost=[1, 2, 3, 4, 2], score=[0.1, 0.5, 0.4, 0.9, 0.2]))
    # a (cheapest), b (better than a), d (best); c is beaten by cheaper b, e by b at equal cost
    assert pareto_front(points, "cost", "score")["backbone"].tolist() == ["a", "b", "d"]


def test_pareto_labels_of_crowded_points_do_not_overlap_and_the_figure_repeats():
    """Six backbones, three of them close together (as the CPU latencies of the EfficientNet-Lites
    and MobileNetV2 are): every label readable, and the same figure on every build."""
    import matplotlib

    matplotlib.use("Agg")
    from backbone_bench.report.plots import pareto

    names = ["tf_mobilenetv3_small_100", "regnetx_002", "mobilenetv2_100", "tf_efficientnet_lite0",
             "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
    points = pd.DataFrame(dict(backbone=names, ms=[11.5, 14, 31, 29, 32, 52], score=[0.18, 0.38, 0.0, -0.43, -0.08, -0.04]))

    def boxes():
        fig = pareto(points, "ms", "score")
        renderer = fig.canvas.get_renderer()
        return [t.get_window_extent(renderer) for t in fig.axes[0].texts]

    first = boxes()
    assert len(first) == len(names)
    assert not any(a.overlaps(b) for i, a in enumerate(first) for b in first[i + 1:])
    assert [b.bounds for b in boxes()] == [b.bounds for b in first]


def test_gains_summary_means_and_intervals_per_domain_and_shots():
    from backbone_bench import report
    from backbone_bench.analysis import uncertainty

    # real dataset names so the registry gives the domains; generated predictions on 100 test
    # images: fine-tune right on 70 or 90 %, scratch on 50 %; gains 0.2 and 0.4 in medical
    labels = np.repeat([0, 1], 50)
    rows, preds = [], {}
    for i, (dataset, backbone, mode, acc) in enumerate([
            ("breastmnist", "a", "finetune", 0.7), ("breastmnist", "a", "scratch", 0.5),
            ("pneumoniamnist", "b", "finetune", 0.9), ("pneumoniamnist", "b", "scratch", 0.5),
            ("cifar10", "a", "finetune", 0.6)]):
        right = np.random.default_rng(i).permutation(100) < acc * 100
        preds[f"k{i}"] = np.where(right, labels, 1 - labels)
        rows.append(dict(key=f"k{i}", dataset=dataset, shots=10, backbone=backbone, mode=mode, seed=0, status="ok",
                         test_balanced_accuracy=acc))
    cells = uncertainty.cell_draws(pd.DataFrame(rows), lambda r: (labels, preds[r["key"]]), n_boot=300)
    g = report.gains_summary(cells)
    label = "fine-tune minus scratch twin"
    medical = g.loc[("medical", 10)]
    assert medical[label] == pytest.approx(0.3)
    assert 0.1 < medical[f"{label} lo"] < 0.3 < medical[f"{label} hi"] < 0.5
    assert ("natural", 10) not in g.index  # cifar10 has no scratch twin here: no gain, not a NaN row
    assert "medical imaging at 10 shots (+0.30" in report.cells_where(g, label, positive=True)
    assert report.cells_where(g, label, positive=False) == "no cell"
    text = report.gains_display(g)
    assert text.loc[("medical", 10), label].startswith("+0.300 [") and text.loc[("medical", 10), "fine-tune minus linear probe"] == ""


def test_plausibility_holds_the_224px_cells_against_the_published_floors():
    from backbone_bench import report

    def run(dataset, mode, shots, backbone, seed, acc, resolution=224):
        return dict(status="ok", dataset=dataset, mode=mode, shots=shots, backbone=backbone, seed=seed,
                    test_accuracy=acc, resolution=resolution, effective_shots=72 if dataset == "uc_merced" else shots)

    rows = [run("uc_merced", "linear_probe", 100, "a", s, 0.95 + 0.01 * s) for s in range(3)]
    rows += [run("uc_merced", "linear_probe", 100, "b", s, 0.88) for s in range(3)]
    rows += [run("uc_merced", "linear_probe", 100, "c", 0, 0.10, resolution=80)]  # another resolution: not held
    rows += [run("cifar10", "finetune", 100, "a", 0, 0.5)]                         # another shot level: not held
    checks = report.plausibility(pd.DataFrame(rows)).set_index("dataset")
    uc = checks.loc["uc_merced"]
    assert uc["lowest"] == pytest.approx(0.88) and uc["highest"] == pytest.approx(0.96)
    assert uc["backbones"] == 2 and uc["images_per_class"] == 72
    assert uc["verdict"] == "below the floor: b (0.880)"
    assert checks.loc["cifar10", "verdict"].startswith("not in this edition")
    text = report.plausibility_text(checks.reset_index())
    assert "0.880 to 0.960 against a floor of 0.90" in text and "cifar10 (fine-tuning, 1000 shots): not in this edition" in text
    assert "neither cell at 224 px" in report.plausibility_text(report.plausibility(pd.DataFrame(rows[-1:])))


def test_tables_say_what_an_interval_holds_and_where_it_reaches_chance():
    """Generated predictions (test_uncertainty.make_runs) on uc_merced's 21 classes and breastmnist's
    two: one-seed cells are labelled test images only, chance is 1 / classes beside every score."""
    from test_uncertainty import make_runs

    from backbone_bench import report
    from backbone_bench.analysis import uncertainty

    runs, predictions = make_runs([("uc_merced", 10, "a", "finetune", 0, 0.9, False),
                                   ("uc_merced", 10, "b", "finetune", 0, 0.8, False)] +
                                  [("breastmnist", 10, b, "finetune", s, acc, False)
                                   for b, acc in (("a", 0.52), ("b", 0.9)) for s in (0, 1, 2)])
    cells = uncertainty.cell_draws(runs, predictions, 200)
    cells.cells["chance"] = cells.cells["dataset"].map(report.chance_of)
    table = report.cell_table(cells)
    assert table.loc[("uc_merced", 10, "a"), "finetune"].endswith(" n=1†")
    assert " n=3" in table.loc[("breastmnist", 10, "b"), "finetune"]
    assert table.loc[("breastmnist", 10, "a"), "finetune"].endswith("≤chance")   # 0.52 against 0.5
    assert table.loc[("uc_merced", 10, "a"), "chance"] == f"{1 / 21:.3f}"
    tidy, shown = report.decision_table(cells)
    html = shown.to_html()
    assert "one training subset: test images only" in html and "chance 0.048" in html and "chance 0.500" in html
    assert set(tidy["n_subsets"]) == {1, 3}
    scope = report.interval_scope(cells, "finetune")
    assert scope.startswith("2 of the 4 cells have one training subset") and "3 seeds, then test images" in scope
    one = uncertainty.CellDraws(cells.cells[cells.cells["n_subsets"] == 1].reset_index(drop=True),
                                cells.draws[(cells.cells["n_subsets"] == 1).to_numpy()])
    assert "hold test images only" in report.interval_scope(one, "finetune")
    assert report.interval_scope(cells, "scratch") == "no cell of this mode is recorded yet"
