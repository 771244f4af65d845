"""What selecting fine-tunes on clean validation changes (issue 46, part 3).

The `cpu` edition's gradient runs choose their checkpoint on the whole validation split, twins of
training-pool images included (brain_tumor_mri: 76 of 256 validation images have one, breastmnist:
31 of 78). This script trains the edition's runs of those datasets again with ``val_select="clean"``
(the same config otherwise: the same images, seed, budget and learning rate) in a results folder of
its own (``results/clean_selection/``, committed, so the runs are made once and can join the edition
when its gradient runs switch to clean selection: `backbone-bench results merge`). Each such run
records what it chose on the clean subset and what the whole validation set would have chosen
(``chosen.on_all_val``); the published record with the same config is its twin chosen on all of
validation. Per run, the CSV gives both picks, whether the pick moved, whether the training was the
same (every validation pass scored the same as the published run's: otherwise the rerun itself
differs, as fp32 rounding on another processor of the same class makes it), and the test balanced
accuracy of both. The selection effect is read on the identical trainings only.

    python benchmarks/clean_selection.py --shots 10          # results/benchmarks/clean_selection.csv
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import pandas as pd

from backbone_bench import paths
from backbone_bench.environment import environment, pick_device
from backbone_bench.study import store
from backbone_bench.study.execute import execute
from backbone_bench.study.plan import Plan, build_plan

DATASETS = ("brain_tumor_mri", "breastmnist")


def clean_twin(config: dict) -> dict:
    twin = copy.deepcopy(config)
    twin["recipe"]["val_select"] = "clean"
    return twin


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
    p.add_argument("--results", default=str(paths.REPO_ROOT / "results" / "clean_selection"),
                   help="where the clean-selected runs are kept (those already there are not trained again)")
    args = p.parse_args(argv)
    grid = build_plan("cpu", datasets=args.datasets.split(","), shots=[int(k) for k in args.shots.split(",")],
                      modes=args.modes.split(","), skip_done=False).configs
    published = {store.config_key(c): r for c in grid for r in store.read_records(keys=[store.config_key(c)])
                 if r["status"] == "ok" and not store.outdated(r)}
    twins = {store.config_key(clean_twin(c)): store.config_key(c) for c in grid if store.config_key(c) in published}
    configs = [clean_twin(c) for c in grid if store.config_key(c) in published]
    results = Path(args.results)
    todo = [c for c in configs if not store.read_records(results, keys=[store.config_key(c)])]
    print(f"{len(configs)} of {len(grid)} published runs selected again on clean validation; {len(todo)} to train")
    if todo:
        execute(Plan("cpu", todo, 0, [], label="clean selection"), "cpu", results)
    rows = []
    for config in configs:
        record = store.read_records(results, keys=[store.config_key(config)])
        if record and record[0]["status"] == "ok":
            rows.append(compare(published[twins[store.config_key(config)]], record[0]))
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
