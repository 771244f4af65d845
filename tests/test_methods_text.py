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


def test_the_methods_page_says_each_editions_precision_pairs_apart(tmp_path):
    """Two editions' bf16 - fp32 pairs (another resolution each) are said per edition, never pooled
    under one backbone name. The summary rows are made by hand."""
    (tmp_path / "benchmarks").mkdir()
    row = dict(backbone="regnetx_002", mode="linear_probe", pairs=51, bf16_minus_fp32=0.002, lo=-0.005, hi=0.012,
               verdict="within noise", predictions_changed=0.05, choice_changed=0.35, fp32_over_bf16_train_time=float("nan"))
    pd.DataFrame([dict(preset="cpu", **row), dict(preset="offline_cpu", **row | dict(pairs=18))]).to_csv(
        tmp_path / "benchmarks" / "precision_pairs_summary.csv", index=False)
    text = report.precision_text(tmp_path)
    assert "`cpu` edition, regnetx_002" in text and "`offline_cpu` edition, regnetx_002" in text
    assert "over 51 pairs" in text and "over 18 pairs" in text
    assert report.precision_text(tmp_path / "none").startswith("No bf16 record")


def test_the_probe_refit_counts_only_the_backbones_that_had_probes_to_refit(tmp_path):
    """Backbones that joined the panel after the refit (issue 48) were fitted on the wide grid from the
    start: the sentence names them and does not call the refit unfinished. Table rows made by hand."""
    from backbone_bench.study.plan import grid_cells

    (tmp_path / "benchmarks").mkdir()
    old = [c for c in grid_cells("offline_cpu") if c["mode"] == "linear_probe"
           and c["backbone"] not in ("mobilenetv1_100", "squeezenet1_1")]
    rows = pd.DataFrame([dict(preset="offline_cpu", dataset=c["dataset"], backbone=c["backbone"], resolution=80,
                              smallest_C_before=True, edge_after=False, test_before=0.5, test_after=0.51) for c in old])
    rows.to_csv(tmp_path / "benchmarks" / "probe_refit.csv", index=False)
    pd.DataFrame([dict(preset="offline_cpu", domain="natural", shots=10, mode_before="linear_probe",
                       backbone_before="regnetx_002", mode_after="linear_probe", backbone_after="regnetx_002")]).to_csv(
        tmp_path / "benchmarks" / "probe_refit_decision.csv", index=False)
    text = report.probe_refit_text(tmp_path)
    assert f"`offline_cpu` (80 px, {len(old)} probes; mobilenetv1_100 and squeezenet1_1, which joined the panel later" in text
    assert "so far" not in text
    rows[rows["dataset"] == "cifar10"].to_csv(tmp_path / "benchmarks" / "probe_refit.csv", index=False)
    part = report.probe_refit_text(tmp_path)
    assert f"{(rows['dataset'] == 'cifar10').sum()} of its {len(old)} probes refitted so far: cifar10; the rest follow" in part
