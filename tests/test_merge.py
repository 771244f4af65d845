"""Importing records made elsewhere: verified against config, arrays and this checkout's data."""
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from backbone_bench import environment
from backbone_bench.study import store
from backbone_bench.study.merge import merge
from backbone_bench.study.execute import execute
from backbone_bench.study.plan import build_plan
from backbone_bench.study.run import FEATURES
from conftest import SHARED, requires_mirror

REPO = Path(__file__).resolve().parents[1]

PROBE = dict(datasets=["uc_merced"], backbones=["tf_mobilenetv3_small_100"], shots=[10], seeds=[0, 1],
             modes=["linear_probe"], resolution=32)


@requires_mirror
def test_merge_imports_sound_records_and_refuses_tampered_or_mismatched_ones(tmp_path, monkeypatch):
    elsewhere = tmp_path / "gpu-box"
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(elsewhere))
    assert execute(build_plan("quick", **PROBE), "cpu", elsewhere, progress=False) == {"ok": 2}
    runs = sorted((elsewhere / "runs").glob("*.json"))
    good, other = runs
    # a copy whose metrics were edited after the fact keeps a valid key but not valid arrays ...
    tampered = json.loads(other.read_text())
    tampered["config"]["shots"] = 100  # claims another config under the old key
    bad_key = elsewhere / "runs" / "ffffffffffffffff.json"
    bad_key.write_text(json.dumps(tampered | {"key": "ffffffffffffffff"}))
    # ... and a record made on other splits
    foreign = json.loads(other.read_text())
    foreign["splits_digest"] = "0" * 16
    other.write_text(json.dumps(foreign))

    local = tmp_path / "local"
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(local))
    report = merge(elsewhere, local)
    assert report.imported == [good.name]
    reasons = dict(report.refused)
    assert "key is not the hash of its config" in reasons[bad_key.name]
    assert "other splits" in reasons[other.name]
    assert "refused" in report.summary() and "1 imported" in report.summary()
    imported = store.read_arrays(good.stem, local)
    assert np.array_equal(imported["test_pred"], store.read_arrays(good.stem, elsewhere)["test_pred"])
    # a second merge skips what is present and writes nothing new
    again = merge(elsewhere, local)
    assert again.imported == [] and again.skipped == [good.name]
    # predictions that are not the argmax of the probabilities are refused
    third = tmp_path / "third"
    shutil.copytree(elsewhere, third)
    path = third / "runs" / f"{good.stem}.npz"
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["test_pred"] = (arrays["test_pred"] + 1) % 21
    np.savez_compressed(path, **arrays)
    assert "argmax" in dict(merge(third, tmp_path / "fourth").refused)[good.name]


def test_merge_names_a_folder_that_is_not_a_results_folder(tmp_path):
    from backbone_bench.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="not a results folder"):
        merge(tmp_path / "nothing-here")


@requires_mirror
def test_a_bundle_runs_a_config_with_the_same_key_and_predictions_as_the_mirror(tmp_path, monkeypatch):
    """Only the images and weights the run reads travel; the run on the bundle alone is the same run."""
    from backbone_bench.study.bundle import make_bundle

    config = dict(PROBE, seeds=[0])
    mirror = tmp_path / "mirror-results"
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(mirror))
    plan = build_plan("quick", **config)
    sizes = make_bundle(plan.configs, tmp_path / "bundle")
    assert execute(plan, "cpu", mirror, progress=False) == {"ok": 1}
    bundled = (tmp_path / "bundle" / "uc_merced.bundle" / "images.parquet").stat().st_size
    mirror_size = sum(f.stat().st_size for f in (SHARED / "data" / "uc_merced").glob("*.parquet"))
    assert bundled < 0.5 * mirror_size  # 798 of the 2,100 images: the run's subset, val and test
    assert set(sizes) == {"uc_merced", "weights/tf_mobilenetv3_small_100"}

    from backbone_bench import paths
    from backbone_bench.data import bundled
    from backbone_bench.models.backbones import _sha256

    bundled._load_bundle.cache_clear(), _sha256.cache_clear()
    monkeypatch.setenv("BACKBONE_BENCH_DATA", str(tmp_path / "bundle"))  # the mirror is out of reach now
    monkeypatch.setenv("BACKBONE_BENCH_WEIGHTS", str(tmp_path / "bundle" / "weights"))
    monkeypatch.setenv("BACKBONE_BENCH_CACHE", str(tmp_path / "empty-cache"))
    there = tmp_path / "bundle-results"
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(there))
    assert paths.data_mirrors() == [tmp_path / "bundle"]
    FEATURES.entries.clear()
    again = build_plan("quick", **config)
    assert [store.config_key(c) for c in again.configs] == [store.config_key(c) for c in plan.configs]
    # the copy that travels has no .git: the commit comes with it (benchmarks/device/setup.sh)
    monkeypatch.setenv("BACKBONE_BENCH_COMMIT", "0123456789ab")
    environment.git_commit.cache_clear()
    try:
        assert execute(again, "cpu", there, progress=False) == {"ok": 1}
    finally:
        environment.git_commit.cache_clear()
    key = store.config_key(plan.configs[0])
    assert json.loads((there / "runs" / f"{key}.json").read_text())["environment"]["git_commit"] == "0123456789ab"
    a, b = store.read_arrays(key, mirror), store.read_arrays(key, there)
    assert np.array_equal(a["test_index"], b["test_index"]) and np.array_equal(a["test_pred"], b["test_pred"])
    assert np.allclose(a["test_prob"].astype(float), b["test_prob"].astype(float), atol=2e-3)

    # the records come back as one archive (bb_collect in setup.sh) and are merged, verified
    archive = tmp_path / "records.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(there / "runs", arcname="runs")
    assert merge(archive, tmp_path / "home").imported == [f"{key}.json"]


def test_the_device_kit_carries_the_versions_this_project_pins():
    """The wheels carried to a GPU machine are the pinned versions, so its records name the same stack."""
    import re
    import tomllib

    pins = dict(re.split(r"==", d) for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
                if "==" in d)
    kit = dict(line.split("==") for line in (REPO / "benchmarks" / "device" / "wheels.txt").read_text().splitlines()
               if "==" in line and not line.startswith("#"))
    shared = set(pins) & set(kit)
    assert {"dask", "distributed", "dask-jobqueue", "imagehash", "papermill", "nbconvert", "itables", "adjustText"} <= shared
    assert {name: kit[name] for name in shared} == {name: pins[name] for name in shared}


@requires_mirror
def test_an_error_record_is_imported_as_a_failure_to_retry_and_gives_way_to_a_record_from_elsewhere(tmp_path, monkeypatch):
    from backbone_bench.study.run import failure_record, record_base

    elsewhere, local = tmp_path / "gpu-box", tmp_path / "local"
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(elsewhere))
    plan = build_plan("quick", **dict(PROBE, seeds=[0]))
    assert execute(plan, "cpu", elsewhere, progress=False) == {"ok": 1}
    config = plan.configs[0]
    key = store.config_key(config)
    # here the same run failed for no reason of its own (a full disk, say)
    store.write_record(failure_record(record_base(config, "quick", {}), OSError("No space left on device")), None, local)
    report = merge(elsewhere, local)
    assert report.imported == [f"{key}.json"]  # the record from elsewhere replaces the local error
    assert store.read_records(local)[0]["status"] == "ok"
    # an error record from elsewhere is imported as a failure, and the run stays to do
    other = tmp_path / "other"
    store.write_record(failure_record(record_base(config | {"seed": 1, "subset_seed": 1}, "quick", {}),
                                      RuntimeError("worker lost")), None, other)
    report = merge(other, local)
    assert report.imported == [] and [s for _, s in report.failures] == ["error"]
    assert "1 failures imported (1 errors, which the next sweep runs again)" in report.summary()
    assert len(store.done_keys(local)) == 1
