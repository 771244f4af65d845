"""Training on a shared machine: wall time idle and beside 1 and 2 competing CPU-bound processes.

Two workloads, each the whole command a user types, in a fresh results folder and a fresh process:
- ``sweep``: one study fine-tune (`backbone-bench run`, mobilenetv2_100 on uc_merced, 10 shots,
  64 px, 50 steps);
- ``recommend``: `backbone-bench recommend` on a 5-class, 200-image cifar10 folder (exported from
  the mirror), one backbone, one seed, 64 px, 50 steps: the screen, the fine-tune, the scratch twin.

Each runs under OpenMP settings (``--settings``): ``today`` (as before the contention rule:
libgomp's default spin), ``passive`` (OMP_WAIT_POLICY=PASSIVE), ``auto`` (what the
command now chooses at its start; it prints the choice) and ``spin=N`` (GOMP_SPINCOUNT=N). A
competitor is ``python -c "while True: pass"``: one busy core each. Rows go to the CSV as they are
measured, with the ratio to the same workload's idle ``today``, and the fair share (the slowdown if
every runnable thread got an equal part of the cores).

    python benchmarks/contention.py --out results/benchmarks/contention.csv
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

BUSY = [sys.executable, "-c", "while True: pass"]
RUN = ["run", "--preset", "quick", "--datasets", "uc_merced", "--shots", "10", "--modes", "finetune",
       "--seeds", "0", "--backbones", "mobilenetv2_100", "--resolution", "64", "--steps", "150"]
RECOMMEND = ["--backbones", "mobilenetv2_100", "--top", "1", "--seeds", "1", "--resolution", "64", "--steps", "50",
             "--no-report", "--device", "cpu"]
# today: libgomp's own default, as every command ran before the rule (its documented spin count when
# OMP_WAIT_POLICY is unset); auto: nothing set, so the command chooses (lib/backbone_bench/cpu_share.py)
SETTINGS = {"today": {"GOMP_SPINCOUNT": "300000"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "auto": {}}


def settings_env(name: str) -> dict:
    if name.startswith("spin="):
        return {"GOMP_SPINCOUNT": name.split("=", 1)[1]}
    return SETTINGS[name]


def command(workload: str, folder: Path, work: Path) -> list[str]:
    bench = [sys.executable, "-m", "backbone_bench"]
    if workload == "sweep":
        return bench + RUN
    return bench + ["recommend", str(folder), *RECOMMEND, "--out", str(work / "recommend")]


def timed(workload: str, setting: str, competitors: int, folder: Path) -> tuple[float, str]:
    """Wall seconds of one fresh command beside ``competitors`` busy processes, and its thread line."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env |= settings_env(setting)
    busy = [subprocess.Popen(BUSY) for _ in range(competitors)]
    try:
        time.sleep(1.5 if competitors else 0)  # the competitors are running when the command starts
        with tempfile.TemporaryDirectory() as tmp:
            env["BACKBONE_BENCH_RESULTS"] = str(Path(tmp) / "results")
            start = time.perf_counter()
            out = subprocess.run(command(workload, folder, Path(tmp)), env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
    finally:
        for p in busy:
            p.kill()
            p.wait()
    if out.returncode:
        raise RuntimeError(f"{workload} under {setting}: {out.stderr[-1500:]}")
    line = next((x for x in out.stdout.splitlines() if re.search(r"torch threads|OpenMP", x)), "")
    return seconds, line


def with_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Each row's seconds over the median of its workload's idle ``today`` rows."""
    idle = table[(table["setting"] == "today") & (table["competitors"] == 0)].groupby("workload")["seconds"].median()
    return table.assign(vs_idle_today=(table["seconds"] / table["workload"].map(idle)).round(2))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default="sweep,recommend")
    p.add_argument("--settings", default="today,passive,auto")
    p.add_argument("--competitors", default="0,1,2")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", required=True, help="CSV to write (rows appended as measured)")
    p.add_argument("--append", action="store_true", help="keep the rows OUT already holds (more repeats)")
    args = p.parse_args(argv)

    import torch

    from backbone_bench.data.export import export
    from backbone_bench.environment import device_name, environment

    cores = os.cpu_count() or 1
    threads = torch.get_num_threads()
    before = pd.read_csv(args.out) if args.append and Path(args.out).exists() else pd.DataFrame()
    env = environment(torch.device("cpu"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cifar10_5cls"
        export("cifar10", folder, per_class=40, classes=("airplane", "automobile", "bird", "cat", "deer"))
        for workload in args.workloads.split(","):
            for competitors in map(int, args.competitors.split(",")):
                for repeat in range(args.repeats):  # settings interleaved: a drift of the machine hits each alike
                    for setting in args.settings.split(","):
                        seconds, line = timed(workload, setting, competitors, folder)
                        fair = max(1.0, (threads + competitors) / cores)
                        rows.append(dict(workload=workload, setting=setting, competitors=competitors, repeat=repeat,
                                         seconds=round(seconds, 2), fair_share_slowdown=round(fair, 2),
                                         chosen=line, device=device_name(torch.device("cpu")), torch=env["torch"],
                                         git_commit=env["git_commit"]))
                        table = with_ratios(pd.concat([before, pd.DataFrame(rows)], ignore_index=True))
                        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                        table.to_csv(args.out, index=False)
                        print(table.iloc[-1].drop(["device", "torch", "git_commit"]).to_dict(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
