"""How long the book's pages take to execute one at a time and two at a time, side by side.

Each page is a papermill kernel that keeps about one core busy, so ``execute_notebooks`` runs two
at a time on two cores. This script executes the same edition's pages (the published one over the
committed results, by default) into two scratch folders, alternating ``--jobs`` values within one
invocation, and checks that the executed pages are the same bytes whichever way they ran. Rows:
one per (jobs, repeat) with wall seconds, pages, cores and whether the bytes matched the first run.

    python benchmarks/book_pages.py --out results/benchmarks/book_pages_cpu.csv
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from backbone_bench import paths
from backbone_bench.environment import device_name
from backbone_bench.report.build import execute_notebooks
from backbone_bench.study.published import edition


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=None, help="default: the published edition")
    ap.add_argument("--jobs", default="1,2", help="pages at a time, each value timed in turn")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap draws per page (the book's: 1000)")
    ap.add_argument("--out", default="results/benchmarks/book_pages_cpu.csv")
    args = ap.parse_args()

    results = paths.results_dir()
    preset = args.preset or edition(results)
    rows, first = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for jobs in map(int, args.jobs.split(",")):
                root = Path(scratch) / f"jobs{jobs}"
                start = time.perf_counter()
                done = execute_notebooks(preset, root, results, args.n_boot, progress=False, jobs=jobs)
                seconds = time.perf_counter() - start
                pages = {p.relative_to(root).as_posix(): p.read_bytes() for p in done}
                first = first or pages
                rows.append(dict(preset=preset, jobs=jobs, repeat=repeat, seconds=round(seconds, 1), pages=len(done),
                                 n_boot=args.n_boot, cores=os.cpu_count(), device=device_name(torch.device("cpu")),
                                 same_bytes=pages == first))
                print(rows[-1])
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    seconds = table.pivot(index="repeat", columns="jobs", values="seconds")
    for jobs in seconds.columns.drop(1) if 1 in seconds else ():  # the pace against one page at a time
        print(f"jobs {jobs}: " + ", ".join(f"{x:.2f}x" for x in seconds[1] / seconds[jobs]) + " the pace of one at a time")


if __name__ == "__main__":
    main()
