"""Where things live. Every location can be moved with one environment variable.

BACKBONE_BENCH_DATA     mirror folders searched first for datasets (os.pathsep separated);
                        on the project's machines and in CI it points at ../shared/data.
BACKBONE_BENCH_WEIGHTS  local weights folders (``<model>.safetensors`` + ``weights.json``);
                        on the project's machines it points at ../shared/weights.
BACKBONE_BENCH_CACHE    downloads and prepared uint8 arrays (default ~/.cache/backbone-bench).
BACKBONE_BENCH_RESULTS  the results store (default ./results).
"""
from __future__ import annotations

import os
from pathlib import Path

#: The repository root when the package is installed in editable mode from ``lib/``.
REPO_ROOT = Path(__file__).resolve().parents[2]


def _folders(var: str) -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get(var, "").split(os.pathsep) if p]


def data_mirrors() -> list[Path]:
    return _folders("BACKBONE_BENCH_DATA")


def weights_folders() -> list[Path]:
    return _folders("BACKBONE_BENCH_WEIGHTS")


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "backbone-bench"
    path = Path(os.environ.get("BACKBONE_BENCH_CACHE", default)).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    return Path(os.environ.get("BACKBONE_BENCH_RESULTS", "results")).expanduser()


def splits_dir() -> Path:
    """Split index files live with the results so a results folder is self-contained."""
    return results_dir() / "splits"
