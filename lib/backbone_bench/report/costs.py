"""The cost page's tables: the measured cost table, repeated timings, training time per run (this
edition's, its GPU runs', the 224 px CPU runs'), convergence and the decision's costs. The sweep's
hours are sweep_hours.py's."""
from __future__ import annotations

import pandas as pd

from backbone_bench.report.labels import COST_COLUMNS, SHORT_MODES
from backbone_bench.report.load import results_path

#: The edition GPU time goes to (the 224 px design); CPU editions show its GPU runs' cost beside their own.
GPU_EDITION = "offline"
#: The edition that trains at the backbones' own resolution on a CPU: the cost page sets its runs beside this edition's.
WIDE_EDITION = "cpu224"


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


def training_time(table: pd.DataFrame) -> pd.DataFrame:
    """Wall seconds per run from the records, per device, mode, shot level and backbone: the median
    over seeds and datasets of the group's time (data, training, every evaluation) divided by the
    runs that trained in it together. Tidy: one row per (device, mode, shots, backbone)."""
    ok = table[table["status"] == "ok"] if len(table) else table
    if ok.empty or "total_seconds" not in ok:
        return pd.DataFrame(columns=["device", "resolution", "mode", "shots", "backbone", "seconds", "runs"])
    members = ok["group_members"].fillna(1).clip(lower=1) if "group_members" in ok else 1
    ok = ok.assign(seconds=ok["total_seconds"] / members)
    out = ok.groupby(["device", "resolution", "mode", "shots", "backbone"])["seconds"].agg(["median", "size"])
    return out.reset_index().rename(columns={"median": "seconds", "size": "runs"})


def gpu_training_time(preset: str, table: pd.DataFrame, results=None) -> tuple[pd.DataFrame, str | None]:
    """(``training_time`` of the runs recorded on a GPU, the other edition they come from or None):
    this edition's own, else those of the 224 px design (`offline`), where every GPU minute of the
    study goes, so a reader with a GPU sees what one costs beside the CPU tables."""
    from backbone_bench.report.load import load

    def on_gpu(t):
        return t[t["device_type"] == "cuda"] if len(t) and "device_type" in t else t.iloc[0:0]

    own = on_gpu(table)
    if len(own) or preset == GPU_EDITION:
        return training_time(own), None
    # a run's cost does not depend on whether its precision is the edition's now (bf16 GPU runs are outdated)
    return training_time(on_gpu(load(GPU_EDITION, results, outdated=True))), GPU_EDITION


def gpu_time_text(times: pd.DataFrame, other: str | None) -> str:
    """What the GPU table holds, in words."""
    if times.empty:
        return "No run of this study has been recorded on a GPU yet."
    modes = sorted(times["mode"].unique())
    shots = ", ".join(str(s) for s in sorted(times["shots"].unique()))
    return (f"From {f'the `{other}` edition' if other else 'this edition'}: {int(times['runs'].sum())} runs on a GPU "
            f"({', '.join(SHORT_MODES.get(m, m) for m in modes)}; {shots} images per class) at "
            f"{', '.join(f'{r} px' for r in sorted(times['resolution'].unique()))} on "
            f"{', '.join(sorted(times['device'].unique()))}. A GPU trains several runs at once, side by side in one "
            "network (Methods: fused groups), so a run's share of its group's time is what it costs there.")


def wide_training_time(preset: str, table: pd.DataFrame, results=None) -> pd.DataFrame:
    """``training_time`` of the 224 px CPU edition's runs (WIDE_EDITION), each beside the same run's
    time in ``table`` (this edition: same processor class, mode, shot level and backbone) and the
    ratio of the two: what training at 224 px costs on a CPU like the reader's. Empty on that
    edition's own pages and before it has runs."""
    from backbone_bench.report.load import load

    if preset == WIDE_EDITION:
        return training_time(table.iloc[0:0])
    wide = load(WIDE_EDITION, results)
    wide = wide[wide["device_type"] == "cpu"] if len(wide) and "device_type" in wide else wide.iloc[0:0]
    times = training_time(wide)
    keys = ["device", "mode", "shots", "backbone"]
    base = training_time(table)[keys + ["resolution", "seconds"]].rename(
        columns={"seconds": "seconds_base", "resolution": "resolution_base"})
    times = times.merge(base, on=keys, how="left")
    return times.assign(ratio=times["seconds"] / times["seconds_base"])


def wide_time_text(times: pd.DataFrame, results=None) -> str:
    """What the 224 px CPU table holds, in words, with the median ratio to this edition's runs per
    mode; before it has runs, the sweep's projection for it."""
    if times.empty:  # "No run of the `cpu224` edition has been recorded ...", with its projection
        from backbone_bench.report.sweep_hours import sweep_hours_text

        return sweep_hours_text(results, WIDE_EDITION)
    ratios = times.dropna(subset=["ratio"]).groupby("mode")["ratio"].median()
    said = "; ".join(f"{SHORT_MODES.get(m, m)} {r:.1f}x" for m, r in ratios.items())
    base = ", ".join(f"{int(r)} px" for r in sorted(times["resolution_base"].dropna().unique()))
    return (f"From the `{WIDE_EDITION}` edition: {int(times['runs'].sum())} runs at 224 px on "
            f"{', '.join(sorted(times['device'].unique()))}"
            + (f"; a run there takes a median {said} the time of the same run at {base} on the same processor class"
               if len(ratios) else "") + ".")


def training_time_display(times: pd.DataFrame, device: str):
    """One device's ``training_time`` as a grid narrow enough for the page: a row per backbone, a
    column per mode and shot level, seconds (minutes from one minute up) per run."""
    from backbone_bench.study.hosts import described

    rows = times[times["device"] == device]
    px = ", ".join(f"{r} px" for r in sorted(rows["resolution"].unique()))
    grid = rows.pivot_table(index="backbone", columns=["mode", "shots"], values="seconds")
    grid = grid[sorted(grid.columns, key=lambda c: (["finetune", "linear_probe", "scratch"].index(c[0])
                                                     if c[0] in ("finetune", "linear_probe", "scratch") else 9, c[1]))]
    grid.columns = [f"{SHORT_MODES.get(m, m)}<br>{s}" for m, s in grid.columns]
    grid.index.name = None
    return grid.style.format(lambda v: "" if v != v else f"{v:.0f} s" if v < 60 else f"{v / 60:.1f} min").set_caption(
        f"{described(device)}, {px}: median wall time per run (data, training and every evaluation), {int(rows['runs'].sum())} runs; "
        "columns: mode and labelled images per class")


def convergence(table: pd.DataFrame) -> pd.DataFrame:
    """Per gradient mode and shot level: runs, and how many chose their last validation pass (still
    improving when the step budget ran out) against an earlier one (early stopping had its say)."""
    ok = table[(table["status"] == "ok") & table["mode"].isin(["finetune", "scratch"])] if len(table) else table
    if ok.empty or "last_eval_step" not in ok:
        return pd.DataFrame()
    ok = ok.assign(at_last=ok["chosen_step"] == ok["last_eval_step"])
    g = ok.groupby(["mode", "shots"]).agg(runs=("key", "size"), at_last=("at_last", "sum")).reset_index()
    return g.assign(share=g["at_last"] / g["runs"])


def convergence_text(table: pd.DataFrame) -> str:
    """The convergence share in one sentence: the goal is that at most a third of the runs end on
    their last validation pass."""
    g = convergence(table)
    if g.empty:
        return "no fine-tune or scratch runs yet"
    ft = g[g["mode"] == "finetune"]
    total = (f"{int(ft['at_last'].sum())} of {int(ft['runs'].sum())} fine-tune runs "
             f"({ft['at_last'].sum() / ft['runs'].sum():.0%})" if len(ft) else "no fine-tune runs")
    parts = "; ".join(f"{SHORT_MODES.get(r.mode, r.mode)} at {r.shots} shots {int(r.at_last)} of {int(r.runs)}"
                      for r in g.itertuples())
    return (f"{total} chose their last validation pass, that is, were still improving when the step budget ran out "
            f"(the goal is at most a third); by mode and shot level: {parts}")


def decision_costs(table: pd.DataFrame, mode: str = "finetune") -> tuple[dict, dict]:
    """What a reader pays per run, from the records: (shots -> {backbone: median seconds per run},
    shots -> the processor it was measured on). Per shot level, the processor class with the most
    runs among those that ran every backbone of that level (timings of different processors are not
    comparable); where none ran them all, the median over every processor, said so."""
    times = training_time(table)
    times = times[times["mode"] == mode]
    seconds, where = {}, {}
    for shots, part in times.groupby("shots"):
        every = part["backbone"].nunique()
        full = part.groupby("device").filter(lambda d: d["backbone"].nunique() == every)
        if len(full):
            device = full.groupby("device")["runs"].sum().idxmax()
            chosen = full[full["device"] == device]
            seconds[int(shots)] = dict(zip(chosen["backbone"], chosen["seconds"]))
            where[int(shots)] = device
        else:
            seconds[int(shots)] = part.groupby("backbone")["seconds"].median().to_dict()
            where[int(shots)] = "several processors (none ran every backbone)"
    return seconds, where


def inference_rates(results, resolution: int) -> tuple[dict, str | None]:
    """({backbone: inference images/s}, the device) from the cost table at ``resolution`` on a CPU,
    or ({}, None) where it has no CPU measurement at that resolution."""
    cost = cost_table(results)
    if cost is None or "resolution" not in cost:
        return {}, None
    rows = cost[(cost["resolution"] == resolution) & cost["device"].str.startswith("CPU")]
    if rows.empty:
        return {}, None
    device = rows["device"].value_counts().idxmax()
    rows = rows[rows["device"] == device]
    return dict(zip(rows["backbone"], rows["infer_images_per_s"])), device
