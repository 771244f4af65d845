"""The learning-rate pilot behind the `cpu` preset's one learning rate per mode, on validation only.

Reads every committed gradient record that tried more than one learning rate (the 224 px
`offline` runs: 10 shots, three seeds, two rates per mode) and writes, per mode and rate, how
often validation chose it and its mean validation balanced accuracy and NLL across those runs.
No test number is read.

    python benchmarks/lr_pilot.py --out results/benchmarks/lr_pilot.csv
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from backbone_bench.study import store


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/benchmarks/lr_pilot.csv")
    args = p.parse_args(argv)
    rows = []
    for r in store.read_records():
        cfg = r["config"]
        if r.get("status") != "ok" or not store.gradient(cfg) or len(cfg["recipe"]["lrs"]) < 2:
            continue
        for lr, c in r["chosen"]["candidates"].items():
            rows.append(dict(mode=cfg["mode"], resolution=cfg["resolution"], shots=cfg["shots"], lr=float(lr),
                             chosen=float(lr) == float(r["chosen"]["lr"]), val_balanced_accuracy=c["val_score"],
                             val_nll=c["val_nll"], preset=r["preset"], dataset=cfg["dataset"]))
    table = pd.DataFrame(rows)
    out = (table.groupby(["mode", "resolution", "shots", "lr"])
           .agg(runs=("chosen", "size"), chosen_by_validation=("chosen", "sum"),
                datasets=("dataset", lambda d: ",".join(sorted(set(d)))),
                mean_val_balanced_accuracy=("val_balanced_accuracy", "mean"), mean_val_nll=("val_nll", "mean"))
           .reset_index())
    out.to_csv(args.out, index=False, float_format="%.4f")
    print(out.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
