"""Executing: claim each group's runs, run the group here or on Dask workers, write every record.

The driver alone writes records, atomically, whether the groups run in this process or on
workers (distributed.py). A run another driver has claimed, or recorded meanwhile, is skipped
and counted as "elsewhere"; a claim is released once its record is written, or when the driver
stops, so a killed driver never blocks a restart.
"""
from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from backbone_bench.study import store


class Claims:
    """The runs this driver has taken (store.claim), so that all are released however it stops."""

    def __init__(self, results, bar=None):
        self.results, self.held, self.elsewhere, self.bar = results, set(), 0, bar

    def take(self, group: list) -> list:
        mine = []
        for config in group:
            key = store.config_key(config)
            if store.claim(key, self.results):
                self.held.add(key)
                mine.append(config)
            else:
                self.elsewhere += 1
                if self.bar is not None:
                    self.bar.update(1)
        return mine

    def done(self, key: str) -> None:
        store.release(key, self.results)
        self.held.discard(key)

    def release_all(self) -> None:
        for key in list(self.held):
            self.done(key)


def _here(plan, device: str, compile_model: bool, claims: Claims, bar, deadline: float | None = None):
    """Groups run one after another in this process, each claimed just before it runs; with a
    ``deadline`` (seconds from now), none starts that the group before says would end past it."""
    from backbone_bench.clock import Stopwatch
    from backbone_bench.environment import environment, pick_device
    from backbone_bench.study.run import run_configs

    dev = pick_device(device)
    env = environment(dev)
    # the deadline is wall time (the session ends on the clock); a group's length is its active time,
    # so a group paused by SIGSTOP while the tests ran does not make the next one look hours long
    start, took = time.perf_counter(), {}  # active seconds of the last group of each kind (gradient or not, shots)
    for group in plan.groups(dev.type):
        kind = (store.gradient(group[0]), group[0]["shots"])
        last = took.get(kind, max(took.values(), default=0.0))
        if deadline is not None and time.perf_counter() - start + last > deadline:
            tqdm.write(f"deadline: {deadline:.0f} s would pass during the next group "
                       f"(the last took {last:.0f} s); stopping cleanly, the same command resumes")
            return
        began = Stopwatch()
        mine = claims.take(group)
        if mine:
            c = mine[0]
            modes = "+".join(dict.fromkeys(x["mode"] for x in mine))
            bar.set_postfix_str(f"{c['dataset']} {c['shots']}-shot {c['backbone']} {modes} x{len(mine)}")
            yield run_configs(mine, plan.preset, dev, env, compile_model)
            took[kind] = began.seconds()


def check_provenance(results=None) -> None:
    """Before any compute: a sweep into the repository's results/ refuses to start from uncommitted
    changes to the package (its records would name code in no commit); into any other folder it
    stores the diff it runs with there, as diffs/<commit>.patch, which its records name."""
    from backbone_bench import paths
    from backbone_bench.environment import dirty, git_commit, package_diff

    commit = git_commit()
    if not dirty(commit):
        return
    folder = (Path(results) if results else paths.results_dir()).resolve()
    if folder == (paths.REPO_ROOT / "results").resolve():
        from backbone_bench.errors import BenchError

        raise BenchError(f"the package has uncommitted changes (`git status lib`), and records made now would name "
                         f"code in no commit ({commit}): commit them first, or try them on another results folder "
                         "(BACKBONE_BENCH_RESULTS=/tmp/results; `study` and `release` also take --results), where the "
                         "diff is kept beside the records")
    (folder / "diffs").mkdir(parents=True, exist_ok=True)
    (folder / "diffs" / f"{commit}.patch").write_text(package_diff())


def execute(plan, device: str = "auto", results=None, progress: bool = True, compile_model: bool = False,
            workers: int = 1, scheduler: str | None = None, cluster=None, deadline: float | None = None) -> dict:
    """Run every planned group, recording each run's outcome. Returns counts by status.

    ``workers`` > 1, a ``scheduler`` address or a dask ``cluster`` run the groups as Dask tasks;
    ``deadline`` (seconds, here only) stops before a group that would not finish in time."""
    check_provenance(results)
    distributed = workers > 1 or scheduler or cluster is not None
    counts: dict[str, int] = {}
    bar = tqdm(total=len(plan.configs), desc=plan.label or f"sweep {plan.preset}", unit="run", disable=not progress)
    claims = Claims(results, bar)
    start = time.perf_counter()
    try:
        if distributed:
            from backbone_bench.study.distributed import run_distributed

            outcomes = run_distributed(plan, device, compile_model, workers, scheduler, cluster, claims, bar)
        else:
            outcomes = _here(plan, device, compile_model, claims, bar, deadline)
        for group in outcomes:
            for record, arrays in group:
                store.write_record(record, arrays, results)
                claims.done(record["key"])
                counts[record["status"]] = counts.get(record["status"], 0) + 1
            bar.update(len(group))
            if distributed:
                bar.set_postfix_str(f"{bar.n / max((time.perf_counter() - start) / 3600, 1e-9):.0f} runs/hour")
    finally:
        bar.close()
        claims.release_all()  # anything not finished (driver interrupted) is free again
    if claims.elsewhere:
        counts["elsewhere"] = claims.elsewhere
    store.compile_table(results)
    return counts
