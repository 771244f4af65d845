"""What bf16 autocast changed: every bf16 record an fp32 rerun replaced, beside its rerun.

Before precision was the recipe's, the CPU speed path ran mobilenetv2_100 and regnetx_002 under bf16
autocast on processors with native bf16. Their fp32 reruns have the same config (the same key: the
same images, seed, step budget and grid), and a sweep keeps each record it replaces in
results/superseded/. This script pairs them and writes

    results/benchmarks/precision_pairs.csv          one row per pair: both scores, both picks, predictions changed
    results/benchmarks/precision_pairs_summary.csv  per (preset, backbone, mode): the paired difference bf16 - fp32
                                                    of test balanced accuracy (clean test subset) with its 95 %
                                                    two-level interval (pairs, then test images, the test resamples
                                                    shared by both sides of a pair)

    python benchmarks/precision_pairs.py
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from backbone_bench import paths
from backbone_bench.analysis import uncertainty
from backbone_bench.study import store


def pairs(results: Path) -> pd.DataFrame:
    """One row per superseded bf16 record whose fp32 rerun is recorded."""
    rows = []
    for old in store.read_superseded(results):
        if old.get("environment", {}).get("precision") != "bf16-autocast":
            continue
        new = store.read_records(results, keys=[old["key"]])
        if not new or new[0]["status"] != "ok" or new[0]["environment"].get("precision") != "fp32":
            continue
        new, c = new[0], old["config"]
        rows.append(dict(key=old["key"], preset=old.get("preset"), dataset=c["dataset"], shots=c["shots"],
                         backbone=c["backbone"], mode=c["mode"], seed=c["seed"],
                         bf16=old["metrics"]["test"]["balanced_accuracy"], fp32=new["metrics"]["test"]["balanced_accuracy"],
                         bf16_chosen=_chosen(old), fp32_chosen=_chosen(new),
                         bf16_device=old["environment"]["device"], fp32_device=new["environment"]["device"],
                         bf16_train_seconds=old.get("timing", {}).get("train_seconds"),
                         fp32_train_seconds=new.get("timing", {}).get("train_seconds"),
                         data_key=new.get("data_key")))
    return pd.DataFrame(rows)


def _time_ratio(pairs: pd.DataFrame) -> float:
    """Median fp32 / bf16 training time over the pairs trained on the same CPU class (NaN for probes,
    whose cost is their feature extraction, and where no pair shares a class)."""
    same = pairs[(pairs["bf16_device"] == pairs["fp32_device"]) & (pairs["mode"] != "linear_probe")]
    return float((same["fp32_train_seconds"] / same["bf16_train_seconds"]).median()) if len(same) else float("nan")


def _chosen(record: dict) -> str:
    chosen = record.get("chosen", {})
    return f"C={chosen['C']:g}" if "C" in chosen else f"lr={chosen.get('lr')} step={chosen.get('step')}"


def _arrays(results: Path, key: str, superseded: bool) -> dict:
    folder = store.superseded_dir(results) if superseded else store.runs_dir(results)
    with np.load(folder / f"{key}.npz") as f:
        return {k: f[k] for k in f.files}


def summarise(table: pd.DataFrame, results: Path, n_boot: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per pair: predictions changed, and per (preset, backbone, mode) the paired mean difference
    bf16 - fp32 with its two-level interval; both scored on the clean test subset."""
    from backbone_bench.report.load import twins_left_out

    exclude = twins_left_out(table.assign(status="ok")) if len(table) else {}
    sides = []
    for superseded in (True, False):
        def load(row, superseded=superseded):
            a = _arrays(results, row["key"], superseded)
            keep = ~np.isin(a["test_index"], exclude.get(row["dataset"], []))
            return a["test_label"].astype(np.int64)[keep], a["test_pred"].astype(np.int64)[keep]
        sides.append(uncertainty.run_draws(table, load, n_boot))  # the same test resamples on both sides
    changed = [float(np.mean(_arrays(results, k, True)["test_pred"] != _arrays(results, k, False)["test_pred"]))
               for k in table["key"]]
    table = table.assign(predictions_changed=changed)
    diff = sides[0] - sides[1]
    rng = np.random.default_rng(0)
    rows = []
    for (preset, backbone, mode), idx in table.groupby(["preset", "backbone", "mode"]).indices.items():
        pick = rng.integers(0, len(idx), (n_boot, len(idx)))  # the pairs, with replacement
        reps = diff[idx][pick, np.arange(n_boot)[:, None]].mean(1)
        lo, hi = uncertainty.quantiles(reps)
        point = (table["bf16"].to_numpy()[idx] - table["fp32"].to_numpy()[idx]).mean()
        rows.append(dict(preset=preset, backbone=backbone, mode=mode, pairs=len(idx), bf16_minus_fp32=point, lo=lo,
                         hi=hi, verdict={1: "bf16 higher", -1: "bf16 lower", 0: "within noise"}[uncertainty.decided(lo, hi)],
                         predictions_changed=float(np.mean(np.array(changed)[idx])),
                         choice_changed=float(np.mean(table["bf16_chosen"].to_numpy()[idx] != table["fp32_chosen"].to_numpy()[idx])),
                         fp32_over_bf16_train_time=_time_ratio(table.iloc[idx])))
    return table, pd.DataFrame(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=None)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--out", default=str(paths.BENCHMARKS / "precision_pairs.csv"))
    args = p.parse_args()
    results = Path(args.results) if args.results else paths.results_dir()
    table = pairs(results)
    if table.empty:
        print("no bf16 record has an fp32 rerun yet")
        return 1
    per_pair, summary = summarise(table, results, args.n_boot)
    out = Path(args.out)
    per_pair.to_csv(out, index=False)
    summary.to_csv(out.with_name(out.stem + "_summary.csv"), index=False)
    print(summary.to_string(index=False, float_format="%.4f"))
    print(f"wrote {out} and {out.with_name(out.stem + '_summary.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
