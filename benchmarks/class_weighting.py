"""Should fine-tuning weight its loss by class? A measured comparison on an imbalanced subset.

The study's metric is balanced accuracy. The linear probe fits a class-balanced objective; for
fine-tuning and scratch training this script decides: the same configs (the CPU edition's
recipe, every offline backbone listed, seeds 0-2) trained with an unweighted and a
class-balanced cross-entropy on pneumoniamnist at 1000 shots (388 normal vs 1000 pneumonia
images), in one invocation. Rows: one per run, with validation and test balanced accuracy; the
summary prints the paired difference (balanced minus unweighted) per backbone.

    python benchmarks/class_weighting.py --out results/benchmarks/class_weighting.csv
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path


from backbone_bench.study import store
from backbone_bench.study.presets import get_preset
from backbone_bench.study.plan import Plan
from backbone_bench.study.execute import execute


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="pneumoniamnist")
    ap.add_argument("--shots", type=int, default=1000)
    ap.add_argument("--preset", default="offline_cpu", help="whose fine-tune recipe and resolution to use")
    ap.add_argument("--backbones", default="tf_efficientnet_lite0,regnetx_002")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="results/benchmarks/class_weighting.csv")
    args = ap.parse_args()

    preset = get_preset(args.preset)
    base = preset.recipe_for("finetune", 10)  # the CPU edition's fine-tune budget
    configs = []
    for weighting in ("none", "balanced"):
        recipe = replace(base, class_weight=weighting)
        for backbone in args.backbones.split(","):
            for seed in map(int, args.seeds.split(",")):
                configs.append(dict(dataset=args.dataset, shots=args.shots, subset_seed=seed, seed=seed,
                                    backbone=backbone, mode="finetune", pretrained=True,
                                    resolution=preset.resolution, recipe=recipe.as_dict()))
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        execute(Plan(f"class_weighting:{args.preset}", configs, 0, []), args.device, results)
        table = store.compile_table(results)
    table["class_weight"] = table["recipe_class_weight"].fillna("none") if "recipe_class_weight" in table else "none"
    rows = table[["dataset", "shots", "backbone", "seed", "class_weight", "status", "resolution", "recipe_steps",
                  "val_balanced_accuracy", "test_balanced_accuracy", "test_accuracy", "n_train", "device",
                  "torch", "git_commit"]]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out, index=False)
    wide = rows.pivot_table(index=["backbone", "seed"], columns="class_weight",
                            values=["val_balanced_accuracy", "test_balanced_accuracy"])
    diff = (wide.xs("balanced", axis=1, level=1) - wide.xs("none", axis=1, level=1))
    print(f"{args.dataset} at {args.shots} shots, balanced minus unweighted loss:")
    print(diff.groupby("backbone").agg(["mean", "min", "max"]).round(3).to_string())
    print(f"overall mean: val {diff['val_balanced_accuracy'].mean():+.3f}, test {diff['test_balanced_accuracy'].mean():+.3f}"
          f" over {len(diff)} paired runs; wrote {args.out}")


if __name__ == "__main__":
    main()
