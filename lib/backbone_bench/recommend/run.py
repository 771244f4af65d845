"""`backbone-bench recommend PATH`: the study's question answered on the user's own images.

1. The input is checked and listed (data/userdata.py), prepared like a study dataset (pixel
   de-duplication, near-duplicates kept out of test) and split once, seeded and stratified;
   everything lives under the output folder, so a rerun reuses it.
2. Screen: every backbone of the panel with a linear probe, ranked on validation.
3. The top k of the screen fine-tuned with the study's recipe, seeds and learning-rate grid,
   and the scratch twin of the best fine-tuned one (what pretraining buys here).
4. The report (advice.py): OUT/report.html, OUT/summary.csv, OUT/summary.json.
Every choice reads validation only; test is read for the report. The runs are records in
OUT/results like the study's, so a killed command continues where it stopped.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from backbone_bench.data import userdata
from backbone_bench.errors import InvalidParameterError
from backbone_bench.recommend.settings import Settings, check_settings, save_settings

PRESET = "offline"      # the study preset whose recipe, step budgets and learning rates are used


@contextmanager
def environment(out: Path):
    """Records and split files under OUT, and the user dataset visible to worker processes."""
    saved = {k: os.environ.get(k) for k in ("BACKBONE_BENCH_RESULTS", userdata.ENV)}
    os.environ["BACKBONE_BENCH_RESULTS"] = str(out / "results")
    os.environ[userdata.ENV] = str(out / "dataset.json")
    try:
        yield out / "results"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def recommend(path, out=None, panel: str = "offline", backbones=None, top: int = 3, seeds: int = 3,
              resolution: int = 224, flip: bool = True, device: str = "auto", steps: int | None = None,
              workers: int = 1, n_boot: int = 1000, progress: bool = True, report: bool = True,
              screen_only: bool = False) -> dict:
    """Run (or continue) the whole command; returns the summary (advice.summarize). Each phase's wall
    time in this invocation goes to OUT/timing.json (what the budget benchmark reads)."""
    s = Settings(str(path), str(out or ""), panel, list(backbones or []), top, seeds, resolution, flip, device,
                 steps, workers, n_boot=n_boot)
    check_settings(s)
    from backbone_bench.models.panels import check_backbone, panel as panel_of

    names = s.backbones or list(panel_of(s.panel))
    for name in names:
        check_backbone(name)
    if s.top > len(names) and not screen_only:        # a screen fine-tunes nothing: --top is not read there
        raise InvalidParameterError(f"--top {s.top}: the panel has {len(names)} backbones; give at most {len(names)}")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise InvalidParameterError(f"--out {out} is a file: give a folder (created if missing) for the report, "
                                    "the prepared images and the runs")
    listing = userdata.scan(path)                      # refuses bad input before anything is decoded
    s.out = str(out or f"recommend-{userdata.slug(path).removeprefix('user_')}")  # as typed: the rerun command
    out = Path(s.out).resolve()
    from backbone_bench.environment import pick_device

    pick_device(device)                                # an unavailable device is refused here, not mid-way
    from backbone_bench import cpu_share

    cpu_share.announce()                               # every check passed: what the threads will do

    clock = _Clock(out)
    with environment(out) as results:
        spec = userdata.make_spec(listing, out, flip_ok=flip, storage_size=max(256, resolution))
        with clock("prepare"):
            prepared, splits = _prepare(spec, listing, out, progress)
        shots = int(max(Counter(prepared.labels[splits.pool].tolist()).values()))  # every training image
        s.keys = {}
        save_settings(s)
        with clock("screen"):
            screen = _phase(s, "screen", [(b, "linear_probe") for b in names], spec.name, shots, results)
        if not screen_only:
            ranked = _validation_means(results, screen)
            leaders = [b for b in ranked if b[1] == "linear_probe"][: s.top]
            with clock("fine-tune"):
                tuned = _phase(s, "fine-tune", [(b, "finetune") for b, _ in leaders], spec.name, shots, results)
            best = next((b for b, m in _validation_means(results, tuned) if m == "finetune"), None)
            if best is not None:
                with clock("scratch twin"):
                    _phase(s, "scratch twin", [(best, "scratch")], spec.name, shots, results)
        from backbone_bench.recommend import advice

        with clock("summary and report"):
            summary = advice.write_summary(out, n_boot)
            if report:
                advice.write_report(out, n_boot)
    return summary


class _Clock:
    """Wall seconds per phase of this invocation, written to OUT/timing.json as each ends."""

    def __init__(self, out: Path):
        self.path, self.seconds = out / "timing.json", {}

    @contextmanager
    def __call__(self, phase: str):
        import time

        start = time.perf_counter()
        yield
        self.seconds[phase] = round(time.perf_counter() - start, 2)
        self.path.write_text(json.dumps(self.seconds, indent=1) + "\n")


def _prepare(spec, listing, out: Path, progress: bool):
    import pandas as pd

    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.splits import load_splits

    prepared = prepare(spec.name, progress=progress)
    rows = userdata.inventory(listing, prepared.meta)
    table = pd.DataFrame(rows)
    table.to_csv(out / "inventory.csv", index=False)
    print(f"what was found in {listing.path}:\n" + inventory_text(table))
    kept = Counter(spec.classes[i] for i in prepared.labels.tolist())
    userdata.check_counts(kept, f"{listing.path} (after unreadable images and duplicates were removed)")
    return prepared, load_splits(prepared)


def inventory_text(table, width: int | None = None) -> str:
    """The inventory as the terminal shows it: the examples column wrapped to the terminal's width
    (continuation lines under it), never a line wider than the screen."""
    import shutil
    import textwrap

    width = width or shutil.get_terminal_size((100, 20)).columns
    plain = table.assign(examples="")
    lines = plain.to_string(index=False).splitlines()
    left = max(len(line.rstrip()) for line in lines) - len("examples")
    room = max(20, width - left - 1)
    out = [lines[0][:left].rstrip().ljust(left) + " examples"]
    for line, examples in zip(lines[1:], table["examples"]):
        wrapped = textwrap.wrap(str(examples), room) or [""]
        out.append(line[:left].rstrip().ljust(left) + " " + wrapped[0])
        out += [" " * left + " " + more for more in wrapped[1:]]
    return "\n".join(out)


def _configs(s: Settings, pairs, dataset: str, shots: int) -> list[dict]:
    from dataclasses import replace

    from backbone_bench.study.presets import get_preset
    from backbone_bench.study.plan import make_config

    p = get_preset(PRESET)
    out = []
    for backbone, mode in pairs:
        recipe = p.recipe_for(mode, shots)
        if s.steps:
            recipe = replace(recipe, steps=s.steps)
        out += [make_config(dataset, shots, seed, backbone, mode, s.resolution, recipe) for seed in range(s.seeds)]
    return out


def _phase(s: Settings, name: str, pairs, dataset: str, shots: int, results: Path) -> list[str]:
    """Run a phase's configs that are not recorded yet; returns the keys of all of them."""
    from backbone_bench.study import store
    from backbone_bench.study.plan import Plan
    from backbone_bench.study.execute import execute

    configs = _configs(s, pairs, dataset, shots)
    keys = [store.config_key(c) for c in configs]
    s.keys[name] = keys
    save_settings(s)                                           # the report knows which records are this command's
    done = store.done_keys(results)
    todo = [c for c, k in zip(configs, keys) if k not in done]
    print(f"{name}: {len(configs)} runs, {len(configs) - len(todo)} already recorded")
    if todo:
        execute(Plan("recommend", todo, len(configs) - len(todo), [], label=f"recommend: {name}"), s.device,
                results, workers=s.workers)
    return keys


def _validation_means(results: Path, keys) -> list[tuple[str, str]]:
    """(backbone, mode) of the successful runs among ``keys``, best mean validation score first."""
    from backbone_bench.study import store
    from backbone_bench.engine.metrics import PRIMARY

    import pandas as pd

    table = pd.DataFrame([store.flatten(r) for r in store.read_records(results, keys)])  # this phase's runs only
    ok = table[table["status"] == "ok"] if len(table) else table
    if ok.empty:
        from backbone_bench.errors import BenchError

        reasons = table["reason"].dropna().unique()[:3] if len(table) else []
        raise BenchError("every run of this phase failed; nothing to rank. Reasons: " + "; ".join(reasons))
    means = ok.groupby(["backbone", "mode"])[f"val_{PRIMARY}"].mean().sort_values(ascending=False, kind="stable")
    return list(means.index)
