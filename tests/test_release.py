"""Publishing: citation metadata valid against its schemas, the workflows lint clean, and an edition
released as a checksummed folder from the committed records (real runs, n_boot kept small)."""
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from backbone_bench.report import citation
from backbone_bench.report.release import release

from conftest import REPO, requires_mirror

CHECK = Path(sys.executable).with_name("check-jsonschema")


def check(schema: str, *files) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHECK), "--builtin-schema", schema, *map(str, files)], capture_output=True, text=True)


def test_citation_cff_is_valid_and_the_validator_bites(tmp_path):
    assert check("vendor.citation-file-format", REPO / "CITATION.cff").returncode == 0
    broken = tmp_path / "CITATION.cff"
    broken.write_text((REPO / "CITATION.cff").read_text().replace("cff-version: 1.2.0", "cff-version: 9"))
    assert check("vendor.citation-file-format", broken).returncode == 1


def test_zenodo_json_is_made_from_citation_cff_and_valid_for_the_deposit_api():
    from zenodo_client import Metadata

    committed = json.loads((REPO / ".zenodo.json").read_text())
    assert committed == citation.zenodo_metadata(), "regenerate: python -m backbone_bench.report.citation"
    jsonschema.validate(committed, Metadata.model_json_schema())
    cff = citation.read_cff()
    assert committed["version"] == str(cff["version"]) and committed["title"] == cff["title"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dict(committed, upload_type="notatype"), Metadata.model_json_schema())


def test_workflows_lint_clean_against_the_github_schema():
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows, "no workflow files"
    result = check("vendor.github-workflows", *workflows)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in workflows:  # the pages job uses the official actions, the test job runs make test
        text = path.read_text()
        if "deploy-pages" in text:
            assert "actions/upload-pages-artifact" in text and "make book" in text and "_build/html" in text
            assert "make test" in text


def test_the_workflow_installs_cpu_torch_keeps_a_deployment_and_hides_no_failed_install():
    import subprocess

    import yaml

    flow = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())
    assert flow["env"]["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"  # both jobs: the workflow's env
    assert flow["concurrency"]["cancel-in-progress"] is False
    text = (REPO / ".github" / "workflows" / "book.yml").read_text()
    assert "|| true" not in text and "DATA_BUNDLE_URL == ''" in text and "bundle-${{ vars.DATA_BUNDLE_SHA256 }}" in text
    # the Makefile passes it to pip: the dry run shows the CPU index on the torch line
    dry = subprocess.run(["make", "-n", "-B", "install", "TORCH_INDEX=https://download.pytorch.org/whl/cpu"], cwd=REPO,
                         capture_output=True, text=True).stdout
    torch_line = next(line for line in dry.splitlines() if "torch==" in line)
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_line
    plain = subprocess.run(["make", "-n", "-B", "install"], cwd=REPO, capture_output=True, text=True).stdout
    assert "--index-url" not in next(line for line in plain.splitlines() if "torch==" in line)


@requires_mirror
def test_release_writes_the_edition_its_datasheet_and_checksums(tmp_path, monkeypatch):
    import yaml

    monkeypatch.setenv("BACKBONE_BENCH_REPOSITORY_URL", "https://github.com/you/backbone-bench")
    out = release("offline_cpu", tmp_path / "edition", REPO / "results", n_boot=50)
    names = {p.name for p in out.iterdir()}
    assert {"runs.csv", "runs.parquet", "cells.csv", "decision.csv", "cost.csv", "datasheet.md", "SHA256SUMS",
            "runs", "CITATION.cff", "HOW-TO-CITE.txt"} <= names
    cff = yaml.safe_load((out / "CITATION.cff").read_text())
    assert cff["repository-code"] == "https://github.com/you/backbone-bench" and cff["title"].startswith("backbone-bench")
    cite = (out / "HOW-TO-CITE.txt").read_text()
    assert "edition offline_cpu" in cite and "https://github.com/you/backbone-bench at commit" in cite
    runs = pd.read_csv(out / "runs.csv")
    assert (runs["preset"] == "offline_cpu").all() and len(runs) == len(list((out / "runs").glob("*.json")))
    assert len(list((out / "runs").glob("*.npz"))) == (runs["status"] == "ok").sum()
    sheet = (out / "datasheet.md").read_text()
    assert "| - |" not in sheet, "a column without a meaning"
    assert "offline_cpu" in sheet and "SHA256SUMS" in sheet
    ok = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    (out / "cells.csv").write_text((out / "cells.csv").read_text() + "tampered\n")
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=out, capture_output=True).returncode == 1


def test_release_refuses_a_folder_with_files_before_any_compute(tmp_path):
    (tmp_path / "old.txt").write_text("kept")
    result = subprocess.run([str(Path(sys.executable).with_name("backbone-bench")), "release", "--preset", "cpu",
                             "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "not empty" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "old.txt").read_text() == "kept"
