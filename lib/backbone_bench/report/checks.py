"""Checks a reader should see beside the answer: collapsed runs, pretrained against scratch, published
reference scores, class weighting."""
from __future__ import annotations

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from backbone_bench.analysis import uncertainty
from backbone_bench.data.registry import DATASETS
from backbone_bench.report.labels import METRIC, MODE_NAMES, chance_of
from backbone_bench.report.load import results_path


def failures(table: pd.DataFrame) -> None:
    bad = table[table["status"] != "ok"] if len(table) else table
    if len(bad):
        display(Markdown(f"{len(bad)} run(s) did not finish; they are listed with the reason recorded."))
        display(bad[["dataset", "shots", "backbone", "mode", "seed", "status", "reason"]])
    if len(table) and "collapsed" in table and table["collapsed"].fillna(False).astype(bool).any():
        display(Markdown(f"Collapsed to a (near-)constant predictor: {collapsed_text(table)}."))


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


def class_weighting_text(results) -> str:
    """The measured comparison behind the fine-tune class weighting (benchmarks/class_weighting.py)."""
    from backbone_bench.study.presets import CLASS_WEIGHT_BY_MODE

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


def chance_levels(table: pd.DataFrame, results) -> pd.DataFrame:
    """Per dataset of the page: its classes, the balanced accuracy of guessing (1 / classes) and the
    accuracy of always answering the test set's most common class, read from a run's saved labels
    (the test set as scored; every run of a dataset is scored on the same one)."""
    from backbone_bench.study.store import read_arrays

    ok = table[table["status"] == "ok"] if len(table) else table
    rows = []
    for dataset, runs in ok.groupby("dataset"):
        labels = read_arrays(runs["key"].iat[0], results_path(results))["test_label"]
        rows.append(dict(dataset=dataset, classes=int(len(DATASETS[dataset].classes)), test_images=len(labels),
                         chance_balanced_accuracy=chance_of(dataset),
                         majority_accuracy=float(np.bincount(labels).max() / len(labels))))
    return pd.DataFrame(rows, columns=["dataset", "classes", "test_images", "chance_balanced_accuracy",
                                       "majority_accuracy"])


def chance_display(levels: pd.DataFrame):
    shown = levels.rename(columns={"test_images": "test images", "chance_balanced_accuracy": "balanced accuracy of guessing",
                                   "majority_accuracy": "accuracy of always the majority class"})
    return shown.style.hide(axis="index").format({"balanced accuracy of guessing": "{:.3f}",
                                                  "accuracy of always the majority class": "{:.3f}"})


def clean_differences(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: test images as scored, how many the clean subset leaves out (their near-twins
    are in training or validation, data/twins.py), and clean minus full test balanced accuracy over
    the successful runs: mean, smallest and largest."""
    ok = table[table["status"] == "ok"] if len(table) else table
    if ok.empty or "n_test_clean" not in ok:
        return pd.DataFrame()
    diff = ok.assign(diff=ok[METRIC] - ok[f"{METRIC}_full"], left_out=ok["n_test"] - ok["n_test_clean"])
    return diff.groupby("dataset").agg(test_images=("n_test", "median"), left_out=("left_out", "median"),
                                       runs=("diff", "size"), mean=("diff", "mean"), low=("diff", "min"),
                                       high=("diff", "max")).reset_index()


def clean_display(rows: pd.DataFrame):
    shown = pd.DataFrame({"dataset": rows["dataset"], "test images": rows["test_images"].astype(int),
                          "left out (twins)": rows["left_out"].astype(int), "runs": rows["runs"],
                          "clean minus full, mean [smallest, largest]": [
                              f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]" for m, lo, hi in zip(rows["mean"], rows["low"], rows["high"])]})
    return shown.style.hide(axis="index")


def clean_text(rows: pd.DataFrame) -> str:
    if rows.empty:
        return "no run of this edition is recorded yet"
    big = rows.loc[rows["mean"].abs().idxmax()]
    return (f"over the {int(rows['runs'].sum())} runs the clean subset moves a run's score by {rows['low'].min():+.3f} "
            f"to {rows['high'].max():+.3f}; the largest mean change is {big['mean']:+.4f} ({big['dataset']}, "
            f"{int(big['left_out'])} of {int(big['test_images'])} test images left out)")


def probe_refit_text(results) -> str:
    """What refitting the earlier editions' probes on the wide standardised grid changed
    (benchmarks/probe_refit.py): grid-edge shares before and after, the mean change of the probes'
    clean-test balanced accuracy per dataset, and the decision-table rows whose pick changed."""
    path = results_path(results) / "benchmarks" / "probe_refit.csv"
    if not path.exists():
        return "Not refitted in this results folder."
    t = pd.read_csv(path)
    decisions = pd.read_csv(path.with_name("probe_refit_decision.csv"))
    from backbone_bench.study.plan import grid_cells

    parts = []
    for preset, rows in t.groupby("preset", sort=False):
        probes = [c for c in grid_cells(preset) if c["mode"] == "linear_probe"]
        # only backbones that had probes to refit count: those joining the panel later were fitted on the wide grid
        refittable = set(rows["backbone"])
        total = sum(c["backbone"] in refittable for c in probes)
        later = sorted({c["backbone"] for c in probes} - refittable)
        count = f", {len(rows)} probes" if len(rows) >= total else (
            f", {len(rows)} of its {total} probes refitted so far: {', '.join(sorted(rows['dataset'].unique()))}; "
            "the rest follow")
        if later:
            count += f"; {' and '.join(later)}, which joined the panel later, were fitted on the wide grid from the start"
        change = (rows["test_after"] - rows["test_before"]).groupby(rows["dataset"])
        spans = []
        for dataset, diff in change:
            lo, hi = uncertainty.quantiles(uncertainty.resampled_means(diff.to_numpy()))
            spans.append(f"{dataset} {uncertainty.fmt(diff.mean(), lo, hi, signed=True)}")
        d = decisions[decisions["preset"] == preset]
        probe_rows = d[(d["mode_before"] == "linear_probe") | (d["mode_after"] == "linear_probe")]
        moved = probe_rows[probe_rows["backbone_before"] != probe_rows["backbone_after"]]
        parts.append(
            f"`{preset}` ({int(rows['resolution'].iloc[0])} px{count}): validation chose the old grid's "
            f"smallest C in {rows['smallest_C_before'].mean():.0%} of the probes; on the wide grid its choice sits on "
            f"an edge in {int(rows['edge_after'].sum())} ({rows['edge_after'].mean():.1%}), each after the grid grew "
            f"as far as allowed; the probes' clean-test balanced accuracy changed "
            f"by {'; '.join(spans)} (mean over the dataset's probes, 95 % interval over probes); the decision table's "
            f"pick changed in {len(moved)} of its {len(probe_rows)} linear-probe rows"
            + (f" ({', '.join(f'{r.domain} at {r.shots}: {r.backbone_before} to {r.backbone_after}' for r in moved.itertuples())})"
               if len(moved) else ""))
    return ". ".join(parts) + ". `python benchmarks/probe_refit.py` compares the two."
