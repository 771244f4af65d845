"""Cost profiling on the CPU: real counts and timings on small inputs (no timed assertions)."""
import pandas as pd
import pytest
import torch

from backbone_bench.models import cost
from backbone_bench.cli.main import main
from conftest import requires_mirror


def test_gmacs_match_the_published_count():
    import timm

    # ResNet-18 at 224 px: 1.82 GMACs (He et al. 2016 report 1.8 GFLOPs, counting multiply-adds)
    assert cost.gmacs(timm.create_model("resnet18"), 224) == pytest.approx(1.82, rel=0.02)


def test_profile_row_has_every_cost_and_the_context():
    row = cost.profile("tf_efficientnet_lite0", torch.device("cpu"), resolution=64, train_batch=4, infer_batch=8,
                       repeats=2, warmup=1)
    assert row["params_m"] == pytest.approx(3.38, rel=0.02)  # timm's count with a 10-class head
    for key in ("train_images_per_s", "infer_images_per_s", "latency_ms_median", "latency_ms_p90", "gmacs"):
        assert row[key] > 0, key
    assert row["latency_ms_p90"] >= row["latency_ms_median"]
    assert {"device", "precision", "channels_last", "compile", "resolution", "train_batch"} <= set(row)


def test_measure_appends_per_setup_and_records_failures(tmp_path, monkeypatch):
    kw = dict(resolution=32, train_batch=2, infer_batch=2, repeats=2, warmup=1, progress=False)
    cost.measure(["regnetx_002"], torch.device("cpu"), tmp_path, **kw)
    real = cost.profile
    monkeypatch.setattr(cost, "profile", lambda name, *a, **k: (_ for _ in ()).throw(RuntimeError("boom"))
                        if name == "resnet18" else real(name, *a, **k))
    cost.measure(["regnetx_002", "resnet18"], torch.device("cpu"), tmp_path, **kw)
    table = pd.read_csv(tmp_path / "cost.csv")
    assert (table["backbone"] == "regnetx_002").sum() == 1  # re-measured: the row was replaced
    assert table.set_index("backbone").loc["resnet18", "status"] == "error"


def test_cost_command_rejects_unknown_backbones_before_measuring(capsys):
    assert main(["cost", "--backbones", "resnet_18", "--device", "cpu"]) == 2
    assert "resnet18" in capsys.readouterr().err


def test_training_time_per_run_divides_a_fused_group_and_takes_the_median():
    import pandas as pd

    from backbone_bench import report

    table = pd.DataFrame(dict(status=["ok", "ok", "ok", "error"], device="cpu", mode="finetune", shots=10,
                              backbone="a", total_seconds=[40.0, 60.0, 90.0, 1.0], group_members=[2, 2, 1, 1],
                              resolution=96))
    times = report.training_time(table)
    assert times.to_dict("records") == [dict(device="cpu", resolution=96, mode="finetune", shots=10, backbone="a",
                                             seconds=30.0, runs=3)]
    html = report.training_time_display(times, "cpu").to_html()
    assert "30 s" in html and "fine-tune<br>10" in html and "3 runs" in html and "cpu, 96 px" in html


@requires_mirror
def test_a_cpu_edition_sets_the_gpu_runs_cost_beside_its_own():
    """The cost page of a CPU edition shows what the study's GPU runs took, from the 224 px edition's records."""
    from conftest import REPO
    from backbone_bench import report

    results = REPO / "results"
    gpu = report.load("offline", results, outdated=True)  # bf16 GPU runs are outdated, but what they cost stands
    gpu = gpu[gpu["device_type"] == "cuda"]
    times, other = report.gpu_training_time("cpu", report.load("cpu", results), results)
    assert int(times["runs"].sum()) == len(gpu[gpu["status"] == "ok"]) and other == "offline"
    if len(gpu):
        text = report.gpu_time_text(times, other)
        assert f"{int(times['runs'].sum())} runs" in text and "224 px" in text and "`offline` edition" in text
        fused = gpu[gpu["status"] == "ok"].iloc[0]
        row = times[(times["backbone"] == fused["backbone"]) & (times["mode"] == fused["mode"])
                    & (times["shots"] == fused["shots"])]
        assert row["seconds"].iloc[0] < fused["total_seconds"]  # a fused run's share, not its group's time
    assert report.gpu_time_text(times.iloc[0:0], other) == "No run of this study has been recorded on a GPU yet."


def test_the_224_px_cpu_runs_cost_is_set_beside_the_same_runs_at_96_px(monkeypatch):
    """Each cpu224 run's time beside the cpu edition's same (processor class, mode, shots, backbone)."""
    import pandas as pd

    import importlib

    from backbone_bench import report

    load = importlib.import_module("backbone_bench.report.load")  # the module: report.load is its function

    def runs(resolution, seconds, device_type="cpu"):
        return pd.DataFrame(dict(status="ok", device="CPU X x2 threads", device_type=device_type, mode="finetune",
                                 shots=10, backbone=["a", "b"], total_seconds=seconds, group_members=1,
                                 resolution=resolution))

    monkeypatch.setattr(load, "load", lambda preset, results=None, **_: runs(224, [300.0, 500.0]))
    times = report.wide_training_time("cpu", runs(96, [60.0, 100.0]))
    assert times[["backbone", "seconds", "seconds_base", "ratio"]].to_dict("records") == [
        dict(backbone="a", seconds=300.0, seconds_base=60.0, ratio=5.0),
        dict(backbone="b", seconds=500.0, seconds_base=100.0, ratio=5.0)]
    text = report.wide_time_text(times)
    assert text == ("From the `cpu224` edition: 2 runs at 224 px on CPU X x2 threads; a run there takes a median "
                    "fine-tune 5.0x the time of the same run at 96 px on the same processor class.")
    assert report.wide_training_time("cpu224", runs(224, [1.0, 2.0])).empty  # its own page: nothing beside itself
    monkeypatch.setattr(load, "load", lambda preset, results=None, **_: runs(224, [300.0, 500.0], "cuda"))
    assert report.wide_training_time("cpu", runs(96, [60.0, 100.0])).empty  # GPU runs have their own table
