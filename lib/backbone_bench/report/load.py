"""An edition's records for a page: loading (and running what is missing), coverage, the About box
and the bootstrap every table of the page shares."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backbone_bench.study import store
from backbone_bench.analysis import uncertainty
from backbone_bench.study.presets import get_preset
from backbone_bench.report.labels import METRIC, MODE_NAMES, chance_of


def results_path(results) -> Path:
    from backbone_bench import paths

    return Path(results) if results else paths.results_dir()


def load(preset: str, results: str | Path | None = None, run_missing: bool = False, device: str = "auto",
         outdated: bool = False, **grid) -> pd.DataFrame:
    """The preset's records as a tidy table; with ``run_missing``, runs what is not recorded first.
    ``results`` None: the repository's results/ (paths.results_dir), from any working directory.
    ``outdated``: keep outdated records too (what a run cost does not depend on its precision)."""
    results = results_path(results)
    if run_missing:
        import os

        from backbone_bench.study.plan import build_plan
        from backbone_bench.study.execute import execute

        os.environ["BACKBONE_BENCH_RESULTS"] = str(results)
        plan = build_plan(preset, results=results, **{k: v for k, v in grid.items() if v})
        # no progress bar inside a page: its lines would land in the notebook, not the terminal
        counts = execute(plan, device, results, progress=False)
        print(f"ran {len(plan.configs)} missing runs of {preset}: {counts}" if plan.configs else "nothing missing to run")
    table = store.compile_table(results)
    if table.empty:
        return table
    table = reported(table, preset, outdated, grid.get("datasets"))
    for key, column in (("datasets", "dataset"), ("backbones", "backbone"), ("shots", "shots"), ("modes", "mode"),
                        ("seeds", "seed")):
        if grid.get(key):
            table = table[table[column].isin(grid[key])]
    return with_clean_scores(table.reset_index(drop=True), results)


def reported(table: pd.DataFrame, preset: str, outdated: bool = False, datasets=None) -> pd.DataFrame:
    """The rows of ``table`` that an edition reports: the preset's current grid only. Records of configs
    it no longer asks for (a changed recipe, a superseded split) are kept in the store but never
    reported under its name; nor are outdated records (another precision than the recipe's, an older
    engine, code in no commit), which count as missing until remade. Refuses a cell that mixes precisions."""
    from backbone_bench.study.plan import grid_cells

    current = table["outdated"].fillna("") == "" if "outdated" in table and not outdated else True
    table = table[(table["preset"] == preset) & current]
    table = with_stand_ins(table, pd.DataFrame(grid_cells(preset, datasets), columns=GRID_COLUMNS))
    if not outdated:
        check_one_precision(table)
    return table


GRID_COLUMNS = ["key", "dataset", "shots", "mode", "backbone", "predecessor"]


def with_stand_ins(table: pd.DataFrame, grid: pd.DataFrame) -> pd.DataFrame:
    """The records of ``grid`` (plan.grid_cells), a cell (dataset, shots, mode) at a time. A cell
    reports its clean-selected records once every run of it that has a predecessor (the same config
    selected on all of validation, plan.predecessor_key) has been made again; until then its
    predecessors stand in for the whole cell, as published, and the cell's clean-selected records
    are held back, so that no cell ranks backbones selected by different rules. ``stands_in_for``
    names the grid key a stand-in's rerun will have (empty on every other row)."""
    recorded = set(table["key"]) if len(table) else set()
    grid = grid.assign(has=grid["key"].isin(recorded), stands=grid["predecessor"].isin(recorded))
    pending = grid[grid["stands"] & ~grid["has"]].groupby(["dataset", "shots", "mode"]).size()
    waiting = grid.set_index(["dataset", "shots", "mode"]).index.isin(pending.index)
    own = table[table["key"].isin(grid.loc[~waiting, "key"])].assign(stands_in_for="")
    standing = grid[waiting & grid["stands"]]
    stand_ins = table.merge(standing[["predecessor", "key"]].rename(columns={"key": "stands_in_for"}),
                            left_on="key", right_on="predecessor").drop(columns="predecessor")
    return pd.concat([own, stand_ins], ignore_index=True) if len(stand_ins) else own


def stand_ins(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a reported ``table`` that stand in for a rerun (with_stand_ins)."""
    return table[table["stands_in_for"] != ""] if "stands_in_for" in table else table.iloc[0:0]


def stand_ins_text(table: pd.DataFrame) -> str:
    """The cells whose predecessors stand in, in words ("" where none does)."""
    standing = stand_ins(table)
    if standing.empty:
        return ""
    cells = standing.groupby(["dataset", "shots", "mode"]).ngroups
    command = f"backbone-bench run --preset {standing['preset'].iloc[0]}"
    return (f"{len(standing)} runs in {cells} cells were selected on all of validation, twins of training images "
            f"included, as first published; they stand in until every run of their cell has been made again with "
            f"selection on the clean subset (`{command}` makes those reruns first), and each cell then switches "
            f"whole: {not_run_text(standing)}.")


def check_one_precision(table: pd.DataFrame) -> None:
    """Every cell (dataset, shots, mode) of an edition computes in one precision, for every backbone;
    a table that mixes them would rank backbones on how they were computed, so it is refused."""
    if table.empty or "precision" not in table:
        return
    ok = table[table["status"] == "ok"]
    mixed = ok.groupby(["dataset", "shots", "mode"])["precision"].nunique()
    if (mixed > 1).any():
        from backbone_bench.errors import BenchError

        (d, k, m) = mixed[mixed > 1].index[0]
        kinds = ok[(ok["dataset"] == d) & (ok["shots"] == k) & (ok["mode"] == m)].groupby("precision")["backbone"]
        said = "; ".join(f"{p}: {', '.join(sorted(set(b)))}" for p, b in kinds)
        raise BenchError(f"{int((mixed > 1).sum())} cells mix precisions, e.g. {d} at {k} shots, {m} ({said}); "
                         "every run of an edition computes in its recipe's precision: remake the others with "
                         "`backbone-bench run --preset <preset>` (outdated records are rerun)")


def subset_overlaps(table: pd.DataFrame) -> dict:
    """(dataset, shots) -> the share of training images the committed seeds' subsets share, for the
    cells of ``table`` (Splits.subset_overlap; the bootstrap counts such seeds as fewer)."""
    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.splits import load_splits

    out = {}
    for dataset, part in table.groupby("dataset") if len(table) else ():
        splits = load_splits(prepare(dataset, progress=False))
        seeds = sorted(part["subset_seed"].unique()) if "subset_seed" in part else None
        for shots in part["shots"].unique():
            out[(dataset, int(shots))] = splits.subset_overlap(int(shots), seeds)
    return out


def twins_left_out(table: pd.DataFrame) -> dict:
    """Dataset -> prepared indices of its test twins (data/twins.py), for the datasets of ``table``:
    from the committed files, computed once from the prepared data where one is missing."""
    from backbone_bench.data import twins
    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.splits import load_splits

    out = {}
    for dataset, key in table[["dataset", "data_key"]].drop_duplicates().itertuples(index=False):
        found = twins.committed(dataset, key) if isinstance(key, str) else None
        if found is None:
            prepared = prepare(dataset, progress=False)
            found = twins.load_twins(prepared, load_splits(prepared))
        out[dataset] = twins.left_out(found)
    return out


def with_clean_scores(table: pd.DataFrame, results) -> pd.DataFrame:
    """The page's test score is the clean subset's: every successful run rescored from its saved
    predictions without the test images that have a near-twin, as is or mirrored, in training or
    validation (data/twins.py). The full test set's score stays beside it (``..._full``), with the
    clean subset's size (``n_test_clean``)."""
    ok = table.index[table["status"] == "ok"] if len(table) else table.index
    if not len(ok):
        return table
    from sklearn.metrics import balanced_accuracy_score

    clean = uncertainty.stored_predictions(results_path(results), twins_left_out(table.loc[ok]))
    scores, sizes = [], []
    for i in ok:
        labels, predicted = clean(table.loc[i])
        scores.append(balanced_accuracy_score(labels, predicted))
        sizes.append(len(labels))
    table = table.assign(**{f"{METRIC}_full": table[METRIC], "n_test_clean": np.nan})
    table.loc[ok, METRIC] = scores
    table.loc[ok, "n_test_clean"] = sizes
    return table


def missing_runs(preset: str, table: pd.DataFrame, datasets=None) -> pd.DataFrame:
    """The runs of the preset's grid (of ``datasets``: all) that have no record: dataset, shots, mode."""
    from backbone_bench.study.plan import grid_cells

    recorded = set(table["key"]) | set(table.get("stands_in_for", ())) if len(table) else set()
    cells = pd.DataFrame(grid_cells(preset, datasets), columns=GRID_COLUMNS)[["key", "dataset", "shots", "mode"]]
    cells = cells[~cells["key"].isin(recorded)]
    return cells[cells["dataset"].isin(datasets)] if datasets is not None else cells


def not_run_text(missing: pd.DataFrame) -> str:
    """What of a grid has no record, per mode and shot level, in words."""
    counts = missing.groupby(["mode", "shots"], sort=True).size()
    return "; ".join(f"{MODE_NAMES.get(m, m)} at {k} shots ({n} runs)" for (m, k), n in counts.items())


def successor_text(preset: str, results=None) -> str:
    """On the interim edition's pages: how far the edition that replaces it once complete has come
    ("" on any other edition's pages, and once nothing is missing)."""
    from backbone_bench.study.published import INTERIM, PUBLISHED

    if preset != INTERIM:
        return ""
    table = load(PUBLISHED, results)
    missing = missing_runs(PUBLISHED, table)
    if not len(missing):
        return ""
    p = get_preset(PUBLISHED)
    grid = "; ".join(f"{MODE_NAMES.get(m, m)} at {', '.join(map(str, p.shots_by_mode.get(m, p.shots)))} shots with "
                     f"{len(p.seeds_by_mode.get(m, p.seeds))} seeds" for m in p.modes)
    return (f"These pages read the interim `{INTERIM}` edition until the `{PUBLISHED}` edition ({p.resolution} px; "
            f"{grid}) has its whole grid recorded; its sweep runs on a "
            f"2-core CPU and has {len(table)} of {len(table) + len(missing)} runs so far. Not run yet: "
            f"{not_run_text(missing)}. `backbone-bench study --preset {PUBLISHED}` builds its partial edition now.")


def coverage(table: pd.DataFrame) -> pd.DataFrame:
    """Which cells this edition has: mode x shots, with the seeds present (runs that finished)."""
    ok = table[table["status"] == "ok"] if len(table) else table
    if ok.empty:
        return pd.DataFrame()
    g = ok.groupby(["mode", "shots"]).agg(datasets=("dataset", "nunique"), backbones=("backbone", "nunique"),
                                          seeds=("seed", lambda v: ",".join(map(str, sorted(v.unique())))),
                                          runs=("key", "size"),
                                          devices=("device_type", lambda v: "/".join(sorted(set(v))).upper()))
    return g.reset_index()


def coverage_text(table: pd.DataFrame) -> str:
    """The coverage in one sentence, for the prose: what was run, with how many seeds."""
    cov = coverage(table)
    if cov.empty:
        return "no runs yet"
    parts = []
    for mode, rows in cov.groupby("mode", sort=False):
        levels = ", ".join(f"{r.shots} shots ({len(r.seeds.split(','))} seed{'s' if ',' in r.seeds else ''})"
                           for r in rows.itertuples())
        parts.append(f"{MODE_NAMES.get(mode, mode)} at {levels}")
    return "; ".join(parts)


def edition_line(preset: str, table: pd.DataFrame) -> str:
    """Above an answer, in plain sight: the edition it comes from, its resolution, and which modes ran
    at which shot levels with how many seeds."""
    p = get_preset(preset)
    return f"From the `{preset}` edition ({p.resolution} px): {coverage_text(table)}."


def draws(table: pd.DataFrame, results, n_boot: int = 1000) -> uncertainty.CellDraws:
    """Two-level bootstrap replicates of every (dataset, shots, backbone, mode) cell of the page,
    with each cell's chance level (1 / classes) beside its mean."""
    ok = table[table["status"] == "ok"] if len(table) else table
    exclude = twins_left_out(ok) if f"{METRIC}_full" in ok else None  # scored on the clean subset (with_clean_scores)
    cells = uncertainty.cell_draws(ok, uncertainty.stored_predictions(results_path(results), exclude), n_boot,
                                   overlap=subset_overlaps(ok))
    cells.cells["chance"] = cells.cells["dataset"].map(chance_of)
    return cells
