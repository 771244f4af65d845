"""Which edition the repository publishes: the `cpu` edition once its whole grid is recorded,
until then the interim 80 px `offline_cpu` edition (issue: the study completes on the CPU; the
224 px `offline` edition is the reference it is checked against, cell by cell, as GPU time allows)."""
from __future__ import annotations

from pathlib import Path

PUBLISHED, INTERIM = "cpu", "offline_cpu"


def edition(results: Path | None = None) -> str:
    """``cpu`` when every run of its grid has a final record (ok, or a failure that a rerun would
    repeat: diverged, out of memory, unavailable), else ``offline_cpu``."""
    from backbone_bench.study import store
    from backbone_bench.study.plan import grid_keys

    try:
        wanted = grid_keys(PUBLISHED)
    except Exception:  # no data to plan with: nothing of the edition can be complete
        return INTERIM
    return PUBLISHED if wanted and wanted <= store.done_keys(results) else INTERIM
