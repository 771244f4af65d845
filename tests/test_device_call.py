"""The GPU call rehearsed on this CPU: a copy of the tracked tree without .git, a carried bundle,
the GPU image's missing packages hidden, the one command of benchmarks/device/call.sh, and its
records merged here. Real data (a uc_merced bundle), 32 px, a few steps: a rehearsal, not a result."""
import os
import subprocess
import sys
import tarfile

import pytest

from backbone_bench.study import store
from backbone_bench.study.merge import merge
from conftest import REPO, requires_mirror

GRID = ["--preset", "quick", "--datasets", "uc_merced", "--shots", "10", "--modes", "finetune,scratch",
        "--seeds", "0", "--resolution", "32", "--steps", "4"]


@requires_mirror
def test_a_gpu_call_rehearsed_on_the_cpu_returns_records_that_merge(tmp_path):
    copy = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src, dst = REPO / name.decode(), copy / name.decode()
        if src.is_file() and not name.startswith(b"results/runs/"):  # the records travel; not needed here
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    (copy / ".carry").mkdir()
    (copy / ".carry" / "commit.txt").write_text("rehearsal")
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    bundle = subprocess.run([sys.executable, "-m", "backbone_bench", "bundle", *GRID, "--backbones",
                             "regnetx_002,tf_mobilenetv3_small_100", "--out", str(copy / ".carry" / "sim")],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert bundle.returncode == 0, bundle.stderr[-2000:]
    out = tmp_path / "out"
    env |= dict(SIMULATE="1", DEVICE="cpu", LIMIT="240", SMOKE_S="60", OUT=str(out), FUSED_MEMBERS="2",
                SMOKE_ARGS="--resolution 32 --batch 8 --members 2 --steps 2")
    for var in ("BACKBONE_BENCH_DATA", "BACKBONE_BENCH_WEIGHTS", "BACKBONE_BENCH_RESULTS"):
        env.pop(var, None)  # over there only the carried bundle exists
    call = subprocess.run(["bash", "benchmarks/device/call.sh", ".carry/sim", *GRID, "--backbones",
                           "regnetx_002,tf_mobilenetv3_small_100"], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=600)
    assert call.returncode == 0, call.stdout[-3000:] + call.stderr[-3000:]
    assert "smoke: 2 of 2 backbones cleared to fuse" in call.stdout
    assert (out / "smoke.csv").exists() and (out / "records.tgz").exists()
    with tarfile.open(out / "records.tgz") as tar:
        names = [n for n in tar.getnames() if n.endswith(".json")]
    assert len(names) == 4  # 2 backbones x (finetune + scratch)
    home = tmp_path / "home"
    report = merge(out / "records.tgz", home)
    assert len(report.imported) == 4 and not report.refused
    records = store.read_records(home)
    assert {r["environment"]["git_commit"] for r in records} == {"rehearsal"}
    assert {r["fused"]["group_members"] for r in records} == {2}  # cleared: fused


@pytest.mark.parametrize("module", ["dask", "papermill", "itables"])
def test_the_rehearsal_hides_what_the_gpu_image_lacks(module):
    hidden = REPO / "benchmarks" / "device" / "hidden"
    out = subprocess.run([sys.executable, "-c", f"import {module}"], env=dict(os.environ, PYTHONPATH=str(hidden)),
                         capture_output=True, text=True)
    assert out.returncode != 0 and "not in the GPU image" in out.stderr
