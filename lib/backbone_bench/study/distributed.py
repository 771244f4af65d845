"""Sweeps on many workers with Dask: a LocalCluster on one machine, a running scheduler, or Slurm.

The unit of work is one group (plan.py). A task trains it on a worker and returns its records and
arrays over the network (no shared filesystem needed); the driver alone writes records
(execute.py). A task whose worker dies is retried once by Dask
(``distributed.scheduler.allowed-failures``), then its runs are recorded as ``error`` with the reason. On a GPU
machine the K workers share the GPUs (worker i uses GPU i mod n, with a capped memory fraction);
on a CPU each worker gets cores / K threads.
"""
from __future__ import annotations

import os

from backbone_bench.study import store

ALLOWED_FAILURES = 1  # a worker killed mid-task: one retry elsewhere, then an error record


def worker_device(device: str, index: int, workers: int) -> str:
    """The device a worker uses: GPUs are shared round-robin; CPUs are shared by threads."""
    import torch

    from backbone_bench.environment import pick_device

    dev = pick_device(device)
    if dev.type == "cuda":
        gpu = index % torch.cuda.device_count()
        share = min(1.0, torch.cuda.device_count() / workers)
        torch.cuda.set_per_process_memory_fraction(min(0.95, share * 0.95), gpu)
        return f"cuda:{gpu}"
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    return "cpu"


def train_task(configs: list, preset: str, device: str, workers: int, compile_model: bool):
    """Runs on a worker: [(record, arrays)] for one group."""
    from distributed import get_worker

    from backbone_bench.environment import environment, pick_device
    from backbone_bench.study.run import run_configs

    _injected_fault()
    try:
        index = int(str(get_worker().name).rsplit("-", 1)[-1])
    except (ValueError, AttributeError):
        index = 0
    dev = pick_device(worker_device(device, index, workers))
    return run_configs(configs, preset, dev, environment(dev), compile_model)


def _injected_fault() -> None:
    """For the fault tests only: BACKBONE_BENCH_KILL_WORKER=DIR kills the worker running the first
    task (once, marked by DIR/killed); =always:DIR kills every worker that starts a task."""
    spec = os.environ.get("BACKBONE_BENCH_KILL_WORKER")
    if not spec:
        return
    always, folder = spec.startswith("always:"), spec.removeprefix("always:")
    import signal
    from pathlib import Path

    marker = Path(folder) / "killed"
    if always or not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def slurm_cluster(partition: str | None = None, gres: str | None = None, walltime: str = "02:00:00", jobs: int = 1,
                  cores: int = 8, memory: str = "32GB", **extra):
    """A dask_jobqueue SLURMCluster, one worker per job; nothing is submitted until ``.scale(jobs=...)``
    (``.job_script()`` shows what would be). ``jobs`` is kept on the cluster as ``wanted_jobs``."""
    from dask_jobqueue import SLURMCluster

    directives = [f"--gres={gres}"] if gres else []
    cluster = SLURMCluster(queue=partition, cores=cores, processes=1, memory=memory, walltime=walltime,
                           job_extra_directives=directives, **extra)
    cluster.wanted_jobs = jobs
    return cluster


def _client(workers: int, scheduler: str | None, cluster, device: str):
    import dask
    from distributed import Client, LocalCluster

    dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES})
    if scheduler:
        return Client(scheduler), None
    if cluster is not None:
        cluster.scale(jobs=getattr(cluster, "wanted_jobs", 1))
        return Client(cluster), None
    local = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                         silence_logs=40)
    return Client(local), local


def run_distributed(plan, device: str, compile_model: bool, workers: int, scheduler: str | None, cluster, claims,
                    bar):
    """Submit every claimed group as a task; yield each group's [(record, arrays)] as it completes."""
    from distributed import as_completed

    from backbone_bench.environment import environment, pick_device
    from backbone_bench.study.run import failure_record, record_base

    client, local = _client(workers, scheduler, cluster, device)
    try:
        futures = {}
        for group in plan.groups(pick_device(device).type):
            mine = claims.take(group)
            if mine:  # the task key is derived from the run keys: Dask never runs the same group twice at once
                key = "group-" + store.config_key(dict(runs=[store.config_key(c) for c in mine]))
                futures[client.submit(train_task, mine, plan.preset, device, workers, compile_model, key=key,
                                      pure=False)] = mine
        n_workers = len(client.scheduler_info().get("workers", {})) or workers
        bar.set_description(f"{plan.label or 'sweep ' + plan.preset} on {n_workers} workers")
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as err:  # the worker died twice: the runs are recorded, the sweep goes on
                env = environment(pick_device(device))
                lost = RuntimeError(f"worker lost: {type(err).__name__}: {err}")
                yield [(failure_record(record_base(c, plan.preset, env, compile_model), lost), None)
                       for c in futures[future]]
    finally:
        client.close()
        if local is not None:
            local.close()
