"""What selecting fine-tunes on clean validation changes (issue 46, part 3).

The `cpu` edition's gradient runs chose their checkpoint on the whole validation split, twins of
training-pool images included (brain_tumor_mri: 76 of 256 validation images have one, breastmnist:
31 of 78). The edition now selects on the clean subset (its recipe's ``val_select="clean"``), so
each such run is made again under a new key, in the edition's own results folder; the run it
replaces (``plan.predecessor_key``: the same config selected on all of validation, the same images,
seed, budget and learning rate) stays in the store and is its twin. This script makes the reruns
of the datasets and levels asked for (those already recorded are not trained again), then reads
them: each records what it chose on the clean subset and what the whole validation set would have
chosen (``chosen.on_all_val``). Per run, the CSV gives both picks, whether the pick moved, whether
the training was the same (every validation pass scored the same as the predecessor's: otherwise
the rerun itself differs, as fp32 rounding on another processor of the same class makes it), and
the test balanced accuracy of both. The selection effect is read on the identical trainings only.

    python benchmarks/clean_selection.py --shots 10          # results/benchmarks/clean_selection.csv
    python benchmarks/clean_selection.py --shots 10,100,1000 --modes finetune,scratch \
        --datasets brain_tumor_mri,breastmnist,cifar10,uc_merced --no-train   # what the sweep's reruns show so far
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from backbone_bench import paths
from backbone_bench.environment import environment, pick_device
from backbone_bench.study import store
from backbone_bench.study.execute import execute
from backbone_bench.study.plan import Plan, build_plan, predecessor_key

DATASETS = ("brain_tumor_mri", "breastmnist")


def pick(chosen: dict) -> tuple:
    return chosen.get("lr"), chosen.get("step")


def _passes(record: dict) -> list:
    """Every validation pass's score on the whole validation split, in order."""
    return [(c["step"], round(c["val_balanced_accuracy"], 9)) for c in record["curves"]]


def same_training(a: dict, b: dict) -> bool:
    """Every pass both ran scored the same: the same training (early stopping on the clean subset may
    end one of them sooner)."""
    pa, pb = _passes(a), _passes(b)
    n = min(len(pa), len(pb))
    return n > 0 and pa[:n] == pb[:n]


def compare(published: dict, clean: dict) -> dict:
    c = clean["config"]
    on_all = clean["chosen"].get("on_all_val", {})
    return dict(dataset=c["dataset"], shots=c["shots"], backbone=c["backbone"], mode=c["mode"], seed=c["seed"],
                n_val=clean["n_val"], n_val_selected=clean.get("n_val_selected"),
                step_all=pick(on_all)[1], step_clean=pick(clean["chosen"])[1],
                moved=pick(on_all) != pick(clean["chosen"]),
                same_training=same_training(published, clean),
                test_all=published["metrics"]["test"]["balanced_accuracy"],
                test_clean=clean["metrics"]["test"]["balanced_accuracy"],
                published_key=published["key"], device=clean["environment"]["device"],
                published_device=published["environment"]["device"], git_commit=clean["environment"]["git_commit"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shots", default="10", help="shot levels, comma-separated")
    p.add_argument("--modes", default="finetune")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--out", default=str(paths.BENCHMARKS / "clean_selection.csv"))
    p.add_argument("--results", default=None, help="the edition's results folder (default: the repository's)")
    p.add_argument("--no-train", action="store_true",
                   help="read the reruns the sweep has made so far; train none (the sweep makes them first)")
    args = p.parse_args(argv)
    results = Path(args.results) if args.results else paths.results_dir()
    grid = build_plan("cpu", datasets=args.datasets.split(","), shots=[int(k) for k in args.shots.split(",")],
                      modes=args.modes.split(","), skip_done=False, results=results).configs
    published = {predecessor_key(c): r for c in grid if predecessor_key(c)
                 for r in store.read_records(results, keys=[predecessor_key(c)])
                 if r["status"] == "ok" and not store.outdated(r)}
    configs = [c for c in grid if predecessor_key(c) in published]
    todo = [c for c in configs if not store.read_records(results, keys=[store.config_key(c)])]
    print(f"{len(configs)} of {len(grid)} runs have a predecessor selected on all of validation; {len(todo)} to train")
    if todo and not args.no_train:
        execute(Plan("cpu", todo, 0, [], label="clean selection"), "cpu", results)
    rows = []
    for config in configs:
        record = store.read_records(results, keys=[store.config_key(config)])
        if record and record[0]["status"] == "ok":
            rows.append(compare(published[predecessor_key(config)], record[0]))
    table = pd.DataFrame(rows).assign(test_delta=lambda t: (t["test_clean"] - t["test_all"]).round(4),
                                      torch=environment(pick_device("cpu"))["torch"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    same = table[table["same_training"]]
    summary = table.groupby(["dataset", "shots", "mode"]).agg(runs=("moved", "size"), same_training=("same_training", "sum"))
    summary = summary.join(same.groupby(["dataset", "shots", "mode"]).agg(
        moved=("moved", "sum"), mean_test_delta=("test_delta", "mean"), largest_change=("test_delta", lambda d: d.abs().max())))
    print("selection effect on the identical trainings:")
    print(summary.to_string())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
