"""The answer as a decision (analysis/decision.py, report/decision.py): the within-noise set, the
cheapest backbone of it, what it costs at most, the domain's pick over its datasets, and power.

Cells are generated: known means with normal replicates whose test and seed parts are set, so every
expected answer follows from the numbers here.
"""
import numpy as np
import pandas as pd

from backbone_bench.analysis import decision
from backbone_bench.analysis.uncertainty import CellDraws, quantiles

B = 4000


def make_cells(means: dict, test_sd=0.005, seed_sd=0.005, seeds=3, shots=10):
    """CellDraws of (dataset, backbone) -> mean: each cell's test-only replicates are its mean plus
    normal test noise (``test_sd``), its full replicates those plus the seed mean's noise."""
    rng = np.random.default_rng(0)
    rows, draws, tests = [], [], []
    for (dataset, backbone), mean in means.items():
        test = mean + rng.normal(0, test_sd, B)
        rows.append(dict(dataset=dataset, shots=shots, backbone=backbone, mode="finetune", mean=mean, n_runs=seeds,
                         n_subsets=seeds, subset_shared=False))
        tests.append(test)
        draws.append(test + rng.normal(0, seed_sd / np.sqrt(seeds), B))
    return CellDraws(pd.DataFrame(rows), np.stack(draws), np.stack(tests))


def test_use_is_the_cheapest_backbone_within_noise_and_costs_at_most_the_upper_end_of_its_gap():
    cells = make_cells({("d", "a"): 0.80, ("d", "b"): 0.795, ("d", "c"): 0.70})
    seconds = {10: dict(a=100.0, b=25.0, c=5.0)}
    row = decision.decide(cells, {"d": "domain"}, seconds=seconds, infer=dict(a=10.0, b=50.0, c=90.0)).iloc[0]
    assert row["best"] == "a" and row["runner_up"] == "b"
    assert row["within_noise"] == ["a", "b"]          # c is far below: its interval does not reach zero
    assert row["use"] == "b" and row["trains_faster"] == 4.0
    gap = cells.draws[0] - cells.draws[1]
    assert np.isclose(row["at_most"], quantiles(gap)[1])  # the upper end of (best - use)
    assert 0.005 < row["at_most"] < 0.03
    assert row["fastest_infer"] == "b"                  # c is faster but not within noise
    # the best is also the cheapest: nothing to give up
    cheap_best = decision.decide(cells, {"d": "domain"}, seconds={10: dict(a=1.0, b=25.0, c=5.0)}).iloc[0]
    assert cheap_best["use"] == "a" and cheap_best["at_most"] == 0.0


def test_a_domains_pick_is_the_least_mean_regret_over_its_datasets_and_each_dataset_keeps_its_own():
    # x wins d1 by a little and loses d2 by a lot; y is second on d1 and best on d2
    cells = make_cells({("d1", "x"): 0.90, ("d1", "y"): 0.88, ("d2", "x"): 0.60, ("d2", "y"): 0.70})
    row = decision.decide(cells, {"d1": "med", "d2": "med"}).iloc[0]
    assert row["best"] == "y" and row["datasets"] == 2
    assert row["own_picks"] == {"d1": "x", "d2": "y"}
    assert np.isclose(row["gap"], ((0.90 - 0.90) + (0.70 - 0.60)) / 2 - ((0.90 - 0.88) + 0) / 2)
    assert np.isclose(row["use_worst_dataset"], 0.02)
    per_dataset = decision.decide(cells, {"d1": "d1", "d2": "d2"})
    assert list(per_dataset["best"]) == ["x", "y"]


def test_a_backbone_missing_on_one_of_a_domains_datasets_is_left_out_of_its_row():
    cells = make_cells({("d1", "x"): 0.9, ("d1", "y"): 0.8, ("d1", "z"): 0.95, ("d2", "x"): 0.6, ("d2", "y"): 0.7})
    row = decision.decide(cells, {"d1": "m", "d2": "m"}).iloc[0]
    assert row["backbones"] == 2 and "z" not in row["within_noise"]


def test_power_says_no_number_of_seeds_where_the_test_set_alone_is_noisier_than_the_gap():
    noisy = make_cells({("d", "a"): 0.801, ("d", "b"): 0.800}, test_sd=0.01, seed_sd=0.01)
    row = decision.decide(noisy, {"d": "d"}).iloc[0]
    assert row["seeds_needed"] is None and row["test_floor"]
    assert "no number of seeds" in decision.power_words(row)
    # a clear gap, mostly seed noise: a finite number, more than the three run, that shrinks the interval enough
    seedy = make_cells({("d", "a"): 0.83, ("d", "b"): 0.80}, test_sd=0.002, seed_sd=0.06)
    row = decision.decide(seedy, {"d": "d"}).iloc[0]
    need = row["seeds_needed"]
    assert need is not None and need > 3
    assert 1.96 * np.sqrt(row["test_sd"] ** 2 + row["seed_sd"] ** 2 / need) < 0.03 + 1e-9
    assert 1.96 * np.sqrt(row["test_sd"] ** 2 + row["seed_sd"] ** 2 / (need - 1)) >= 0.03 - 1e-3
    assert f"about {need} seeds" in decision.power_words(row)


def test_the_decision_display_fits_a_phone_and_the_csv_keeps_every_column():
    from backbone_bench.report import decision as shown

    cells = make_cells({("cifar10", "tf_efficientnet_lite0"): 0.80, ("cifar10", "regnetx_002"): 0.795})
    rows = decision.decide(cells, {"cifar10": "natural"}, seconds={10: {"tf_efficientnet_lite0": 60.0,
                                                                      "regnetx_002": 20.0}})
    rows = rows.assign(chance=0.1, power=rows.apply(decision.power_words, axis=1))
    html = shown.answer_display(rows).to_html()
    assert "<b>regnetx-002</b>" in html and "best: lite0" in html and "3.0× faster" in html and "2 of 2" in html
    assert len(shown.answer_display(rows).data.columns) == 5  # five narrow columns: a 390 px screen shows them whole
    csv = shown.for_csv(rows)
    assert csv.loc[0, "within_noise"] == "tf_efficientnet_lite0 regnetx_002" and csv.loc[0, "own_picks"] == \
        "cifar10=tf_efficientnet_lite0"
    said = shown.answer_text(rows)  # one row: no "0 of 1", no "x to x" range
    assert said.startswith("In its one row a cheaper backbone than the best is within noise, at most "
                           f"{rows.loc[0, 'at_most']:.3f} below the best") and " 0 of " not in said
    assert "and 3.0 times faster to train" in said
    faster = rows.assign(fastest_infer="tf_efficientnet_lite0")  # the best runs faster, regnetx_002 trains faster
    assert "another backbone within noise runs faster: natural photos at 10 (lite0)" in shown.answer_text(faster)


def test_a_backbone_within_noise_replaces_the_pick_only_when_it_saves_a_measurable_share_of_the_time():
    cells = make_cells({("d", "a"): 0.80, ("d", "b"): 0.795})
    row = decision.decide(cells, {"d": "d"}, seconds={10: dict(a=100.0, b=95.0)}).iloc[0]
    assert row["use"] == "a" and row["at_most"] == 0.0  # 5 % faster is within timing noise: keep the best
    row = decision.decide(cells, {"d": "d"}, seconds={10: dict(a=100.0, b=80.0)}).iloc[0]
    assert row["use"] == "b" and row["trains_faster"] == 1.25


def test_the_shifted_test_set_of_brain_tumor_mri_is_said_from_the_records():
    """Methods' statement of what brain_tumor_mri measures is made from the committed records."""
    from conftest import REPO, requires_mirror  # noqa: F401

    from backbone_bench import report

    table = report.load("cpu", REPO / "results", datasets=["brain_tumor_mri"], modes=["finetune", "scratch"])
    if table.empty:
        import pytest

        pytest.skip("no committed brain_tumor_mri runs")
    text = report.shift_text(table, REPO / "results")
    assert "validation balanced accuracy exceeds test by 0.3" in text and "below chance (0.25)" in text
    assert "glioma tumor test images" in text and "`" not in text  # glued as plain text into Methods


def test_a_row_is_priced_from_its_own_datasets_runs_so_every_page_gives_it_the_same_use():
    from backbone_bench.report import decision as shown

    cells = make_cells({("cifar10", "a"): 0.80, ("cifar10", "b"): 0.795,
                        ("breastmnist", "a"): 0.80, ("breastmnist", "b"): 0.795})
    # b is cheaper on cifar10's runs, a on breastmnist's: pooled, a page would price one row by the other's runs
    runs = pd.DataFrame([dict(dataset=d, backbone=b, total_seconds=t, status="ok", device="CPU X", resolution=96,
                              mode="finetune", shots=10, key=f"{d}{b}{s}")
                         for d, b, t in [("cifar10", "a", 100.0), ("cifar10", "b", 20.0),
                                         ("breastmnist", "a", 10.0), ("breastmnist", "b", 90.0)] for s in range(3)])
    whole = shown.answer(cells, runs, "cpu", datasets=["cifar10", "breastmnist"])
    alone = shown.answer(cells, runs[runs["dataset"] == "cifar10"], "cpu", datasets=["cifar10"])
    assert list(whole["row"]) == ["natural", "medical"] and list(whole["use"]) == ["b", "a"]
    assert whole.iloc[0]["trains_faster"] == alone.iloc[0]["trains_faster"] == 5.0
