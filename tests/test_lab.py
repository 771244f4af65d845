"""The lab: the student's notebook is the instructor's without the solutions, both are what the source
makes, and the instructor's notebook runs as a student would run it (real CIFAR-10 from the mirror,
the quick preset), every check passing, writing nothing but its own results folder."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from backbone_bench.report import lab
from conftest import REPO, requires_mirror

PAGES = REPO / "book" / "lab"


def cells(nb):
    return [(c.cell_type, c.source) for c in nb.cells]


def test_the_student_notebook_is_the_instructors_without_its_solutions():
    instructor = nbformat.read(PAGES / "instructor.ipynb", as_version=4)
    student = nbformat.read(PAGES / "student.ipynb", as_version=4)
    solutions = [c for c in instructor.cells if "solution" in c.metadata.get("tags", [])]
    # the same cells but the solutions (and the title, which names the version)
    assert solutions and cells(student)[1:] == cells(lab.student_version(instructor))[1:]
    assert student.cells[0].source.split("\n", 1)[1] == instructor.cells[0].source.split("\n", 1)[1]
    text = nbformat.writes(student)
    assert "solution-start" not in text and "solution-end" not in text and "lab.key" not in text
    labels = [c.source.split(":label: ")[1].split()[0] for c in instructor.cells if ":label: " in c.source]
    assert len(labels) == 5 and len(set(labels)) == 5
    for label in labels:  # each exercise has a hidden solution with the teacher's key rendered
        start = next(c.source for c in solutions if f"{{solution-start}} {label}" in c.source)
        assert ":class: dropdown" in start
    assert all("*(" not in c.source for c in solutions), "a key was not rendered from the committed records"


def test_the_committed_lab_pages_are_what_the_source_makes(tmp_path):
    lab.write_pages(tmp_path)
    for name in ("instructor", "student"):
        made = nbformat.read(tmp_path / "book" / "lab" / f"{name}.ipynb", as_version=4)
        committed = nbformat.read(PAGES / f"{name}.ipynb", as_version=4)
        assert cells(made) == cells(committed), f"regenerate: backbone-bench study ({name})"


def test_with_a_repository_the_lab_pages_open_in_colab_and_install_the_package(tmp_path):
    url = "https://github.com/example-owner/backbone-bench"
    for page in lab.write_pages(tmp_path, url):
        text = "\n".join(c.source for c in nbformat.read(page, as_version=4).cells)
        assert f"colab.research.google.com/github/example-owner/backbone-bench/blob/main/book/lab/{page.name}" in text
        assert f'REPOSITORY = "{url}"' in text


@requires_mirror
@pytest.mark.slow
def test_the_instructor_notebook_runs_from_its_folder_and_every_check_passes(tmp_path):
    import shutil

    import pandas as pd

    work = tmp_path / "class"
    (work / "lab-results" / "runs").mkdir(parents=True)
    # the committed lab records stand in for all but one run (as a class sharing a results folder
    # would): the notebook trains the fine-tune of seed 2 itself, and reuses the rest
    committed = pd.read_csv(lab.RECORDS / "runs.csv")
    reuse = committed[(committed["mode"] != "finetune") | (committed["seed"] != 2)]["key"]
    for key in reuse:
        for suffix in (".json", ".npz"):
            shutil.copy2(lab.RECORDS / "runs" / f"{key}{suffix}", work / "lab-results" / "runs")
    papermill = Path(sys.executable).with_name("papermill")
    result = subprocess.run([str(papermill), str(PAGES / "instructor.ipynb"), "done.ipynb", "--no-progress-bar",
                             "--cwd", str(work)], cwd=work, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in work.iterdir()) == ["done.ipynb", "lab-results"]
    done = nbformat.read(work / "done.ipynb", as_version=4)
    checks = [c for c in done.cells if "check" in c.metadata.get("tags", [])]
    assert len(checks) == 5 and all(not any(o.output_type == "error" for o in c.outputs) for c in checks)
    runs = sorted(p.stem for p in (work / "lab-results" / "runs").glob("*.json"))
    assert set(runs) == set(reuse) | set(committed["key"])  # the one missing run made, nothing run twice
    assert set(committed["key"]) <= set(runs)
    # the key and the fresh run agree: the step the class's seed 2 chose is the key's seed 2
    import json

    fresh = committed[(committed["mode"] == "finetune") & (committed["seed"] == 2)]["key"].iloc[0]
    step = json.loads((work / "lab-results" / "runs" / f"{fresh}.json").read_text())["chosen"]["step"]
    text = lab.key_text("ex-selection")
    assert f"seed 2 step {step}" in text and text.index("seed 0") < text.index("seed 1") < text.index("seed 2")


def test_a_failed_self_check_says_what_was_expected_and_what_the_cell_produced():
    import pandas as pd

    checks = [c.source for c in nbformat.read(lab.SOURCE, as_version=4).cells if "check" in c.metadata.get("tags", [])]
    wrong = dict(ex1=pd.DataFrame(dict(mode=["finetune"], test_balanced_accuracy=[0.5])),
                 ex3=pd.DataFrame(dict(seed=[0, 1], mode=["finetune", "finetune"])), spread=0.1)
    with pytest.raises(AssertionError, match=r"expected one fine-tune and one scratch run .*ex1 holds modes \['finetune'\]"):
        exec(checks[0], dict(wrong))
    with pytest.raises(AssertionError, match=r"expected fine-tunes of seeds 0, 1 and 2; ex3 holds seeds \[0, 1\]"):
        exec(checks[2], dict(wrong))
    for source in checks:  # every assertion carries a message saying what it got
        assert all(' f"' in part.split("\nassert")[0] for part in source.split("assert ")[1:]), source


def test_the_lab_minutes_say_idle_and_under_load_where_both_were_measured(tmp_path, monkeypatch):
    csv = tmp_path / "lab_minutes.csv"
    csv.write_text("part,minutes,measured_on,competitors\nset-up,0.04,CPU x,0\nExercise 1: a,1.58,CPU x,0\n"
                   "set-up,0.1,CPU x,2\nExercise 1: a,3.2,CPU x,2\n")
    monkeypatch.setattr(lab, "MINUTES", csv)
    text = lab.minutes_text()
    assert "| part | minutes, idle | minutes beside 2 busy processes |" in text
    assert "| Exercise 1: a | 1.6 | 3.2 |" in text and "| **all** | **1.6** | **3.3** |" in text
    assert "--competitors 2" in text and "sleep rather than spin" in text
    csv.write_text("part,minutes,measured_on\nset-up,0.04,CPU x\n")  # as written before loads were measured
    text = lab.minutes_text()
    assert "| part | minutes, idle |" in text and "--competitors" not in text
