"""Dataset cards and per-dataset figures (samples, near-duplicates, the best backbone's confusion matrix)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from IPython.display import Image, Markdown, display

from backbone_bench.report import plots
from backbone_bench.study import store
from backbone_bench.data.registry import DATASETS, get_dataset
from backbone_bench.report.display import show
from backbone_bench.report.labels import METRIC
from backbone_bench.report.load import results_path


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
    words = {"flip_ok": "horizontal flips allowed", "val": "validation", "pool": "training pool"}
    summary_rows = summary_rows.rename(columns=lambda c: words.get(c, c.replace("_", " ")))
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


def fewer_than_asked(table: pd.DataFrame) -> str:
    """Where a shot level gives some class fewer training images than it names (a class has only so
    many), per dataset with those classes' counts, and which domains rest on one dataset."""
    import numpy as np

    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.splits import load_splits

    ok = table[table["status"] == "ok"] if len(table) else table
    if ok.empty:
        return ""
    parts = []
    for dataset in sorted(ok["dataset"].unique()):
        prepared = prepare(dataset, progress=False)
        splits = load_splits(prepared)
        classes = get_dataset(dataset).classes
        for shots in sorted(ok.loc[ok["dataset"] == dataset, "shots"].unique()):
            counts = np.bincount(splits.labels[splits.train(int(shots), 0)], minlength=len(classes))
            parts += [f"{dataset} at {shots} has {text}"] if (text := _short_classes(counts, classes, shots)) else []
    domains = ok.drop_duplicates("dataset").assign(domain=lambda d: d["dataset"].map(lambda n: DATASETS[n].domain))
    single = [f"{d.replace('_', ' ')} ({g['dataset'].iloc[0]})" for d, g in domains.groupby("domain") if len(g) == 1]
    text = ("Where a class has fewer images than a shot level asks for, it gives all it has: "
            + "; ".join(parts) + "." if parts else "Every class has as many training images as each shot level asks for.")
    if single:
        text += f" One dataset stands for its whole domain in {', '.join(single)}: read those rows as that dataset's."
    return text


def _short_classes(counts, classes, shots: int) -> str:
    """The classes a shot level gives fewer than ``shots`` images, in few words: each by name when
    there are a few, else how many and the range of their counts ("" when none is short)."""
    short = [(classes[c], int(n)) for c, n in enumerate(counts) if n < shots]
    if not short:
        return ""
    low, high = min(n for _, n in short), max(n for _, n in short)
    where = "every class" if len(short) == len(classes) else f"{len(short)} of its {len(classes)} classes"
    if low == high and len(short) == len(classes):
        return f"{low} in every class"
    if len(short) <= 4:
        return ", ".join(f"{name} {n}" for name, n in short)
    return f"{low} to {high} in {where}" if low < high else f"{low} in {where}"


def sources_text(datasets) -> str:
    """Where each dataset comes from off the study's machines, besides the study's data bundle (the
    mirror's exact files, the only source the committed splits fit): the public source the package
    downloads and verifies, where it has one, for new runs with splits of their own."""
    from backbone_bench.data.registry import get_dataset

    rows = ["| dataset | public source, for new runs (the book itself reads the bundle) |", "|---|---|"]
    for name in datasets:
        spec = get_dataset(name)
        public = [s for s in spec.sources if getattr(s, "download", False)]
        where = ("; ".join(s.describe() + (f", checked against {s.checksum}" if getattr(s, "checksum", "") else "")
                           for s in public) + ", downloaded and verified by the package") if public else \
            "none the package can fetch: only the study's data bundle"
        rows.append(f"| {name} | {where} |")
    return "\n".join(rows)


def clone_text() -> str:
    """The first command of a rebuild: the configured repository's URL, or what to put there."""
    from backbone_bench.report.citation import repository_url

    url = repository_url()
    return f"git clone {url}" if url else "git clone <the repository's URL> (BACKBONE_BENCH_REPOSITORY_URL names it)"
