"""Test environment: the real mirror beside the repo, no network, a results folder per test.

Prepared arrays are cached in the repo's .cache/ (git-ignored) so the real datasets are
decoded once per machine, not once per test.
"""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("BACKBONE_BENCH_DATA", str(SHARED / "data"))
os.environ.setdefault("BACKBONE_BENCH_WEIGHTS", str(SHARED / "weights"))
os.environ.setdefault("BACKBONE_BENCH_CACHE", str(REPO / ".cache"))
os.environ.setdefault("MPLBACKEND", "Agg")


def _mirror_present() -> bool:
    return any((Path(p) / "cifar10").exists() for p in os.environ["BACKBONE_BENCH_DATA"].split(os.pathsep))


requires_mirror = pytest.mark.skipif(not _mirror_present(), reason="no dataset mirror (set BACKBONE_BENCH_DATA)")


@pytest.fixture
def results(tmp_path, monkeypatch):
    """A clean results folder for one test."""
    folder = tmp_path / "results"
    monkeypatch.setenv("BACKBONE_BENCH_RESULTS", str(folder))
    return folder


@pytest.fixture
def committed_splits():
    return REPO / "results" / "splits"


@pytest.fixture(scope="session")
def quick_book(tmp_path_factory):
    """The quick edition's whole study (sweep, pages, book) in a folder of its own, once per session:
    the book tests read it, and the lab's test reuses its runs (the lab's cell is one of its cells)."""
    from backbone_bench.report.build import run_study

    root = tmp_path_factory.mktemp("quick-book")
    html = run_study("quick", root=root, results=root / "results", device="cpu", n_boot=200)
    return root, html
