"""`recommend`'s resolved configuration: the options as given, checked, saved beside the results
(OUT/settings.json) and written back as the command that reruns or continues the same work."""
from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from backbone_bench.errors import InvalidParameterError

SETTINGS = "settings.json"


@dataclass
class Settings:
    """The resolved configuration, saved beside the results (OUT/settings.json)."""
    path: str
    out: str
    panel: str = "offline"
    backbones: list = field(default_factory=list)
    top: int = 3
    seeds: int = 3
    resolution: int = 224
    flip: bool = True
    device: str = "auto"
    steps: int | None = None
    workers: int = 1
    keys: dict = field(default_factory=dict)    # phase -> record keys of its runs
    n_boot: int = 1000

    def command(self) -> str:
        import os

        # the input as an absolute path: the report is read, and the line pasted, from anywhere
        args = ["backbone-bench", "recommend", os.path.abspath(self.path), "--out", self.out, "--panel", self.panel,
                "--top", str(self.top), "--seeds", str(self.seeds), "--resolution", str(self.resolution),
                "--device", self.device]
        if self.backbones:
            args += ["--backbones", ",".join(self.backbones)]
        if not self.flip:
            args.append("--no-flip")
        if self.steps:
            args += ["--steps", str(self.steps)]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        if self.n_boot != 1000:
            args += ["--n-boot", str(self.n_boot)]
        return shlex.join(args)


def check_settings(s: Settings) -> None:
    """The numbers, before anything is read: each bad one named with what to give instead."""
    from backbone_bench.data.splits import SUBSET_SEEDS

    if s.top < 1:
        raise InvalidParameterError(f"--top {s.top}: fine-tune at least the best backbone of the screen (1 or more)")
    if not 1 <= s.seeds <= len(SUBSET_SEEDS):
        raise InvalidParameterError(f"--seeds {s.seeds}: give 1 to {len(SUBSET_SEEDS)} training seeds")
    if not 16 <= s.resolution <= 1024:
        raise InvalidParameterError(f"--resolution {s.resolution}: choose an input size between 16 and 1024 px")
    if s.steps is not None and s.steps < 1:
        raise InvalidParameterError(f"--steps {s.steps}: a run needs at least one optimizer step")
    if s.workers < 1:
        raise InvalidParameterError(f"--workers {s.workers}: give at least 1")


def load_settings(out) -> Settings:
    return Settings(**json.loads((Path(out) / SETTINGS).read_text()))


def save_settings(s: Settings) -> None:
    (Path(s.out) / SETTINGS).write_text(json.dumps(asdict(s), indent=1) + "\n")
