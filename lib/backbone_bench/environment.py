"""What produced a result: device, library versions, git commit. Stored in every record.

torch is imported where it is used, so that the planner and the book's pages, which only compare
device names, start without it."""
from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from functools import lru_cache
from typing import TYPE_CHECKING

from backbone_bench import paths

if TYPE_CHECKING:
    import torch


#: /proc/cpuinfo flag -> the vector unit it names, widest first. A hypervisor may give two processor
#: generations one model name (``AMD EPYC`` for Zen 3 and Zen 4 alike) while the engine's speed path
#: and its pace differ between them (bf16 autocast needs native bf16), so a CPU's name carries it.
ISA = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def cpu_isa(flags: str | None = None) -> str:
    """The widest vector unit in ``flags`` (this CPU's /proc/cpuinfo flags by default), '' if none
    is known or the flags cannot be read."""
    if flags is None:
        try:
            flags = next((line.split(":", 1)[1] for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
        except OSError:
            flags = ""
    have = set(flags.split())
    return next((name for flag, name in ISA if flag in have), "")


def tagged(model: str, isa: str) -> str:
    """A CPU's model name with its vector unit, as device names write it: ``AMD EPYC (AVX2)``."""
    return f"{model} ({isa})" if isa else model


def processor(device: str) -> str:
    """The processor's name without the thread count: a Dask worker with fewer threads than the
    measuring process runs what it chose, so both compute the same numbers."""
    return re.sub(r" x\d+ threads$", "", device)


def device_name(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                      if line.startswith("model name")), model)
    except OSError:
        pass
    return f"CPU {tagged(model, cpu_isa())} x{torch.get_num_threads()} threads"


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The checkout's commit; with uncommitted changes to lib/, ``<commit>+dirty.<8 hex>`` naming the
    diff (``package_diff``), which a sweep stores beside its records. A copy without .git carried to
    another machine names it in BACKBONE_BENCH_COMMIT (benchmarks/device/setup.sh does)."""
    if os.environ.get("BACKBONE_BENCH_COMMIT"):
        return os.environ["BACKBONE_BENCH_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=paths.REPO_ROOT, text=True,
                                capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    diff = package_diff()
    return commit + (f"+dirty.{hashlib.sha256(diff.encode()).hexdigest()[:8]}" if diff else "")


def package_diff() -> str:
    """The package's uncommitted changes ('' when none, or no git): ``git diff HEAD -- lib``, then each
    untracked (and not ignored) file under lib/ whole."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=paths.REPO_ROOT, text=True, capture_output=True, check=True).stdout

    try:
        diff = git("diff", "HEAD", "--", "lib")
        new = git("ls-files", "--others", "--exclude-standard", "--", "lib").split()
    except (OSError, subprocess.CalledProcessError):
        return ""
    for name in new:
        text = (paths.REPO_ROOT / name).read_text(errors="replace")
        diff += f"--- /dev/null\n+++ b/{name}\n" + "".join(f"+{line}\n" for line in text.splitlines())
    return diff


def dirty(commit: str) -> bool:
    """Whether a record's commit names uncommitted code (``+dirty`` alone: a diff nobody kept)."""
    return "+dirty" in str(commit)


def environment(device: torch.device) -> dict:
    import timm
    import torch

    from backbone_bench import __version__

    env = dict(device=device_name(device), device_type=device.type, torch=torch.__version__,
               timm=timm.__version__, backbone_bench=__version__, python=platform.python_version(),
               git_commit=git_commit(), precision="fp32")  # the run's own precision replaces it (study/run.py)
    if device.type == "cpu":
        env["cpu_id"] = cpu_id()
    return env


def cpu_id() -> str:
    """The processor's family, model and stepping: two processors of one class (one name, one ISA tag)
    can round fp32 differently (oneDNN picks kernels by microarchitecture), so a rerun that differs
    can be told from one that should not."""
    try:
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in open("/proc/cpuinfo"))
                  if k.strip() in ("cpu family", "model", "stepping")}
    except OSError:
        return platform.machine()
    return f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')} stepping {fields.get('stepping', '?')}"


def pick_device(name: str = "auto") -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from backbone_bench.errors import InvalidParameterError

        raise InvalidParameterError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    return device
