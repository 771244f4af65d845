"""The answer as a decision table: per domain (or dataset) and shot level, the backbones within noise
of the best, the cheapest of them to use, what it costs at most, how much faster it trains, and
how many seeds would tell the top two apart (analysis/decision.py computes; this writes it)."""
from __future__ import annotations

import math

import pandas as pd

from backbone_bench.analysis import decision as rule
from backbone_bench.analysis.uncertainty import CellDraws
from backbone_bench.data.registry import DATASETS
from backbone_bench.report.costs import decision_costs, inference_rates
from backbone_bench.report.labels import DOMAINS_IN_ORDER, SHORT_DOMAIN, chance_of, short_name
from backbone_bench.study.presets import get_preset


def answer(cells: CellDraws, table: pd.DataFrame, preset: str, results=None, by: str = "domain",
           datasets=None, mode: str = "finetune") -> pd.DataFrame:
    """The decision rows (tidy, one per row and shot level) of ``cells``: by ``domain`` (a domain's
    datasets held fixed, its pick the smallest mean regret) or by ``dataset``; ``datasets``: only those."""
    infer, infer_device = inference_rates(results, get_preset(preset).resolution)
    names = cells.cells["dataset"].unique() if datasets is None else datasets
    group = {d: DATASETS[d].domain if by == "domain" else d for d in names}
    members = {r: [d for d in group if group[d] == r] for r in set(group.values())}
    seconds, where = {}, {}
    for row, own_datasets in members.items():  # a row's cost from its own datasets' runs: every page prices it alike
        own = table[table["dataset"].isin(own_datasets)] if len(table) else table
        cost, device = decision_costs(own, mode)
        seconds.update({(row, k): v for k, v in cost.items()})
        where.update({(row, k): v for k, v in device.items()})
    rows = rule.decide(cells, group, mode, seconds, infer)
    if rows.empty:
        return rows
    order = {d: i for i, d in enumerate(DOMAINS_IN_ORDER)} if by == "domain" else {d: i for i, d in enumerate(names)}
    rows = rows.assign(order=rows["row"].map(order)).sort_values(["order", "shots"]).drop(columns="order")
    rows["chance"] = [sum(chance_of(d) for d in members[r]) / len(members[r]) for r in rows["row"]]
    rows["train_measured_on"] = [where.get((r, k)) for r, k in zip(rows["row"], rows["shots"])]
    rows["infer_measured_on"] = infer_device
    rows["power"] = rows.apply(rule.power_words, axis=1)
    return rows.reset_index(drop=True)


def _seeds(row) -> str:
    n = row["seeds_needed"]
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "none would" if row["test_floor"] else ""
    return f"{int(n)} (as run)" if n <= row["n_seeds"] else f"about {int(n)}"


def answer_display(rows: pd.DataFrame, by: str = "domain"):
    """The decision rows one line each, narrow enough for a phone (390 px): where (with chance), use,
    the best, what use costs at most below it, how much faster use trains, how many backbones are
    within noise, and about how many seeds would separate the top two."""
    if rows.empty:
        return pd.DataFrame()
    same = rows["use"] == rows["best"]
    shown = pd.DataFrame({
        "where": [f"{SHORT_DOMAIN.get(r, r) if by == 'domain' else r}, {k}<br><small>chance {c:.2f}</small>"
                  for r, k, c in zip(rows["row"], rows["shots"], rows["chance"])],
        "use": [f"<b>{short_name(u)}</b>" + ("<br><small>the best</small>" if s else f"<br><small>best: {short_name(b)}</small>")
                for u, b, s in zip(rows["use"], rows["best"], same)],
        "at most below best": ["0" if s else f"{m:.3f}" + ("" if f != f else f"<br><small>trains {f:.1f}× faster</small>")
                               for s, m, f in zip(same, rows["at_most"], rows["trains_faster"])],
        "within noise": [f"{len(w)} of {n}" for w, n in zip(rows["within_noise"], rows["backbones"])],
        "seeds to split top two": rows.apply(_seeds, axis=1),
    })
    return shown.style.hide(axis="index")


def _span(values: pd.Series, fmt: str) -> str:
    low, high = fmt.format(values.min()), fmt.format(values.max())
    return low if low == high else f"{low} to {high}"


def _in_rows(k: int, n: int) -> str:
    """"In k of the n rows", said as a reader would say it at the ends (none, one, both, every one)."""
    if k == 0:
        return "In none of the rows"
    if k < n:
        return f"In {k} of the {n} rows"
    return "In its one row" if n == 1 else f"In {'both' if n == 2 else 'every one'} of the {n} rows"


def answer_text(rows: pd.DataFrame) -> str:
    """The decision in sentences: how many rows, where use is not the best and what that costs at most."""
    if rows.empty:
        return "No row has two backbones with results yet."
    cheaper = rows[rows["use"] != rows["best"]]
    none = int(rows["test_floor"].sum())
    same, n = len(rows) - len(cheaper), len(rows)
    text = _in_rows(same, n) + " the best backbone is also the cheapest to train among those within noise of it" if same else ""
    if len(cheaper):
        worst = cheaper.loc[cheaper["at_most"].idxmax()]
        text += ((f"; in the other {len(cheaper)}" if same else _in_rows(n, n)) + " a cheaper backbone than the best is "
                 f"within noise, at most {_span(cheaper['at_most'], '{:.3f}')} below the best (the upper end of the 95 % "
                 f"interval of the shortfall; largest for {SHORT_DOMAIN.get(worst['row'], worst['row'])} at "
                 f"{worst['shots']} images per class) and {_span(cheaper['trains_faster'], '{:.1f}')} times faster to train")
    text += (f". {_in_rows(none, n)} no number of seeds would separate the top two: the test set's own noise is larger "
             "than their gap.")
    other = rows[rows["fastest_infer"].notna() & (rows["fastest_infer"] != rows["use"])]
    if len(other):  # the cheapest to train is not always the fastest to run: name the other where they differ
        text += (" Where inference speed matters more than training time, another backbone within noise runs "
                 "faster: " + "; ".join(f"{SHORT_DOMAIN.get(r.row, r.row)} at {r.shots} ({short_name(r.fastest_infer)})"
                                       for r in other.itertuples()) + ".")
    return text


def cost_words(rows: pd.DataFrame) -> str:
    """Which costs the table uses, measured where."""
    if rows.empty:
        return ""
    devices = sorted({d for d in rows["train_measured_on"].dropna()})
    infer = rows["infer_measured_on"].dropna()
    text = ("Training cost: the median wall time of a fine-tuning run of the row's own datasets in this edition's "
            "records (data, training and every evaluation, so the same row costs the same on every page), per shot "
            f"level on one processor class ({'; '.join(devices)})")
    if len(infer):
        text += f"; inference: images per second from the cost table on {infer.iloc[0]}"
    return text + "."


def picks_display(rows: pd.DataFrame):
    """Per row: the pick, each dataset's own best backbone, and the within-noise set by name (the
    domain pages' second table, and the CSV's columns)."""
    if rows.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "images per class": rows["shots"],
        "pick (least mean regret)": rows["best"].map(short_name),
        "each dataset's own best": [", ".join(f"{d}: {short_name(b)}" for d, b in own.items())
                                    for own in rows["own_picks"]],
        "use's worst dataset": [f"{v:.3f} below its best" for v in rows["use_worst_dataset"]],
        "within noise of the pick": [", ".join(map(short_name, w)) for w in rows["within_noise"]],
    })
    return out.style.hide(axis="index")


def for_csv(rows: pd.DataFrame) -> pd.DataFrame:
    """The tidy decision rows as the download writes them: lists joined, one row per (row, shots)."""
    out = rows.copy()
    out["within_noise"] = out["within_noise"].map(" ".join)
    out["own_picks"] = out["own_picks"].map(lambda o: " ".join(f"{d}={b}" for d, b in o.items()))
    return out.rename(columns={"row": "domain_or_dataset"})



def decision_csv(decision: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """decision.csv: the best and runner-up per (domain, shots) (tables.decision_table) with the
    decision's columns beside them: use, what it costs at most, its speed, the within-noise set,
    each dataset's own pick and the power of the top two."""
    if decision.empty or rows.empty:
        return decision
    extra = for_csv(rows).rename(columns={"domain_or_dataset": "domain"})
    keep = ["domain", "shots", "mode", "use", "use_accuracy", "at_most", "trains_faster", "train_seconds_use",
            "train_seconds_best", "train_measured_on", "fastest_train", "fastest_infer", "infer_measured_on",
            "within_noise", "own_picks", "use_worst_dataset", "n_seeds", "test_sd", "seed_sd", "seeds_needed", "power"]
    return decision.merge(extra[keep], on=["domain", "shots", "mode"], how="left")
