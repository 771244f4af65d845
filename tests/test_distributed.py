"""Sweeps on Dask workers and with several drivers: nothing lost, nothing run twice (CPU, small)."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

from backbone_bench.study import store
from backbone_bench.study.execute import execute
from backbone_bench.study.plan import build_plan
from conftest import REPO, requires_mirror

PLAN = dict(datasets=["breastmnist"], backbones=["tf_mobilenetv3_small_100", "regnetx_002"], shots=[10], seeds=[0, 1],
            modes=["linear_probe"], resolution=32)
CLI = [sys.executable, "-m", "backbone_bench", "run", "--preset", "quick", "--datasets", "breastmnist",
       "--backbones", "tf_mobilenetv3_small_100,regnetx_002", "--modes", "linear_probe", "--seeds", "0,1",
       "--resolution", "32", "--device", "cpu"]


def records(folder):
    return {r["key"]: r for r in store.read_records(folder)}


@requires_mirror
def test_two_local_workers_make_the_sequential_records_even_when_a_worker_is_killed(tmp_path, monkeypatch):
    sequential, parallel = tmp_path / "sequential", tmp_path / "parallel"
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(sequential))
    assert execute(build_plan("quick", **PLAN), "cpu", sequential, progress=False) == {"ok": 4}
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(parallel))
    monkeypatch.setenv("BACKBONE_BENCH_KILL_WORKER", str(tmp_path))  # the first task's worker dies (SIGKILL)
    counts = execute(build_plan("quick", **PLAN), "cpu", parallel, progress=False, workers=2)
    assert (tmp_path / "killed").exists() and counts == {"ok": 4}  # Dask retried the lost task elsewhere
    a, b = records(sequential), records(parallel)
    assert set(a) == set(b) and len(b) == 4
    for key in a:
        assert np.array_equal(store.read_arrays(key, sequential)["test_pred"], store.read_arrays(key, parallel)["test_pred"])
    assert not list((parallel / "runs" / ".claims").iterdir())


@requires_mirror
def test_a_task_whose_worker_keeps_dying_is_recorded_as_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(tmp_path / "r"))
    monkeypatch.setenv("BACKBONE_BENCH_KILL_WORKER", f"always:{tmp_path}")
    plan = build_plan("quick", **dict(PLAN, backbones=["regnetx_002"], seeds=[0]))
    assert execute(plan, "cpu", tmp_path / "r", progress=False, workers=2) == {"error": 1}
    assert "worker lost" in store.read_records(tmp_path / "r")[0]["reason"]


def _finished(output: str) -> int:
    match = re.search(r"finished: .*?(\d+) ok", output)
    return int(match.group(1)) if match else 0


@requires_mirror
def test_two_drivers_on_one_results_folder_run_each_config_once(tmp_path):
    env = dict(os.environ, BACKBONE_BENCH_RESULTS=str(tmp_path))
    procs = [subprocess.Popen(CLI, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert sum(_finished(o) for o in outputs) == 4, outputs  # each config trained by exactly one driver
    assert len(records(tmp_path)) == 4


@requires_mirror
def test_a_killed_distributed_driver_restarts_without_losing_or_repeating_runs(tmp_path):
    env = dict(os.environ, BACKBONE_BENCH_RESULTS=str(tmp_path))
    command = CLI + ["--workers", "2"]
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "runs").glob("*.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local workers
    proc.wait()
    done_before = len(list((tmp_path / "runs").glob("*.json")))
    assert 1 <= done_before <= 4
    out = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600).stdout
    assert _finished(out) == 4 - done_before  # the dead driver's claims did not block the restart
    assert len(records(tmp_path)) == 4


def test_slurm_job_script_is_generated_without_slurm():
    from backbone_bench.study.distributed import slurm_cluster

    cluster = slurm_cluster(partition="gpu", gres="gpu:1", walltime="04:00:00", jobs=3)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p gpu" in script and "#SBATCH --gres=gpu:1" in script and "#SBATCH -t 04:00:00" in script
    assert "distributed.cli.dask_worker" in script and cluster.wanted_jobs == 3
