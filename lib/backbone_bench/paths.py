"""Where things live. Every location can be moved with one environment variable.

BACKBONE_BENCH_DATA     mirror folders searched first for datasets (os.pathsep separated);
                        unset, a checkout uses ``shared/data`` beside it when that exists.
BACKBONE_BENCH_WEIGHTS  local weights folders (``<model>.safetensors`` + ``weights.json``);
                        unset, a checkout uses ``shared/weights`` beside it when that exists.
BACKBONE_BENCH_CACHE    downloads and prepared uint8 arrays (default ~/.cache/backbone-bench).
BACKBONE_BENCH_RESULTS  the results store (default: the checkout's results/, else ./results).
"""
from __future__ import annotations

import os
from pathlib import Path

#: The repository root when the package is installed in editable mode from ``lib/``.
REPO_ROOT = Path(__file__).resolve().parents[2]


#: Where the project's machines keep the offline mirror: ``shared/`` beside the checkout. Used
#: when the variables are unset, so a template run with papermill from any folder finds them.
SHARED = REPO_ROOT.parent / "shared"

#: The committed speed measurements (benchmarks/*.py write them) that the engine and planner read.
BENCHMARKS = REPO_ROOT / "results" / "benchmarks"


def in_checkout() -> bool:
    """True when the package runs from its repository (editable install), not from site-packages."""
    return (REPO_ROOT / "pyproject.toml").exists() and (REPO_ROOT / "lib" / "backbone_bench").is_dir()


def _folders(var: str, default: Path | None = None) -> list[Path]:
    if var not in os.environ and default is not None and in_checkout() and default.is_dir():
        return [default]
    return [Path(p).expanduser() for p in os.environ.get(var, "").split(os.pathsep) if p]


def data_mirrors() -> list[Path]:
    return _folders("BACKBONE_BENCH_DATA", SHARED / "data")


def weights_folders() -> list[Path]:
    return _folders("BACKBONE_BENCH_WEIGHTS", SHARED / "weights")


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "backbone-bench"
    path = Path(os.environ.get("BACKBONE_BENCH_CACHE", default)).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """BACKBONE_BENCH_RESULTS, else the repository's results/ (from any working directory), else ./results."""
    default = REPO_ROOT / "results" if in_checkout() else Path("results")
    folder = Path(os.environ.get("BACKBONE_BENCH_RESULTS", default)).expanduser()
    if (folder.parent / ".carry" / "SLIM").exists():
        # the records are not in the working tree: a sweep would redo them and pages would be empty
        from backbone_bench.errors import InvalidParameterError

        raise InvalidParameterError(f"{folder}: this checkout is slimmed for a GPU call (benchmarks/device/kit.sh "
                                    "slim: its records are not in the working tree); run `bash "
                                    "benchmarks/device/kit.sh full` first")
    return folder


def splits_dir() -> Path:
    """Split index files live with the results so a results folder is self-contained."""
    return results_dir() / "splits"


def check_results(folder: Path | None = None, write: bool = True, option: str | None = None) -> Path:
    """The results folder, refused with a message naming it and the fix before any compute: a path
    under a regular file, or (``write``) one that cannot be created or written. ``option``: the
    command's own flag for it, where it has one (the fix names it then, and only then)."""
    from backbone_bench.errors import InvalidParameterError

    folder = Path(folder or results_dir())
    fix = f"give {option} (or set BACKBONE_BENCH_RESULTS) a folder you can write" if option else \
        "set BACKBONE_BENCH_RESULTS to a folder you can write"
    for part in [folder, *folder.parents]:
        if part.exists() and not part.is_dir():
            raise InvalidParameterError(f"results folder {folder}: {part} is a file, not a folder; {fix}")
    if not write:
        return folder
    try:
        (folder / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InvalidParameterError(f"results folder {folder} cannot be created ({err.strerror}); {fix}") from None
    if not os.access(folder, os.W_OK) or not os.access(folder / "runs", os.W_OK):
        raise InvalidParameterError(f"results folder {folder} is not writable; {fix}")
    return folder
