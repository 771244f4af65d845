"""Every probe of an earlier edition refitted on the wide, standardised C grid: before against after.

The 80 px `offline_cpu` and 224 px `offline` editions fitted their linear probes on raw features
with a short C grid (0.1, 1.0 and 0.01 ... 10), and most chose its smallest C. Their presets now
ask for the wide self-extending grid (presets.WIDE_PROBE) on standardised features, so

    backbone-bench run --preset offline_cpu --modes linear_probe

refits them from the cached features (their fine-tune and scratch runs keep their keys). This
script sets each refitted probe beside the probe it replaces (same dataset, shots, backbone, seed),
both scored on the clean test subset, and the two decision tables of each edition, and writes

    results/benchmarks/probe_refit.csv            one row per probe: C, grid edge, scores before and after
    results/benchmarks/probe_refit_decision.csv   one row per decision-table row: the pick before and after
    results/benchmarks/probe_refit_ranking.csv    one row per (domain, backbone): the probes' ranking before and after

Run it while the replaced records are still in results/runs (it refuses otherwise); they are
removed afterwards (git history keeps them: the commit that removed them names itself). A refit
done a dataset at a time keeps the rows of datasets compared in an earlier session; the decision
table of a domain, though, is only whole when all its datasets' replaced records are present, so
for the final comparison put the removed ones back first (``git checkout COMMIT^ -- FILES``).

    python benchmarks/probe_refit.py --presets offline_cpu,offline
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

from backbone_bench import paths, report
from backbone_bench.analysis import ranking
from backbone_bench.data.registry import DATASETS
from backbone_bench.study import store
from backbone_bench.study.plan import grid_keys

PAIR = ["dataset", "shots", "backbone", "seed"]


def grid_of(row) -> list[float]:
    cs = row["recipe_probe_cs"]
    return [float(c) for c in (cs.strip("[]").split(",") if isinstance(cs, str) else cs)]


def on_edge(row) -> bool:
    """Whether the probe's chosen C is the smallest or largest its grid tried (a grown grid included;
    on a grid of two values every choice is an edge)."""
    if pd.notna(row.get("chosen_at_edge")):
        return bool(row["chosen_at_edge"])
    return float(row["chosen_C"]) in (min(grid_of(row)), max(grid_of(row)))


def probes(table: pd.DataFrame, preset: str, results: Path):
    """The edition's probes split into the replaced (configs its grid no longer asks for) and current."""
    keys = grid_keys(preset)
    mine = table[(table["preset"] == preset) & (table["mode"] == "linear_probe") & (table["status"] == "ok")]
    old, new = mine[~mine["key"].isin(keys)], mine[mine["key"].isin(keys)]
    return (report.with_clean_scores(old.reset_index(drop=True), results),
            report.with_clean_scores(new.reset_index(drop=True), results))


def decision(table: pd.DataFrame, results: Path, n_boot: int) -> pd.DataFrame:
    rows, _ = report.decision_table(report.draws(table, results, n_boot))
    return rows


def probe_ranking(runs: pd.DataFrame) -> pd.DataFrame:
    """The probes' point ranking (STUDY.md: mean z per domain, then overall) with each backbone's place."""
    s = ranking.scores(runs, {d: DATASETS[d].domain for d in runs["dataset"].unique()})
    return s.assign(place=s.groupby("domain")["score"].rank(ascending=False, method="min").astype(int))


def _merge(path: Path, new: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``new`` beside the rows already in ``path`` that it does not cover: other presets, and
    datasets (domains) refitted in an earlier session whose replaced records have since been removed."""
    if not path.exists():
        return new
    old = pd.read_csv(path)
    covered = old.set_index(by).index.isin(new.set_index(by).index)
    return pd.concat([old[~covered], new], ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="offline_cpu,offline")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=paths.results_dir() / "benchmarks" / "probe_refit.csv")
    args = ap.parse_args()
    results = paths.results_dir()
    table = store.compile_table(results)
    pairs, decisions, rankings = [], [], []
    for preset in args.presets.split(","):
        old, new = probes(table, preset, results)
        if old.empty or new.empty:
            raise SystemExit(f"{preset}: {len(old)} replaced and {len(new)} refitted probes in {results}; "
                             "both are needed (refit first, and run this before the replaced records are removed)")
        # a refit in progress (sessions apart): compare the datasets refitted so far, and only those
        old = old[old["dataset"].isin(set(new["dataset"]))].reset_index(drop=True)
        old = old.assign(edge=[on_edge(r) for _, r in old.iterrows()],
                         smallest=[float(r["chosen_C"]) == min(grid_of(r)) for _, r in old.iterrows()])
        both = old.merge(new, on=PAIR, suffixes=("_before", "_after"), validate="one_to_one")
        pairs.append(pd.DataFrame({
            "preset": preset, **{k: both[k] for k in PAIR}, "resolution": both["resolution_after"],
            "key_before": both["key_before"], "key_after": both["key_after"],
            "grid_before": both["recipe_probe_cs_before"].astype(str), "grid_after": both["recipe_probe_cs_after"].astype(str),
            "C_before": both["chosen_C_before"], "C_after": both["chosen_C_after"],
            "edge_before": both["edge"], "smallest_C_before": both["smallest"],
            "edge_after": both["chosen_at_edge_after"].astype(bool), "grid_extended": both["chosen_grid_extended_after"],
            "val_before": both["val_balanced_accuracy_before"], "val_after": both["val_balanced_accuracy_after"],
            "test_before": both["test_balanced_accuracy_before"], "test_after": both["test_balanced_accuracy_after"],
            "test_full_before": both["test_balanced_accuracy_full_before"],
            "test_full_after": both["test_balanced_accuracy_full_after"]}))
        # the edition's decision table with its replaced probes, then with the refitted ones
        others = table[(table["preset"] == preset) & (table["mode"] != "linear_probe") & table["key"].isin(grid_keys(preset))
                       & table["dataset"].isin(set(new["dataset"]))]
        others = report.with_clean_scores(others.reset_index(drop=True), results)
        before = decision(pd.concat([others, old], ignore_index=True), results, args.n_boot)
        after = decision(pd.concat([others, new], ignore_index=True), results, args.n_boot)
        d = before.merge(after, on=["domain", "shots"], suffixes=("_before", "_after"), how="outer")
        d.insert(0, "preset", preset)
        r = probe_ranking(old).merge(probe_ranking(new), on=["domain", "backbone"], suffixes=("_before", "_after"))
        r.insert(0, "preset", preset)
        rankings.append(r)
        decisions.append(d[["preset", "domain", "shots", "mode_before", "backbone_before", "balanced_accuracy_before",
                            "separable_before", "mode_after", "backbone_after", "balanced_accuracy_after",
                            "separable_after"]])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = _merge(args.out, pd.concat(pairs, ignore_index=True), ["preset", "dataset"])
    rows.to_csv(args.out, index=False, float_format="%.6g")
    decision_path = args.out.with_name(args.out.stem + "_decision.csv")
    _merge(decision_path, pd.concat(decisions, ignore_index=True), ["preset", "domain", "shots"]).to_csv(
        decision_path, index=False, float_format="%.6g")
    ranks = _merge(args.out.with_name(args.out.stem + "_ranking.csv"), pd.concat(rankings, ignore_index=True),
                   ["preset", "domain", "backbone"])
    ranks.to_csv(args.out.with_name(args.out.stem + "_ranking.csv"), index=False, float_format="%.6g")
    summary = rows.groupby("preset").agg(probes=("key_after", "size"), smallest_C_before=("smallest_C_before", "mean"),
                                         edge_before=("edge_before", "mean"), edge_after=("edge_after", "mean"))
    print(summary.to_string())
    print(rows.assign(change=rows["test_after"] - rows["test_before"]).groupby(["preset", "dataset"])["change"]
          .describe()[["count", "mean", "min", "max"]].to_string())
    moved = ranks.assign(moved=ranks["place_before"] != ranks["place_after"]).groupby(["preset", "domain"]).agg(
        backbones=("backbone", "size"), places_changed=("moved", "sum"),
        top_before=("place_before", lambda p: ranks.loc[p.index[p == 1], "backbone"].str.cat(sep="/")),
        top_after=("place_after", lambda p: ranks.loc[p.index[p == 1], "backbone"].str.cat(sep="/")))
    moved["spearman"] = ranks.groupby(["preset", "domain"]).apply(
        lambda g: spearmanr(g["score_before"], g["score_after"]).statistic).round(2)
    print(moved.to_string())
    print(f"wrote {args.out}, its _decision.csv and _ranking.csv")


if __name__ == "__main__":
    main()
