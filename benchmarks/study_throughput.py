"""Study throughput: runs per hour with runs one at a time against K runs at once on one device.

Small backbones leave a large GPU mostly idle; running several runs concurrently (separate
processes sharing the device) fills it. On a CPU each of K processes gets cores/K threads (OMP_NUM_THREADS),
as a user running them side by side would set. This script times the same set of runs both ways, in
one invocation, into two fresh results folders, and writes one CSV row per setting.

    python benchmarks/study_throughput.py --concurrency 1,4 --runs 8 --out results/benchmarks/study_throughput.csv
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from backbone_bench.environment import environment, pick_device


def cpu_threads(concurrency: int, device: str) -> int | None:
    """On a CPU, K processes share the cores instead of each claiming all of them."""
    return max(1, (os.cpu_count() or 1) // concurrency) if device == "cpu" else None


def run_batch(configs: list[list[str]], concurrency: int, results: Path, device: str) -> float:
    """Wall seconds to finish every config with at most ``concurrency`` processes at a time."""
    env = dict(os.environ, BACKBONE_BENCH_RESULTS=str(results))
    threads = cpu_threads(concurrency, device)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    pending, running = list(configs), []
    start = time.perf_counter()
    while pending or running:
        while pending and len(running) < concurrency:
            args = pending.pop(0)
            running.append(subprocess.Popen([sys.executable, "-m", "backbone_bench", "run", "--device", device, *args],
                                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.2)
        for proc in [p for p in running if p.poll() is not None]:
            if proc.returncode != 0:
                raise RuntimeError(f"a run failed with exit code {proc.returncode}")
            running.remove(proc)
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick")
    p.add_argument("--dataset", default="uc_merced")
    p.add_argument("--backbone", default="tf_efficientnet_lite0")
    p.add_argument("--runs", type=int, default=4, help="runs per setting (distinct seeds x modes)")
    p.add_argument("--concurrency", default="1,2")
    p.add_argument("--resolution", type=int, default=0, help="default: the preset's")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="results/benchmarks/study_throughput.csv")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    modes = ["finetune", "scratch"]
    configs = [["--preset", args.preset, "--datasets", args.dataset, "--backbones", args.backbone, "--modes",
                modes[i % 2], "--seeds", str(i // 2 % 3), "--shots", str(10 * (1 + i // 6))]
               + (["--resolution", str(args.resolution)] if args.resolution else []) for i in range(args.runs)]
    rows = []
    for k in [int(c) for c in args.concurrency.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            seconds = run_batch(configs, k, Path(tmp), device.type)
        rows.append(dict(concurrency=k, cpu_threads_per_run=cpu_threads(k, device.type), runs=len(configs), seconds=seconds, runs_per_hour=3600 * len(configs) / seconds,
                         preset=args.preset, dataset=args.dataset, backbone=args.backbone, **environment(device)))
        print(f"concurrency {k}: {len(configs)} runs in {seconds:.1f} s = {rows[-1]['runs_per_hour']:.1f} runs/hour", flush=True)
    table = pd.DataFrame(rows)
    table["gain_vs_one_at_a_time"] = table["runs_per_hour"] / table.loc[table["concurrency"].idxmin(), "runs_per_hour"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(table[["concurrency", "runs_per_hour", "gain_vs_one_at_a_time"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
