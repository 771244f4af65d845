"""Sweeps on many workers with Dask: a LocalCluster on one machine, a running scheduler, or Slurm.

The unit of work is one config. A task trains it on a worker and returns the record and arrays
over the network (no shared filesystem needed); the driver alone writes records, atomically, as
in the sequential path. A task whose worker dies is retried once by Dask
(``distributed.scheduler.allowed-failures``), then recorded as ``error`` with the reason. On a GPU
machine the K workers share the GPUs (worker i uses GPU i mod n, with a capped memory fraction);
on a CPU each worker gets cores / K threads.
"""
from __future__ import annotations

import os
import time

from tqdm import tqdm

from backbone_bench import store

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


def train_task(config: dict, preset: str, device: str, workers: int, compile_model: bool):
    """Runs on a worker: (record, arrays) for one config."""
    from distributed import get_worker

    from backbone_bench.environment import environment, pick_device
    from backbone_bench.sweep import run_config

    _injected_fault()
    try:
        index = int(str(get_worker().name).rsplit("-", 1)[-1])
    except (ValueError, AttributeError):
        index = 0
    dev = pick_device(worker_device(device, index, workers))
    return run_config(config, preset, dev, environment(dev), compile_model)


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


def execute_distributed(plan, device: str = "auto", results=None, progress: bool = True, compile_model: bool = False,
                        workers: int = 2, scheduler: str | None = None, cluster=None) -> dict:
    from distributed import as_completed

    from backbone_bench.environment import environment, pick_device
    from backbone_bench.sweep import record_base

    client, local = _client(workers, scheduler, cluster, device)
    counts: dict[str, int] = {}
    claimed, futures = [], {}
    try:
        for config in plan.configs:
            key = store.config_key(config)
            if not store.claim(key, results):
                counts["elsewhere"] = counts.get("elsewhere", 0) + 1
                continue
            claimed.append(key)
            # the task key is the config key: Dask never runs the same config twice at once
            futures[client.submit(train_task, config, plan.preset, device, workers, compile_model, key=key,
                                  pure=False)] = config
        n_workers = len(client.scheduler_info().get("workers", {})) or workers
        start = time.perf_counter()
        bar = tqdm(total=len(futures), desc=f"{plan.label or 'sweep ' + plan.preset} on {n_workers} workers", unit="run",
                   disable=not progress)
        for future in as_completed(futures):
            config = futures[future]
            try:
                record, arrays = future.result()
            except Exception as err:  # the worker died twice: the run is recorded, the sweep goes on
                record = record_base(config, plan.preset, environment(pick_device(device)), compile_model)
                record |= dict(status="error", reason=f"worker lost: {type(err).__name__}: {err}")
                arrays = None
            store.write_record(record, arrays, results)
            store.release(record["key"], results)
            counts[record["status"]] = counts.get(record["status"], 0) + 1
            bar.update(1)
            hours = (time.perf_counter() - start) / 3600
            bar.set_postfix_str(f"{bar.n / max(hours, 1e-9):.0f} runs/hour")
        bar.close()
    finally:
        for key in claimed:  # anything not finished (driver interrupted) is free again
            store.release(key, results)
        client.close()
        if local is not None:
            local.close()
    store.compile_table(results)
    return counts
