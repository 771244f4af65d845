"""The cost page's tables: the measured cost table, repeated timings, the displayed columns."""
from __future__ import annotations

import pandas as pd

from backbone_bench.report.labels import COST_COLUMNS
from backbone_bench.report.load import results_path


def cost_table(results) -> pd.DataFrame | None:
    """results/cost.csv with one row per architecture, device and setting.

    Cost depends on the network, not on its weights: ``regnetx_002`` (local weights) and
    ``regnetx_002.pycls_in1k`` (Hub weights) are one architecture. Where one was timed under several
    names, the row is the median of those timings, ``timed_as`` lists them and ``timings`` counts
    them (on a shared CPU, timings of the same network minutes apart differ by up to 2x)."""
    path = results_path(results) / "cost.csv"
    if not path.exists():
        return None
    raw = pd.read_csv(path)
    raw = raw[raw["status"] == "ok"] if "status" in raw else raw
    raw = raw.assign(architecture=raw["backbone"].str.partition(".")[0])
    keys = ["architecture", "device", "precision", "resolution", "channels_last", "compile", "train_batch", "infer_batch"]
    keys = [k for k in keys if k in raw]
    numeric = [c for c in raw.select_dtypes("number").columns if c not in keys]
    grouped = raw.groupby(keys, dropna=False)
    out = grouped[numeric].median().reset_index()
    out["timed_as"] = grouped["backbone"].agg(lambda names: ", ".join(sorted(names))).to_numpy()
    out["timings"] = grouped.size().to_numpy()
    return out.rename(columns={"architecture": "backbone"})


def repeated_timings_text(cost: pd.DataFrame) -> str:
    """Architectures timed under more than one name, with the spread of their inference throughput."""
    if cost is None or "timings" not in cost or not (cost["timings"] > 1).any():
        return "every architecture was timed once"
    rows = cost[cost["timings"] > 1]
    return ("; ".join(f"{r.backbone} (timed as {r.timed_as})" for r in rows.itertuples())
            + ": each is one network whatever its weights, so the table shows the median of its timings")


def cost_display(rows: pd.DataFrame):
    """One device's cost rows as a compact table: measured columns only, smallest model first."""
    shown = rows.sort_values("params_m")[[c for c in COST_COLUMNS if c in rows]].dropna(axis=1, how="all")
    shown = shown.rename(columns=COST_COLUMNS)
    formats = {c: "{:.3f}" if c == "GMACs" else "{:.2f}" for c in shown.columns if c != "architecture"}
    return shown.style.hide(axis="index").format(formats, na_rep="")
