"""Methods' sentences come from the committed benchmark tables (or say they were not measured)."""
import pandas as pd

from backbone_bench import report
from conftest import REPO


def test_the_evaluation_sentence_is_the_committed_tables():
    text = report.eval_passes_text(REPO / "results")
    cuts = pd.read_csv(REPO / "results" / "benchmarks" / "eval_passes.csv")
    cuts = cuts[cuts["cut"] != "all"]
    assert f"{cuts['moved'].min():.0%} to {cuts['moved'].max():.0%}" in text and "at 1000 shots" in text


def test_clean_selection_is_said_per_dataset_and_level_or_not_measured(tmp_path):
    assert "not been measured" in report.clean_selection_text(tmp_path)
    (tmp_path / "benchmarks").mkdir()
    pd.DataFrame(dict(dataset=["breastmnist"] * 3, shots=[10] * 3, moved=[True, False, False],
                      same_training=[True, True, False], test_delta=[0.02, 0.0, -0.01])).to_csv(
        tmp_path / "benchmarks" / "clean_selection.csv", index=False)
    text = report.clean_selection_text(tmp_path)
    assert "breastmnist at 10 shots: the pick moved in 1 of 3 runs" in text
    assert "exactly as the published run (2 of 3), test balanced accuracy changed by +0.010 on average" in text
    assert "by up to 0.01 although nothing but the selection changed" in text
