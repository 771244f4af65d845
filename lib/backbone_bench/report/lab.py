"""The lab: one source notebook (notebooks/lab.ipynb, the instructor's, solutions in sphinx-exercise
``{solution-start}`` / ``{solution-end}`` blocks), the student's version made from it without them,
the teacher's key from the committed lab records (results/lab/), and the measured minutes.

``write_pages`` puts both versions under the book (book/lab/): the instructor page with each key
rendered from the committed records (so the book never trains), and, when the repository URL is
configured, a Colab badge and the install cell's URL filled in.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from backbone_bench import paths

SOURCE = paths.REPO_ROOT / "notebooks" / "lab.ipynb"
#: The lab's own runs, three seeds of every cell it runs, from `python benchmarks/lab_minutes.py`.
RECORDS = paths.REPO_ROOT / "results" / "lab"
MINUTES = paths.REPO_ROOT / "results" / "benchmarks" / "lab_minutes.csv"
GRID = dict(datasets=["cifar10"], shots=[10], backbones=["tf_efficientnet_lite0"])


def launch_text(repository_url: str, branch: str, name: str) -> str:
    """The lab page's Colab and Binder badges, with what each installs and which data it reads."""
    repo = repository_url.split("github.com/")[-1].rstrip("/")
    colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/book/lab/{name}.ipynb"
    binder = f"https://mybinder.org/v2/gh/{repo}/{branch}?labpath=book/lab/{name}.ipynb"
    return (f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
            f"[![Launch Binder](https://mybinder.org/badge_logo.svg)]({binder})\n\n"
            "*Colab*: the first cell installs this package from the repository, with torch pinned "
            "(2.14.1): it replaces Colab's own torch, a few minutes. *Binder* builds the repository's "
            "`environment.yml`, longer the first time. Either way the lab reads CIFAR-10 from its public "
            "source (the Hugging Face Hub, verified) and tf_efficientnet_lite0's ImageNet weights through "
            "timm, and draws its own split: its numbers are close to, not the same as, the key's.")


def student_version(nb):
    """The instructor notebook less its solution cells (tagged ``solution``): what students open. Its
    exercise labels get a prefix: both pages are in one book, and a label names one place."""
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if "solution" not in c.metadata.get("tags", [])]
    for cell in out.cells:
        cell.source = cell.source.replace(":label: ex-", ":label: student-ex-")
    return out


def minutes_text() -> str:
    """The measured minutes per part on a 2-core CPU (benchmarks/lab_minutes.py), as a table: on an idle
    machine, and beside busy processes (a shared lab server) where that was measured."""
    if not MINUTES.exists():
        return "*(Minutes per exercise: see the book's lab page.)*"
    t = pd.read_csv(MINUTES)
    t = t.assign(competitors=t.get("competitors", 0)).fillna({"competitors": 0})
    wide = t.pivot_table(index="part", columns="competitors", values="minutes", sort=False)
    wide = wide[sorted(wide.columns)]  # idle first
    loads = [int(k) for k in wide.columns]

    def fmt(m):
        return "–" if pd.isna(m) else "under 0.1" if m < 0.05 else f"{m:.1f}"

    def head(k):
        return "minutes, idle" if k == 0 else f"minutes beside {k} busy process{'es' if k > 1 else ''}"

    lines = [f"| part | {' | '.join(head(k) for k in loads)} |", "|---|" + "---|" * len(loads)]
    lines += [f"| {part} | {' | '.join(fmt(row[k]) for k in wide.columns)} |" for part, row in wide.iterrows()]
    lines.append(f"| **all** | {' | '.join(f'**{fmt(wide[k].sum())}**' for k in wide.columns)} |")
    commands = " and ".join(f"`python benchmarks/lab_minutes.py{f' --competitors {k}' if k else ''}`" for k in loads)
    shared = ("" if loads == [0] else
              " A shared lab server slows every part: beside busy processes the lab's threads sleep rather than "
              "spin while they wait (its set-up cell says which it chose), so it gets about its share of the cores.")
    return ("\n".join(lines) + f"\n\n*Computing minutes on 2 CPU cores, measured on {t['measured_on'].iloc[0]} "
            f"from a cold start (the first run prepares CIFAR-10): {commands}.{shared} The rest of an hour is for "
            "predicting, reading and explaining.*")


def minutes() -> None:
    display(Markdown(minutes_text()))


COLUMNS = ["backbone", "mode", "seed", "test_balanced_accuracy", "val_balanced_accuracy"]


def run(results, **grid) -> pd.DataFrame:
    """Train what of the quick preset's lab grid (narrowed or widened by ``grid``: other seeds, modes)
    is not yet recorded in ``results``; return every recorded run of that grid, scored like the book."""
    from backbone_bench.study.execute import execute
    from backbone_bench.study.plan import build_plan

    grid = GRID | grid
    execute(build_plan("quick", results=results, **grid), "cpu", results, progress=False)
    return recorded(results, **grid)[COLUMNS]


def recorded(results, **grid) -> pd.DataFrame:
    """The recorded runs of the lab's grid (any seeds: the quick preset itself runs one), rescored on
    the clean test subset like every score in the book. Reads only: ``results`` may be read-only."""
    from backbone_bench import report
    from backbone_bench.study import store
    from backbone_bench.study.plan import build_plan

    keys = {store.config_key(c) for c in build_plan("quick", results=results, skip_done=False, **(GRID | grid)).configs}
    table = store.read_table(Path(results))
    table = table[table["key"].isin(keys) & (table["status"] == "ok")] if len(table) else table
    return report.with_clean_scores(table.reset_index(drop=True), results)


def _runs() -> pd.DataFrame:
    return recorded(RECORDS, modes=["finetune", "scratch", "linear_probe"], seeds=[0, 1, 2])


def _span(values) -> str:
    return f"{min(values):.3f} to {max(values):.3f}"


def key_text(label: str, runs: pd.DataFrame | None = None) -> str:
    """The teacher's key for one exercise: the range over the committed lab records' three seeds
    (``runs``: those records, read once by a caller that writes several keys)."""
    if not (RECORDS / "runs").is_dir():
        return "*(The key needs the repository's results/lab records.)*"
    t = _runs() if runs is None else runs
    by = {m: t.loc[t["mode"] == m, "test_balanced_accuracy"] for m in ("finetune", "scratch", "linear_probe")}
    seeds = f"seeds {', '.join(map(str, sorted(t['seed'].unique())))}"
    if label == "ex-pretraining":
        gap = (t[t["mode"] == "finetune"].set_index("seed")["test_balanced_accuracy"]
               - t[t["mode"] == "scratch"].set_index("seed")["test_balanced_accuracy"]).dropna()
        return (f"fine-tune {_span(by['finetune'])}, scratch twin {_span(by['scratch'])}, gap {_span(gap)} "
                f"(balanced accuracy on test, {seeds}).")
    if label == "ex-probe":
        return f"linear probe {_span(by['linear_probe'])}, fine-tune {_span(by['finetune'])} ({seeds})."
    if label == "ex-seeds":
        return (f"fine-tune over {seeds}: {_span(by['finetune'])}, a spread of "
                f"{by['finetune'].max() - by['finetune'].min():.3f}.")
    if label == "ex-chance":
        return (f"scratch twin {_span(by['scratch'])} over {seeds}, against chance 0.100; the lowest seed's "
                f"score is {by['scratch'].min() - 0.1:+.3f} from chance.")
    if label == "ex-selection":  # in seed order, as the student's table shows them
        tuned = t[t["mode"] == "finetune"].sort_values("seed")
        steps = {int(s): json.loads((RECORDS / "runs" / f"{k}.json").read_text())["chosen"]["step"]
                 for s, k in zip(tuned["seed"], tuned["key"])}
        return ("the chosen steps, by seed: " + ", ".join(f"seed {s} step {n}" for s, n in steps.items())
                + " (of evaluations every 10 steps).")
    raise KeyError(label)


def key(label: str) -> None:
    display(Markdown(key_text(label)))


def record(results, **match) -> dict:
    """The record of the lab's run matching ``match`` (backbone, mode, seed) in ``results``."""
    t = recorded(results, modes=["finetune", "scratch", "linear_probe"], seeds=[0, 1, 2])
    for name, value in match.items():
        t = t[t[name] == value]
    if t.empty:
        raise LookupError(f"no run {match} in {results}: run the exercise's cell first")
    return json.loads((Path(results) / "runs" / f"{t['key'].iloc[0]}.json").read_text())


def write_pages(root: Path, repository_url: str = "", branch: str = "main") -> list[Path]:
    """book/lab/instructor.ipynb and book/lab/student.ipynb from the source notebook."""
    import nbformat

    nb = nbformat.read(SOURCE, as_version=4)
    setup = next(c for c in nb.cells if "setup" in c.metadata.get("tags", []))
    setup.source = setup.source.replace('REPOSITORY = ""', f'REPOSITORY = "{repository_url}"')
    folder = root / "book" / "lab"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    titles = {"instructor": "Lab, the instructor's notebook (solutions hidden until opened)",
              "student": "Lab, the student's notebook"}
    for name, version in (("instructor", nb), ("student", student_version(nb))):
        page = copy.deepcopy(version)
        page.cells[0].source = re.sub(r"^# .*", f"# {titles[name]}", page.cells[0].source, count=1)
        for cell in page.cells:  # numbered per page (the book would count on from the other page)
            cell.source = re.sub(r"(:label: [\w-]+)\n", r"\1\n:nonumber:\n", cell.source)
        if repository_url:
            page.cells.insert(1, nbformat.v4.new_markdown_cell(launch_text(repository_url, branch, name)))
        page.cells.insert(1, nbformat.v4.new_markdown_cell(minutes_text()))  # the book's pages are not executed
        if name == "instructor":  # the book shows each key as text: rendering it never trains
            runs = _runs() if (RECORDS / "runs").is_dir() else None
            for i, cell in enumerate(page.cells):
                found = re.fullmatch(r'lab\.key\("([\w-]+)"\)', cell.source.strip()) if cell.cell_type == "code" else None
                if found:
                    page.cells[i] = nbformat.v4.new_markdown_cell(key_text(found.group(1), runs),
                                                                  metadata={"tags": ["solution"]})
        for i, cell in enumerate(page.cells):
            cell.id = f"{name}-{i}"
        path = folder / f"{name}.ipynb"
        nbformat.write(page, path)
        written.append(path)
    return written
