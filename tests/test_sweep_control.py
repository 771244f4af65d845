"""A long sweep under control: error records retried, a deadline honoured, a projection printed."""
import time


from backbone_bench.study import store
from backbone_bench.engine.train import Diverged
from backbone_bench.study.run import failure_record, record_base
from backbone_bench.study.execute import execute
from backbone_bench.study.plan import build_plan
from conftest import requires_mirror

SMALL = dict(datasets=["uc_merced"], backbones=["tf_efficientnet_lite0", "mobilenetv2_100"], shots=[10], seeds=[0],
             modes=["finetune"], resolution=48, steps=5)


@requires_mirror
def test_error_records_are_retried_and_final_failures_are_not(results):
    plan = build_plan("quick", **SMALL)
    errored, diverged = plan.configs
    store.write_record(failure_record(record_base(errored, "quick", {}), OSError("No space left on device")))
    store.write_record(failure_record(record_base(diverged, "quick", {}), Diverged("nan")))
    again = build_plan("quick", **SMALL)
    assert [store.config_key(c) for c in again.configs] == [store.config_key(errored)]
    assert again.skipped_done == 1
    retry = build_plan("quick", retry_failed=True, **SMALL)  # --retry-failed: the final failure too
    assert len(retry.configs) == 2


def groups_of(seconds: float, paused: float = 0.0):
    """A stand-in for run_configs: each group takes ``seconds`` of wall time, ``paused`` of them
    stopped (what the pause clock counts under SIGSTOP), and records a simulated failure."""
    from backbone_bench.clock import clock

    def run_configs(configs, preset, device, env, compile_model=False, progress=None):
        time.sleep(seconds)
        clock().paused += paused
        return [(failure_record(record_base(c, preset, env), RuntimeError("simulated")), None) for c in configs]
    return run_configs


@requires_mirror
def test_a_deadline_starts_no_group_that_would_end_past_it(results, monkeypatch):
    import backbone_bench.study.run as run

    monkeypatch.setattr(run, "run_configs", groups_of(0.4))
    plan = build_plan("quick", **SMALL)
    assert execute(plan, "cpu", progress=False, deadline=0.6) == {"error": 1}  # 0.4 + 0.4 > 0.6: one group
    assert len(store.read_records()) == 1
    assert not list((results / "runs" / ".claims").glob("*"))  # nothing left claimed
    from backbone_bench.study.progress import progress

    p = progress("quick")
    assert (p["records"], p["ok"], p["last_checkpoint_share"]) == (1, 0, None)


@requires_mirror
def test_a_group_paused_by_sigstop_is_judged_by_its_active_time(results, monkeypatch):
    """A sweep paused while the tests ran must not stop at its deadline because the paused group
    looked as long as the pause (it did: one run in two hours, then "deadline would pass")."""
    import backbone_bench.study.run as run

    monkeypatch.setattr(run, "run_configs", groups_of(0.4, paused=0.4))
    assert execute(build_plan("quick", **SMALL), "cpu", progress=False, deadline=0.6) == {"error": 2}


@requires_mirror
def test_the_plan_prints_its_projected_hours_before_it_starts(results, capsys):
    from backbone_bench.cli.main import main

    assert main(["run", "--preset", "quick", "--datasets", "uc_merced", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "projected:" in out or "no projection:" in out
    assert main(["run", "--preset", "quick", "--deadline", "0"]) == 2


@requires_mirror
def test_an_unmeasured_processor_is_told_how_to_measure_it_and_what_measured_ones_take(results, capsys, monkeypatch):
    import backbone_bench.environment as environment
    from backbone_bench.cli.main import main
    from backbone_bench.study.budget import MEASURE_COMMAND, measured_devices, projected_hours
    from backbone_bench.study.plan import build_plan

    monkeypatch.setattr(environment, "device_name", lambda device: "CPU Imaginary Core (AVX2) x2 threads")
    assert main(["run", "--preset", "cpu", "--datasets", "uc_merced", "--shots", "10", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "no projection:" in out and "Imaginary Core" in out and MEASURE_COMMAND in out
    configs = build_plan("cpu", datasets=["uc_merced"], shots=[10]).configs
    for device in measured_devices():
        assert f"{projected_hours(configs, device)[0]:.1f} h on {device}" in out


def test_a_run_paused_by_sigstop_does_not_count_its_pause():
    """The sweep is paused (SIGSTOP) while the tests need the cores: a record's total_seconds is the time
    the run took, the pause recorded beside it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("import time\nfrom backbone_bench.clock import Stopwatch, clock, active_since\nm = clock().now()\n"
            "w = Stopwatch()\nt0 = time.monotonic()\nwhile time.monotonic() - t0 < 5: pass\n"
            "print(*active_since(m), w.seconds())")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    os.kill(child.pid, signal.SIGSTOP)
    time.sleep(3)
    os.kill(child.pid, signal.SIGCONT)
    active, paused, watched = map(float, child.communicate(timeout=30)[0].split())
    assert 2.5 <= paused <= 3.6 and 1.4 <= active <= 2.6
    assert abs(watched - active) < 0.1  # the engine's training and feature seconds use the same clock


def test_the_projection_counts_a_probes_training_images_and_scales_by_each_modes_recorded_pace():
    """A 1000-shot probe extracts its training subset too; a mode whose records took twice their
    projection doubles that mode's projection of the missing runs, another mode keeps its own."""
    import pandas as pd

    from backbone_bench import paths
    from backbone_bench.study.budget import calibrated_hours, projected_hours, run_seconds, measured_rates

    runs = pd.read_csv(paths.results_dir() / "runs.csv")
    cpu = runs[(runs["preset"] == "cpu") & (runs["status"] == "ok") & (runs["dataset"] == "cifar10")]
    pick = [cpu[(cpu["mode"] == m) & (cpu["shots"] == s)]["key"].iloc[0]
            for m, s in [("linear_probe", 10), ("linear_probe", 1000), ("finetune", 10)]]
    by_key = {r["key"]: r for r in store.read_records(keys=pick)}
    probe10, probe1000, fine = (by_key[k] for k in pick)
    device = fine["environment"]["device"]
    rates = measured_rates(device)
    assert run_seconds(probe1000["config"], rates) > 3 * run_seconds(probe10["config"], rates)

    def took(record, factor):  # the record, as if it had taken ``factor`` times its projection
        return {**record, "timing": {"total_seconds": factor * run_seconds(record["config"], rates)}}

    configs = [probe1000["config"], fine["config"]]
    alone = {c["mode"]: projected_hours([c], device)[0] for c in configs}
    hours, n = calibrated_hours(configs, [took(fine, 2.0)], device)
    assert n == 1 and abs(hours - (2 * alone["finetune"] + alone["linear_probe"])) < 1e-9
    assert calibrated_hours(configs, [], device) == (None, 0)


@requires_mirror
def test_the_book_sets_the_sweeps_measured_hours_against_their_projection(tmp_path):
    from collections import Counter

    from conftest import REPO
    from backbone_bench.report import sweep_hours
    from backbone_bench.study.budget import recorded_against_projection

    assert sweep_hours.sweep_hours_text(tmp_path) == "No run of the `cpu` edition has been recorded on a CPU yet."
    wide = sweep_hours.sweep_hours_text(REPO / "results", "cpu224")  # before its first run: projected per shot level
    if wide.startswith("No run"):
        assert "runs are projected at" in wide and "10 shots" in wide and "1000 shots" in wide
    records = [r for r in store.read_records(REPO / "results") if r.get("preset") == "cpu"]
    if not records:
        return
    text = sweep_hours.sweep_hours_text(REPO / "results")
    totals = []
    for device in Counter(r["environment"]["device"] for r in records):  # each processor class on its own
        took, projected, n = recorded_against_projection(records, device)
        assert f"{n} run{'s' if n != 1 else ''} on {device} took {took:.1f} h" in text and f"{projected:.1f} h projected" in text
        totals.append((took, projected))
    if "whole grid is recorded" in text:  # the real total, against the projection of the same runs
        took, projected = map(sum, zip(*totals))
        assert f"{took:.1f} h of sweep" in text and f"against {projected:.1f} h projected for the same runs" in text


def test_the_methods_say_which_of_budget_resolution_and_convergence_gave_way():
    from backbone_bench.report.sweep_hours import _gave_way

    assert _gave_way(14.0, 15.0, "It") == "It stays within the 15-hour budget."
    over = _gave_way(16.5, 15.0, "It")
    assert "16.5 h, 1.5 h over the 15-hour budget" in over and "budget is what gives way" in over
    assert "past the 20 hours" in _gave_way(21.0, 15.0, "It")


@requires_mirror
def test_the_methods_name_what_the_budget_cut_from_the_design():
    """The cpu preset leaves out scratch twins at 1000 shots, and nothing else: the methods say so with
    the count (uc_merced has no 1000-shot level of its own) and what it saved."""
    from conftest import REPO
    from backbone_bench.report.sweep_hours import resolution_budget_text
    from backbone_bench.study.plan import cut_configs, grid_keys
    from backbone_bench.study.presets import get_preset

    cut = cut_configs("cpu")
    p = get_preset("cpu")
    assert {(c["mode"], c["shots"]) for c in cut} == {("scratch", 1000)}
    assert len(cut) == (len(p.datasets) - 1) * len(p.backbones) * len(p.seeds)
    assert not {store.config_key(c) for c in cut} & grid_keys("cpu")
    text = resolution_budget_text(REPO / "results")
    assert f"scratch twins at 1000 images per class ({len(cut)} runs, about" in text
    assert cut_configs("offline") == []


@requires_mirror
def test_a_cpu_sweep_ends_its_log_with_the_editions_hours(results, capsys, monkeypatch):
    """The log's last line is the edition's hours so far (its real total once the grid is whole), as
    the book prints them."""
    import backbone_bench.study.execute as execute_module
    from backbone_bench.cli.main import main
    from backbone_bench.report.sweep_hours import sweep_hours_text

    monkeypatch.setattr(execute_module, "execute", lambda plan, *a, **k: {"ok": len(plan.configs)})
    assert main(["run", "--preset", "cpu", "--datasets", "uc_merced", "--shots", "10", "--modes", "linear_probe",
                 "--backbones", "regnetx_002", "--seeds", "0"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-2] == "finished: 1 ok" and out[-1] == sweep_hours_text(results, "cpu")
