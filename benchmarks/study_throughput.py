"""Study throughput: runs per hour of one sweep executed in this process against K Dask workers.

Small backbones leave a large GPU mostly idle; K workers sharing it (``--workers K``) fill it. On
a CPU each of the K workers gets cores/K threads. This script times the same plan at each worker
count, in one invocation, into fresh results folders, and writes one CSV row per setting.

    python benchmarks/study_throughput.py --workers 1,2 --runs 8 --out results/benchmarks/study_throughput_cpu.csv
    python benchmarks/study_throughput.py --workers 1,4,8 --device cuda --out results/benchmarks/study_throughput_gpu.csv
"""
from __future__ import annotations

import argparse
import os

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from backbone_bench.environment import environment, pick_device
from backbone_bench.study.plan import build_plan
from backbone_bench.study.execute import execute


def run_batch(plan, workers: int, results: Path, device: str) -> float:
    """Wall seconds to finish the plan with ``workers`` Dask workers (1: in this process)."""
    start = time.perf_counter()
    counts = execute(plan, device, results, progress=False, workers=workers)
    if set(counts) != {"ok"}:
        raise RuntimeError(f"runs failed: {counts}")
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick")
    p.add_argument("--dataset", default="uc_merced")
    p.add_argument("--backbone", default="tf_efficientnet_lite0")
    p.add_argument("--runs", type=int, default=4, help="runs per setting (distinct seeds x modes)")
    p.add_argument("--workers", default="1,2", help="worker counts to compare, e.g. 1,2 (CPU) or 1,4,8 (GPU)")
    p.add_argument("--resolution", type=int, default=0, help="default: the preset's")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="results/benchmarks/study_throughput.csv")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    seeds = list(range(min(3, max(1, args.runs // 2))))
    plan = build_plan(args.preset, [args.dataset], [args.backbone], [10], ["finetune", "scratch"], seeds,
                      args.resolution or None, skip_done=False)
    plan.configs = plan.configs[: args.runs]
    rows = []
    for k in [int(c) for c in args.workers.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            seconds = run_batch(plan, k, Path(tmp), args.device)
        rows.append(dict(workers=k, threads_per_worker=max(1, (os.cpu_count() or 1) // k) if device.type == "cpu" else None,
                         runs=len(plan.configs), seconds=seconds, runs_per_hour=3600 * len(plan.configs) / seconds,
                         preset=args.preset, dataset=args.dataset, backbone=args.backbone, **environment(device)))
        print(f"workers {k}: {len(plan.configs)} runs in {seconds:.1f} s = {rows[-1]['runs_per_hour']:.1f} runs/hour", flush=True)
    table = pd.DataFrame(rows)
    table["gain_vs_one_worker"] = table["runs_per_hour"] / table.loc[table["workers"].idxmin(), "runs_per_hour"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(table[["workers", "runs_per_hour", "gain_vs_one_worker"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
