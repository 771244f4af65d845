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
    """Embed a figure as PNG whatever matplotlib backend the kernel runs, then free it. None (a
    figure with nothing to draw, in a partial edition) says so instead."""
    import matplotlib.pyplot as plt

    if fig is None:
        display(Markdown("*No finished runs to plot here in this edition yet.*"))
        return
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(data=buf.getvalue()))


def glue(name, value, fmt=None):
    """Glue a value for the prose ({glue:text}`name`), formatted for reading."""
    from myst_nb import glue as _glue

    _glue(name, fmt.format(value) if fmt else value, display=False)


def results_path(results) -> Path:
    from backbone_bench import paths

    return Path(results) if results else paths.results_dir()


def load(preset: str, results: str | Path | None = None, run_missing: bool = False, device: str = "auto",
         **grid) -> pd.DataFrame:
    """The preset's records as a tidy table; with ``run_missing``, runs what is not recorded first.
    ``results`` None: the repository's results/ (paths.results_dir), from any working directory."""
    results = results_path(results)
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


def _names(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def flags_in_words(ok: pd.DataFrame) -> str:
    """The weights flags of the backbones on the page, said in words."""
    if ok.empty:
        return ""
    flagged = ok[ok["mode"] != "scratch"].groupby("backbone")[["weights_bn_folded", "weights_int8_derived"]].max()
    int8 = [b for b, r in flagged.iterrows() if r.weights_int8_derived]
    folded = [b for b, r in flagged.iterrows() if r.weights_bn_folded]
    parts = []
    if int8:
        parts.append(f"{_names(int8)} start from weights dequantized from int8 models (real trained weights that "
                     "lost some accuracy to quantization)")
    if folded:
        parts.append(f"{_names(folded)} have BatchNorm folded into the convolutions, re-estimated on training "
                     "images before fine-tuning so that training starts from the pretrained function")
    return ("; ".join(parts) + ". See {doc}`/book/provenance`.") if parts else "No weights flags: every backbone's weights are the original float checkpoints."


def coverage_grid(table: pd.DataFrame) -> str:
    """Mode x shots, each cell the seeds, backbones and datasets present, as a Markdown table."""
    cov = coverage(table)
    if cov.empty:
        return "No runs recorded yet."
    shots = sorted(cov["shots"].unique())
    lines = ["| mode | " + " | ".join(f"{k} shots" for k in shots) + " |", "|---" * (len(shots) + 1) + "|"]
    for mode, rows in cov.groupby("mode"):
        by = rows.set_index("shots")
        cells = [f"{len(by.at[k, 'seeds'].split(','))} seed(s) x {by.at[k, 'backbones']} backbones x "
                 f"{by.at[k, 'datasets']} datasets, on {by.at[k, 'devices']}" if k in by.index else "not run" for k in shots]
        lines.append(f"| {MODE_NAMES.get(mode, mode)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rerun_command(preset: str, template: str, params: dict) -> str:
    args = "".join(f" -p {k} {v}" for k, v in params.items())
    return f"papermill notebooks/{template}.ipynb /tmp/{template}.ipynb -p preset {preset}{args}"


def about(preset: str, table: pd.DataFrame, template: str = "summary", **params) -> None:
    """The block on every page: what made it (preset, resolution, device, code), the edition's
    coverage, the weights flags in words, and the command that reruns the page."""
    p = get_preset(preset)
    ok = table[table["status"] == "ok"] if len(table) else table
    devices = _names(sorted(ok["device"].unique())) if len(ok) else "none yet"
    resolutions = ", ".join(f"{r} px" for r in sorted(ok["resolution"].unique())) if len(ok) else f"{p.resolution} px"
    commits = ", ".join(sorted(ok["git_commit"].unique())) if len(ok) else "-"
    text = (f"Preset `{preset}` at {resolutions}; {len(ok)} runs on {devices}; code {commits}.\n\n"
            f"{coverage_grid(table)}\n\n{flags_in_words(ok)}\n\n"
            f"**Rerun this page** (from the repository; add `-p run_missing True` to train what is missing, "
            f"`-p results /tmp/results` to keep the tracked results untouched): `{rerun_command(preset, template, params)}`. "
            f"The whole book: `backbone-bench study --preset {preset}`.")
    if preset == "quick":
        display(Markdown(f":::{{warning}}\n**Quick preset: a pipeline check, not a result.** {p.note}\n:::"))
    datasets = [d for d in p.datasets if DATASETS[d].domain == params["domain"]] if "domain" in params else None
    missing = missing_runs(preset, table, datasets)
    if len(missing):  # in plain sight: a partial edition must never pass for a complete one
        counts = missing.groupby(["mode", "shots"], sort=True).size()
        todo = "; ".join(f"{MODE_NAMES.get(m, m)} at {k} shots ({n} runs)" for (m, k), n in counts.items())
        display(Markdown(f":::{{warning}}\n**Partial edition: {len(table)} of {len(table) + len(missing)} runs of the "
                         f"`{preset}` grid{' for this domain' if datasets else ''} are recorded.** Not run yet: {todo}. "
                         f"Every number here uses only the recorded runs; nothing is imputed. What exists:\n\n"
                         f"{coverage_grid(table)}\n:::"))
    display(Markdown(f":::{{admonition}} About this edition\n:class: dropdown note\n{text}\n:::"))


def missing_runs(preset: str, table: pd.DataFrame, datasets=None) -> pd.DataFrame:
    """The runs of the preset's grid (of ``datasets``: all) that have no record: dataset, shots, mode."""
    from backbone_bench.sweep import grid_cells

    recorded = set(table["key"]) if len(table) else set()
    cells = pd.DataFrame(grid_cells(preset), columns=["key", "dataset", "shots", "mode"])
    cells = cells[~cells["key"].isin(recorded)]
    return cells[cells["dataset"].isin(datasets)] if datasets is not None else cells


banner = about  # older templates call it by this name


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


MODE_NAMES = {"finetune": "fine-tuning", "linear_probe": "linear probes", "scratch": "scratch twins"}


def failures(table: pd.DataFrame) -> None:
    bad = table[table["status"] != "ok"] if len(table) else table
    if len(bad):
        display(Markdown(f"{len(bad)} run(s) did not finish; they are listed with the reason recorded."))
        display(bad[["dataset", "shots", "backbone", "mode", "seed", "status", "reason"]])
    if len(table) and "collapsed" in table and table["collapsed"].fillna(False).astype(bool).any():
        display(Markdown(f"Collapsed to a (near-)constant predictor: {collapsed_text(table)}."))


def draws(table: pd.DataFrame, results, n_boot: int = 1000) -> uncertainty.CellDraws:
    """Two-level bootstrap replicates of every (dataset, shots, backbone, mode) cell of the page."""
    ok = table[table["status"] == "ok"] if len(table) else table
    return uncertainty.cell_draws(ok, uncertainty.stored_predictions(results_path(results)), n_boot)


_INTERACTIVE = {"ready": False}


def long_table(frame: pd.DataFrame, caption: str) -> None:
    """A long table as an interactive one (itables, offline: its script is embedded once per page,
    so the site needs no network): sortable, searchable, ten rows at a time, never wider than
    the page. The table id is derived from the caption so a rebuild writes the same bytes."""
    import hashlib

    import itables

    if not _INTERACTIVE["ready"]:
        itables.init_notebook_mode(all_interactive=False, connected=False)
        _INTERACTIVE["ready"] = True
    frame = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame
    table_id = "itables_" + hashlib.sha1(caption.encode()).hexdigest()[:10]
    itables.show(frame, caption=caption, table_id=table_id, pageLength=10, lengthMenu=[10, 25, 100],
                 classes="display compact", scrollX=True, showIndex=False)


def downloads(results, tables: dict | None = None, runs: bool = True, cost: bool = False) -> None:
    """Download links for the tables a page uses: the tidy runs table and cost table from the
    results folder, and this page's own summaries written beside it (downloads/NAME.csv)."""
    links = []
    res = Path(results) if results else None
    linkable = res is not None and not res.is_absolute()  # the book passes results relative to the page
    for wanted, name in ((runs, "runs.csv"), (cost, "cost.csv")):
        if wanted and linkable and (res / name).exists():
            links.append(f"{{download}}`{name} <{(res / name).as_posix()}>`")
    for name, frame in (tables or {}).items():
        path = Path("downloads") / name
        path.parent.mkdir(exist_ok=True)
        frame.to_csv(path, index=False, float_format="%.6g")
        links.append(f"{{download}}`{name} <{path.as_posix()}>`")
    if links:
        display(Markdown("**Download the tables behind this page:** " + " · ".join(links)))


def cell_table(cells: uncertainty.CellDraws) -> pd.DataFrame:
    """Seed mean [95 % interval] (n = independent training subsets) per (dataset, shots, backbone) x mode."""
    t = cells.interval()
    note = np.where(t["subset_shared"], " (n=1: " + t["n_runs"].astype(str) + " seeds share one subset)",
                    " (n=" + t["n_subsets"].astype(str) + ")")
    t["text"] = [uncertainty.fmt(m, lo, hi) for m, lo, hi in zip(t["mean"], t["lo"], t["hi"])] + note
    return t.set_index(["dataset", "shots", "backbone", "mode"])["text"].unstack("mode").fillna("").rename_axis(columns=None)


def dataset_cards(datasets) -> None:
    from backbone_bench.data import dedup
    from backbone_bench.data.card import class_counts, near_duplicate_counts, near_duplicate_grid, sample_grid, summary
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
        with tempfile.TemporaryDirectory() as tmp:
            pairs = near_duplicate_grid(prepared, splits, Path(tmp) / f"{name}_near.png")
            if pairs is not None:
                n = near_duplicate_counts(prepared, splits)
                display(Markdown(f"**Near-duplicates** ({dedup.RULE.split('near: ')[1]}): {n['near_duplicate_pairs']} "
                                 f"pairs, {n['near_duplicate_pairs_across_splits']} of them across splits; "
                                 f"{n['near_duplicates_removed_from_test']} test images removed for a near-copy in "
                                 "training or validation. Sample pairs, crossing ones first:"))
                display(Image(filename=str(pairs)))
    display(Markdown("### Summary of the datasets"))
    summary_rows = pd.DataFrame(rows).set_index("dataset").drop(columns=["source", "domain", "prepare_seconds"])
    display(summary_rows.T.rename_axis(index=None))  # one column per dataset: narrow enough for the page


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
        arrays = store.read_arrays(rows.iloc[0]["key"], results_path(results))
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


def separable(scores: pd.DataFrame, domain: str, top: str, second: str) -> bool:
    """The top backbone's score minus the runner-up's, replicate by replicate (paired on the same
    resamples), has a 95 % interval above zero."""
    draws = scores.attrs.get("score_draws")
    if draws is None:
        return False
    lo, hi = uncertainty.quantiles(draws.loc[(domain, top)].to_numpy() - draws.loc[(domain, second)].to_numpy())
    return uncertainty.decided(lo, hi) > 0


def recommendation(scores: pd.DataFrame, domain: str) -> str:
    """The top backbone, and whether it is separable from the runner-up."""
    d = scores[scores["domain"] == domain].sort_values("score", ascending=False)
    if d.empty:
        return "no results"
    top = d.iloc[0]
    text = f"{top['backbone']} (z {fmt_interval(top)})"
    if len(d) > 1:
        second = d.iloc[1]
        verdict = "clearly ahead of" if separable(scores, domain, top["backbone"], second["backbone"]) else "not separable from"
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


def sanity_text(sanity: pd.DataFrame) -> str:
    if sanity.empty:
        return "no (dataset, backbone) pair has both a fine-tuned run and a scratch twin"
    counts = sanity["verdict"].value_counts()
    text = f"of {len(sanity)} (dataset, backbone) pairs, pretrained wins (interval above zero) in {counts.get('pretrained wins', 0)}"
    for verdict in ("within noise", "scratch wins"):
        rows = sanity[sanity["verdict"] == verdict]
        if len(rows):
            text += f"; {verdict} in {len(rows)}: " + ", ".join(
                f"{r.backbone} on {r.dataset} ({uncertainty.fmt(r.gain, r.lo, r.hi, 2, signed=True)})" for r in rows.itertuples())
    return text


#: Published transfer results the 224 px records can be held against: a reader's plausibility check.
REFERENCES = (
    dict(dataset="uc_merced", mode="linear_probe", shots=100, floor=0.90,
         claim="frozen ImageNet CNN features with a linear classifier: above 0.9 accuracy with 80 training images per class",
         source="Penatti, Nogueira & dos Santos, CVPR Workshops 2015 (CaffeNet and OverFeat features, 5-fold cross-validation)"),
    dict(dataset="cifar10", mode="finetune", shots=1000, floor=0.80,
         claim="fine-tuned from ImageNet with 1,000 images per class: well above 0.8 accuracy",
         source="a floor well below the 0.95-0.98 that ImageNet CNNs fine-tuned on all 5,000 per class reach "
                "(Kornblith, Shlens & Le, CVPR 2019)"),
)


def plausibility(table: pd.DataFrame, resolution: int = 224) -> pd.DataFrame:
    """Each published reference against this edition's records of the same cell at ``resolution``:
    test accuracy, seed mean per backbone; "consistent" when every backbone clears the floor."""
    ok = table[(table["status"] == "ok") & (table["resolution"] == resolution)] if len(table) else table
    rows = []
    for ref in REFERENCES:
        cell = ok[(ok["dataset"] == ref["dataset"]) & (ok["mode"] == ref["mode"]) & (ok["shots"] == ref["shots"])] \
            if len(ok) else ok
        row = dict(dataset=ref["dataset"], mode=MODE_NAMES.get(ref["mode"], ref["mode"]), shots=ref["shots"],
                   published=ref["claim"], source=ref["source"], floor=ref["floor"])
        if cell.empty:
            rows.append(row | dict(verdict=f"not in this edition (no {resolution} px runs of this cell yet)"))
            continue
        means = cell.groupby("backbone")["test_accuracy"].mean().sort_values()
        below = means[means < ref["floor"]]
        rows.append(row | dict(
            images_per_class=int(cell["effective_shots"].median()), backbones=len(means),
            seeds=int(cell.groupby("backbone")["seed"].nunique().min()), lowest=means.iloc[0], highest=means.iloc[-1],
            verdict="consistent: every backbone above the floor" if below.empty else
            "below the floor: " + ", ".join(f"{b} ({v:.3f})" for b, v in below.items())))
    return pd.DataFrame(rows)


def plausibility_text(checks: pd.DataFrame) -> str:
    if "lowest" not in checks or checks["lowest"].isna().all():
        return "this edition has neither cell at 224 px yet; the table gives the references the 224 px edition is held to."
    parts = []
    for r in checks.itertuples():
        where = f"{r.dataset} ({r.mode}, {r.shots} shots)"
        if pd.notna(r.lowest):
            parts.append(f"{where}: {r.lowest:.3f} to {r.highest:.3f} against a floor of {r.floor:.2f}, {r.verdict}")
        else:
            parts.append(f"{where}: {r.verdict}")
    return "; ".join(parts) + "."


def plausibility_display(checks: pd.DataFrame):
    measured = [f"{r.lowest:.3f}-{r.highest:.3f} ({int(r.backbones)} backbones, {int(r.seeds)}+ seeds, "
                f"{int(r.images_per_class)} images per class)"
                if "lowest" in checks and pd.notna(r.lowest) else "-" for r in checks.itertuples()]
    return pd.DataFrame({"dataset": checks["dataset"], "cell": [f"{r.mode}, {r.shots} shots" for r in checks.itertuples()],
                         "published": checks["published"], "source": checks["source"],
                         "this edition (test accuracy, seed means)": measured,
                         "verdict": checks["verdict"]}).style.hide(axis="index")


def collapsed_text(table: pd.DataFrame) -> str:
    """Runs that predict (almost) one class for every test image, named."""
    ok = table[(table["status"] == "ok")] if len(table) else table
    bad = ok[ok["collapsed"].fillna(False).astype(bool)] if "collapsed" in ok else ok.iloc[:0]
    if bad.empty:
        return f"none of {len(ok)} runs"
    return f"{len(bad)} of {len(ok)} runs (" + ", ".join(
        f"{r.mode} {r.backbone} on {r.dataset} at {r.shots} shots, seed {r.seed}" for r in bad.itertuples()) + \
        "); they stay in every mean: a collapse is a result of the recipe, not a fault to hide"


def sanity_display(sanity: pd.DataFrame):
    shown = pd.DataFrame({
        "dataset": sanity["dataset"], "backbone": sanity["backbone"],
        "fine-tune": sanity["finetune"].map("{:.3f}".format), "scratch twin": sanity["scratch"].map("{:.3f}".format),
        "gain [95% CI]": [uncertainty.fmt(g, lo, hi, signed=True) for g, lo, hi in zip(sanity["gain"], sanity["lo"], sanity["hi"])],
        "verdict": sanity["verdict"],
        "collapsed scratch runs": sanity["collapsed_scratch_runs"]})
    return shown.style.hide(axis="index")


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


COST_COLUMNS = {"backbone": "architecture", "params_m": "params (M)", "gmacs": "GMACs", "train_images_per_s": "train img/s",
                "infer_images_per_s": "infer img/s", "latency_ms_median": "latency ms (median)",
                "latency_ms_p90": "latency ms (p90)", "train_peak_mem_mb": "train peak MiB", "infer_peak_mem_mb": "infer peak MiB"}


def cost_display(rows: pd.DataFrame):
    """One device's cost rows as a compact table: measured columns only, smallest model first."""
    shown = rows.sort_values("params_m")[[c for c in COST_COLUMNS if c in rows]].dropna(axis=1, how="all")
    shown = shown.rename(columns=COST_COLUMNS)
    formats = {c: "{:.3f}" if c == "GMACs" else "{:.2f}" for c in shown.columns if c != "architecture"}
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


def gains_display(gains: pd.DataFrame):
    """gains_summary as text: mean [low, high]; blank where a mode has no runs (a Markdown line when
    nothing is measured)."""
    def text(row, label):
        return "" if np.isnan(row[label]) else uncertainty.fmt(row[label], row[f"{label} lo"], row[f"{label} hi"], signed=True)

    out = pd.DataFrame({label: gains.apply(text, axis=1, label=label) for label in GAINS.values()})
    out = out[(out != "").any(axis=1)]
    if out.empty:  # a partial edition: neither comparison has both sides yet
        return Markdown("*Not measured in this edition yet: no fine-tuned run has its scratch twin or a linear probe beside it.*")
    return out


def cells_where(gains: pd.DataFrame, label: str, positive: bool) -> str:
    """The (domain, shots) cells whose whole interval for ``label`` lies above (or below) zero."""
    side = gains[f"{label} lo"] > 0 if positive else gains[f"{label} hi"] < 0
    hits = gains[side]
    return "; ".join(f"{domain_title(d).lower()} at {k} shots ("
                     f"{uncertainty.fmt(row[label], row[f'{label} lo'], row[f'{label} hi'], 2, signed=True)})"
                     for (d, k), row in hits.iterrows()) or "no cell"


def class_weighting_text(results) -> str:
    """The measured comparison behind the fine-tune class weighting (benchmarks/class_weighting.py)."""
    from backbone_bench.presets import CLASS_WEIGHT_BY_MODE

    path = results_path(results) / "benchmarks" / "class_weighting.csv"
    chosen = CLASS_WEIGHT_BY_MODE.get("finetune", "none")
    if not path.exists():
        return f"Not measured in this results folder; fine-tuning uses class_weight={chosen!r}."
    t = pd.read_csv(path)
    t = t[t["status"] == "ok"]
    wide = t.pivot_table(index=["backbone", "seed"], columns="class_weight",
                         values=["val_balanced_accuracy", "test_balanced_accuracy"])
    parts = []
    for split in ("val", "test"):
        diff = (wide[(f"{split}_balanced_accuracy", "balanced")] - wide[(f"{split}_balanced_accuracy", "none")]).dropna()
        lo, hi = uncertainty.quantiles(uncertainty.resampled_means(diff.to_numpy()))
        parts.append(f"{'validation' if split == 'val' else 'test'} {uncertainty.fmt(diff.mean(), lo, hi, signed=True)}")
    row = t.iloc[0]
    return (f"Measured on {row['dataset']} at {row['shots']} shots per class, the most imbalanced subset of the study "
            f"(`python benchmarks/class_weighting.py`; {len(diff)} paired runs: {', '.join(sorted(t['backbone'].unique()))}, "
            f"seeds {', '.join(map(str, sorted(t['seed'].unique())))}; {row['resolution']} px, {row['recipe_steps']} steps, "
            f"{row['device']}): a class-balanced loss minus the unweighted one, balanced accuracy "
            f"{'; '.join(parts)} (mean over pairs, 95 % bootstrap interval over pairs). The decision is taken on "
            f"validation: fine-tuning and the scratch twins use class_weight={chosen!r}.")


DOMAINS_IN_ORDER = ("natural", "medical", "galaxy", "remote_sensing")
SHORT_DOMAIN = {"natural": "natural photos", "medical": "medical", "galaxy": "galaxies", "remote_sensing": "aerial tiles"}


def domain_summary(cells: uncertainty.CellDraws) -> uncertainty.CellDraws:
    return uncertainty.domain_means(cells, {d: DATASETS[d].domain for d in cells.cells["dataset"].unique()})


def decision_table(cells: uncertainty.CellDraws, domains=DOMAINS_IN_ORDER, modes=("finetune", "linear_probe")):
    """Per (domain, shots): the backbone to use, its balanced accuracy with interval, the runner-up,
    and whether the two are separable. Fine-tuning where this edition has it, else the linear probe
    (said in the mode column). Returns (tidy rows, display frame)."""
    summary = domain_summary(cells)
    t, rows = summary.interval(), []
    for domain in [d for d in domains if d in set(t["domain"])]:
        for shots in sorted(t.loc[t["domain"] == domain, "shots"].unique()):
            for mode in modes:
                idx = t.index[(t["domain"] == domain) & (t["shots"] == shots) & (t["mode"] == mode)]
                if len(idx) >= 2:
                    break
            else:
                continue
            order = t.loc[idx].sort_values("mean", ascending=False).index
            best, second = order[0], order[1]
            gap = summary.draws[best] - summary.draws[second]
            lo, hi = uncertainty.quantiles(gap)
            rows.append(dict(domain=domain, shots=int(shots), mode=mode, backbone=t.at[best, "backbone"],
                             balanced_accuracy=t.at[best, "mean"], lo=t.at[best, "lo"], hi=t.at[best, "hi"],
                             runner_up=t.at[second, "backbone"], runner_up_accuracy=t.at[second, "mean"],
                             gap=t.at[best, "mean"] - t.at[second, "mean"], gap_lo=lo, gap_hi=hi,
                             separable=uncertainty.decided(lo, hi) > 0, datasets=int(t.at[best, "datasets"])))
    tidy = pd.DataFrame(rows)
    if tidy.empty:  # decision_text says why
        return tidy, Markdown("")
    shown = pd.DataFrame({
        "domain": tidy["domain"].map(SHORT_DOMAIN), "images per class": tidy["shots"],
        "use (balanced accuracy, 95% CI)": [
            f"{b}{'' if m == 'finetune' else ' (linear probe)'}<br>{uncertainty.fmt(v, lo, hi)}"
            for b, m, v, lo, hi in zip(tidy["backbone"], tidy["mode"], tidy["balanced_accuracy"], tidy["lo"], tidy["hi"])],
        "runner-up": tidy["runner_up"] + "<br>" + tidy["runner_up_accuracy"].map("{:.3f}".format),
        "separable?": [f"{'yes' if sep else 'no, within noise'}<br>gap {uncertainty.fmt(g, lo, hi, signed=True)}"
                       for g, lo, hi, sep in zip(tidy["gap"], tidy["gap_lo"], tidy["gap_hi"], tidy["separable"])]})
    return tidy, shown.style.hide(axis="index")


def decision_text(decision: pd.DataFrame) -> str:
    """One sentence over the decision table: where the best backbone is separable from the runner-up."""
    if decision.empty:
        return "No domain has two backbones with results yet."
    sep = decision[decision["separable"]]
    if sep.empty:
        return (f"In none of the {len(decision)} cells is the best backbone separable from the runner-up: the top "
                "two are within noise everywhere, so choose between them on cost.")
    where = "; ".join(f"{domain_title(r.domain).lower()} at {r.shots} shots ({r.backbone})" for r in sep.itertuples())
    rest = " Elsewhere the top two are within noise: choose between them on cost." if len(sep) < len(decision) else ""
    return f"The best backbone is separable from the runner-up in {len(sep)} of {len(decision)} cells: {where}.{rest}"


def range_text(gains: pd.DataFrame, label: str) -> str:
    values = gains[label].dropna()
    if values.empty:
        return "not measured in this edition (no scratch twins)"
    if len(values) == 1:
        return f"{values.iloc[0]:+.2f} balanced accuracy (one domain and shot cell)"
    return f"{values.min():+.2f} to {values.max():+.2f} balanced accuracy across the domain and shot cells"


def domain_title(domain: str) -> str:
    return {"natural": "Natural photos", "medical": "Medical imaging", "galaxy": "Galaxy images",
            "remote_sensing": "Aerial and remote-sensing tiles"}[domain]
