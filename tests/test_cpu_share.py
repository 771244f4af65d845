"""Issue 49, shared machines: OpenMP's waiting is chosen from the machine's idle cores before torch
loads, said in the first line, and a variable the user set wins. Competitors are busy Python loops."""
import os
import subprocess
import sys

from backbone_bench import cpu_share

BUSY = [sys.executable, "-c", "while True: pass"]


def test_busy_cores_sees_other_processes_and_their_cores_make_threads_sleep(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as at a command's start
    busy = [subprocess.Popen(BUSY) for _ in range(os.cpu_count() or 1)]
    try:
        seen = cpu_share.busy_cores(0.5)
        env = {}
        line = cpu_share.choose(env, window=0.5)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert seen is not None and seen >= 0.75 * (os.cpu_count() or 1)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert line.startswith("OpenMP: other processes keep") and "OMP_WAIT_POLICY=ACTIVE" in line


def test_a_variable_the_user_set_wins_and_a_loaded_torch_is_said():
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert cpu_share.choose(env) == "OpenMP: OMP_WAIT_POLICY=ACTIVE as set in the environment"
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}
    import torch  # noqa: F401

    env = {}
    assert "torch was loaded" in cpu_share.choose(env) and env == {}


def test_a_training_command_says_its_choice_before_it_trains_and_bad_input_gets_its_error_alone(tmp_path):
    env = dict(os.environ, BACKBONE_BENCH_RESULTS=str(tmp_path), GOMP_SPINCOUNT="300000")
    grid = ["run", "--preset", "quick", "--datasets", "uc_merced", "--shots", "10", "--modes", "scratch",
            "--seeds", "0", "--backbones", "regnetx_002", "--resolution", "32", "--steps", "2"]
    dry = subprocess.run([sys.executable, "-m", "backbone_bench", *grid, "--dry-run"], env=env, capture_output=True,
                         text=True)
    assert dry.returncode == 0 and "OpenMP" not in dry.stdout
    env.pop("GOMP_SPINCOUNT")
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run([sys.executable, "-m", "backbone_bench", *grid, "--deadline", "1"], env=env,
                         capture_output=True, text=True)
    lines = out.stdout.splitlines()
    said = lines.index("OpenMP: OMP_WAIT_POLICY=PASSIVE as set in the environment")
    assert said < next(i for i, line in enumerate(lines) if line.startswith("training with")), out.stdout[:500]
    (tmp_path / "report.txt").write_text("")
    bad = subprocess.run([sys.executable, "-m", "backbone_bench", "recommend", str(tmp_path), "--out",
                          str(tmp_path / "report.txt")], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1, bad.stdout + bad.stderr
    assert "is a file: give a folder" in bad.stderr
