"""The 224 px design beside another edition: on hand-made runs (predictions generated here) and on
the committed records of both editions."""
import pandas as pd
import pytest

from conftest import REPO, requires_mirror
from test_uncertainty import make_runs

from backbone_bench import report
from backbone_bench.report import editions, regret
from backbone_bench.analysis import uncertainty
from backbone_bench.data.registry import DATASETS


def draws_of(spec, n_boot=300):
    runs, predictions = make_runs(spec)
    return uncertainty.cell_draws(runs, predictions, n_boot)


def test_compare_names_each_editions_choice_and_the_mean_difference_with_its_interval():
    probe = "linear_probe"
    page = draws_of([("uc_merced", 10, b, probe, s, acc, False)
                     for b, acc in (("a", 0.60), ("b", 0.70)) for s in (0, 1)]
                    + [("uc_merced", 10, "c", probe, 0, 0.95, False)]  # only here: not a candidate of the comparison
                    + [("breastmnist", 10, "a", probe, 0, 0.6, False), ("breastmnist", 10, "b", probe, 0, 0.6, False)])
    other = draws_of([("uc_merced", 10, b, probe, s, acc, False)
                      for b, acc in (("a", 0.90), ("b", 0.80)) for s in (0, 1)]
                     + [("breastmnist", 10, "a", probe, 0, 0.7, False)])  # one backbone: no choice to compare
    rows = editions.compare(page, other)
    assert list(rows["domain"]) == ["remote_sensing"]
    row = rows.iloc[0]
    assert (row["backbone"], row["backbone_page"], bool(row["same"]), row["backbones"]) == ("a", "b", False, 2)
    assert row["diff"] == pytest.approx(((0.9 - 0.6) + (0.8 - 0.7)) / 2)
    assert 0 < row["diff_lo"] < row["diff"] < row["diff_hi"]
    assert editions.compare(page, other, mode="finetune").empty


@requires_mirror
def test_the_224_px_probes_beside_the_cpu_edition_from_the_committed_records():
    results = REPO / "results"
    page = report.load("cpu", results)
    other = editions.records("cpu", "offline", results)
    assert editions.records("cpu", None).empty
    assert editions.records("offline", "offline", results).empty and editions.records("full", "offline", results).empty
    if other.empty or page.empty:
        pytest.skip("no committed records of both editions")
    assert set(other["resolution"]) == {224} and set(page["resolution"]) == {96}
    theirs = editions.draws(other, results, 100)
    rows = editions.side_by_side(report.draws(page, results, 100), theirs)
    assert len(rows)
    probes = [t[(t["mode"] == "linear_probe") & (t["status"] == "ok")] for t in (other, page)]
    means = [p.groupby(["dataset", "shots", "backbone"])["test_balanced_accuracy"].mean() for p in probes]
    diff = (means[0] - means[1]).dropna().reset_index()
    diff["domain"] = diff["dataset"].map(lambda d: DATASETS[d].domain)
    for r in rows.itertuples():  # the point difference is the plain mean of the per-cell differences
        cell = diff[(diff["domain"] == r.domain) & (diff["shots"] == r.shots)]
        assert r.diff == pytest.approx(cell["test_balanced_accuracy"].mean())
        assert r.diff_lo < r.diff < r.diff_hi
    status = editions.status_text(other, "cpu", "offline")
    assert "96 px to 224 px" in status and "validation images 500 to all" in status and "still to run" in status
    assert "probe_cs" not in status and "eval_limit" not in status  # words, not field names
    assert editions.status_text(other, "offline", "offline").startswith("This page is at the 224 px design's resolution")
    text = editions.summary_text(rows, "cpu", "offline")
    assert f"Of the {len(rows)} domain and shot cells" in text and "224 px minus 96 px" in text
    assert "`" not in status + text
    regrets = regret.resolution_regret(report.draws(page, results, 100), theirs)
    assert len(regrets) and (regrets["regret"] >= 0).all() and (regrets["random"] >= 0).all()
    assert ((regrets["pick"] == regrets["best"]) == (regrets["regret"] == 0)).all()
    assert regret.regret_text(regrets, "cpu", "offline").startswith(f"Over the {len(regrets)} dataset and shot cells")
    shown = editions.display(rows, "cpu", "offline").to_html()
    assert "224 px minus 96 px, mean over backbones" in shown and "the 224 px probes pick" in shown and "this edition's 96 px probes pick" in shown
    assert any(word in shown for word in ("the same", "within noise of", "separable from"))
    assert isinstance(editions.together(page, other), pd.DataFrame)
    agreement = editions.rank_agreement(report.draws(page, results, 100), theirs)
    assert len(agreement) and (agreement["backbones"] >= 3).all()
    assert ((-1 <= agreement["lo"]) & (agreement["lo"] <= agreement["hi"]) & (agreement["hi"] <= 1)).all()
    assert f"Over the {len(agreement)} dataset and shot cells probed at both 96 px and 224 px" in \
        editions.agreement_text(agreement, "cpu", "offline")
    # fine-tuning too, where the 224 px design has fine-tunes of three or more of the same backbones
    finetuned = editions.rank_agreement(report.draws(page, results, 100), theirs, mode="finetune")
    tuned = other[(other["mode"] == "finetune") & (other["status"] == "ok")].groupby(["dataset", "shots"])["backbone"]
    assert (set(zip(finetuned["dataset"], finetuned["shots"])) if len(finetuned) else set()) == \
        {k for k, b in tuned if b.nunique() >= 3}
    assert (set(finetuned["mode"]) if len(finetuned) else set()) <= {"finetune"} and set(agreement["mode"]) == {"linear_probe"}
    text = editions.agreement_text(finetuned, "cpu", "offline", mode="finetune")
    opening = "In the one dataset and shot cell" if len(finetuned) == 1 else f"Over the {len(finetuned)} dataset and shot cells"
    assert (opening in text and "fine-tuned at both" in text if len(finetuned)
            else "fine-tuned at both resolutions yet" in text)
    one = finetuned.head(1)
    if len(one):  # a single cell is said with its own numbers
        r = one.iloc[0]
        text = editions.agreement_text(one, "cpu", "offline", mode="finetune")
        assert f"is {r['rho']:.2f} (95 % interval {r['lo']:.2f} to {r['hi']:.2f})" in text and "median" not in text
        tuned_rows = editions.side_by_side(report.draws(page, results, 100), theirs, "finetune").head(1)
        text = editions.summary_text(tuned_rows, "cpu", "offline", "finetune")
        t = tuned_rows.iloc[0]
        assert text.startswith("In the one domain and shot cell") and f"{t['diff']:+.3f} [{t['diff_lo']:+.3f}" in text


def test_the_regret_of_a_pick_at_the_other_resolution_is_its_best_minus_the_pick_beside_a_random_pick():
    probe = "linear_probe"
    page = draws_of([("uc_merced", 10, b, probe, s, acc, False) for b, acc in (("a", 0.6), ("b", 0.7), ("c", 0.5))
                     for s in (0, 1)])
    other = draws_of([("uc_merced", 10, b, probe, s, acc, False) for b, acc in (("a", 0.9), ("b", 0.8), ("c", 0.5))
                      for s in (0, 1)])
    row = regret.resolution_regret(page, other).iloc[0]
    assert (row["pick"], row["best"]) == ("b", "a")
    assert row["regret"] == pytest.approx(0.1) and row["random"] == pytest.approx((0 + 0.1 + 0.4) / 3)
    assert row["regret_lo"] <= row["regret"] <= row["regret_hi"] and 0 <= row["floor"] < 0.05
    assert regret.resolution_regret(page, None).empty
    text = regret.regret_text(regret.resolution_regret(page, other), "cpu", "offline")
    assert "costs 0.100" in text and "better than a random pick" in text


def test_rank_agreement_is_spearman_per_cell_with_an_interval_and_says_when_the_choice_agrees():
    probe = "linear_probe"
    accs = {"a": 0.55, "b": 0.65, "c": 0.75, "d": 0.85}
    page = draws_of([("uc_merced", 10, b, probe, s, acc, False) for b, acc in accs.items() for s in (0, 1)])
    same = draws_of([("uc_merced", 10, b, probe, s, acc + 0.05, False) for b, acc in accs.items() for s in (0, 1)])
    flipped = draws_of([("uc_merced", 10, b, probe, s, 1.4 - acc, False) for b, acc in accs.items() for s in (0, 1)])
    up, down = editions.rank_agreement(page, same), editions.rank_agreement(page, flipped)
    assert up.iloc[0]["rho"] == pytest.approx(1.0) and bool(up.iloc[0]["same"]) and up.iloc[0]["backbones"] == 4
    assert down.iloc[0]["rho"] == pytest.approx(-1.0) and not bool(down.iloc[0]["same"])
    assert up.iloc[0]["lo"] > 0 > down.iloc[0]["hi"]           # well separated backbones: decided both ways
    assert editions.rank_agreement(page, None).empty
    two = draws_of([("uc_merced", 10, b, probe, 0, acc, False) for b, acc in (("a", 0.5), ("b", 0.6))])
    assert editions.rank_agreement(two, two).empty               # two backbones: no rank correlation to speak of


def test_the_agreement_figure_names_each_shot_level_once_and_fills_only_agreeing_cells():
    from matplotlib.colors import to_rgba

    from backbone_bench.report import plots

    rows = pd.DataFrame(dict(domain="d", dataset=["a", "a", "b"], shots=[10, 100, 10], rho=[0.5, 0.2, -0.1],
                             lo=[0.1, -0.3, -0.5], hi=[0.9, 0.6, 0.4], same=[True, False, False]))
    ax = plots.rank_agreement(rows, "rho").axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["10 per class", "100 per class",
                                                                  "other best backbone"]
    from matplotlib.collections import PathCollection

    faces = [[tuple(c) for c in col.get_facecolors()] for col in ax.collections if isinstance(col, PathCollection)]
    white = to_rgba("white")  # per shot level: 10 has one filled marker and one hollow, 100 only a hollow one
    assert [sum(c == white for c in f) for f in faces] == [1, 1] and [sum(c != white for c in f) for f in faces] == [1, 0]


@requires_mirror
def test_the_interim_editions_pages_say_how_far_the_edition_replacing_it_has_come():
    from backbone_bench.study.published import INTERIM, PUBLISHED

    results = REPO / "results"
    table = report.load(PUBLISHED, results)
    missing = report.missing_runs(PUBLISHED, table)
    text = report.successor_text(INTERIM, results)
    assert report.successor_text(PUBLISHED, results) == ""
    if not len(missing):  # the sweep is complete: the book publishes it, and nothing is said
        assert text == ""
        return
    assert f"`{PUBLISHED}`" in text and f"{len(table)} of {len(table) + len(missing)} runs" in text
    for (mode, shots), n in missing.groupby(["mode", "shots"]).size().items():
        assert f"{report.MODE_NAMES.get(mode, mode)} at {shots} shots ({n} runs)" in text


def test_a_domains_choice_across_editions_compares_backbones_over_the_same_datasets():
    """A backbone only one dataset of the domain has (a partial grid) is left out of the domain's
    choice: its mean would be over other datasets than its rivals'."""
    probe = "linear_probe"
    spec = [("breastmnist", 10, b, probe, 0, acc, False) for b, acc in (("a", 0.6), ("b", 0.7), ("c", 0.99))]
    spec += [("pneumoniamnist", 10, b, probe, 0, acc, False) for b, acc in (("a", 0.6), ("b", 0.7))]
    rows = editions.compare(draws_of(spec), draws_of(spec))
    assert list(rows["backbone"]) == ["b"] and list(rows["backbones"]) == [2]
    assert len(editions.rank_agreement(draws_of(spec), draws_of(spec))) == 1  # per dataset: breastmnist's three
