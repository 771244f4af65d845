"""Damaged results: every kind of damage is moved aside with its reason, and nothing else is lost.

The records are made here by a real 5-step run (uc_merced, 48 px) and then damaged by hand."""
import json
import subprocess
import sys

import pytest

from backbone_bench.study import store
from backbone_bench.study.execute import execute
from backbone_bench.study.plan import build_plan
from conftest import REPO, requires_mirror

SMALL = dict(datasets=["uc_merced"], backbones=["tf_efficientnet_lite0"], shots=[10], seeds=[0],
             modes=["linear_probe"], resolution=48)


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "backbone_bench", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Two intact records (a probe and a 5-step fine-tune) to damage, made once."""
    import os

    folder = tmp_path_factory.mktemp("made") / "results"
    old = os.environ.get("BACKBONE_BENCH_RESULTS")
    os.environ["BACKBONE_BENCH_RESULTS"] = str(folder)
    try:
        plan = build_plan("quick", **dict(SMALL, modes=["linear_probe", "finetune"]), steps=5)
        assert execute(plan, "cpu", folder, progress=False) == {"ok": 2}
    finally:
        if old is None:
            del os.environ["BACKBONE_BENCH_RESULTS"]
        else:
            os.environ["BACKBONE_BENCH_RESULTS"] = old
    return folder


def _copy(made, tmp_path):
    import shutil

    shutil.copytree(made, tmp_path / "results")
    return tmp_path / "results"


@requires_mirror
@pytest.mark.parametrize("damage", ["json_cut", "npz_cut", "key_edited", "npz_missing"])
def test_a_damaged_record_is_moved_aside_and_made_again(made, tmp_path, monkeypatch, damage):
    import os

    results = _copy(made, tmp_path)
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(results))
    records = store.read_records(results)
    assert len(records) == 2
    victim, other = records[0]["key"], records[1]["key"]
    js, npz = results / "runs" / f"{victim}.json", results / "runs" / f"{victim}.npz"
    if damage == "json_cut":
        js.write_text(js.read_text()[: len(js.read_text()) // 2])
    elif damage == "npz_cut":
        npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    elif damage == "key_edited":
        record = json.loads(js.read_text())
        record["config"]["shots"] = 11
        js.write_text(json.dumps(record))
    else:
        npz.unlink()
    env = dict(os.environ)
    check = _cli("results", "--check", env=env)
    assert check.returncode == 1, check.stderr
    assert victim in check.stdout and "Traceback" not in check.stderr
    assert (results / "runs" / ".quarantine" / f"{victim}.json").exists()   # moved, never deleted
    assert [r["key"] for r in store.read_records(results)] == [other]       # the other record is untouched
    again = _cli("results", "--check", env=env)
    assert again.returncode == 0 and "1 records intact" in again.stdout
    dry = _cli("run", "--preset", "quick", "--datasets", "uc_merced", "--backbones", "tf_efficientnet_lite0",
               "--shots", "10", "--seeds", "0", "--resolution", "48", "--modes", "linear_probe,finetune",
               "--steps", "5", "--dry-run", env=env)
    assert dry.returncode == 0 and "1 runs to do, 1 already recorded" in dry.stdout  # the damaged one: to be made again


@requires_mirror
def test_a_damaged_record_found_while_planning_warns_and_does_not_stop_the_plan(made, tmp_path):
    results = _copy(made, tmp_path)
    victim = store.read_records(results)[0]["key"]
    (results / "runs" / f"{victim}.json").write_text("{not json")
    with pytest.warns(UserWarning, match=f"{victim}.json: damaged record moved"):
        keys = store.done_keys(results)
    assert victim not in keys and len(keys) == 1


@pytest.mark.parametrize("where", ["under_a_file", "read_only"])
def test_a_results_folder_that_cannot_be_written_is_named_before_any_compute(tmp_path, monkeypatch, where):
    import errno
    import os
    from pathlib import Path

    from backbone_bench import paths
    from backbone_bench.cli.main import main

    if where == "under_a_file":
        (tmp_path / "afile").write_text("")
        folder = tmp_path / "afile" / "results"
        expected = "is a file, not a folder"
    else:
        folder = tmp_path / "ro" / "results"
        real = Path.mkdir

        def read_only(self, *a, **k):  # what a read-only mount answers (root ignores chmod, so simulated)
            if str(self).startswith(str(tmp_path / "ro")):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
            return real(self, *a, **k)

        monkeypatch.setattr(Path, "mkdir", read_only)
        expected = "cannot be created (Read-only file system)"
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(folder))
    with pytest.raises(Exception, match="results folder") as err:
        paths.check_results()
    assert expected in str(err.value) and "BACKBONE_BENCH_RESULTS" in str(err.value)
    assert "--results" not in str(err.value)  # run and results have no --results: the message offers none
    with pytest.raises(Exception, match="give --results"):
        paths.check_results(option="--results")
    assert main(["results"]) == 2
    assert main(["run", "--preset", "quick", "--datasets", "uc_merced"]) == 2
    if where == "under_a_file":
        assert main(["run", "--preset", "quick", "--datasets", "uc_merced", "--dry-run"]) == 2


def test_results_on_an_empty_folder_claims_no_file(tmp_path, monkeypatch, capsys):
    from backbone_bench.cli.main import main

    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(tmp_path / "new"))
    assert main(["results"]) == 0
    assert "nothing written" in capsys.readouterr().out and not (tmp_path / "new" / "runs.csv").exists()
