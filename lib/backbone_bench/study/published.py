"""Which edition the repository publishes: the `cpu` edition (96 px), whole or partial; the interim
80 px `offline_cpu` edition it replaced is built only when asked for by name."""
from __future__ import annotations

from pathlib import Path

PUBLISHED, INTERIM = "cpu", "offline_cpu"


def edition(results: Path | None = None) -> str:
    """``cpu``, complete or not: a missing or outdated run never switches the book to another edition
    silently; its pages show the edition as partial, with its coverage and the command that remakes
    what is missing (report.load.about), and ``study`` warns in the terminal."""
    return PUBLISHED
