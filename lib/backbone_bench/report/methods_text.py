"""What Methods says that the records decide: what a shifted test set measures, what bf16 changed,
each dataset's near-twin rule, and which cells' seeds share their images. Each is a sentence glued
into the book from the records or the committed benchmark tables, never typed."""
from __future__ import annotations

import numpy as np
import pandas as pd

from backbone_bench.analysis import uncertainty
from backbone_bench.data.registry import DATASETS
from backbone_bench.report.labels import METRIC, MODE_NAMES, SHORT_DOMAIN, chance_of
from backbone_bench.report.load import results_path


def shift_text(table: pd.DataFrame, results, dataset: str = "brain_tumor_mri", weakest: str = "glioma_tumor") -> str:
    """What a dataset whose test set is shifted from its training source measures, from the records:
    how far validation (drawn from the training source) exceeds test for fine-tuning, how many
    10-shot scratch twins score below chance, and the fine-tunes' median test recall of ``weakest``."""
    from backbone_bench.study.store import read_arrays

    ok = table[(table["status"] == "ok") & (table["dataset"] == dataset)] if len(table) else table
    tuned = ok[ok["mode"] == "finetune"] if len(ok) else ok
    if tuned.empty:
        return f"No fine-tuning run of {dataset} is recorded in this edition yet."
    cells = tuned.groupby(["shots", "backbone"])[["val_balanced_accuracy", METRIC]].mean()
    gap = cells["val_balanced_accuracy"] - cells[METRIC]
    classes = DATASETS[dataset].classes
    recalls = []
    for key in tuned["key"]:
        arrays = read_arrays(key, results_path(results))
        mask = arrays["test_label"] == classes.index(weakest)
        if mask.any():
            recalls.append(float((arrays["test_pred"][mask] == classes.index(weakest)).mean()))
    scratch = ok[(ok["mode"] == "scratch") & (ok["shots"] == 10)]
    below = int((scratch[METRIC] < chance_of(dataset)).sum())
    return (f"{dataset} measures transfer to a shifted test set more than accuracy on its own source: its "
            f"validation images come from the training source and its test images, by the dataset's own account, do "
            f"not. Fine-tuned, its validation balanced accuracy exceeds test by {gap.min():.2f} to {gap.max():.2f} "
            f"(per shot level and backbone, {len(cells)} cells); {below} of its {len(scratch)} ten-shot scratch twins "
            f"score below chance ({chance_of(dataset):.2f}) on test; and the fine-tunes recall a median "
            f"{np.median(recalls):.2f} of its {weakest.replace('_', ' ')} test images ({len(recalls)} runs). Its "
            "rankings say which backbone transfers best across that shift, not which fits its source best.")


def precision_text(results) -> str:
    """What bf16 autocast changed against the fp32 reruns of the same configs
    (benchmarks/precision_pairs.py), per backbone and mode."""
    path = results_path(results) / "benchmarks" / "precision_pairs_summary.csv"
    if not path.exists():
        return "No bf16 record has been set beside its fp32 rerun in this results folder."
    t = pd.read_csv(path)
    editions = []
    for preset, rows in t.groupby("preset", sort=False):  # each edition its own pairs: another resolution
        parts = [f"{r.backbone} {MODE_NAMES.get(r.mode, r.mode)}: "
                 f"{uncertainty.fmt(r.bf16_minus_fp32, r.lo, r.hi, signed=True)} over {r.pairs} pairs ({r.verdict}), "
                 f"{r.predictions_changed:.0%} of test predictions and {r.choice_changed:.0%} of validation's choices "
                 "changed" for r in rows.itertuples()]
        editions.append(f"in the `{preset}` edition, " + "; ".join(parts))
    return "bf16 minus fp32, test balanced accuracy: " + "; and ".join(editions) + "."


def equal_treatment_text(results) -> str:
    """Which of the published fine-tuning decision rows the equal-treatment rules changed so far
    (benchmarks/equal_treatment.py: the records as published against today's, the six published
    backbones, both scored on today's clean test subsets)."""
    path = results_path(results) / "benchmarks" / "equal_treatment_decision.csv"
    if not path.exists():
        return "The answer as published has not been set beside today's in this results folder."
    t = pd.read_csv(path)
    moved = []
    for r in t.itertuples():
        what = [f"{name} {getattr(r, f'{name}_published')} → {getattr(r, f'{name}_now')}" for name in ("best", "use")
                if getattr(r, f"{name}_changed")]
        if r.set_changed:
            what.append(f"within noise {r.within_noise_published.count(',') + 1} → {r.within_noise_now.count(',') + 1} backbones")
        if what:
            moved.append(f"{SHORT_DOMAIN.get(r.row, r.row)} {r.shots} ({'; '.join(what)})")
    pending = t["stand_ins_now"].iat[0]
    return (f"{len(moved)} of {len(t)} fine-tuning decision rows of the six published backbones differ from the "
            f"published answer (commit `{t['published_commit'].iat[0]}`): " + ", ".join(moved) + ". "
            + ("" if pending == "none" else f"Not final: {pending} still stand in for their clean-selected reruns. ")
            + f"A changed use with the same set is a change of cost{_slower(results)} "
              "(`python benchmarks/equal_treatment.py`).")


def _slower(results) -> str:
    path = results_path(results) / "benchmarks" / "precision_pairs_summary.csv"
    t = pd.read_csv(path) if path.exists() else pd.DataFrame()
    t = t.dropna(subset=["fp32_over_bf16_train_time"]) if "fp32_over_bf16_train_time" in t else t.iloc[:0]
    if t.empty:
        return ""
    return (f": in fp32 the fine-tunes and scratch twins of {' and '.join(sorted(t['backbone'].unique()))} train "
            f"{t['fp32_over_bf16_train_time'].min():.2f} to {t['fp32_over_bf16_train_time'].max():.2f} times as long "
            "as they did in bf16 on the same CPU class (median per backbone and mode), so a cheaper backbone may now be "
            "the cheapest within noise")


def twin_rules_text(datasets) -> str:
    """Each dataset's near-twin rule as data/twins.py applies it (registry settings), one clause each."""
    from backbone_bench.data import twins

    clauses = []
    for name in datasets:
        words = twins.rule_words(DATASETS[name])
        on = [f"{rule}: {w}" for rule, w in words.items() if w != "off"]
        clauses.append(f"{name} ({'; '.join(on) or 'no rule'})")
    return "; ".join(clauses) + "."


def overlap_text(table: pd.DataFrame) -> str:
    """The cells whose seeds share a flagged share of their training images, and what they are worth."""
    from backbone_bench.analysis.uncertainty import effective_seeds
    from backbone_bench.report.labels import FLAG_OVERLAP
    from backbone_bench.report.load import subset_overlaps

    ok = table[table["status"] == "ok"] if len(table) else table
    shared = dict(ok.groupby(["dataset", "shots"])["subset_shared"].any()) if len(ok) else {}
    flagged = [(d, k, rho) for (d, k), rho in subset_overlaps(ok).items() if FLAG_OVERLAP <= rho < 1 and not shared.get((d, k))]
    if not flagged:
        return "No cell's seeds share a tenth of their training images."
    seeds = int(ok["seed"].nunique())
    return "; ".join(f"{d} at {k} shots: {rho:.0%} (n={seeds} worth {effective_seeds(seeds, rho):.1f})"
                     for d, k, rho in sorted(flagged, key=lambda x: -x[2]))


def clean_selection_text(results) -> str:
    """What selecting gradient runs on clean validation changed (benchmarks/clean_selection.py): how
    often the pick moved (within each rerun, clean against all of validation), the test difference
    where the rerun trained exactly as the published run did, and how far the others differ anyway."""
    path = results_path(results) / "benchmarks" / "clean_selection.csv"
    if not path.exists():
        return "What selecting fine-tunes on clean validation would change has not been measured in this results folder."
    t = pd.read_csv(path)
    parts = []
    by = ["dataset", "shots"] + (["mode"] if "mode" in t else [])
    for key, g in t.groupby(by):
        dataset, shots = key[0], key[1]
        mode = f" ({MODE_NAMES.get(key[2], key[2])})" if len(key) > 2 else ""
        same = g[g["same_training"]]
        effect = (f"where the rerun trained exactly as the published run ({len(same)} of {len(g)}), test balanced "
                  f"accuracy changed by {same['test_delta'].mean():+.3f} on average (from {same['test_delta'].min():+.3f} "
                  f"to {same['test_delta'].max():+.3f})" if len(same) else "no rerun trained exactly as its published run")
        parts.append(f"{dataset} at {shots} shots{mode}: the pick moved in {int(g['moved'].sum())} of {len(g)} runs; {effect}")
    other = t.loc[~t["same_training"], "test_delta"].abs()
    noise = (f" The other reruns differ from their published runs by up to {other.max():.2f} although nothing but the "
             "selection changed: their published runs came from another session, most likely on another processor of "
             "the same class, whose fp32 rounding a ten-shot fine-tune magnifies as much as the choice of checkpoint "
             "(the same code reproduces other sessions' runs exactly; records now name the processor's family and "
             "model)." if len(other) else "")
    return ("Trained again with selection on the clean subset only (`python benchmarks/clean_selection.py`): "
            + "; ".join(parts) + "." + noise)


def eval_passes_text(results) -> str:
    """Why a run keeps its validation passes: evaluation's share of a run's compute per shot level and
    how often fewer passes would move the chosen checkpoint (benchmarks/eval_passes.py)."""
    folder = results_path(results) / "benchmarks"
    if not (folder / "eval_passes.csv").exists() or not (folder / "eval_share.csv").exists():
        return "Evaluation's share of a run has not been measured in this results folder."
    cuts = pd.read_csv(folder / "eval_passes.csv")
    cuts = cuts[cuts["cut"] != "all"]
    share = pd.read_csv(folder / "eval_share.csv").groupby("shots")["eval_share"].median()
    levels = ", ".join(f"{v:.0%} at {k} shots" for k, v in share.items())
    return (f"Evaluation (the validation passes and the test pass) takes a median {levels} of a run's compute at 96 px "
            f"(the measured CPU path); validating only half of the passes would have moved the chosen checkpoint in "
            f"{cuts['moved'].min():.0%} to {cuts['moved'].max():.0%} of the `cpu` edition's fine-tunes, so every run "
            "keeps them all (`python benchmarks/eval_passes.py`).")
