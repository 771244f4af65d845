"""The quick preset end to end: papermill executes every template from a clean results folder on
CPU, the book builds strictly (-W -n) from those outputs, and a browser shows real pages."""
import shutil
import subprocess

import nbformat
import numpy as np
import pytest

from conftest import requires_mirror

from backbone_bench.report.build import pages as STUDY_PAGES
from backbone_bench.study.execute import execute
from backbone_bench.study.plan import build_plan
from backbone_bench.study.run import FEATURES

CHAPTERS = ["book/intro", "book/question", "book/methods", "book/domains/natural", "book/domains/medical",
            "book/domains/galaxy", "book/domains/remote_sensing", "book/ranking", "book/cost", "book/use_your_data",
            "book/example_report", "book/reproduce", "book/lab", "book/provenance", "book/limitations"]
DOMAINS = ["natural", "medical", "galaxy", "remote_sensing"]


@pytest.fixture(scope="module")
def quick_book(tmp_path_factory):
    from backbone_bench.report.build import run_study

    root = tmp_path_factory.mktemp("quick-book")
    html = run_study("quick", root=root, results=root / "results", device="cpu", n_boot=200)
    return root, html


pytestmark = [pytest.mark.slow, requires_mirror]


def test_every_template_executes_without_errors(quick_book):
    root, _ = quick_book
    executed = sorted((root / "book").rglob("*.ipynb"))
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
    assert "Quick preset" in intro and "tf_efficientnet_lite0" in intro
    assert "glue:text" not in intro  # every glued number was pasted
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()  # math renders offline


def test_intro_answers_first_with_a_decision_table_and_a_figure(quick_book):
    root, html = quick_book
    intro = (html / "book" / "intro.html").read_text()
    answer, gains = intro.index('id="the-answer"'), intro.index('id="what-pretraining-is-worth')
    assert "separable?" in intro[answer:gains] and "images per class" in intro[answer:gains]
    assert answer < intro.index("<img", answer) < gains  # the figure comes with the answer
    assert "z-score" not in intro[answer:gains] and "(z " not in intro[answer:gains]  # no undefined z-scores up front
    assert "Show code cell source" not in intro and "About this edition" in intro and "Rerun this page" in intro
    assert "± 0.000" not in intro


def test_tables_behind_each_page_are_downloadable(quick_book):
    root, html = quick_book
    names = {p.name for p in (html / "_downloads").rglob("*.csv")}
    assert {"runs.csv", "decision.csv", "cells.csv", "ranking_finetune.csv"} <= names
    assert "cells_medical.csv" in names


def test_no_repository_buttons_without_a_configured_repository(quick_book):
    root, html = quick_book
    intro = (html / "book" / "intro.html").read_text()
    assert "mybinder" not in intro and "colab.research" not in intro and "backbone-bench/backbone-bench" not in intro


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
