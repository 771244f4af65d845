"""What the book's notebooks call: load a preset's results, label them, tabulate and plot.

The notebooks stay thin (parameters, then one call per section); everything they show is
computed here from the results records, so a number on a page always has a code path.
"""
from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Image, Markdown, display

from backbone_bench import plots, ranking, store, uncertainty
from backbone_bench.data.registry import DATASETS, get_dataset
from backbone_bench.metrics import PRIMARY
from backbone_bench.presets import get_preset

METRIC = f"test_{PRIMARY}"
warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation chatter, not findings


def show(fig) -> None:
    """Embed a figure as PNG whatever matplotlib backend the kernel runs, then free it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(data=buf.getvalue()))


def glue(name, value, fmt=None):
    """Glue a value for the prose ({glue:text}`name`), formatted for reading."""
    from myst_nb import glue as _glue

    _glue(name, fmt.format(value) if fmt else value, display=False)


def load(preset: str, results: str | Path = "results", run_missing: bool = False, device: str = "auto",
         **grid) -> pd.DataFrame:
    """The preset's records as a tidy table; with ``run_missing``, runs what is not recorded first."""
    results = Path(results)
    if run_missing:
        import os

        from backbone_bench.sweep import build_plan, execute

        os.environ["BACKBONE_BENCH_RESULTS"] = str(results)
        execute(build_plan(preset, results=results, **{k: v for k, v in grid.items() if v}), device, results)
    table = store.compile_table(results)
    if table.empty:
        return table
    from backbone_bench.sweep import grid_keys

    # the preset's current grid only: records of configs it no longer asks for (a changed recipe,
    # a superseded split) are kept in the store but never reported under its name
    table = table[(table["preset"] == preset) & table["key"].isin(grid_keys(preset))]
    for key, column in (("datasets", "dataset"), ("backbones", "backbone"), ("shots", "shots"), ("modes", "mode"),
                        ("seeds", "seed")):
        if grid.get(key):
            table = table[table[column].isin(grid[key])]
    return table.reset_index(drop=True)


def banner(preset: str, table: pd.DataFrame) -> None:
    """A visible label on every page: which preset, resolution, devices, weights flags made it."""
    p = get_preset(preset)
    ok = table[table["status"] == "ok"] if len(table) else table
    devices = ", ".join(sorted(ok["device"].unique())) if len(ok) else "none yet"
    resolutions = ", ".join(f"{r} px" for r in sorted(ok["resolution"].unique())) if len(ok) else f"{p.resolution} px"
    flags = []
    if len(ok):
        flagged = ok.groupby("backbone")[["weights_bn_folded", "weights_int8_derived"]].max()
        flags = [f"{b} ({', '.join(f for f, v in (('bn_folded', r.weights_bn_folded), ('int8_derived', r.weights_int8_derived)) if v)})"
                 for b, r in flagged.iterrows() if r.weights_bn_folded or r.weights_int8_derived]
    commits = ", ".join(sorted(ok["git_commit"].unique())) if len(ok) else "-"
    kind = "warning" if preset == "quick" else "note"
    head = ("**Quick preset: a pipeline check, not a result.** " + p.note + "\n\n") if preset == "quick" else ""
    text = (f"{head}Made by preset `{preset}` at {resolutions} on {devices}; {len(ok)} successful runs "
            f"(code {commits}). Weights flags: {'; '.join(flags) if flags else 'none'}.")
    display(Markdown(f":::{{{kind}}}\n{text}\n:::"))  # MyST admonition (nb_render_markdown_format: myst)


def coverage(table: pd.DataFrame) -> pd.DataFrame:
    """Which cells this edition has: mode x shots, with the seeds present (runs that finished)."""
    ok = table[table["status"] == "ok"] if len(table) else table
    if ok.empty:
        return pd.DataFrame()
    g = ok.groupby(["mode", "shots"]).agg(datasets=("dataset", "nunique"), backbones=("backbone", "nunique"),
                                          seeds=("seed", lambda v: ",".join(map(str, sorted(v.unique())))),
                                          runs=("key", "size"))
    return g.reset_index()


def coverage_text(table: pd.DataFrame) -> str:
    """The coverage in one sentence, for the prose: what was run, with how many seeds."""
    cov = coverage(table)
    if cov.empty:
        return "no runs yet"
    parts = []
    for mode, rows in cov.groupby("mode", sort=False):
        levels = "; ".join(f"{r.shots} shots ({len(r.seeds.split(','))} seed{'s' if ',' in r.seeds else ''})"
                           for r in rows.itertuples())
        parts.append(f"{MODE_NAMES.get(mode, mode)} at {levels}")
    return "; ".join(parts)


MODE_NAMES = {"finetune": "fine-tuning", "linear_probe": "linear probes", "scratch": "scratch twins"}


def failures(table: pd.DataFrame) -> None:
    bad = table[table["status"] != "ok"] if len(table) else table
    if len(bad):
        display(Markdown(f"{len(bad)} run(s) did not finish; they are listed with the reason recorded."))
        display(bad[["dataset", "shots", "backbone", "mode", "seed", "status", "reason"]])


def draws(table: pd.DataFrame, results, n_boot: int = 1000) -> uncertainty.CellDraws:
    """Two-level bootstrap replicates of every (dataset, shots, backbone, mode) cell of the page."""
    ok = table[table["status"] == "ok"] if len(table) else table
    return uncertainty.cell_draws(ok, uncertainty.stored_predictions(results), n_boot)


def cell_table(cells: uncertainty.CellDraws) -> pd.DataFrame:
    """Seed mean [95 % interval] (n = independent training subsets) per (dataset, shots, backbone) x mode."""
    t = cells.interval()
    note = np.where(t["subset_shared"], " (n=1: " + t["n_runs"].astype(str) + " seeds share one subset)",
                    " (n=" + t["n_subsets"].astype(str) + ")")
    t["text"] = [uncertainty.fmt(m, lo, hi) for m, lo, hi in zip(t["mean"], t["lo"], t["hi"])] + note
    return t.set_index(["dataset", "shots", "backbone", "mode"])["text"].unstack("mode").fillna("")


def dataset_cards(datasets) -> None:
    from backbone_bench.data.card import class_counts, sample_grid, summary
    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.splits import load_splits

    rows = []
    for name in datasets:
        prepared = prepare(name, progress=False)
        splits = load_splits(prepared)
        rows.append(summary(prepared, splits))
        spec = get_dataset(name)
        display(Markdown(f"### {name}\n\n{spec.description} *Curation:* {spec.curation} *Source:* {spec.citation}"))
        with tempfile.TemporaryDirectory() as tmp:  # embedded in the notebook, not kept as a file
            display(Image(filename=str(sample_grid(prepared, splits, Path(tmp) / f"{name}.png"))))
        display(class_counts(prepared, splits))
    display(Markdown("### Summary of the datasets"))
    display(pd.DataFrame(rows).set_index("dataset").drop(columns=["source"]))


def figures_for(table: pd.DataFrame, datasets) -> None:
    for name in datasets:
        d = table[(table["dataset"] == name) & (table["status"] == "ok")]
        if d.empty:
            display(Markdown(f"No successful runs for {name} yet."))
            continue
        show(plots.accuracy_vs_shots(d, name))
        show(plots.modes_by_backbone(d, name))


def best_backbone(table: pd.DataFrame, dataset: str, mode: str = "finetune"):
    ok = table[(table["status"] == "ok") & (table["dataset"] == dataset) & (table["mode"] == mode)]
    if ok.empty:
        return None
    top_shots = ok["shots"].max()
    means = ok[ok["shots"] == top_shots].groupby("backbone")[METRIC].mean()
    return top_shots, means.idxmax(), means.max()


def confusion_of_best(table: pd.DataFrame, datasets, results) -> None:
    for name in datasets:
        best = best_backbone(table, name)
        if best is None:
            continue
        shots, backbone, score = best
        rows = table[(table["dataset"] == name) & (table["backbone"] == backbone) & (table["shots"] == shots)
                     & (table["mode"] == "finetune") & (table["status"] == "ok")].sort_values("seed")
        arrays = store.read_arrays(rows.iloc[0]["key"], Path(results))
        from backbone_bench.data.prepare import prepare

        labels = prepare(name, progress=False).labels[arrays["test_index"]]
        show(plots.confusion(labels, arrays["test_pred"], DATASETS[name].classes,
                                f"{name}: {backbone}, {shots} shots, seed {rows.iloc[0]['seed']}"))


def domain_ranking(table: pd.DataFrame, cells: uncertainty.CellDraws, mode: str = "finetune") -> pd.DataFrame | None:
    ok = ranking.select(table, mode)
    if ok.empty or ok["backbone"].nunique() < 2:
        return None
    domains = {d: DATASETS[d].domain for d in ok["dataset"].unique()}
    return ranking.bootstrap(ok, domains, None, draws=cells.of(mode))


def fmt_interval(row, value="score", lo="score_lo", hi="score_hi") -> str:
    return uncertainty.fmt(row[value], row[lo], row[hi], digits=2, signed=True)


def ranking_table(scores: pd.DataFrame) -> pd.DataFrame:
    t = scores.copy()
    t["score [95% CI]"] = t.apply(fmt_interval, axis=1)
    t["mean rank [95% CI]"] = t.apply(lambda r: uncertainty.fmt(r["mean_rank"], r["rank_lo"], r["rank_hi"], 2), axis=1)
    return t[["domain", "backbone", "score [95% CI]", "mean rank [95% CI]"]].set_index(["domain", "backbone"])


def separable(top, second) -> bool:
    """The top backbone's interval lies wholly above the runner-up's."""
    return bool(top["score_lo"] > second["score_hi"])


def recommendation(scores: pd.DataFrame, domain: str) -> str:
    """The top backbone, and whether its interval separates it from the runner-up."""
    d = scores[scores["domain"] == domain].sort_values("score", ascending=False)
    if d.empty:
        return "no results"
    top = d.iloc[0]
    text = f"{top['backbone']} (z {fmt_interval(top)})"
    if len(d) > 1:
        second = d.iloc[1]
        verdict = "clearly ahead of" if separable(top, second) else "not separable from"
        text += f", {verdict} {second['backbone']} (z {fmt_interval(second)})"
    return text


def pretrained_vs_scratch(table: pd.DataFrame, cells: uncertainty.CellDraws, shots: int = 10) -> pd.DataFrame:
    """Fine-tune against its scratch twin (same network, normalisation and budget) per (dataset,
    backbone) at ``shots``: seed means, the gain with its interval, and collapsed scratch runs."""
    keys, reps = uncertainty.paired_differences(cells, "finetune", "scratch")
    keep = (keys["shots"] == shots).to_numpy()
    keys, reps = keys[keep].reset_index(drop=True), reps[keep]
    lo, hi = uncertainty.quantiles(reps)
    means = cells.cells.set_index(["dataset", "shots", "backbone", "mode"])["mean"]
    ok = table[(table["status"] == "ok") & (table["mode"] == "scratch") & (table["shots"] == shots)]
    collapsed = ok.groupby(["dataset", "backbone"])["collapsed"].sum() if len(ok) else pd.Series(dtype=int)
    out = keys.assign(
        finetune=[means[(r.dataset, r.shots, r.backbone, "finetune")] for r in keys.itertuples()],
        scratch=[means[(r.dataset, r.shots, r.backbone, "scratch")] for r in keys.itertuples()],
        gain=keys["diff"], lo=lo, hi=hi,
        collapsed_scratch_runs=[int(collapsed.get((r.dataset, r.backbone), 0)) for r in keys.itertuples()])
    out["verdict"] = np.where(out["lo"] > 0, "pretrained wins", np.where(out["hi"] < 0, "scratch wins", "within noise"))
    return out.drop(columns=["diff"])


def sanity_display(sanity: pd.DataFrame):
    shown = pd.DataFrame({
        "dataset": sanity["dataset"], "backbone": sanity["backbone"],
        "fine-tune": sanity["finetune"].map("{:.3f}".format), "scratch twin": sanity["scratch"].map("{:.3f}".format),
        "gain [95% CI]": [uncertainty.fmt(g, lo, hi, signed=True) for g, lo, hi in zip(sanity["gain"], sanity["lo"], sanity["hi"])],
        "verdict": sanity["verdict"],
        "collapsed scratch runs": sanity["collapsed_scratch_runs"]})
    return shown.style.hide(axis="index")


def cost_table(results) -> pd.DataFrame | None:
    path = Path(results) / "cost.csv"
    return pd.read_csv(path) if path.exists() else None


COST_COLUMNS = {"backbone": "backbone", "params_m": "params (M)", "gmacs": "GMACs", "train_images_per_s": "train img/s",
                "infer_images_per_s": "infer img/s", "latency_ms_median": "latency ms (median)",
                "latency_ms_p90": "latency ms (p90)", "train_peak_mem_mb": "train peak MiB", "infer_peak_mem_mb": "infer peak MiB"}


def cost_display(rows: pd.DataFrame):
    """One device's cost rows as a compact table: measured columns only, smallest model first."""
    shown = rows.sort_values("params_m")[[c for c in COST_COLUMNS if c in rows]].dropna(axis=1, how="all")
    shown = shown.rename(columns=COST_COLUMNS)
    formats = {c: "{:.3f}" if c == "GMACs" else "{:.2f}" for c in shown.columns if c != "backbone"}
    return shown.style.hide(axis="index").format(formats, na_rep="")


GAINS = {"scratch": "fine-tune minus scratch twin", "linear_probe": "fine-tune minus linear probe"}


def gains_summary(cells: uncertainty.CellDraws) -> pd.DataFrame:
    """Mean gain per (domain, shots) over its (dataset, backbone) pairs, with two-level intervals.

    Columns: each GAINS label, the label with " lo" / " hi" for the interval, and " pairs"."""
    parts = []
    for minus, label in GAINS.items():
        keys, reps = uncertainty.paired_differences(cells, "finetune", minus)
        keys = keys.assign(domain=keys["dataset"].map(lambda d: DATASETS[d].domain))
        g = uncertainty.group_means(keys, reps, ["domain", "shots"]).set_index(["domain", "shots"])
        parts.append(g.rename(columns={"mean": label, "lo": f"{label} lo", "hi": f"{label} hi", "pairs": f"{label} pairs"}))
    out = pd.concat(parts, axis=1)
    for label in GAINS.values():
        if label not in out:
            out[[label, f"{label} lo", f"{label} hi", f"{label} pairs"]] = np.nan
    return out.sort_index()


def gains_display(gains: pd.DataFrame) -> pd.DataFrame:
    """gains_summary as text: mean [low, high]; blank where a mode has no runs."""
    def text(row, label):
        return "" if np.isnan(row[label]) else uncertainty.fmt(row[label], row[f"{label} lo"], row[f"{label} hi"], signed=True)

    out = pd.DataFrame({label: gains.apply(text, axis=1, label=label) for label in GAINS.values()})
    return out[(out != "").any(axis=1)]


def cells_where(gains: pd.DataFrame, label: str, positive: bool) -> str:
    """The (domain, shots) cells whose whole interval for ``label`` lies above (or below) zero."""
    side = gains[f"{label} lo"] > 0 if positive else gains[f"{label} hi"] < 0
    hits = gains[side]
    return "; ".join(f"{domain_title(d).lower()} at {k} shots ("
                     f"{uncertainty.fmt(row[label], row[f'{label} lo'], row[f'{label} hi'], 2, signed=True)})"
                     for (d, k), row in hits.iterrows()) or "no cell"


def domain_title(domain: str) -> str:
    return {"natural": "Natural photos", "medical": "Medical imaging", "galaxy": "Galaxy images",
            "remote_sensing": "Aerial and remote-sensing tiles"}[domain]
