"""One page of the book: a template executed with papermill and finished (``finish``: the same bytes
when nothing changed), for the book (report/build.py) or rerun by hand (``run_page``): then rendered
as a page of its own, title, glued numbers and banners resolved. Jupyter shows a MyST page's roles
(``{glue:md}``) and fences (``:::{warning}``) as raw text; the rendered page is what a reader reads.

``run_page`` writes only under its ``out``: the executed notebook, the HTML, and Sphinx's build folder.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from backbone_bench import paths

NOTEBOOKS = paths.REPO_ROOT / "notebooks"
#: The templates a page can be made from (lab.ipynb is a lab, not a page of results).
TEMPLATES = ("summary", "ranking", "cost", "domain", "recommend")


def value(text: str):
    """A parameter's value as papermill's ``-p`` reads it: None, booleans and numbers typed, else text."""
    special = {"None": None, "none": None, "True": True, "true": True, "False": False, "false": False}
    if text in special:
        return special[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def declared(template: str) -> dict:
    """The template's parameter cell as {name: its comment}: what ``-p`` may set."""
    import nbformat

    nb = nbformat.read(NOTEBOOKS / f"{template}.ipynb", as_version=4)
    cell = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {line.split("=")[0].strip(): line.partition("#")[2].strip()
            for line in cell.splitlines() if "=" in line and not line.startswith("#")}


def check(template: str, params: dict) -> None:
    """Before anything runs: a known template, and only the parameters it declares."""
    from backbone_bench.errors import InvalidParameterError, unknown_name

    if template not in TEMPLATES:
        raise unknown_name("page template", template, TEMPLATES)
    names = declared(template)
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise InvalidParameterError(f"{template} takes no parameter {', '.join(unknown)}; it takes: "
                         + "; ".join(f"{k} ({v})" for k, v in names.items()))
    if params.get("preset") is not None:
        from backbone_bench.study.presets import PRESETS

        if params["preset"] not in PRESETS:
            raise unknown_name("preset", str(params["preset"]), PRESETS)
    check_values(params)


#: Parameters that take a list of names or numbers (`-y "shots: [10]"`), and what each element must be.
LISTS = {"shots": int, "seeds": int, "datasets": str, "backbones": str, "modes": str}


def check_values(params: dict) -> None:
    """The values, before a kernel starts: a domain the registry has, lists where lists are taken
    (a single number is taken as a list of one), positive whole numbers where counts are asked."""
    from backbone_bench.data.registry import DATASETS, DOMAINS
    from backbone_bench.errors import InvalidParameterError, unknown_name

    if "domain" in params and params["domain"] not in DOMAINS:
        raise unknown_name("domain", str(params["domain"]), DOMAINS)
    for name, kind in LISTS.items():
        v = params.get(name)
        if v is None:
            continue
        if isinstance(v, (int, str)) and not isinstance(v, bool):  # `-p shots 10`: what people type
            params[name] = v = [v]
        if not isinstance(v, list) or not all(isinstance(x, kind) and not isinstance(x, bool) for x in v):
            example = "[10]" if kind is int else "[cifar10]" if name == "datasets" else "[regnetx_002]"
            raise InvalidParameterError(f"{name} takes a list of {'numbers' if kind is int else 'names'}: "
                                        f"-y '{name}: {example}' (got {v!r})")
    if "datasets" in params and params["datasets"]:
        for d in params["datasets"]:
            if d not in DATASETS:
                raise unknown_name("dataset", d, DATASETS)
    for name in ("n_boot",):
        v = params.get(name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise InvalidParameterError(f"{name} takes a positive whole number, e.g. -p {name} 200 (got {v!r})")


def finish(path: Path) -> None:
    """Make the executed page reproducible byte for byte and readable.

    Removed: papermill's timestamps, durations and paths, per-cell execution times, the random
    ids of cells and table styles (a rebuild with nothing new must change no tracked file).
    On the page: code cells are not shown; the parameter cells (the template's defaults and the
    ones papermill injected) are removed, and the About box shows the command that reruns the page."""
    import re

    import nbformat

    nb = nbformat.read(path, as_version=4)
    pm = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = dict(exception=pm.get("exception"), parameters=pm.get("parameters", {}))
    nb.metadata.get("language_info", {}).pop("version", None)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
        for key in ("execution", "papermill"):
            cell.metadata.pop(key, None)
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if "injected-parameters" in tags:  # the page's About box gives the parameters as a command
            tags[:] = [t for t in tags if t not in ("hide-input", "remove-input")] + ["remove-cell"]
        elif "hide-input" in tags:
            tags[:] = [t if t != "hide-input" else "remove-input" for t in tags]
    text = nbformat.writes(nb)
    ids = {}
    text = re.sub(r"T_[0-9a-f]{5}(?![0-9a-f])", lambda m: ids.setdefault(m.group(0), f"T_t{len(ids)}"), text)
    text = re.sub(r" at 0x[0-9a-f]+>", ">", text)  # object addresses in plain-text reprs
    path.write_text(text)


def execute(source, path: Path, params: dict, cwd: Path, progress: bool = False) -> None:
    """Execute a template (its path, or a notebook already read) into ``path`` with papermill, in a
    kernel started in ``cwd`` on local sockets, then ``finish`` it."""
    import papermill as pm

    from backbone_bench.report.kernels import IPC_KERNEL

    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # the kernel's debugger warning, once per page
    pm.execute_notebook(source, str(path), parameters=params, kernel_name="python3", cwd=str(cwd),
                        progress_bar=progress, log_output=False, kernel_manager_class=IPC_KERNEL)
    finish(path)


def run_page(template: str, out, params: dict, progress: bool = True) -> Path:
    """Execute ``template`` with ``params`` into OUT/TEMPLATE.ipynb and render it; returns the HTML
    page (OUT/_build/_page/TEMPLATE/html/TEMPLATE.html). A cell that fails is named, with the
    executed notebook that shows it; runs it trained before are recorded already."""
    import papermill as pm

    from backbone_bench.errors import BenchError

    check(template, params)
    from backbone_bench import cpu_share

    cpu_share.announce()  # the kernel inherits the choice
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # folders as absolute paths: the kernel runs in OUT, the reader typed them from where they stand
    params = {k: str(Path(v).resolve()) if k in ("results", "downloads", "out") and v else v
              for k, v in params.items()}
    executed = out / f"{template}.ipynb"
    try:
        execute(str(NOTEBOOKS / f"{template}.ipynb"), executed, params, out, progress)
    except pm.PapermillExecutionError as err:
        raise BenchError(f"{template} failed in cell {err.exec_count}: {err.ename}: {err.evalue} "
                         f"(the executed notebook shows it: {executed})") from None
    shutil.copytree(paths.REPO_ROOT / "_static", out / "_static", dirs_exist_ok=True)  # the book's stylesheet
    exe = Path(sys.executable).with_name("jupyter-book")
    built = subprocess.run([str(exe), "build", str(executed), "--path-output", str(out), "--config",
                            str(paths.REPO_ROOT / "_config.yml")], cwd=out, capture_output=True, text=True)
    if built.returncode:
        raise BenchError(f"the page was executed ({executed}) but did not render:\n{built.stdout[-2000:]}"
                           f"{built.stderr[-2000:]}")
    html = out / "_build" / "_page" / template / "html"
    return html / f"{template}.html"
