"""The whole study in one call: sweep (resuming), notebooks through papermill, then the book.

The repository's own book (book/, built to _build/html) is the published edition's
(``study.published.edition()``); any other preset is built in a folder of its own
(_build/books/<preset>/) from a copy of the book's sources, so trying the quick preset never
overwrites the committed edition.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from backbone_bench import paths
from backbone_bench.data.registry import DATASETS
from backbone_bench.study.presets import PRESETS, get_preset
from backbone_bench.report.page import NOTEBOOKS
from backbone_bench.study.published import edition

BOOK_SOURCES = ("_config.yml", "_toc.yml", "_static", "book")
DOMAIN_ORDER = ("natural", "medical", "galaxy", "remote_sensing")


def default_root(preset: str, results: Path | None = None) -> Path:
    return paths.REPO_ROOT if preset == edition(results) else paths.REPO_ROOT / "_build" / "books" / preset


def copy_sources(root: Path) -> None:
    """A fresh copy of the book's prose and configuration; executed notebooks are made anew."""
    for name in BOOK_SOURCES:
        src, dst = paths.REPO_ROOT / name, root / name
        if src.is_dir():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.ipynb", "_build"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)


def pages(preset: str) -> list[tuple[str, str, dict, str | None]]:
    """(template, output path relative to the root, parameters, the page's own title or None: the
    template's) for every executed page."""
    from backbone_bench.report.labels import domain_title

    p = get_preset(preset)
    domains = [d for d in DOMAIN_ORDER if any(DATASETS[n].domain == d for n in p.datasets)]
    out = [("summary", "book/intro.ipynb", {}, None), ("ranking", "book/ranking.ipynb", {}, None),
           ("cost", "book/cost.ipynb", {}, None)]
    out += [("domain", f"book/domains/{d}.ipynb", {"domain": d}, domain_title(d)) for d in domains]
    # `recommend` on a study dataset exported as a folder
    out.append(("recommend", "book/example_report.ipynb", {"out": EXAMPLE},
                "Example report: brain MRI as your own folder"))
    return out


#: The committed `recommend` output the book's example report is rebuilt from (book/use_your_data.md).
EXAMPLE = paths.REPO_ROOT / "results" / "examples" / "brain_tumor_mri"


def _weights_text(p) -> str:
    return "; ".join(f"{m}: {p.class_weight_by_mode.get(m, 'none')}" for m in p.modes)


def write_recipe_page(root: Path) -> Path:
    """book/generated/presets.md: every preset's grid and recipe, straight from presets.py, as one
    table with a column per preset and a row per setting (a row per preset ran to 14 wide columns of
    long lists, wider than any page)."""
    from dataclasses import fields

    from backbone_bench.engine.recipe import Recipe
    from backbone_bench.models.panels import PANELS
    from backbone_bench.study.presets import STUDY_DATASETS

    def listing(names, named):
        for label, members in named.items():
            if tuple(names) == tuple(members):
                return f"{label} ({len(members)})"
        return ", ".join(names)

    def value(v):
        if isinstance(v, (tuple, list)):
            if len(v) > 4 and all(isinstance(x, float) for x in v):
                return f"{min(v):g} to {max(v):g} ({len(v)} values)"
            return ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
        return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    presets = list(PRESETS.values())
    rows = {
        "datasets": [listing(p.datasets, {"the study's six": STUDY_DATASETS}) for p in presets],
        "backbones": [listing(p.backbones, {f"panel `{k}`": v for k, v in PANELS.items()}) for p in presets],
        "images per class": [value(p.shots) for p in presets],
        "modes": [", ".join(p.modes) for p in presets],
        "seeds": [value(p.seeds) for p in presets],
        "narrower for": ["; ".join([f"{m}: shots {value(v)}" for m, v in p.shots_by_mode.items()]
                                   + [f"{m}: seeds {value(v)}" for m, v in p.seeds_by_mode.items()]) or "-"
                         for p in presets],
        "input px": [str(p.resolution) for p in presets],
        "steps by shots": ["; ".join(f"{k}: {v}" for k, v in p.steps_by_shots.items()) for p in presets],
        "learning rates": ["; ".join(f"{m}: {value(v)}" for m, v in p.lrs_by_mode.items()) for p in presets],
        "class weight": [_weights_text(p) for p in presets],
    }
    for f in fields(Recipe):
        if f.name in ("steps", "lrs", "class_weight"):
            continue
        cells = []
        for p in presets:
            recipe = p.recipe_for("linear_probe", min(p.shots)) if f.name.startswith("probe") else p.recipe
            cells.append(f"steps / {p.eval_passes}" if f.name == "eval_every" and p.eval_passes
                         else value(getattr(recipe, f.name)))
        rows[f"`{f.name}`"] = cells
    lines = ["| | " + " | ".join(f"`{p.name}`" for p in presets) + " |", "|---" * (len(presets) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    lines += ["", "Rows in code font are the fields of ``Recipe`` (`lib/backbone_bench/engine/recipe.py`) shared by "
              "the runs of each preset; a preset with validation passes per run sets `eval_every` per shot level."]
    path = root / "book" / "generated" / "presets.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    from backbone_bench.report.datasets import sources_text
    from backbone_bench.study.published import PUBLISHED

    # the reproduce page's table of where each dataset comes from (a glued table cannot cross pages)
    (path.parent / "data_sources.md").write_text(sources_text(PRESETS[PUBLISHED].datasets) + "\n")
    return path


def execute_notebooks(preset: str, root: Path, results: Path, n_boot: int = 1000, progress: bool = True,
                      only=None, jobs: int | None = None) -> list[Path]:
    """Execute the templates with papermill into the book (``only``: these templates), ``jobs`` pages
    at a time (default: two, or one on a single core). A page's kernel keeps about one core busy
    (bootstrap and plotting), so on two cores two pages side by side take about half the time."""
    todo = [(template, root / rel, params, title) for template, rel, params, title in pages(preset)
            if only is None or template in only]
    jobs = max(1, min(jobs or min(2, os.cpu_count() or 1), len(todo)))
    # spawn, not fork: the parent may hold torch's thread pools and tqdm's locks, which a fork copies broken
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool, \
            tqdm(total=len(todo), desc="notebooks", unit="page", disable=not progress) as bar:
        futures = [pool.submit(_execute_page, preset, results, n_boot, *page) for page in todo]
        try:
            for future in as_completed(futures):
                future.result()
                bar.update()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the first failure is reported; pages not begun are not
            raise
    return [out for _, out, _, _ in todo]


def _execute_page(preset: str, results: Path, n_boot: int, template: str, out: Path, params: dict,
                  title: str | None) -> None:
    """One page: the template, retitled, executed with its parameters into ``out``."""
    import nbformat

    from backbone_bench.report.page import declared, execute

    out.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(NOTEBOOKS / f"{template}.ipynb", as_version=4)
    if title:
        _retitle(nb, title)
    names = declared(template)
    # folders relative to the page, so the executed page reads the same on every machine
    params = {k: os.path.relpath(v, out.parent) if isinstance(v, Path) else v for k, v in params.items()}
    params |= {k: v for k, v in dict(preset=preset, results=os.path.relpath(results, out.parent),
                                     n_boot=n_boot, downloads="downloads").items() if k in names}
    with results_env(results):
        execute(nb, out, params, out.parent)


def _retitle(nb, title: str) -> None:
    """The page's title: replaces the template's first heading, or comes first where it has none."""
    import re

    import nbformat

    first = nb.cells[0] if nb.cells and nb.cells[0].cell_type == "markdown" else None
    if first is not None and re.match(r"# ", first.source):
        first.source = re.sub(r"^# .*", f"# {title}", first.source, count=1)
    else:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {title}"))


def book_config(root: Path) -> Path:
    """_config.yml, plus the repository and issue buttons when BACKBONE_BENCH_REPOSITORY_URL names a
    real repository (buttons that point nowhere are worse than none). No launch buttons on every page:
    a page of results opened in Colab or Binder has no data mirror and no records beside it; the lab's
    pages carry their own Colab and Binder badges (report/lab.py), where they work."""
    url = os.environ.get("BACKBONE_BENCH_REPOSITORY_URL", "").strip()
    config = root / "_config.yml"
    if not url:
        return config
    import yaml

    data = yaml.safe_load(config.read_text())
    data["repository"] = dict(url=url, path_to_book="", branch=os.environ.get("BACKBONE_BENCH_BRANCH", "main"))
    data["html"] |= dict(use_repository_button=True, use_issues_button=True)
    out = root / "_build" / "_config_with_repository.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def build_book(root: Path, strict: bool = True) -> Path:
    exe = Path(sys.executable).with_name("jupyter-book")
    command = [str(exe), "build", str(root), "--keep-going", "--config", str(book_config(root))] + (
        ["-W", "-n"] if strict else [])
    subprocess.run(command, check=True, cwd=root)
    return root / "_build" / "html"


def run_study(preset: str | None = None, root: Path | None = None, results: Path | None = None, run: bool = True,
              device: str = "auto", build: bool = True, n_boot: int = 1000, **workers) -> Path | None:
    """The study of ``preset`` (None: the published edition): sweep when ``run``, pages, book."""
    results = Path(results or paths.results_dir()).resolve()
    preset = preset or edition(results)
    root = Path(root) if root else default_root(preset, results)
    with results_env(results):
        return _study(preset, root, results, run, device, build, n_boot, workers)


@contextmanager
def results_env(results: Path):
    """BACKBONE_BENCH_RESULTS set to ``results`` while a study or its pages run (the page kernels
    inherit it, so every page reads the same folder however it was started), then as it was."""
    before = os.environ.get("BACKBONE_BENCH_RESULTS")
    os.environ["BACKBONE_BENCH_RESULTS"] = str(Path(results).resolve())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("BACKBONE_BENCH_RESULTS", None)
        else:
            os.environ["BACKBONE_BENCH_RESULTS"] = before


def _study(preset, root, results, run, device, build, n_boot, workers) -> Path | None:
    from backbone_bench.study.plan import build_plan
    from backbone_bench.study.execute import execute

    plan = build_plan(preset, results=results)  # validates before anything runs
    from backbone_bench import cpu_share

    cpu_share.announce()
    print(f"study {preset}: {plan.skipped_done} runs recorded and reused, {len(plan.configs)} not recorded"
          + ("" if not plan.configs else "; running them now" if run else
             f"; the book reports without them (run them: backbone-bench study --preset {preset} --run)"))
    if plan.configs and not run:  # in plain sight in the terminal too: a partial edition never passes for whole
        from backbone_bench.report.load import load, stand_ins

        shown = load(preset, results)  # as the pages count: a stand-in is reported, and said to stand in
        standing = len(stand_ins(shown))
        print(f"warning: the `{preset}` edition is partial ({len(shown)} of "
              f"{plan.skipped_done + len(plan.configs)} runs recorded"
              + (f", {standing} of them standing in for reruns with clean selection" if standing else "")
              + "); every page says so in a banner")
    if run and plan.configs:
        execute(plan, device, results, **workers)  # workers: see sweep.execute (Dask options)
    if root.resolve() != paths.REPO_ROOT:
        copy_sources(root)
    write_recipe_page(root)
    execute_notebooks(preset, root, results, n_boot)
    from backbone_bench.report import lab

    lab.write_pages(root, os.environ.get("BACKBONE_BENCH_REPOSITORY_URL", "").strip(),
                    os.environ.get("BACKBONE_BENCH_BRANCH", "main"))
    if not build:
        return None
    from backbone_bench.report.release import publish

    html = build_book(root)
    publish(html, preset, results, n_boot)  # the files the intro page's "How to cite" links
    return html
