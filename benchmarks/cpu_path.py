"""The CPU speed path, measured side by side in one process (train_throughput.py --device cpu --variants).

Per backbone, at the CPU edition's resolution and batch:
  (a)  today's engine: solo, fp32, NCHW, eager (the engine before any CPU measurement);
  variants: the solo engine in each layout x precision (channels-last; bf16 autocast where the
       CPU has native bf16), and with --compile the best of them under torch.compile;
  (b)  the path the engine now chooses from these rows (speed.py's rule, MIN_GAIN over plain),
       among the fp32 layouts: every CPU preset computes in fp32 (recipe.PRECISIONS), so a bf16
       row, measured with --bf16, informs and never chooses;
  (c)  the compute-only ceiling at the best fp32 layout: fwd+bwd+AdamW of one model on a synthetic
       batch, no data path, no evaluation;
  feature extraction images/s (a probe's cost) in fp32 (and bf16 with --bf16).
Writes OUT_variants.csv (what the engine reads: speed.CPU_VARIANTS_CSV) and OUT_path.csv (a, b, c,
b/a, b/c, extraction, and the projected hours of the `cpu` preset's gradient runs at b and at a).
Every row names the device it was measured on (CPU model, vector unit and thread count); a run
replaces that processor's rows of the backbones it measured and keeps the rest, so one file holds
every processor's.

    python benchmarks/train_throughput.py --device cpu --variants --resolution 96 --batch 32 --steps 10 \\
        --out results/benchmarks/train_throughput_cpu.csv
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from backbone_bench.engine import train
from backbone_bench.models.backbones import create_model, scratch_twin
from backbone_bench.engine.speed import MIN_GAIN, native_bf16
from train_throughput import compute_rate, engine_rate, setting

#: (channels_last, bf16) per variant, plain first: the others are measured against it
LAYOUTS = {"plain": (False, False), "channels_last": (True, False), "bf16": (False, True),
           "bf16+channels_last": (True, True)}


def extraction_rate(name, images, args, device, classes, bf16) -> float:
    model = create_model(scratch_twin(name), classes, args.resolution).to(device)
    model.reset_classifier(0)
    split = train.Split(images, images.new_zeros(0), args.resolution)
    weights = scratch_twin(name)
    train.extract_features(model, train.Split(images[:64], split.labels, args.resolution), weights.mean,
                           weights.std, 64, device, bf16)  # warm-up
    start = time.perf_counter()
    train.extract_features(model, split, weights.mean, weights.std, 128, device, bf16)
    return len(images) / (time.perf_counter() - start)


def cpu_variants(names, images, labels, args, device, classes, env) -> int:
    out = Path(args.out)
    variants_out, path_out = out.with_name(out.stem + "_variants.csv"), out.with_name(out.stem + "_path.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    bf16_ok = native_bf16()
    with_bf16 = bf16_ok and getattr(args, "bf16", False)
    layouts = {k: v for k, v in LAYOUTS.items() if with_bf16 or not v[1]}
    rows, paths = [], []
    for name in tqdm(names, desc="CPU path", unit="backbone"):
        rates, measured = {}, {v: [] for v in layouts}
        for _ in range(args.rounds):  # rounds alternate the variants: a load that comes and goes hits all alike
            for variant, (channels_last, bf16) in layouts.items():
                try:
                    measured[variant].append(engine_rate(name, images, labels, args, device, classes, 1, False,
                                                         channels_last, bf16))
                except Exception as err:  # recorded; the next variant is measured
                    measured[variant] = f"{type(err).__name__}: {str(err)[:200]}"
        for variant, (channels_last, bf16) in layouts.items():
            row = setting(name, args, env, False) | dict(variant=variant, channels_last=channels_last,
                                                          precision="bf16-autocast" if bf16 else "fp32",
                                                          native_bf16=bf16_ok, members=1, rounds=args.rounds)
            if isinstance(measured[variant], str):
                row |= dict(status="error", reason=measured[variant])
            else:
                rates[variant] = row["images_per_s"] = float(np.median(measured[variant]))
                row |= dict(status="ok", spread=(max(measured[variant]) - min(measured[variant])) / rates[variant])
            rows.append(row)
        plain = rates.get("plain")
        fp32 = {v: r for v, r in rates.items() if not LAYOUTS[v][1]}  # the recipe's precision chooses
        best = max(fp32, key=fp32.get) if fp32 else None
        chosen = best if plain and rates[best] >= MIN_GAIN * plain else "plain"
        if args.compile and chosen in rates:
            channels_last, bf16 = LAYOUTS[chosen]
            row = setting(name, args, env, True) | dict(variant=chosen + "+compile", channels_last=channels_last,
                                                         precision="bf16-autocast" if bf16 else "fp32",
                                                         native_bf16=bf16_ok, members=1)
            start = time.perf_counter()
            try:
                row["images_per_s"] = engine_rate(name, images, labels, args, device, classes, 1, True,
                                                  channels_last, bf16)
                row["compile_and_measure_seconds"] = time.perf_counter() - start
                row["status"] = "ok"
            except Exception as err:
                row |= dict(status="error", reason=f"{type(err).__name__}: {str(err)[:200]}")
            rows.append(row)
        table = pd.DataFrame(rows)
        table["over_plain"] = table["images_per_s"] / table["backbone"].map(
            table[table["variant"] == "plain"].set_index("backbone")["images_per_s"])
        _beside_others(table, variants_out)  # each backbone as it lands
        ceiling = compute_rate(name, args, device, classes, args.batch, True, False)
        path = dict(backbone=name, device=env["device"], resolution=args.resolution, batch=args.batch,
                    torch=env["torch"], git_commit=env["git_commit"], native_bf16=bf16_ok, chosen=chosen,
                    a_images_per_s=plain, b_images_per_s=rates.get(chosen), c_images_per_s=ceiling,
                    extract_fp32_images_per_s=extraction_rate(name, images, args, device, classes, False),
                    extract_bf16_images_per_s=extraction_rate(name, images, args, device, classes, True) if with_bf16 else None)
        path["b_over_a"] = path["b_images_per_s"] / plain if plain else None
        path["b_over_c"] = path["b_images_per_s"] / ceiling if path["b_images_per_s"] else None
        paths.append(path)
        tqdm.write(f"{name}: a {plain:.1f}, b {path['b_images_per_s']:.1f} ({chosen}), c {ceiling:.1f} img/s; "
                   f"b/a {path['b_over_a']:.2f}, b/c {path['b_over_c']:.2f}")
        _beside_others(pd.DataFrame(paths), path_out)
    table = _with_projection(_same_processor(pd.DataFrame(paths), path_out))  # the total over every backbone measured here
    _beside_others(table, path_out)
    print(f"b/a median {table['b_over_a'].median():.2f}, min {table['b_over_a'].min():.2f}; b/c min "
          f"{table['b_over_c'].min():.2f}; wrote {variants_out} and {path_out}")
    return 0


def _beside_others(table: pd.DataFrame, out: Path) -> None:
    """Write ``table`` to ``out`` in place of the rows there of the same processor and backbone."""
    from backbone_bench.environment import processor

    if out.exists():
        before = pd.read_csv(out, float_precision="round_trip")  # other processors' rows unchanged to the digit
        mine = set(zip(table["device"].map(processor), table["backbone"]))
        kept = [k not in mine for k in zip(before["device"].map(processor), before["backbone"])]
        table = pd.concat([before[kept], table], ignore_index=True)
    table.to_csv(out, index=False)


def _same_processor(table: pd.DataFrame, out: Path) -> pd.DataFrame:
    """``table`` with the rows ``out`` already holds for this processor's other backbones (not its
    total), so that a run measuring some backbones keeps a projection of all."""
    from backbone_bench.environment import processor

    if not out.exists():
        return table
    before = pd.read_csv(out, float_precision="round_trip")
    here = set(table["device"].map(processor))
    others = before[before["device"].map(processor).isin(here) & ~before["backbone"].isin(set(table["backbone"]) | {"all"})]
    return pd.concat([others.drop(columns=[c for c in others if c.startswith("cpu_grid_")]), table], ignore_index=True)


def _with_projection(table: pd.DataFrame) -> pd.DataFrame:
    """Hours of the `cpu` preset's gradient training (every lr at its full step budget: early
    stopping only shortens it) per backbone at rate a and at rate b, plus a total row."""
    from backbone_bench.errors import DataMissingError
    from backbone_bench.study.presets import PRESETS

    if "cpu" not in PRESETS:
        return table
    try:
        from backbone_bench.study.plan import _grid

        p = PRESETS["cpu"]
        images: dict = {}
        for c in _grid(p, p.datasets, p.backbones, p.shots, ("finetune", "scratch"), p.seeds, p.resolution, None, []):
            r = c["recipe"]
            images[c["backbone"]] = images.get(c["backbone"], 0) + r["steps"] * r["batch_size"] * len(r["lrs"])
    except DataMissingError:
        return table
    table["cpu_grid_train_images"] = table["backbone"].map(images)
    table["cpu_grid_hours_a"] = table["cpu_grid_train_images"] / table["a_images_per_s"] / 3600
    table["cpu_grid_hours_b"] = table["cpu_grid_train_images"] / table["b_images_per_s"] / 3600
    total = dict(backbone="all", device=table["device"].iloc[0], resolution=table["resolution"].iloc[0],
                 cpu_grid_train_images=table["cpu_grid_train_images"].sum(),
                 cpu_grid_hours_a=table["cpu_grid_hours_a"].sum(), cpu_grid_hours_b=table["cpu_grid_hours_b"].sum())
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


if __name__ == "__main__":  # only the projection, again, of a path CSV written before (the data must be here)
    import argparse

    p = argparse.ArgumentParser(description="rewrite OUT_path.csv with the `cpu` preset's projected hours")
    p.add_argument("--project", required=True, metavar="PATH_CSV")
    args = p.parse_args()
    table = pd.read_csv(args.project)
    table = pd.concat([_with_projection(rows) for _, rows in table[table["backbone"] != "all"].drop(
        columns=[c for c in table if c.startswith("cpu_grid_")]).groupby("device", sort=False)], ignore_index=True)
    table.to_csv(args.project, index=False)
    print(table[["backbone", "a_images_per_s", "b_images_per_s", "b_over_a", "cpu_grid_hours_a", "cpu_grid_hours_b"]]
          .to_string(index=False))
