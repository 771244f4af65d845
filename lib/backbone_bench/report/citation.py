"""The study's citation: CITATION.cff is the one source; .zenodo.json and the book's "How to cite"
are made from it.

Zenodo reads .zenodo.json (its deposit metadata) when a GitHub release is archived. The mapping
from CFF is done here rather than by cffconvert, whose last release (2.0.0, 2021) pins
jsonschema<4 and cannot be installed beside Jupyter Book; it is seven fields. Run
``python -m backbone_bench.report.citation`` after editing CITATION.cff; the tests validate
CITATION.cff against the CFF 1.2.0 schema (check-jsonschema's copy), .zenodo.json against the
deposit metadata schema of zenodo-client, and check that the two files agree.
"""
from __future__ import annotations

import json
from pathlib import Path

from backbone_bench import paths

CFF = paths.REPO_ROOT / "CITATION.cff"
ZENODO = paths.REPO_ROOT / ".zenodo.json"


def read_cff(path: Path = CFF) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def person(author: dict) -> str:
    """A CFF author as Zenodo names creators: "Family, Given" for a person, the name of an entity."""
    if "name" in author:
        return author["name"]
    return ", ".join(p for p in (f"{author.get('name-particle', '')} {author['family-names']}".strip(),
                                 author.get("given-names", "")) if p)


def zenodo_metadata(path: Path = CFF) -> dict:
    """.zenodo.json's content, from CITATION.cff."""
    cff = read_cff(path)
    creators = [dict(name=person(a), **({"affiliation": a["affiliation"]} if "affiliation" in a else {}),
                     **({"orcid": a["orcid"].rsplit("/", 1)[-1]} if "orcid" in a else {})) for a in cff["authors"]]
    meta = dict(title=cff["title"], description=cff.get("abstract", cff["message"]), creators=creators,
                upload_type="software", access_right="open", license=cff["license"], version=str(cff["version"]),
                publication_date=str(cff["date-released"]), keywords=list(cff.get("keywords", [])))
    return meta


def citation_text(edition: str, runs: int, path: Path = CFF) -> str:
    """One line a reader can paste: authors (year), title, version, and the edition (with its number
    of finished runs: a grown edition reads differently) whose numbers they use."""
    cff = read_cff(path)
    authors = ", ".join(person(a) for a in cff["authors"])
    year = str(cff.get("date-released", ""))[:4]
    return f"{authors} ({year}). {cff['title']}. Version {cff['version']}, edition {edition} ({runs} runs)."


def repository_url() -> str:
    """The published repository's URL where it is configured (BACKBONE_BENCH_REPOSITORY_URL), else ''."""
    import os

    return os.environ.get("BACKBONE_BENCH_REPOSITORY_URL", "").strip().rstrip("/")


def cff_text(path: Path = CFF) -> str:
    """CITATION.cff as a release carries it: with ``repository-code`` where the repository is configured."""
    import yaml

    text = path.read_text()
    url = repository_url()
    if url and "repository-code" not in read_cff(path):
        text = text.rstrip("\n") + "\n" + yaml.safe_dump({"repository-code": url}, sort_keys=False)
    return text


def how_to_cite(edition: str, runs: int, commit: str, path: Path = CFF) -> str:
    """The text a release folder carries beside its tables: the citation line, the edition and the code."""
    url = repository_url()
    return (f"{citation_text(edition, runs, path)}\n\nCode: {url + ' at ' if url else ''}commit {commit}. "
            "CITATION.cff in this folder holds the same metadata for reference managers (GitHub's 'Cite this "
            "repository' reads it).\n")


if __name__ == "__main__":
    ZENODO.write_text(json.dumps(zenodo_metadata(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {ZENODO}")
