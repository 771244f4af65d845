"""The GPU call rehearsed on this CPU: a copy of the tracked tree without .git, a carried bundle,
the GPU image's missing packages hidden, the one command of benchmarks/device/call.sh, and its
records merged here. Real data (a uc_merced bundle), 32 px, a few steps: a rehearsal, not a result."""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from backbone_bench.study import store
from backbone_bench.study.merge import merge
from conftest import REPO, requires_mirror

GRID = ["--preset", "quick", "--datasets", "uc_merced", "--shots", "10", "--modes", "finetune,scratch",
        "--seeds", "0", "--resolution", "32", "--steps", "4"]
# The first chunk of the 224 px grid a lent GPU advances (benchmarks/device/README.md): 60 runs
CHUNK = ["--preset", "cpu224", "--shots", "10", "--modes", "finetune,linear_probe",
         "--datasets", "breastmnist,pneumoniamnist",
         "--backbones", "squeezenet1_1,tf_mobilenetv3_small_100,regnetx_002,mobilenetv1_100,mobilenetv2_100"]
MiB = 2**20


def _git(*args, cwd):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          capture_output=True, check=True).stdout


def _checkout_of_this_tree(dst):
    """A clone whose files are this working tree's (uncommitted changes included), committed, so
    that kit.sh's git commands see what they would see here; the records and the book are HEAD's."""
    _git("clone", "-q", "--shared", str(REPO), str(dst), cwd=REPO)
    names = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO).split(b"\0")
    for name in filter(None, (n.decode() for n in names)):
        if name.startswith(("results/runs/", "results/superseded/", "book/")) or not (REPO / name).is_file():
            continue
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        (dst / name).write_bytes((REPO / name).read_bytes())
    _git("add", "-A", cwd=dst)
    _git("commit", "-qm", "this working tree", "--allow-empty", cwd=dst)


def _kit(checkout, *args, env):
    out = subprocess.run(["bash", "benchmarks/device/kit.sh", *args], cwd=checkout, env=env, capture_output=True)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return out.stdout


@requires_mirror
def test_a_gpu_call_rehearsed_on_the_cpu_returns_records_that_merge(tmp_path):
    """Issue 50: the upload does not grow with the records. `kit.sh chunk` bundles a chunk's images,
    weights and its cells' records, then slims the checkout to what a call needs; the device copy
    is exactly what `kit.sh travels` lists (no .git, no results/runs, no book)."""
    checkout = tmp_path / "checkout"
    _checkout_of_this_tree(checkout)
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
               BENCH=str(Path(sys.executable).parent / "backbone-bench"), BACKBONE_BENCH_RESULTS=str(REPO / "results"))
    full = int(_kit(checkout, "size", env=env))
    printed = _kit(checkout, "chunk", "c60", *CHUNK, env=env).decode()
    assert "slim:" in printed and "upload" in printed, printed
    runs = len(plan_from(CHUNK))
    upload = int(_kit(checkout, "size", ".carry/c60", ".carry/commit.txt", env=env))
    tree = int(_kit(checkout, "size", env=env))
    print(f"rehearsal: {runs} runs; upload {upload / MiB:.1f} MiB (working tree {tree / MiB:.1f} MiB, "
          f"{full / MiB:.1f} MiB before slim)")
    assert runs >= 30 and upload < 40 * MiB and tree < 4 * MiB
    # slimmed, this checkout's results refuse (a sweep would redo every record); `full` undoes it
    refused = subprocess.run([sys.executable, "-m", "backbone_bench", "results"], cwd=checkout, capture_output=True,
                             text=True, env=dict(env, BACKBONE_BENCH_RESULTS=str(checkout / "results")))
    assert refused.returncode != 0 and "kit.sh full" in refused.stderr, refused.stderr

    # the call itself, on a small grid of its own (32 px, 4 steps): a rehearsal, not a result
    bundle = subprocess.run([sys.executable, "-m", "backbone_bench", "bundle", *GRID, "--backbones",
                             "regnetx_002,tf_mobilenetv3_small_100", "--out", str(checkout / ".carry" / "sim")],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert bundle.returncode == 0, bundle.stderr[-2000:]
    copy = tmp_path / "device"
    for name in filter(None, _kit(checkout, "travels", ".carry/sim", ".carry/commit.txt", env=env).split(b"\0")):
        (copy / name.decode()).parent.mkdir(parents=True, exist_ok=True)
        (copy / name.decode()).write_bytes((checkout / name.decode()).read_bytes())
    assert not (copy / ".git").exists() and not (copy / "results" / "runs").exists() and not (copy / "book").exists()
    (copy / ".carry" / "commit.txt").write_text("rehearsal")
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

    _kit(checkout, "full", env=env)
    assert (checkout / "results" / "runs").is_dir() and not (checkout / ".carry" / "SLIM").exists()


def plan_from(args):
    from backbone_bench.cli.commands import plan_from_args
    from backbone_bench.cli.main import build_parser

    return plan_from_args(build_parser().parse_args(["bundle", *args, "--out", "x"]), everything=True).configs


@requires_mirror
def test_a_bundle_carries_the_records_its_cells_already_have(tmp_path, results):
    from backbone_bench.study.bundle import copy_records

    configs = plan_from(CHUNK)[:3]
    for config in configs[:2]:
        store.write_record(dict(key=store.config_key(config), config=config, status="ok"), {"pred": [1, 0]})
    assert copy_records(configs, tmp_path / "runs") == 2
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(
        f"{store.config_key(c)}{s}" for c in configs[:2] for s in (".json", ".npz"))


@pytest.mark.parametrize("module", ["dask", "papermill", "itables"])
def test_the_rehearsal_hides_what_the_gpu_image_lacks(module):
    hidden = REPO / "benchmarks" / "device" / "hidden"
    out = subprocess.run([sys.executable, "-c", f"import {module}"], env=dict(os.environ, PYTHONPATH=str(hidden)),
                         capture_output=True, text=True)
    assert out.returncode != 0 and "not in the GPU image" in out.stderr
