"""How much of a fine-tuning run evaluation costs, and what fewer validation passes would change.

Every fine-tune of the `cpu` edition validates 10 times (Preset.eval_passes) and keeps the best pass
(early stopping after `patience` passes without improvement). From the records' validation curves,
this script replays selection with fewer passes, each cut a rule a preset could adopt:

    every_other   passes 2, 4, ..., 10 (patience halved, rounded up)
    second_half   passes 6..10 only (early passes are skipped, the budget's second half validated)

and counts, per shot level, the runs whose chosen checkpoint (learning rate and step) would move, and
how much validation score the moved ones lose. The cost side is projected from the committed CPU
path measurement (train_throughput_cpu_path.csv: training and evaluation images/s at 96 px), for
the `cpu` grid and for the same grid at 224 px: the share of a run's compute that its validation
passes and test pass take.

    python benchmarks/eval_passes.py     # writes results/benchmarks/eval_passes.csv and eval_share.csv
"""
from __future__ import annotations

import math

import pandas as pd

from backbone_bench import paths
from backbone_bench.study import store
from backbone_bench.study.presets import get_preset

CUTS = {"all": lambda n: list(range(1, n + 1)),
        "every_other": lambda n: [i for i in range(1, n + 1) if i % 2 == 0 or i == n],
        "second_half": lambda n: [i for i in range(1, n + 1) if i > n // 2]}


def replay(curve: list, passes: list, patience: int) -> tuple:
    """(step, score) the selection keeps when only ``passes`` (1-based) of ``curve`` are evaluated."""
    best, waiting = None, 0
    for i, c in enumerate(curve, start=1):
        if i not in passes:
            continue
        key = (c["val_balanced_accuracy"], -c["val_nll"])
        if best is None or key > best[0]:
            best, waiting = (key, c["step"]), 0
        else:
            waiting += 1
            if waiting >= patience:
                break
    return best[1], best[0][0]


def selection_table(preset: str = "cpu") -> pd.DataFrame:
    p = get_preset(preset)
    rows = []
    for r in store.read_records():
        if r.get("preset") != preset or r["status"] != "ok" or r["config"]["mode"] != "finetune" or store.outdated(r):
            continue
        curve = [c for c in r["curves"] if c.get("lr") == r["chosen"]["lr"]]
        n = len(curve)
        actual = replay(curve, CUTS["all"](n), p.recipe.patience)
        for cut, passes in CUTS.items():
            patience = p.recipe.patience if cut == "all" else math.ceil(p.recipe.patience / 2)
            step, score = replay(curve, passes(n), patience)
            rows.append(dict(dataset=r["config"]["dataset"], shots=r["config"]["shots"], backbone=r["config"]["backbone"],
                             seed=r["config"]["seed"], cut=cut, passes=len(passes(n)), chosen_step=step,
                             recorded_step=r["chosen"]["step"], moved=step != actual[0], val_lost=actual[1] - score))
    return pd.DataFrame(rows)


def eval_share(preset: str = "cpu", resolution: int | None = None) -> pd.DataFrame:
    """Per shot level: the share of a run's projected compute its evaluations take (validation passes
    plus the test pass, forward only, at the measured evaluation rate; training at the training rate)."""
    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.splits import load_splits

    p = get_preset(preset)
    path = pd.read_csv(paths.BENCHMARKS / "train_throughput_cpu_path.csv")
    path = path[path["backbone"] != "all"].dropna(subset=["a_images_per_s"])
    device = path["device"].value_counts().idxmax()
    rates = path[path["device"] == device].set_index("backbone")
    rows = []
    for dataset in p.datasets:
        s = load_splits(prepare(dataset, progress=False))
        n_val = min(len(s.val), p.recipe.eval_limit or len(s.val))
        n_test = min(len(s.test), p.recipe.test_cap or len(s.test))
        for shots in p.shots:
            r = p.recipe_for("finetune", shots)
            passes = p.eval_passes or math.ceil(r.steps / r.eval_every)
            for backbone, rate in rates.iterrows():
                train = r.steps * r.batch_size / rate["b_images_per_s"]
                evaluate = (passes * n_val + n_test) / rate["extract_fp32_images_per_s"]
                rows.append(dict(dataset=dataset, shots=shots, backbone=backbone, device=device,
                                 eval_share=evaluate / (train + evaluate), val_images=n_val, test_images=n_test,
                                 passes=passes))
    return pd.DataFrame(rows)


def main() -> int:
    selection = selection_table()
    out = paths.BENCHMARKS / "eval_passes.csv"
    summary = selection.groupby(["cut", "shots"]).agg(runs=("moved", "size"), moved=("moved", "mean"),
                                                      val_lost_mean=("val_lost", "mean"), val_lost_max=("val_lost", "max"),
                                                      passes=("passes", "median")).reset_index()
    summary.to_csv(out, index=False, float_format="%.4g")
    share = eval_share()
    by_level = share.groupby("shots")["eval_share"].agg(["median", "min", "max"]).reset_index()
    share.to_csv(paths.BENCHMARKS / "eval_share.csv", index=False, float_format="%.4g")
    print(summary.to_string(index=False))
    print("evaluation's share of a run's compute (96 px, the measured CPU path):")
    print(by_level.to_string(index=False))
    print(f"wrote {out} and {paths.BENCHMARKS / 'eval_share.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
