"""`recommend` against its budgets, on a 2,000-image, 5-class folder (cifar10, exported as files).

Budgets (issue "Your own data"): the linear-probe screen of the `offline` panel on a 2-core CPU at
128 px in under 10 minutes; the whole command on one GPU at 224 px in under 10 minutes. Each
phase's wall time (OUT/timing.json) becomes a CSV row, with the device and the budget.

    python benchmarks/recommend_budget.py --device cpu --resolution 128 --screen-only \
        --out results/benchmarks/recommend_budget_cpu.csv
    python benchmarks/recommend_budget.py --device cuda --resolution 224 --out results/benchmarks/recommend_budget_gpu.csv

A machine without the data mirror takes the folder exported elsewhere (``--folder``; the same 2,000
files: ``backbone-bench data export cifar10 DIR --per-class 400 --classes airplane,...``).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

BUDGET_S = 600
CLASSES = ("airplane", "automobile", "bird", "cat", "deer")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--per-class", type=int, default=400)
    p.add_argument("--screen-only", action="store_true")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--folder", help="an exported folder to use instead of exporting cifar10 here")
    p.add_argument("--out", required=True, help="CSV to write")
    args = p.parse_args(argv)

    from backbone_bench.data.export import export
    from backbone_bench.environment import environment, pick_device
    from backbone_bench.recommend.run import recommend

    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(args.folder or Path(tmp) / "cifar10_5cls"), Path(tmp) / "out"
        if args.folder:
            written = {d.name: sum(1 for f in d.iterdir() if f.is_file()) for d in folder.iterdir() if d.is_dir()}
        else:
            written = export("cifar10", folder, per_class=args.per_class, classes=CLASSES)
        start = time.perf_counter()
        recommend(folder, out, top=args.top, seeds=args.seeds, resolution=args.resolution, device=args.device,
                  workers=args.workers, report=not args.screen_only, screen_only=args.screen_only, progress=True)
        total = time.perf_counter() - start
        phases = json.loads((out / "timing.json").read_text())
    env = environment(pick_device(args.device))
    phases["whole command" if not args.screen_only else "whole command (screen only)"] = round(total, 2)
    budgeted = "screen" if args.screen_only else next(k for k in phases if k.startswith("whole"))
    rows = [dict(phase=k, seconds=v, images=sum(written.values()), classes=len(written), resolution=args.resolution,
                 panel="offline", seeds=args.seeds, top=args.top, device=env["device"], torch=env["torch"],
                 git_commit=env["git_commit"], budget_s=BUDGET_S if k == budgeted else None,
                 within_budget=(v <= BUDGET_S) if k == budgeted else None) for k, v in phases.items()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
