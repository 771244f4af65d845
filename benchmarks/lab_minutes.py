"""The lab's minutes per exercise on this machine, and the records behind its teacher's key.

Executes the instructor notebook (book/lab/instructor.ipynb, as `backbone-bench study` writes it)
with papermill in a fresh folder and a fresh data cache, as a student on a new machine would run it
(the set-up's time includes preparing CIFAR-10), and sums papermill's per-cell durations per part
(set-up, each exercise) into results/benchmarks/lab_minutes.csv. Then runs the lab's cells for
seeds 0, 1 and 2 (the notebook runs some of them) and stores those records in results/lab/, from
which the key gives the expected ranges.

With ``--competitors N`` the notebook runs beside N busy processes (``python -c "while True: pass"``,
one core each: a shared lab server), its minutes are stored as the rows of that load (the other
loads' rows are kept) and no records are made.

    python benchmarks/lab_minutes.py
    python benchmarks/lab_minutes.py --competitors 2
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import torch

from backbone_bench import paths
from backbone_bench.environment import device_name
from backbone_bench.report import lab
from backbone_bench.report.kernels import IPC_KERNEL
from backbone_bench.study.execute import execute
from backbone_bench.study.plan import build_plan


def parts(nb) -> list[tuple[str, float]]:
    """(part, seconds): cells from one level-2 heading to the next belong to that heading's part."""
    out, part = [], "set-up"
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            part = cell.source.splitlines()[0][3:].strip()
            if part.startswith("Set-up"):
                part = "set-up"
        seconds = cell.metadata.get("papermill", {}).get("duration") or 0.0
        if cell.cell_type == "code":
            out.append((part, seconds))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--competitors", type=int, default=0, help="busy processes beside the notebook")
    p.add_argument("--no-records", action="store_true", help="the minutes only: leave results/lab/ as it is")
    args = p.parse_args(argv)
    source = paths.REPO_ROOT / "book" / "lab" / "instructor.ipynb"
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.competitors)]
    try:
        measure(source, args.competitors, records=not args.no_records and not args.competitors)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()


def chosen(nb) -> str:
    """What the set-up cell said about OpenMP's waiting (cpu_share.choose), as the student saw it."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("OpenMP:"):
                    return line
    return ""


def measure(source: Path, competitors: int, records: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work, cache = Path(tmp) / "student", Path(tmp) / "cache"
        work.mkdir()
        os.environ["BACKBONE_BENCH_CACHE"] = str(cache)  # a new machine: nothing prepared yet
        out = work / "instructor.ipynb"
        pm.execute_notebook(str(source), str(out), cwd=str(work), kernel_name="python3", progress_bar=True,
                            kernel_manager_class=IPC_KERNEL)
        done = nbformat.read(out, as_version=4)
        t = pd.DataFrame(parts(done), columns=["part", "seconds"]).groupby("part", sort=False)["seconds"].sum()
        rows = pd.DataFrame({"part": t.index, "minutes": (t.to_numpy() / 60).round(2),
                             "measured_on": device_name(torch.device("cpu")), "competitors": competitors,
                             "openmp": chosen(done)})
        rows = rows[~rows["part"].str.startswith("To write up")]
        target = lab.MINUTES
        if target.exists():  # the other loads' rows stay
            kept = pd.read_csv(target)
            kept = kept.assign(competitors=kept.get("competitors", 0)).fillna({"competitors": 0})
            rows = pd.concat([kept[kept["competitors"] != competitors], rows], ignore_index=True)
        rows.astype({"competitors": int}).to_csv(target, index=False)
        print(rows.to_string(index=False))
        if not records:
            print(f"wrote {target} (no records made)")
            return
        # the key's records: the notebook's runs, then the seeds it does not run
        made = work / "lab-results"
        shutil.rmtree(lab.RECORDS, ignore_errors=True)
        (lab.RECORDS / "runs").mkdir(parents=True)
        for f in [p for p in (made / "runs").glob("*.*") if p.is_file()]:
            shutil.copy2(f, lab.RECORDS / "runs" / f.name)
        os.environ["BACKBONE_BENCH_RESULTS"] = str(lab.RECORDS)
        plan = build_plan("quick", modes=["finetune", "scratch", "linear_probe"], seeds=[0, 1, 2],
                          results=lab.RECORDS, **lab.GRID)
        execute(plan, "cpu", lab.RECORDS)
    print(f"wrote {target} and the records in {lab.RECORDS}")


if __name__ == "__main__":
    main()
