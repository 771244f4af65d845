"""The lab's minutes per exercise on this machine, and the records behind its teacher's key.

Executes the instructor notebook (book/lab/instructor.ipynb, as `backbone-bench study` writes it)
with papermill in a fresh folder and a fresh data cache, as a student on a new machine would run it
(the set-up's time includes preparing CIFAR-10), and sums papermill's per-cell durations per part
(set-up, each exercise) into results/benchmarks/lab_minutes.csv. Then runs the lab's cells for
seeds 0, 1 and 2 (the notebook runs some of them) and stores those records in results/lab/, from
which the key gives the expected ranges.

    python benchmarks/lab_minutes.py
"""
from __future__ import annotations

import os
import shutil
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


def main() -> None:
    source = paths.REPO_ROOT / "book" / "lab" / "instructor.ipynb"
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
                             "measured_on": device_name(torch.device("cpu"))})
        rows = rows[~rows["part"].str.startswith("To write up")]
        target = paths.REPO_ROOT / "results" / "benchmarks" / "lab_minutes.csv"
        rows.to_csv(target, index=False)
        print(rows.to_string(index=False))
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
