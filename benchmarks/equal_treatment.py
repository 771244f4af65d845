"""What the equal-treatment rules (issue 46) did to the published answer, row by row.

The `cpu` edition was published whole at commit 22fdb46. Since then every run computes in fp32
(the bf16 runs of mobilenetv2_100 and regnetx_002 were remade) and every run selects on clean
validation (the gradient runs of the four datasets whose validation holds twins are remade a cell
at a time; until a cell is whole its published runs stand in, so a row can still move). This
script builds the fine-tuning decision rows (report.answer, by domain) twice, for the published
backbones only (the panel's new ones are another issue's change):

- **published**: the records as that commit holds them (read with `git archive`, bf16 runs
  included, as the published book read them);
- **now**: the records the book reports today;

both scored on today's clean test subsets with the same bootstrap, so that a row differs only by
the runs behind it, and writes

    results/benchmarks/equal_treatment_decision.csv   per (domain, shots): best, use and the within-noise
                                                      set, published and now, and what changed

    python benchmarks/equal_treatment.py [--published 22fdb46] [--n-boot 1000]
"""
from __future__ import annotations

import argparse
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pandas as pd

from backbone_bench import paths, report
from backbone_bench.study.presets import get_preset

PUBLISHED_AT = "22fdb46"  # the commit that published the complete `cpu` edition (2026-12-05)
COLUMNS = ["best", "use", "at_most", "within_noise"]


def published_results(commit: str, into: Path) -> Path:
    """The results folder as ``commit`` holds it (its run records only)."""
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "results/runs"], cwd=paths.REPO_ROOT,
                             capture_output=True, check=True).stdout
    tar_path = into / "runs.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / "results"


def decision(table: pd.DataFrame, results: Path | None, backbones, n_boot: int) -> pd.DataFrame:
    table = table[table["backbone"].isin(backbones)]
    rows = report.answer(report.draws(table, results, n_boot), table, "cpu", results)
    return rows.assign(within_noise=rows["within_noise"].map(lambda names: ", ".join(sorted(names))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--published", default=PUBLISHED_AT, help="the commit whose records the published book read")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--out", default=str(paths.BENCHMARKS / "equal_treatment_decision.csv"))
    args = p.parse_args(argv)
    backbones = [b for b in get_preset("cpu").backbones if b not in ("mobilenetv1_100", "squeezenet1_1")]
    with tempfile.TemporaryDirectory() as tmp:
        published = published_results(args.published, Path(tmp))
        # outdated kept: the published book read the bf16 runs the precision rule has since remade
        before = decision(report.load("cpu", published, outdated=True), published, backbones, args.n_boot)
    now = report.load("cpu")
    after = decision(now, None, backbones, args.n_boot)
    stand_ins = report.stand_ins_text(now)
    both = before.merge(after, on=["row", "shots"], suffixes=("_published", "_now"))
    keep = ["row", "shots"] + [f"{c}_{w}" for c in COLUMNS for w in ("published", "now")]
    both = both[keep].assign(
        best_changed=both["best_published"] != both["best_now"], use_changed=both["use_published"] != both["use_now"],
        set_changed=both["within_noise_published"] != both["within_noise_now"],
        published_commit=args.published, stand_ins_now=stand_ins.split(" were ")[0] if stand_ins else "none")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    both.to_csv(args.out, index=False, float_format="%.4f")
    changed = both[both["best_changed"] | both["use_changed"] | both["set_changed"]]
    print(f"{len(changed)} of {len(both)} decision rows changed (best, use or the within-noise set):")
    for r in changed.itertuples():
        print(f"  {r.row} {r.shots}: best {r.best_published} -> {r.best_now}; use {r.use_published} -> {r.use_now}; "
              f"within noise [{r.within_noise_published}] -> [{r.within_noise_now}]")
    print(f"stand-ins now: {stand_ins or 'none'}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
