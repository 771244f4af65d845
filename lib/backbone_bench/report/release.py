"""An edition as a folder a reader can download, cite and check: `backbone-bench release`.

The folder holds the edition's tables (runs, cells, decision, cost), its records and predictions
(runs/<key>.json and .npz, the same files the results store holds, so the folder is itself a
results folder `results merge` accepts), a datasheet saying what every column means, which preset
and commit made it and how much of the grid it covers, and SHA256SUMS (`sha256sum -c SHA256SUMS`).
Every table is computed by the same functions the book's pages call, so the numbers are the book's.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from backbone_bench import __version__, environment
from backbone_bench.errors import InvalidParameterError

#: What the columns of the tables mean (recipe_* columns: the Recipe fields' own comments).
COLUMNS = {
    "key": "the run's identity: a hash of its config (runs/<key>.json holds the whole record)",
    "status": "ok, or why the run has no score (diverged, oom, unavailable, error)",
    "reason": "for a failed run, what happened",
    "preset": "the edition (preset) whose grid asked for the run",
    "dataset": "the dataset (the book's data cards describe each)",
    "shots": "training images per class asked for (a class with fewer gives all it has)",
    "subset_seed": "seed of the training subset drawn from the pool",
    "seed": "training seed (equal to the subset seed)",
    "backbone": "the ImageNet-pretrained network (timm name)",
    "mode": "finetune (all weights), linear_probe (a logistic-regression head on frozen features) or scratch "
            "(the same network randomly initialised)",
    "pretrained": "whether the run started from ImageNet weights",
    "resolution": "input size in pixels (square)",
    "test_balanced_accuracy": "mean per-class recall on the clean test subset (the headline metric)",
    "test_balanced_accuracy_full": "balanced accuracy on the whole test set, near-twins included",
    "val_balanced_accuracy": "balanced accuracy on validation, which chose the checkpoint, learning rate or C",
    "test_accuracy": "share of test images right (these four: the whole test set)", "test_macro_f1": "macro-averaged F1 on test",
    "test_auc_ovr": "one-vs-rest ROC AUC on test", "test_ece": "expected calibration error on test (15 bins)",
    "test_nll": "mean negative log-likelihood on test",
    "chosen_C": "linear probe: the inverse L2 strength validation chose",
    "chosen_grid_extended": "linear probe: decades the C grid grew past an edge validation picked",
    "chosen_at_edge": "linear probe: whether the chosen C still sits on an edge of the (grown) grid",
    "chosen_lr": "gradient runs: the learning rate validation chose", "chosen_step": "the step of the chosen checkpoint",
    "train_seconds": "seconds of training (features and head for a probe; pauses left out where clock is "
                     "'active', included in older records)",
    "clock": "'active': every seconds field leaves out the sweep's pauses (older records: empty)",
    "total_seconds": "seconds the whole run took, evaluation included (a pause of the sweep left out, where "
                     "paused_seconds is recorded; older records include it)",
    "paused_seconds": "seconds the sweep was paused (SIGSTOP) during the run",
    "last_eval_step": "the chosen learning rate's last validation pass (chosen_step equal to it: still improving)",
    "device": "the device that ran it (a CPU: model, vector unit, threads)",
    "device_as_recorded": "the CPU's name as made before names carried the vector unit (empty: as recorded)",
    "device_from": "how the vector unit of such a CPU was inferred (its session's speed path; study/hosts.py)",
    "device_type": "cpu or cuda",
    "cpu_id": "the CPU's family, model and stepping (processors of one class can round fp32 differently; older records: empty)",
    "precision": "what the run computed in (fp32 or bf16-autocast); an edition's recipe fixes it for every run",
    "torch": "PyTorch version", "timm": "timm version", "backbone_bench": "this package's version",
    "python": "Python version", "git_commit": "the commit of the code that made the run (+dirty.<hash>: uncommitted lib/, its diff in diffs/<commit>.patch)",
    "weights_provenance": "where the ImageNet weights came from", "weights_sha256": "checksum of the weights file",
    "weights_bn_folded": "BatchNorm folded into the convolutions in the shipped weights",
    "weights_int8_derived": "weights dequantised from an int8 model",
    "n_train": "training images", "n_val": "validation images", "n_test": "test images scored",
    "n_val_selected": "validation images model selection scored (the clean subset where the recipe asks)",
    "chosen_on_all_val": "for a run that selected on clean validation: what all of validation, twins included, "
                         "would have chosen (its learning rate and step, or its C)",
    "stands_in_for": "for a run selected on all of validation that stands in until its cell is rerun with clean "
                     "selection: the key its rerun will have (empty on every other row)",
    "weights_library": "the library that builds the network (timm or torchvision)",
    "effective_shots": "the training images per class actually available",
    "subset_shared": "the seeds' training subsets are the same images (the whole pool)",
    "collapsed": "one class got at least 98 % of the test predictions",
    "splits_digest": "digest of the split files the run read", "finished_at": "when the run finished (UTC)",
    "outdated": "why the record is to be made again (another precision than its recipe's, an older engine, code in no "
                "commit); empty for every record an edition reports",
    # cells.csv
    "mean": "the cell's mean over seeds", "n_runs": "runs in the cell", "lo": "lower end of the 95 % interval",
    "hi": "upper end of the 95 % interval",
    "n_subsets": "independent training subsets in the cell: 1 means the interval holds test images only",
    "overlap": "the share of a seed's training images another seed's subset also holds",
    "n_effective": "the independent seeds the cell's seeds are worth, given their overlap (the bootstrap widens to it)",
    "chance": "balanced accuracy of a constant guess: 1 / classes",
    # decision.csv
    "domain": "natural, medical, galaxy or remote sensing", "balanced_accuracy": "the chosen backbone's mean over "
    "the domain's datasets and seeds", "runner_up": "the second backbone", "runner_up_accuracy": "its mean",
    "gap": "chosen minus runner-up", "gap_lo": "lower end of the gap's 95 % interval",
    "gap_hi": "upper end of the gap's 95 % interval",
    "separable": "the gap's interval lies above zero", "datasets": "datasets behind the domain's mean",
    "n_test_clean": "test images in the clean subset", "train_images_per_second": "training throughput of the run",
    "compiled": "whether torch.compile ran", "weights_backbone": "the weights' network name",
    "weights_source": "the weights file or Hub id", "weights_create_kwargs": "the network's build options",
    "weights_mean": "input normalisation mean", "weights_std": "input normalisation std",
    "weights_reported_top1": "ImageNet top-1 the weights' source reports", "micro_batch": "images per forward pass "
    "when a step was split to fit memory", "data_key": "digest of the prepared images", "engine": "the training "
    "engine's version (older fine-tune records are rerun)", "group_members": "runs trained fused with this one",
    "channels_last_stack": "memory layout of a fused stack", "fusion": "how the run was fused with others (solo: not)",
    "init": "scratch: random-twin (same network and normalisation as the pretrained run)",
    # cost.csv
    "channels_last": "channels-last memory layout", "compile": "torch.compile", "train_batch": "training batch",
    "infer_batch": "inference batch", "params_m": "parameters (millions)", "gmacs": "multiply-accumulates per image "
    "(billions)", "train_images_per_s": "training images per second (median of repeats)", "train_images_per_s_sd":
    "its standard deviation", "train_images_per_s_p10": "its 10th percentile", "train_peak_mem_mb": "peak training "
    "memory (MiB, GPU)", "infer_images_per_s": "inference images per second", "infer_images_per_s_sd": "its standard "
    "deviation", "infer_images_per_s_p10": "its 10th percentile", "infer_peak_mem_mb": "peak inference memory (MiB, "
    "GPU)", "latency_ms_median": "one-image latency, median (ms)", "latency_ms_p90": "one-image latency, 90th "
    "percentile", "latency_ms_sd": "its standard deviation", "repeats": "timing repeats", "measured_at": "when "
    "measured", "timed_as": "the names it was timed under (one architecture)", "timings": "timings merged",
}


def meaning_of(column: str, meaning: dict) -> str:
    """A column's meaning; a validation metric reads as its test twin, measured on validation."""
    if column in meaning:
        return meaning[column]
    if column.startswith("val_") and f"test_{column[4:]}" in meaning:
        return meaning[f"test_{column[4:]}"].replace("on test", "on validation").replace("test ", "validation ")
    return meaning.get(column.removesuffix("_full"), "-")


def recipe_comments() -> dict:
    """recipe_<field> -> the field's comment in engine/recipe.py (one source for both)."""
    from backbone_bench.engine import recipe

    lines = inspect.getsource(recipe.Recipe).splitlines()
    out = {}
    for node in ast.parse(inspect.getsource(recipe.Recipe)).body[0].body:
        if isinstance(node, ast.AnnAssign) and "#" in lines[node.lineno - 1]:
            out[f"recipe_{node.target.id}"] = lines[node.lineno - 1].split("#", 1)[1].strip()
    return out


def release(preset: str, out: Path, results: Path | None = None, n_boot: int = 1000) -> Path:
    """Write the edition ``preset`` into ``out`` (which must not exist or be empty)."""
    from backbone_bench import report
    from backbone_bench.report.load import results_path

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InvalidParameterError(f"release --out {out}: the folder exists and is not empty; name a new folder")
    results = results_path(results)
    table = report.load(preset, results)
    ok = table[table["status"] == "ok"] if len(table) else table
    if ok.empty:
        raise InvalidParameterError(f"release --preset {preset}: no finished runs in {results}; "
                                    f"run the preset first (backbone-bench run --preset {preset})")
    out.mkdir(parents=True, exist_ok=True)
    cells = report.draws(table, results, n_boot)
    decision, _ = report.decision_table(cells)
    tables = {"runs": table, "cells": cells.interval(), "decision": decision}
    cost = report.cost_table(results)
    if cost is not None:
        tables["cost"] = cost
    for name, frame in tables.items():
        frame.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")
    table.to_parquet(out / "runs.parquet", index=False)
    (out / "runs").mkdir()
    for key in table["key"]:
        for suffix in (".json", ".npz"):
            source = results / "runs" / f"{key}{suffix}"
            if source.exists():
                shutil.copy2(source, out / "runs" / source.name)
    (out / "datasheet.md").write_text(datasheet(preset, table, tables, n_boot))
    from backbone_bench.environment import git_commit
    from backbone_bench.report import citation

    (out / "CITATION.cff").write_text(citation.cff_text())
    (out / "HOW-TO-CITE.txt").write_text(citation.how_to_cite(preset, len(ok), git_commit()))
    write_checksums(out)
    return out


#: Where the built site holds the edition it shows (the intro page links its files there).
SITE_FOLDER = "edition"
LINKED = ("datasheet.md", "decision.csv", "cells.csv", "runs.csv", "runs.parquet", "SHA256SUMS")  # and the zip


def publish(html: Path, preset: str, results: Path | None = None, n_boot: int = 1000) -> Path | None:
    """The edition beside the site it belongs to: html/edition/<preset>/ and a zip of it."""
    folder = Path(html) / SITE_FOLDER / preset
    shutil.rmtree(folder, ignore_errors=True)
    try:
        release(preset, folder, results, n_boot)
    except InvalidParameterError as err:  # an edition with no finished runs: nothing to link
        print(f"no edition files published: {err}")
        return None
    shutil.make_archive(str(folder.parent / f"backbone-bench-{preset}-{__version__}"), "zip", folder)
    return folder


def site_links(preset: str, depth: int = 1) -> str:
    """HTML links from a page ``depth`` folders below the site root to the edition's files (raw HTML:
    they point at files the build writes after the pages, which Sphinx cannot check)."""
    up = "../" * depth
    base = f"{up}{SITE_FOLDER}/{preset}"
    items = [f'<a href="{up}{SITE_FOLDER}/backbone-bench-{preset}-{__version__}.zip">the whole edition (zip)</a>']
    items += [f'<a href="{base}/{name}"><code>{name}</code></a>' for name in LINKED]
    return " · ".join(items)


def datasheet(preset: str, table: pd.DataFrame, tables: dict, n_boot: int) -> str:
    from backbone_bench.report.load import coverage, missing_runs, stand_ins_text
    from backbone_bench.study.presets import get_preset

    p = get_preset(preset)
    ok = table[table["status"] == "ok"]
    meaning = COLUMNS | recipe_comments()
    missing = missing_runs(preset, table)
    lines = [f"# Edition `{preset}`, backbone-bench {__version__}", "",
             f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by commit `{environment.git_commit()}`; "
             f"the runs were made by commit(s) {', '.join(f'`{c}`' for c in sorted(ok['git_commit'].unique()))} "
             f"on {', '.join(sorted(ok['device'].unique()))}.", "",
             f"**The preset.** {p.note or p.name} ({p.resolution} px; datasets {', '.join(p.datasets)}; "
             f"backbones {', '.join(p.backbones)}).", "",
             f"**Coverage.** {len(ok)} finished runs, {int((table['status'] != 'ok').sum())} failed, "
             f"{len(missing)} of the grid not run" + (" (a partial edition: nothing is imputed)." if len(missing) else ".")
             + (f" {stand_ins_text(table)}" if stand_ins_text(table) else ""),
             "", coverage(table).to_markdown(index=False), "",
             f"**Intervals.** 95 % percentile intervals of a two-level bootstrap ({n_boot} replicates): training "
             "subsets (seeds), then test images; a cell with one training subset (`n_subsets` 1) holds test images "
             "only. Scores are on each dataset's clean test subset (near-twins of training or validation images "
             "left out).", "",
             "**Files.** `runs.csv` / `runs.parquet` (one row per run), `cells.csv` (one row per dataset, shots, "
             "backbone and mode), `decision.csv` (the answer per domain and shot level), `cost.csv` (measured "
             "speed and memory), `runs/` (each run's record and its test predictions: indices, predicted classes, "
             "float16 probabilities), `SHA256SUMS` (check with `sha256sum -c SHA256SUMS`).", "",
             "## Columns", ""]
    for name, frame in tables.items():
        lines += [f"### {name}.csv", "", "| column | meaning |", "|---|---|"]
        lines += [f"| `{c}` | {meaning_of(c, meaning)} |" for c in frame.columns]
        lines.append("")
    return "\n".join(lines)


def write_checksums(folder: Path) -> Path:
    """SHA256SUMS over every file under ``folder``, in `sha256sum -c` form, paths sorted."""
    rows = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
        rows.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(folder).as_posix()}")
    target = folder / "SHA256SUMS"
    target.write_text("\n".join(rows) + "\n")
    return target
