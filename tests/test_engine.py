"""The engine end to end on CPU with real data and real weights, and every fault it must survive."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from backbone_bench.study import store
from backbone_bench.engine import train
from backbone_bench.errors import InvalidParameterError, UnknownNameError
from backbone_bench.study.execute import execute
from backbone_bench.study.plan import build_plan
from conftest import REPO, requires_mirror

SMALL = dict(datasets=["uc_merced"], backbones=["tf_efficientnet_lite0"], shots=[10], seeds=[0],
             resolution=48, steps=20)


@requires_mirror
def test_pretrained_and_scratch_runs_make_complete_records_and_resume(results):
    plan = build_plan("quick", modes=["finetune", "scratch", "linear_probe"], **SMALL)
    assert len(plan.configs) == 3
    counts = execute(plan, "cpu", progress=False)
    assert counts == {"ok": 3}
    records = {r["config"]["mode"]: r for r in store.read_records()}
    for record in records.values():
        for split in ("val", "test"):
            assert set(record["metrics"][split]) == {"balanced_accuracy", "accuracy", "macro_f1", "auc_ovr", "ece", "nll"}
        assert record["environment"]["device_type"] == "cpu" and record["environment"]["git_commit"]
        assert record["n_test"] == 420 and record["n_train"] == 210
        arrays = store.read_arrays(record["key"])
        assert arrays["test_pred"].dtype == np.uint8 and arrays["test_prob"].dtype == np.float16
        assert arrays["test_prob"].shape == (420, 21)
    assert records["finetune"]["weights"]["weights_provenance"] == "local"
    assert records["scratch"]["weights"]["weights_provenance"] == "random"
    assert records["finetune"]["curves"] and records["finetune"]["chosen"]["step"] <= 20
    # what pretraining buys, measured on validation (never on test)
    assert (records["finetune"]["metrics"]["val"]["balanced_accuracy"]
            > records["scratch"]["metrics"]["val"]["balanced_accuracy"] + 0.2)
    table = store.compile_table()
    assert len(table) == 3 and (results / "runs.csv").exists() and (results / "runs.parquet").exists()
    assert {"device", "torch", "timm", "git_commit", "weights_bn_folded", "resolution", "test_balanced_accuracy"} <= set(table.columns)
    # resume: everything is recorded, nothing to do
    assert build_plan("quick", modes=["finetune", "scratch", "linear_probe"], **SMALL).configs == []


@pytest.mark.parametrize("kwargs, match", [
    (dict(backbones=["efficientnet_lite_0"]), "efficientnet_lite0"),
    (dict(datasets=["uc-merced"]), "uc_merced"),
    (dict(modes=["fine_tune"]), "modes"),
    (dict(shots=[0]), "shots"),
    (dict(seeds=[7]), "seeds"),
    (dict(resolution=8), "resolution"),
    (dict(steps=0), "steps"),
])
def test_bad_parameters_are_rejected_before_any_compute(kwargs, match, results, monkeypatch):
    monkeypatch.setattr("backbone_bench.study.plan.prepare", lambda *a, **k: pytest.fail("prepared data before validating"))
    with pytest.raises((InvalidParameterError, UnknownNameError), match=match):
        build_plan("quick", **kwargs)


@requires_mirror
def test_diverged_run_is_recorded_and_the_sweep_goes_on(results, monkeypatch):
    real = train.F.cross_entropy
    monkeypatch.setattr(train.F, "cross_entropy",
                        lambda logits, *a, **k: real(logits, *a, **k) * (float("nan") if logits.shape[1] == 21 else 1))
    plan = build_plan("quick", modes=["finetune", "linear_probe"], **SMALL)
    counts = execute(plan, "cpu", progress=False)
    assert counts == {"diverged": 1, "ok": 1}
    diverged = [r for r in store.read_records() if r["status"] == "diverged"][0]
    assert "step 1" in diverged["reason"]


@requires_mirror
def test_out_of_memory_retries_with_smaller_micro_batches(results, monkeypatch):
    real = train.random_resized_crop

    def tight_memory(images, *a, **k):
        if len(images) > 8:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return real(images, *a, **k)

    monkeypatch.setattr(train, "random_resized_crop", tight_memory)
    counts = execute(build_plan("quick", modes=["finetune"], **SMALL), "cpu", progress=False)
    assert counts == {"ok": 1}
    record = store.read_records()[0]
    assert record["micro_batch"] == 8 and record["config"]["recipe"]["batch_size"] == 32


@requires_mirror
def test_out_of_memory_at_every_size_is_recorded(results, monkeypatch):
    def no_memory(*a, **k):
        raise torch.OutOfMemoryError("simulated: CUDA out of memory")

    monkeypatch.setattr(train, "random_resized_crop", no_memory)
    counts = execute(build_plan("quick", modes=["finetune", "linear_probe"], **SMALL), "cpu", progress=False)
    assert counts == {"oom": 1, "ok": 1}


@requires_mirror
def test_unavailable_weights_are_recorded_not_trained(results):
    plan = build_plan("quick", **{**SMALL, "backbones": ["resnet18.tv_in1k"]}, modes=["finetune"])
    assert execute(plan, "cpu", progress=False) == {"unavailable": 1}
    assert "no ImageNet weights" in store.read_records()[0]["reason"]


@requires_mirror
def test_sweep_killed_mid_run_loses_and_duplicates_nothing(results):
    command = [sys.executable, "-m", "backbone_bench", "run", "--preset", "quick", "--datasets", "uc_merced",
               "--backbones", "regnetx_002", "--modes", "finetune,scratch", "--seeds", "0",
               "--resolution", "48", "--steps", "30", "--device", "cpu", "--group-size", "1"]
    env = dict(os.environ, BACKBONE_BENCH_RESULTS=str(results))
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    runs = results / "runs"
    deadline = time.time() + 240
    while time.time() < deadline and not list(runs.glob("*.json")):
        time.sleep(0.2)
    assert list(runs.glob("*.json")), "the first run never finished"
    time.sleep(1.0)  # well inside the second run
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list(runs.glob("*.json"))) == 1
    (runs / ".half-written.json.123.tmp").write_text('{"key": "broken"')  # what a kill mid-write would leave
    subprocess.run(command, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    assert len(records) == 2 and len({r["key"] for r in records}) == 2
    assert {r["config"]["mode"] for r in records} == {"finetune", "scratch"}
    assert all(r["status"] == "ok" for r in records)


def test_linear_probe_is_class_balanced_where_the_metric_is():
    """Generated features, 190 vs 10 training images: an unweighted probe favours the majority;
    the balanced objective the presets use for probes scores higher balanced accuracy."""
    from backbone_bench.engine.metrics import classification_metrics
    from backbone_bench.study.presets import get_preset

    rng = np.random.default_rng(0)
    def sample(n0, n1):
        x = np.concatenate([rng.normal(0, 1, (n0, 8)), rng.normal(0.8, 1, (n1, 8))])
        return x, np.repeat([0, 1], [n0, n1])
    (xt, yt), (xv, yv), (xs, ys) = sample(190, 10), sample(100, 100), sample(300, 300)
    scores = {}
    for weighting in ("none", "balanced"):
        recipe = train.Recipe(probe_cs=(1.0,), class_weight=weighting)
        fit = train.linear_probe(dict(train=xt, val=xv, test=xs), dict(train=yt, val=yv, test=ys), recipe, 2, 0, 0.0)
        scores[weighting] = classification_metrics(fit.probs_test, ys, 2)["balanced_accuracy"]
    assert scores["balanced"] > scores["none"] + 0.05  # measured: 0.800 against 0.705
    for preset in ("offline", "offline_cpu", "quick"):
        assert get_preset(preset).recipe_for("linear_probe", 1000).class_weight == "balanced"
    # a neutral new recipe option stays out of the key: runs it does not change keep their keys
    assert "class_weight" not in train.Recipe().as_dict() and train.Recipe(class_weight="balanced").as_dict()["class_weight"]


def test_weighted_loss_uses_inverse_class_frequency():
    w = train.class_weights(np.array([0, 0, 0, 1]), 3)
    assert w.tolist() == pytest.approx([4 / 6, 2.0, 0.0])


def test_collapsed_predictors_are_flagged():
    from backbone_bench.engine.metrics import collapsed

    assert collapsed(np.zeros(100, dtype=int))
    assert collapsed(np.r_[np.zeros(99, dtype=int), 1])
    assert not collapsed(np.r_[np.zeros(90, dtype=int), np.ones(10, dtype=int)])


def test_preset_names_on_the_command_line_match_the_registry():
    from backbone_bench.cli.commands import PRESET_NAMES
    from backbone_bench.study.presets import PRESETS

    assert set(PRESET_NAMES) == set(PRESETS)


def test_cli_errors_say_what_is_wrong_and_answer_fast():
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "backbone_bench", "run", "--shots", "ten"], capture_output=True, text=True)
    assert out.returncode == 2 and "'ten' is not a whole number" in out.stderr
    assert time.perf_counter() - start < 5  # one interpreter start; no torch import before the error
    assert "torch" not in subprocess.run([sys.executable, "-X", "importtime", "-m", "backbone_bench", "--help"],
                                         capture_output=True, text=True).stderr


@pytest.mark.parametrize("argv, message", [
    (["run", "--preset", "ofline"], "unknown preset 'ofline'. Did you mean: offline"),
    (["run", "--datasets", "cifar100"], "unknown dataset 'cifar100'"),
    (["run", "--modes", "probe"], "modes ['probe'] unknown"),
    (["run", "--seeds", "7"], "seeds [7]"),
    (["run", "--resolution", "8"], "resolution 8"),
    (["run", "--backbones", "resnet_18"], "Did you mean: resnet18"),
    (["run", "--backbones", "resnet18.no_such_tag"], "unknown pretrained tag"),
    (["run", "--slurm", "--scheduler", "tcp://127.0.0.1:1"], "drop --scheduler or --slurm"),
    (["run", "--device", "gpu", "--dry-run"], "'gpu' is not a device; choose auto, cpu, cuda or cuda:N"),
    (["study", "--device", "gpu"], "'gpu' is not a device"),
    (["run", "--threads", "0"], "'0': give a whole number of at least 1"),
    (["run", "--deadline", "0"], "--deadline 0.0: give the seconds"),
    (["bundle", "--out", "x", "--shots", "0"], "shots [0]"),
    (["study", "--preset", "ofline"], "unknown preset"),
    (["cost", "--panel", "nope"], "unknown panel 'nope'"),
    (["backbones", "nope"], "unknown panel 'nope'"),
    (["recommend", "no_such_folder", "--backbones", "resnet_18"], "unknown backbone 'resnet_18'"),
])
def test_bad_options_are_refused_before_torch_is_imported(argv, message):
    """Each answers in well under a second where the interpreter starts fast (0.1-0.4 s here;
    importing torch and timm takes 4-8 s): a typo in a backbone name is checked against timm's
    names, which the first check keeps per timm version in the cache folder."""
    from backbone_bench.models.panels import timm_names

    timm_names()
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "backbone_bench", *argv], capture_output=True,
                         text=True)
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr
    assert not re.search(r"\|\s+(torch|timm)$", out.stderr, re.MULTILINE)


FAKE_ARRAYS = dict(test_pred=np.zeros(1, np.uint8))  # an ok record without its predictions is damaged


@requires_mirror
def test_the_cpu_edition_is_published_whole_or_partial_never_another(results):
    """Fake records (no training) for every config of `cpu` but one: the book still publishes `cpu`,
    and what is missing is named (an error record counts as missing: it is retried; a final
    failure completes its cell, since a rerun would repeat it)."""
    from backbone_bench import report
    from backbone_bench.study.plan import grid_cells
    from backbone_bench.study.published import edition

    cells = grid_cells("cpu")
    configs = build_plan("cpu", results=results, skip_done=False).configs
    assert len(configs) == len(cells) and {store.config_key(c) for c in configs} == {c["key"] for c in cells}
    for config in configs[:-1]:
        store.write_record(dict(key=store.config_key(config), config=config, status="ok", engine=store.ENGINE),
                           FAKE_ARRAYS, results)
    assert edition(results) == "cpu"
    last = configs[-1]
    store.write_record(dict(key=store.config_key(last), config=last, status="error", engine=store.ENGINE), None, results)
    assert edition(results) == "cpu" and store.config_key(last) not in store.done_keys(results)
    store.write_record(dict(key=store.config_key(last), config=last, status="diverged", engine=store.ENGINE), None,
                       results)
    assert edition(results) == "cpu" and store.done_keys(results) == {c["key"] for c in cells}
    assert report.published_edition(results) == "cpu"


def test_results_says_which_folder_it_wrote(results):
    """`backbone-bench results` names the folder BACKBONE_BENCH_RESULTS points at, not results/."""
    config = dict(dataset="uc_merced", shots=10, subset_seed=0, seed=0, backbone="regnetx_002", mode="linear_probe",
                  pretrained=True, resolution=64, recipe={})
    store.write_record(dict(key=store.config_key(config), config=config, status="ok", effective_shots=10,
                            subset_shared=False), FAKE_ARRAYS, results)
    out = subprocess.run([sys.executable, "-m", "backbone_bench", "results"], capture_output=True, text=True,
                         env=dict(os.environ, BACKBONE_BENCH_RESULTS=str(results)))
    assert out.returncode == 0, out.stderr
    assert f"{results / 'runs.csv'}" in out.stdout and (results / "runs.csv").exists()


def test_warnings_print_as_one_plain_line():
    import subprocess
    import sys

    code = ("import warnings, sys; from backbone_bench.cli.main import plain_warning; warnings.formatwarning = plain_warning;"
            " warnings.warn('the record x was moved aside')")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr
    assert err == "warning: the record x was moved aside\n"


@requires_mirror
def test_a_backbone_with_no_weights_fails_its_dry_run_with_the_reason(monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = subprocess.run([sys.executable, "-m", "backbone_bench", "run", "--preset", "quick", "--datasets", "uc_merced",
                          "--backbones", "resnet18.tv_in1k,tf_efficientnet_lite0", "--dry-run"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "resnet18.tv_in1k: no ImageNet weights" in out.stderr
    assert "Run the others: --backbones tf_efficientnet_lite0" in out.stderr and "finished" not in out.stdout
