"""The quick preset end to end: papermill executes every template from a clean results folder on
CPU, the book builds strictly (-W -n) from those outputs, and a browser shows real pages."""
import re
import shutil
import subprocess

import nbformat
import numpy as np
import pytest

from conftest import REPO, requires_mirror

from backbone_bench import report
from backbone_bench.report.build import pages as STUDY_PAGES
from backbone_bench.study.execute import execute
from backbone_bench.study.plan import build_plan
from backbone_bench.study.run import FEATURES

CHAPTERS = ["book/intro", "book/question", "book/methods", "book/domains/natural", "book/domains/medical",
            "book/domains/galaxy", "book/domains/remote_sensing", "book/ranking", "book/cost", "book/use_your_data",
            "book/example_report", "book/reproduce", "book/lab", "book/lab/student", "book/lab/instructor",
            "book/provenance", "book/limitations"]
DOMAINS = ["natural", "medical", "galaxy", "remote_sensing"]


pytestmark = [pytest.mark.slow, requires_mirror]


def test_every_template_executes_without_errors(quick_book):
    root, _ = quick_book
    executed = sorted(p for p in (root / "book").rglob("*.ipynb") if p.parent.name != "lab")  # lab: not executed
    assert {p.relative_to(root).with_suffix("").as_posix() for p in executed} == {
        "book/intro", "book/ranking", "book/cost", "book/example_report"} | {f"book/domains/{d}" for d in DOMAINS}
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["papermill"]["exception"] is None, path
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, (path, errors[:1])
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected, path
        if path.stem == "example_report":  # the committed example, by a path relative to the page
            assert "examples/brain_tumor_mri" in injected[0].source and 'out = "/' not in injected[0].source
        else:
            assert 'preset = "quick"' in injected[0].source


def test_book_has_every_chapter_and_figures_and_tables_per_domain(quick_book):
    root, html = quick_book
    for chapter in CHAPTERS:
        assert (html / f"{chapter}.html").exists(), chapter
    for domain in DOMAINS:
        page = (html / "book" / "domains" / f"{domain}.html").read_text()
        assert page.count("<img") >= 4 and "<table" in page, domain  # samples, accuracy, calibration, confusion
        assert "Quick preset" in page  # the banner says what produced the page
    intro = (html / "book" / "intro.html").read_text()
    assert "Quick preset" in intro and "lite0" in intro  # the decision names it short: lite0
    assert "{glue" not in intro  # every glued number was pasted
    # as Markdown: what a glued sentence names in code type reads so, not between raw backticks
    assert '<span class="pre">quick</span></code> edition' in intro and "`quick`" not in intro
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()  # math renders offline


def test_the_lab_pages_render_exercises_and_hide_the_instructors_solutions(quick_book):
    root, html = quick_book
    student = (html / "book" / "lab" / "student.html").read_text()
    instructor = (html / "book" / "lab" / "instructor.html").read_text()
    assert student.count('class="exercise admonition"') == 5 and 'class="solution' not in student
    assert instructor.count('class="exercise admonition"') == 5
    assert instructor.count('class="solution dropdown admonition"') == 5  # sphinx-exercise: hidden until opened
    assert "minutes on 2 CPU cores" in student and "minutes on 2 CPU cores" in instructor


def test_intro_answers_first_with_a_decision_table_and_a_figure(quick_book):
    root, html = quick_book
    intro = (html / "book" / "intro.html").read_text()
    answer, gains = intro.index('id="the-answer"'), intro.index('id="what-pretraining-is-worth')
    assert "separable?" in intro[answer:gains] and "images per class" in intro[answer:gains]
    # the decision first: use, what it costs at most, within noise, the seeds that would split the top two
    decision = intro.index("at most below best", answer)
    assert decision < intro.index("separable?", answer)
    assert "within noise" in intro[decision:gains] and "seeds to split top two" in intro[decision:gains]
    assert "Training at 224 px?" in intro[answer:gains] and ">recommend</span>" in intro[answer:gains]
    assert answer < intro.index("<img", answer) < gains  # the figure comes with the answer
    assert "z-score" not in intro[answer:gains] and "(z " not in intro[answer:gains]  # no undefined z-scores up front
    assert "Show code cell source" not in intro and "About this edition" in intro and "Rerun this page" in intro
    assert "± 0.000" not in intro
    assert "_static/custom.css" in intro  # glued values in the weight of their sentence, not myst-nb's bold


def test_tables_behind_each_page_are_downloadable(quick_book):
    root, html = quick_book
    names = {p.name for p in (html / "_downloads").rglob("*.csv")}
    assert {"runs.csv", "decision.csv", "cells.csv", "ranking_finetune.csv"} <= names
    assert "cells_medical.csv" in names


def test_intro_says_how_to_cite_and_links_the_editions_checksummed_files(quick_book):
    import subprocess

    root, html = quick_book
    intro = (html / "book" / "intro.html").read_text()
    cite = intro[intro.index('id="how-to-cite"'):]
    assert "edition quick (" in cite and "The backbone-bench authors" in cite
    links = re.findall(r'href="(\.\./edition/[^"]+)"', cite)
    assert len(links) >= 6
    for link in links:
        assert (html / "book" / link).resolve().is_file(), link
    folder = html / "edition" / "quick"
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=folder).returncode == 0


def test_no_repository_buttons_without_a_configured_repository(quick_book):
    root, html = quick_book
    intro = (html / "book" / "intro.html").read_text()
    assert "mybinder" not in intro and "colab.research" not in intro and "backbone-bench/backbone-bench" not in intro


def test_with_a_repository_url_every_launch_link_points_at_a_file_of_the_repository(quick_book, monkeypatch):
    """BACKBONE_BENCH_REPOSITORY_URL set (as the Pages workflow sets it): repository and issue buttons
    appear, Binder and Colab only on the lab's pages (where they work), each saying what it installs,
    and the notebook each launch link opens is a tracked file of this repository."""
    from urllib.parse import unquote

    from backbone_bench.report import build

    root, _ = quick_book
    url = "https://github.com/example-owner/backbone-bench"
    monkeypatch.setenv("BACKBONE_BENCH_REPOSITORY_URL", url)
    from backbone_bench.report import lab

    lab.write_pages(root, url, "main")  # as the study writes them when the repository is configured
    try:
        html = build.build_book(root)
    finally:
        lab.write_pages(root, "", "main")  # the shared book's lab pages as they were, for the tests after
    tracked = set(subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                 capture_output=True, text=True).stdout.split())  # tracked, or to be
    launches = []
    for page in html.rglob("*.html"):
        text = page.read_text()
        found = re.findall(r'href="(https://(?:mybinder\.org|colab\.research\.google\.com)[^"]+)"', text)
        assert not found or page.parent.name == "lab", page  # launch buttons on the lab's pages only
        if found:
            assert "replaces Colab" in text and "environment.yml" in text and "CIFAR-10" in text
        launches += found
    assert launches, "no launch buttons"
    assert any("colab" in link for link in launches) and any("mybinder" in link for link in launches)
    for link in launches:
        link = unquote(link.replace("&amp;", "&"))
        path = re.search(r"(?:labpath=|urlpath=(?:tree|lab/tree)/|blob/main/)([^&?]+)", link).group(1)
        assert path in tracked, (link, path)
    intro = (html / "book" / "intro.html").read_text()
    assert f'href="{url}"' in intro and f"{url}/issues" in intro


def test_executed_pages_are_byte_identical_when_nothing_changed(quick_book, tmp_path):
    """A second build with nothing new must change no tracked file: no timestamps, random ids or paths."""
    from backbone_bench.report import build

    root, _ = quick_book
    page = root / "book" / "intro.ipynb"
    before = page.read_bytes()
    build.execute_notebooks("quick", root, root / "results", n_boot=200, progress=False, only=["summary"])
    assert page.read_bytes() == before
    text = before.decode()
    assert "end_time" not in text and str(root) not in text


def test_a_template_run_by_hand_has_its_title_and_writes_only_where_told(quick_book, tmp_path):
    """`backbone-bench page` from another folder, as a reader reruns a page: it runs, renders a page
    with its title and its glued numbers and banners resolved (Jupyter shows them raw), names the
    results folder it read in its rerun line, and writes nothing outside the folder it was given."""
    import sys
    from pathlib import Path

    root, _ = quick_book
    work = tmp_path / "work"
    work.mkdir()
    bench = Path(sys.executable).with_name("backbone-bench")
    result = subprocess.run([str(bench), "page", "domain", "page", "-p", "preset", "quick", "-p", "domain", "natural",
                             "-p", "results", str(root / "results"), "-y", "n_boot: 50", "--no-progress-bar"],
                            cwd=work, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in work.iterdir()) == ["page"]  # no downloads/ or anything else
    nb = nbformat.read(work / "page" / "domain.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert f"-p results {root / 'results'}" in nbformat.writes(nb)
    html = Path(result.stdout.split("page: ")[1].split()[0]).read_text()
    title = nb.cells[0].source.splitlines()[0][2:].strip()
    assert re.search(r"<h1>" + re.escape(title), html), title
    glued = next(o["data"]["application/papermill.record/text/markdown"] for c in nb.cells for o in c.get("outputs", [])
                 if o.get("metadata", {}).get("scrapbook", {}).get("name") == "domain_answer")
    assert "{glue" not in html and ":::" not in html and glued.split("`")[0][:60] in html
    assert "custom.css" in html  # glued values in the weight of their sentence, not bold
    wrong = subprocess.run([str(bench), "page", "domain", "other", "-p", "colour", "red"], cwd=work,
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "takes no parameter colour" in wrong.stderr and "Traceback" not in wrong.stderr
    wrong = subprocess.run([str(bench), "page", "cost", "other", "-p", "preset", "quik"], cwd=work,
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "Did you mean: quick" in wrong.stderr and "Traceback" not in wrong.stderr
    assert not (work / "other").exists()


def test_a_partial_edition_builds_and_says_in_plain_sight_what_is_missing(tmp_path, monkeypatch):
    """Linear probes of one dataset only (what a CPU records of the 224 px edition before any GPU
    run): every page still executes, and each says which runs are missing, outside the dropdown."""
    from backbone_bench.report import build

    results = tmp_path / "results"
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(results))
    plan = build_plan("quick", datasets=["uc_merced"], modes=["linear_probe"])
    assert execute(plan, "cpu", results, progress=False) == {"ok": len(plan.configs)}
    FEATURES.entries.clear()
    monkeypatch.setattr(build, "pages", lambda preset: [
        page for page in STUDY_PAGES(preset) if page[0] in ("ranking", "summary") or page[1].endswith("natural.ipynb")])
    pages = build.execute_notebooks("quick", tmp_path, results, n_boot=50, progress=False)
    assert len(pages) == 3
    for path in pages:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["papermill"]["exception"] is None, path
        text = nbformat.writes(nb)
        assert "Partial edition:" in text and "fine-tuning at 10 shots" in text, path
    natural = nbformat.writes(nbformat.read(tmp_path / "book" / "domains" / "natural.ipynb", as_version=4))
    assert "Partial edition: 0 of" in natural and "No finished runs to plot" in natural
    intro = nbformat.writes(nbformat.read(tmp_path / "book" / "intro.ipynb", as_version=4))
    assert f"Partial edition: {len(plan.configs)} of" in intro and "Not measured in this edition yet" in intro


@pytest.mark.parametrize("args, says", [
    (["-p", "domain", "medicine"], "unknown domain 'medicine'. Did you mean: medical?"),
    (["-p", "n_boot", "abc"], "n_boot takes a positive whole number"),
    (["-y", "shots: ten"], "shots takes a list of numbers: -y 'shots: [10]'"),
    (["-y", "datasets: [cifar100]"], "unknown dataset 'cifar100'"),
])
def test_a_page_checks_parameter_values_before_a_kernel_starts_and_writes_nothing(tmp_path, args, says):
    bench = REPO / ".venv" / "bin" / "backbone-bench"
    result = subprocess.run([str(bench), "page", "domain", str(tmp_path / "page"), *args], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "page").exists()


def test_a_single_shot_level_is_taken_as_a_list_of_one():
    from backbone_bench.report.page import check

    params = dict(shots=10, domain="medical")
    check("domain", params)
    assert params["shots"] == [10]


def test_a_missing_record_leaves_the_published_edition_partial_never_another_edition(tmp_path):
    """One record of the published edition missing (quarantined, outdated or never run): the book
    still publishes that edition, and its pages say it is partial (the banner of the test above)."""
    from backbone_bench.study.published import PUBLISHED, edition

    assert edition(tmp_path / "empty-results") == PUBLISHED == report.published_edition(tmp_path / "empty-results")


def screenshot(url: str, path) -> np.ndarray:
    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    f"--user-data-dir={path.parent / 'chromium-profile'}", "--window-size=1280,1600",
                    f"--screenshot={path}", url], check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(path).convert("L"), dtype=float)


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="no chromium")
@pytest.mark.parametrize("page", ["book/intro", "book/domains/remote_sensing", "book/example_report"])
def test_pages_render_in_headless_chromium(quick_book, page):
    root, html = quick_book
    shots = html / "screenshots"
    shots.mkdir(exist_ok=True)
    pixels = screenshot((html / f"{page}.html").as_uri(), shots / f"{page.replace('/', '_')}.png")
    assert pixels.shape == (1600, 1280)
    assert pixels.std() > 20, "the page rendered blank"
    assert (pixels < 128).mean() > 0.01, "no text or figures drawn"


OVERFLOW_PROBE = """<!doctype html><html><body><iframe id="f" src="{url}" style="width:1280px;height:3000px"></iframe>
<pre id="out">pending</pre><script>
document.getElementById("f").onload = function () {{
  var doc = this.contentDocument, bad = [];
  doc.querySelectorAll("table").forEach(function (t) {{
    if (t.closest(".dt-container, .itables, .dataTables_wrapper")) return;   // interactive widgets scroll
    var box = t.parentElement;
    if (t.scrollWidth > box.clientWidth + 1) bad.push(t.scrollWidth + ">" + box.clientWidth);
  }});
  document.getElementById("out").textContent = "overflow:" + bad.length + ":" + bad.join(",") + ":tables:" +
      doc.querySelectorAll("table").length;
}};
</script></body></html>"""


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="no chromium")
@pytest.mark.parametrize("page", ["book/intro", "book/domains/medical", "book/ranking", "book/example_report"])
def test_no_table_is_wider_than_the_page(quick_book, page, tmp_path):
    root, html = quick_book
    probe = tmp_path / "probe.html"
    probe.write_text(OVERFLOW_PROBE.format(url=(html / f"{page}.html").as_uri()))
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    out = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--allow-file-access-from-files", f"--user-data-dir={tmp_path / 'profile'}",
                          "--window-size=1280,3000", "--virtual-time-budget=8000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    result = out.split('<pre id="out">')[1].split("</pre>")[0]
    assert result.startswith("overflow:0:"), result
    assert not result.endswith(":tables:0")


def test_a_table_breaks_long_names_at_their_underscores_and_leaves_its_styles_alone(quick_book):
    """The published intro's pretraining table was 718 px wide on a 676 px page: its columns are
    backbone names, each as wide as its longest name. Text may now wrap after an underscore; class
    names, styles and scripts keep theirs."""
    from backbone_bench.report.display import breakable

    html = '<style>.col_a {x: 1}</style><td class="row_0">tf_efficientnet_lite2</td><script>f_g()</script>'
    assert breakable(html) == ('<style>.col_a {x: 1}</style><td class="row_0">tf_<wbr>efficientnet_<wbr>lite2</td>'
                               '<script>f_g()</script>')
    root, built = quick_book
    intro = (built / "book" / "intro.html").read_text()
    assert "tf_<wbr>efficientnet_<wbr>lite0" in intro  # tables on the page go through it


def test_a_shot_level_short_of_images_is_said_in_few_words():
    """What the intro says where "1000 per class" is really fewer: a few short classes by name with
    their counts (brain MRI's four), many as a range (UC Merced's 21 classes at 71 or 72)."""
    import numpy as np

    from backbone_bench.report.datasets import _short_classes

    names = [f"class{i}" for i in range(21)]
    assert _short_classes(np.array([722, 639, 221, 718]), names[:4], 1000) == (
        "class0 722, class1 639, class2 221, class3 718")
    assert _short_classes(np.array([71] + [72] * 20), names, 100) == "71 to 72 in every class"
    assert _short_classes(np.array([72] * 21), names, 100) == "72 in every class"
    assert _short_classes(np.array([50] * 5 + [100] * 16), names, 100) == "50 in 5 of its 21 classes"
    assert _short_classes(np.array([100, 120]), names[:2], 100) == ""


def test_a_pages_rerun_line_repeats_the_parameters_it_was_made_with():
    from backbone_bench.report.about import page_params, rerun_command

    made = page_params("domain", dict(domain="medical", n_boot=200, shots=[10], seeds=None, downloads="x", preset="cpu"))
    assert made == dict(domain="medical", n_boot=200, shots=[10])  # defaults, where it writes and the preset left out
    line = rerun_command("cpu", "domain", made)
    assert line == "backbone-bench page domain /tmp/domain -p preset cpu -p domain medical -y 'shots: [10]' -p n_boot 200"


@requires_mirror
def test_a_domain_page_reads_only_its_own_domains_data(monkeypatch):
    """Without the CIFAR-10 mirror, the medical page's loading, coverage and bootstrap still work."""
    from backbone_bench.data import prepare as prepare_module
    from backbone_bench.errors import DataMissingError
    from backbone_bench.study import plan

    real = prepare_module.prepare

    def without_cifar(name, *args, **kwargs):
        if name == "cifar10":
            raise DataMissingError("no cifar10 mirror here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(prepare_module, "prepare", without_cifar)
    monkeypatch.setattr(plan, "prepare", without_cifar)
    medical = ["brain_tumor_mri", "breastmnist", "pneumoniamnist"]
    table = report.load("cpu", REPO / "results", datasets=medical)
    assert set(table["dataset"]) <= set(medical)
    missing = report.missing_runs("cpu", table, medical)
    assert set(missing["dataset"]) <= set(medical)
    cells = report.draws(table[table["mode"] == "finetune"], REPO / "results", 20)
    assert len(cells.cells)
