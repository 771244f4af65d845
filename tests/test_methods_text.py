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


def test_what_equal_treatment_changed_names_each_moved_row_and_what_is_not_final(tmp_path):
    assert "has not been set beside" in report.equal_treatment_text(tmp_path)
    (tmp_path / "benchmarks").mkdir()
    rows = [dict(row="medical", shots=10, best_published="tf_efficientnet_lite1", best_now="mobilenetv2_100",
                 use_published="regnetx_002", use_now="regnetx_002", within_noise_published="a, b",
                 within_noise_now="a, b, c"),
            dict(row="galaxy", shots=100, best_published="x", best_now="x", use_published="y", use_now="y",
                 within_noise_published="x, y", within_noise_now="x, y")]
    table = pd.DataFrame(rows).assign(published_commit="22fdb46", stand_ins_now="12 runs in 2 cells")
    for name in ("best", "use"):
        table[f"{name}_changed"] = table[f"{name}_published"] != table[f"{name}_now"]
    table["set_changed"] = table["within_noise_published"] != table["within_noise_now"]
    table.to_csv(tmp_path / "benchmarks" / "equal_treatment_decision.csv", index=False)
    text = report.equal_treatment_text(tmp_path)
    assert text.startswith("1 of 2 fine-tuning decision rows") and "galaxies" not in text
    assert "medical 10 (best tf_efficientnet_lite1 → mobilenetv2_100; within noise 2 → 3 backbones)" in text
    assert "Not final: 12 runs in 2 cells still stand in" in text


def test_clean_selection_is_said_per_mode_where_the_table_has_one(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    pd.DataFrame(dict(dataset="cifar10", shots=10, mode=["finetune", "scratch"], moved=[True, False],
                      same_training=True, test_delta=[-0.01, 0.0])).to_csv(
        tmp_path / "benchmarks" / "clean_selection.csv", index=False)
    text = report.clean_selection_text(tmp_path)
    assert "cifar10 at 10 shots (fine-tuning): the pick moved in 1 of 1 runs" in text
    assert "cifar10 at 10 shots (scratch twins): the pick moved in 0 of 1 runs" in text
