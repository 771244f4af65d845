"""Every backbone treated alike: one precision per edition, and no record from code in no commit.

Records here are made by hand from real configs (the committed splits of uc_merced) with simulated
outcomes; no network is trained.
"""
import numpy as np
import pandas as pd
import pytest

from backbone_bench.engine.recipe import Recipe, recipe_precision
from backbone_bench.errors import BenchError
from backbone_bench.study import store
from backbone_bench.study.plan import build_plan
from backbone_bench.study.run import record_base
from conftest import requires_mirror

SMALL = dict(datasets=["uc_merced"], backbones=["tf_efficientnet_lite0", "tf_mobilenetv3_small_100"], shots=[10], seeds=[0],
             modes=["linear_probe"])


def _ok(config, precision="fp32", commit="abc123", preset="quick"):
    record = record_base(config, preset, dict(git_commit=commit), precision=precision)
    record |= dict(status="ok", metrics=dict(test=dict(balanced_accuracy=0.5)), finished_at=precision + commit,
                   effective_shots=10, subset_shared=False, collapsed=False)
    arrays = dict(test_pred=np.zeros(3, np.uint8), test_label=np.zeros(3, np.uint8), test_index=np.arange(3))
    store.write_record(record, arrays)
    return record


def test_precision_is_the_recipes_and_fp32_keeps_every_key():
    assert Recipe().precision == "fp32" and "precision" not in Recipe().as_dict()  # the 1,560 keys unchanged
    assert Recipe(precision="bf16-autocast").as_dict()["precision"] == "bf16-autocast"  # another precision: another key
    with pytest.raises(ValueError, match="choose one of fp32, bf16-autocast"):
        Recipe(precision="fp16")
    assert recipe_precision(dict(recipe={})) == "fp32"


@requires_mirror
def test_a_run_in_another_precision_than_its_recipe_is_rerun_and_kept_aside(results):
    bf16_config, fp32_config = build_plan("quick", **SMALL).configs
    _ok(bf16_config, "bf16-autocast")
    _ok(fp32_config, "fp32")
    assert "computed in bf16-autocast" in store.outdated_why(store.read_records(keys=[store.config_key(bf16_config)])[0])
    again = build_plan("quick", **SMALL)
    assert again.configs == [bf16_config] and again.skipped_done == 1
    rerun = _ok(bf16_config, "fp32")  # the fp32 rerun replaces it; the bf16 record moves to superseded/
    assert store.read_records(keys=[rerun["key"]])[0]["environment"]["precision"] == "fp32"
    kept = store.read_superseded()
    assert [r["environment"]["precision"] for r in kept] == ["bf16-autocast"]
    assert (store.superseded_dir() / f"{rerun['key']}.npz").exists()
    assert build_plan("quick", **SMALL).configs == []


@requires_mirror
def test_a_cell_that_mixes_precisions_is_refused(results):
    from backbone_bench.report.load import check_one_precision

    table = pd.DataFrame([dict(dataset="uc_merced", shots=10, mode="finetune", backbone=b, status="ok", precision=p)
                          for b, p in (("lite0", "fp32"), ("regnetx_002", "bf16-autocast"))])
    with pytest.raises(BenchError, match="1 cells mix precisions, e.g. uc_merced at 10 shots, finetune "
                                         r"\(bf16-autocast: regnetx_002; fp32: lite0\)"):
        check_one_precision(table)
    check_one_precision(table.assign(precision="fp32"))  # one precision: fine
    # the loader never reports an outdated record: a bf16 run of an fp32 recipe counts as missing
    from backbone_bench.report.load import reported

    bf16_config, fp32_config = build_plan("quick", **SMALL).configs
    _ok(bf16_config, "bf16-autocast")
    _ok(fp32_config, "fp32")
    loaded = reported(store.compile_table(), "quick")
    assert list(loaded["backbone"]) == ["tf_mobilenetv3_small_100"] and set(loaded["precision"]) == {"fp32"}


def test_a_sweep_into_the_repository_refuses_uncommitted_package_code(monkeypatch, tmp_path):
    from backbone_bench import environment, paths
    from backbone_bench.study import execute

    monkeypatch.setattr(environment, "git_commit", lambda: "abc123+dirty.0a1b2c3d")
    monkeypatch.setattr(environment, "package_diff", lambda: "--- a/lib/x.py\n+++ b/lib/x.py\n")
    with pytest.raises(BenchError, match="uncommitted changes .* commit them first"):
        execute.check_provenance(paths.REPO_ROOT / "results")
    execute.check_provenance(tmp_path)  # elsewhere: the diff is kept beside the records, named by the commit
    assert (tmp_path / "diffs" / "abc123+dirty.0a1b2c3d.patch").read_text().startswith("--- a/lib/x.py")
    monkeypatch.setattr(environment, "git_commit", lambda: "abc123")
    execute.check_provenance(paths.REPO_ROOT / "results")  # committed code: nothing to say


def test_a_record_of_code_nobody_kept_is_outdated_and_one_with_its_diff_is_not():
    config = dict(mode="linear_probe", recipe={})
    assert "uncommitted code" in store.outdated_why(dict(config=config, environment=dict(git_commit="7b9262d7a0c5+dirty")))
    assert not store.outdated(dict(config=config, environment=dict(git_commit="7b9262d7a0c5+dirty.0a1b2c3d")))
    assert not store.outdated(dict(config=config, environment=dict(git_commit="7b9262d7a0c5", precision="fp32")))


@requires_mirror
def test_a_sweep_remakes_outdated_records_before_it_adds_new_cells(results):
    first, second = build_plan("quick", **SMALL).configs
    _ok(second, "bf16-autocast")  # recorded in another precision: remade before the run never made
    assert build_plan("quick", **SMALL).configs == [second, first]


@requires_mirror
def test_a_predecessor_selected_on_all_validation_stands_in_until_its_whole_cell_is_rerun(results):
    """The cpu edition's gradient runs now select on clean validation (new keys). The records made
    before stand in for a cell until every one of them is made again; a sweep makes those first."""
    from backbone_bench.report.load import missing_runs, reported, stand_ins_text
    from backbone_bench.study.plan import predecessor_key

    grid = dict(datasets=["uc_merced"], backbones=["regnetx_002", "tf_mobilenetv3_small_100", "squeezenet1_1"],
                shots=[10], seeds=[0], modes=["finetune"])
    new, old_a, old_b = build_plan("cpu", **grid).configs  # in the grid's order
    assert {c["recipe"]["val_select"] for c in (new, old_a, old_b)} == {"clean"}

    def as_published(config):  # the same config selected on all of validation: the key it had
        config = dict(config, recipe={k: v for k, v in config["recipe"].items() if k != "val_select"})
        assert store.config_key(config) == predecessor_key(dict(config, recipe=dict(config["recipe"], val_select="clean")))
        return config

    for config in (old_a, old_b):
        _ok(as_published(config), commit="published", preset="cpu")
    assert build_plan("cpu", **grid).configs == [old_a, old_b, new]  # the reruns before the new backbone

    def cell():
        table = reported(store.compile_table(), "cpu", datasets=["uc_merced"])
        return table[(table["shots"] == 10) & (table["mode"] == "finetune")]

    shown = cell()
    assert set(shown["key"]) == {predecessor_key(old_a), predecessor_key(old_b)}
    assert set(shown["stands_in_for"]) == {store.config_key(old_a), store.config_key(old_b)}
    assert "2 runs in 1 cells were selected on all of validation" in stand_ins_text(shown)
    assert store.config_key(new) in set(missing_runs("cpu", shown, ["uc_merced"])["key"])
    assert not {store.config_key(old_a), store.config_key(old_b)} & set(missing_runs("cpu", shown, ["uc_merced"])["key"])
    _ok(old_a, preset="cpu")
    _ok(new, preset="cpu")  # the cell is not yet whole: its clean records wait, none is mixed in
    assert set(cell()["key"]) == {predecessor_key(old_a), predecessor_key(old_b)}
    _ok(old_b, preset="cpu")
    shown = cell()
    assert set(shown["key"]) == {store.config_key(c) for c in (new, old_a, old_b)}
    assert set(shown["stands_in_for"]) == {""} and stand_ins_text(shown) == ""


@requires_mirror
def test_the_224_px_preset_differs_from_the_published_edition_in_resolution_only():
    from backbone_bench.study.presets import get_preset

    cpu, wide = get_preset("cpu"), get_preset("cpu224")
    assert (wide.resolution, cpu.resolution) == (224, 96) and wide.modes == ("finetune", "linear_probe")
    assert (wide.datasets, wide.backbones, wide.shots, wide.seeds) == (cpu.datasets, cpu.backbones, cpu.shots, cpu.seeds)
    for mode in wide.modes:
        for shots in wide.shots:
            mine, published = wide.recipe_for(mode, shots), cpu.recipe_for(mode, shots)
            assert mine == published and mine.val_select == "clean"  # both select on clean validation
    plan = build_plan("cpu224", datasets=["uc_merced"], backbones=["regnetx_002"], seeds=[0])
    levels = [(c["shots"], c["mode"]) for c in plan.configs]  # a shot level whole before the next
    assert levels == [(10, "linear_probe"), (10, "finetune"), (100, "linear_probe"), (100, "finetune")]


def test_clean_validation_is_what_a_probes_selection_sees():
    """Validation images with a twin in the pool are predicted but never chosen on: the C picked is
    the best on the others, and the record says what all of validation would have picked."""
    from backbone_bench.engine import train

    rng = np.random.default_rng(0)
    w = rng.normal(size=(20, 3))
    feats, labels = {}, {}
    for split, n in (("train", 60), ("val", 200), ("test", 200)):
        x = rng.normal(size=(n, 20))
        feats[split], labels[split] = x, np.argmax(x @ w + 2.0 * rng.normal(size=(n, 3)), 1)
    # 100 "twins" in validation that only a nearly unregularised head gets right: copies of training rows
    feats["val"][:100] = np.repeat(feats["train"], 2, axis=0)[:100] * 1.0
    labels["val"][:100] = np.repeat(labels["train"], 2)[:100]
    select = np.arange(200) >= 100
    recipe = Recipe(probe_cs=(1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0))
    clean = train.linear_probe(feats, labels, recipe, 3, 0, 0.0, select)
    whole = train.linear_probe(feats, labels, recipe, 3, 0, 0.0)
    scores = {}
    for c in recipe.probe_cs:  # the clean choice is the best C on the selected images alone
        scores[c] = clean.chosen["candidates"][c]["val_score"]
    assert clean.chosen["C"] == max(scores, key=scores.get)
    assert clean.chosen["on_all_val"]["C"] == whole.chosen["C"]
    assert clean.probs_val.shape == (200, 3)  # every validation image is still predicted


@requires_mirror
def test_a_study_probe_selects_on_clean_validation_where_the_dataset_has_twins(results):
    from backbone_bench.study.execute import execute

    plan = build_plan("quick", datasets=["uc_merced"], backbones=["tf_efficientnet_lite0"], modes=["linear_probe"],
                      resolution=32)
    assert plan.configs[0]["recipe"]["val_select"] == "clean"  # uc_merced's validation holds one twin
    assert execute(plan, "cpu", progress=False) == {"ok": 1}
    record = store.read_records()[0]
    assert record["n_val_selected"] == record["n_val"] - 1 and "on_all_val" in record["chosen"]
    galaxy = build_plan("quick", datasets=["galaxy_zoo1"], backbones=["tf_efficientnet_lite0"], modes=["linear_probe"])
    assert "val_select" not in galaxy.configs[0]["recipe"]  # no twin: the whole validation set, the same key


@requires_mirror
def test_a_fine_tune_asked_to_select_on_clean_validation_scores_its_passes_there_and_says_what_all_would_pick(results):
    import torch

    from backbone_bench.study.run import run_configs

    config = build_plan("quick", datasets=["uc_merced"], backbones=["tf_efficientnet_lite0"], modes=["finetune"],
                        resolution=32, steps=6).configs[0]
    config["recipe"] = dict(config["recipe"], val_select="clean", eval_every=2)
    (record, _), = run_configs([config], "quick", torch.device("cpu"), {})
    assert record["status"] == "ok" and record["n_val_selected"] == record["n_val"] - 1
    assert all("val_clean_balanced_accuracy" in c and "val_balanced_accuracy" in c for c in record["curves"])
    best = max(record["curves"], key=lambda c: (c["val_clean_balanced_accuracy"], -c["val_clean_nll"]))
    assert record["chosen"]["step"] == best["step"] and set(record["chosen"]["on_all_val"]) == {"lr", "step"}

