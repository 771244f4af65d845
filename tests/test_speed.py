"""The CPU speed path: chosen by the committed measurement, and computing what the plain path computes.

Images: a small real subset (uc_merced, the committed splits) for the bf16-vs-fp32 run; random
tensors for the layout check; generated features for the probe grid.
"""
import copy

import numpy as np
import pytest
import torch

from backbone_bench.engine import speed
from backbone_bench.engine import train
from backbone_bench.models.backbones import create_model, scratch_twin
from backbone_bench.environment import device_name
from backbone_bench.engine.fused import Stack
from backbone_bench.engine.recipe import Recipe
from backbone_bench.study.plan import build_plan
from backbone_bench.study.run import run_configs
from conftest import requires_mirror


def _variants_csv(path, device, rows):
    import pandas as pd

    pd.DataFrame([dict(backbone=b, device=device, precision="bf16-autocast" if bf16 else "fp32", channels_last=cl,
                       compiled=compiled, images_per_s=rate, status="ok") for b, cl, bf16, compiled, rate in rows]
                 ).to_csv(path, index=False)


def test_speed_options_follow_the_committed_gpu_measurement_of_this_fusion(tmp_path, monkeypatch):
    from backbone_bench.engine import fused

    monkeypatch.setattr(speed, "CPU_VARIANTS_CSV", tmp_path / "none.csv")
    csv = tmp_path / "variants.csv"
    rows = ("a,plain,False,False,1000,ok\na,channels_last,False,True,1300,ok\na,compile,True,False,1200,ok\n"
            "a,compile+channels_last,True,True,,error\n"
            "b,plain,False,False,1000,ok\nb,channels_last,False,True,1030,ok\nb,compile,True,False,1040,ok\n")
    monkeypatch.setattr(speed, "VARIANTS_CSV", csv)
    try:
        csv.write_text("backbone,variant,compiled,channels_last,fused_images_per_s,status\n" + rows)
        speed._gpu_measured.cache_clear()  # measured before fusions were named: the vmap engine's, not used
        assert speed.speed_options("a", "cuda") == dict(compiled=False, channels_last=False, bf16=False, speed_from="default")
        assert speed.speed_options("a", "cuda", precision="bf16-autocast")["bf16"] is True  # the recipe's, on a GPU too
        csv.write_text("backbone,variant,compiled,channels_last,fused_images_per_s,status,fusion\n"
                       + rows.replace("\n", f",{fused.FUSION}\n") + "c,plain,False,False,1000,ok,vmap\n")
        speed._gpu_measured.cache_clear()
        assert speed.speed_options("a", "cuda") == dict(compiled=False, channels_last=True, bf16=False, speed_from="measured (variants.csv)")
        assert speed.speed_options("a", "cuda", compile_model=True)["compiled"] is True  # --compile: the best compiled one
        assert speed.speed_options("b", "cuda") == dict(compiled=False, channels_last=False, bf16=False,
                                                        speed_from="measured (variants.csv)")  # under 5 % faster
        assert speed.speed_options("c", "cuda") == dict(compiled=False, channels_last=False, bf16=False,
                                                        speed_from="default")  # another fusion's measurement
        speed._cpu_measured.cache_clear()  # a CPU nobody measured: fp32 in the default layout
        assert speed.speed_options("a", "cpu") == dict(compiled=False, channels_last=False, bf16=False, speed_from="default")
    finally:
        speed._gpu_measured.cache_clear()


def test_cpu_speed_options_follow_the_committed_measurement_of_this_cpu(tmp_path, monkeypatch):
    here = device_name(torch.device("cpu"))
    csv = tmp_path / "cpu_variants.csv"
    monkeypatch.setattr(speed, "CPU_VARIANTS_CSV", csv)
    _variants_csv(csv, here, [("a", False, False, False, 100), ("a", True, False, False, 130), ("a", True, True, False, 170),
                              ("a", False, True, False, 120), ("a", True, True, True, 400),  # compiled: only on request (compile time not amortised)
                              ("b", False, False, False, 100), ("b", True, False, False, 103)])  # under MIN_GAIN
    _variants_csv(tmp_path / "other.csv", "CPU Other x64 threads", [])
    for native in (True, False):  # the precision is the recipe's: native bf16 or not, fp32 stays fp32
        speed._cpu_measured.cache_clear()
        monkeypatch.setattr(speed, "native_bf16", lambda: native)
        got = speed.speed_options("a", "cpu")
        assert (got["channels_last"], got["bf16"], got["compiled"]) == (True, False, False)
        assert got["speed_from"] == "measured (cpu_variants.csv)"
    speed._cpu_measured.cache_clear()
    monkeypatch.setattr(speed, "native_bf16", lambda: True)
    # a bf16 recipe picks among the bf16 rows only
    assert speed.speed_options("a", "cpu", precision="bf16-autocast") == dict(
        compiled=False, channels_last=True, bf16=True, speed_from="measured (cpu_variants.csv)")
    assert speed.speed_options("a", "cpu", compile_model=True)["compiled"] is True
    assert speed.speed_options("b", "cpu") == dict(compiled=False, channels_last=False, bf16=False,
                                                   speed_from="measured (cpu_variants.csv)")
    assert speed.speed_options("c", "cpu")["speed_from"] == "default"      # unmeasured backbone: safe default
    monkeypatch.setattr(speed, "native_bf16", lambda: False)
    with pytest.raises(RuntimeError, match="no native bf16"):
        speed.speed_options("a", "cpu", precision="bf16-autocast")
    with pytest.raises(ValueError, match="choose one of fp32"):
        speed.speed_options("a", "cpu", precision="fp16")
    monkeypatch.setattr(speed, "device_name", lambda d: "CPU Other x64 threads")
    speed._cpu_measured.cache_clear()
    assert speed.speed_options("a", "cpu") == dict(compiled=False, channels_last=False, bf16=False, speed_from="default")
    speed._cpu_measured.cache_clear()


@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite0", "regnetx_002"])
def test_a_channels_last_solo_network_gives_the_logits_of_nchw_in_fp32(backbone):
    torch.manual_seed(0)
    net = create_model(scratch_twin(backbone), 5, 64).eval()
    x = torch.randn(1, 4, 3, 64, 64)
    plain, nhwc = Stack([copy.deepcopy(net)]), Stack([copy.deepcopy(net)], channels_last=True)
    a, b = plain.eval_forward(x, False), nhwc.eval_forward(x, False)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * a.abs().max().item())


def decision_margin() -> tuple[float, int]:
    """How far the published decisions are from flipping: the smallest distance of a gap's 95 %
    interval end from zero in the book's decision table (a cell's mean moved by more could turn
    'within noise' into 'separable' or back), and the seeds a cell averages."""
    import pandas as pd
    from conftest import REPO

    table = pd.read_csv(REPO / "book" / "downloads" / "decision.csv")
    return float(table["gap_lo"].abs().min()), int(table["n_subsets"].min())


@requires_mirror
def test_a_speed_option_moves_no_decision_the_book_makes():
    """The layout (channels-last or not) is what the CPU speed path may vary; precision is the
    recipe's. One network with its ImageNet weights, evaluated in both layouts in fp32 on real test
    images (uc_merced): the share of predictions the layout changes bounds how far it can move a
    balanced accuracy, and must stay below the published decision closest to flipping (about 0.002
    today), not a fixed 0.05. (Training amplifies rounding as any host change does:
    benchmarks/layout_noise.py measures that, like a seed, against the same margin.)"""
    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.splits import load_splits
    from backbone_bench.models.backbones import resolve_weights
    from backbone_bench.study.run import _to_device

    margin, _ = decision_margin()
    prepared = prepare("uc_merced", progress=False)
    test = _to_device(prepared, load_splits(prepared).test, 96, torch.device("cpu"))
    weights = resolve_weights("regnetx_002")
    net = create_model(weights).eval()
    norms = [(weights.mean, weights.std)]
    with torch.no_grad():
        plain = train._predict(Stack([copy.deepcopy(net)]), test, norms, 64, torch.device("cpu"))[0]
        nhwc = train._predict(Stack([copy.deepcopy(net)], channels_last=True), test, norms, 64, torch.device("cpu"))[0]
    changed = float(np.mean(plain.argmax(1) != nhwc.argmax(1)))
    assert changed < margin, f"channels-last changed {changed:.4f} of the predictions; the closest decision is {margin:.4f}"
    assert np.abs(plain - nhwc).max() < 1e-3


def _probe_data(rng, n=400, d=20, noise=3.0):
    w = rng.normal(size=(d, 3))
    feats, labels = {}, {}
    for split in ("train", "val", "test"):
        x = rng.normal(size=(n, d))
        feats[split] = x
        labels[split] = np.argmax(x @ w + noise * rng.normal(size=(n, 3)), 1)
    return feats, labels


def test_the_probe_grid_grows_past_an_edge_until_validation_picks_an_interior_c():
    feats, labels = _probe_data(np.random.default_rng(0))
    # a grid of two strong penalties: validation picks its weaker edge, and the grid grows that way
    fit = train.linear_probe(feats, labels, Recipe(probe_cs=(1e-3, 1e-2), probe_extend=3), 3, 0, 0.0)
    cs = sorted(float(c) for c in fit.chosen["candidates"])
    assert fit.chosen["grid_extended"] >= 1 and len(cs) == 2 + fit.chosen["grid_extended"]
    assert cs[0] < 1e-3 or cs[-1] > 1e-2
    wide = train.linear_probe(feats, labels, Recipe(probe_cs=(1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),
                                                    probe_extend=2), 3, 0, 0.0)
    assert wide.chosen["grid_extended"] == 0 and not wide.chosen["at_edge"]  # interior on the wide grid
    assert fit.chosen["at_edge"] == (fit.chosen["C"] in (cs[0], cs[-1]))
    if not fit.chosen["at_edge"]:
        assert cs[0] < fit.chosen["C"] < cs[-1]
    # no extension allowed: the record says nothing of one, as before (the key's recipe unchanged)
    old = train.linear_probe(feats, labels, Recipe(probe_cs=(1e-3, 1e-2)), 3, 0, 0.0)
    assert "grid_extended" not in old.chosen and set(old.chosen["candidates"]) == {1e-3, 1e-2}
    assert "probe_extend" not in Recipe().as_dict() and "test_limit" not in Recipe().as_dict()


@requires_mirror
@pytest.mark.parametrize("preset", ["cpu", "offline_cpu", "offline"])
def test_no_committed_probe_sits_on_a_grid_edge_unless_grown_as_far_as_allowed(preset):
    """Every probe an edition reports searched the wide grid; where validation's choice is still an
    edge of the grown grid, the grid grew as far as the recipe allows and the record says so."""
    from backbone_bench.study import store
    from backbone_bench.study.plan import grid_keys
    from conftest import REPO

    folder = REPO / "results"
    keys = sorted(k for k in grid_keys(preset) if (folder / "runs" / f"{k}.json").exists())
    records = [r for r in store.read_records(folder, keys=keys)
               if r["config"]["mode"] == "linear_probe" and r["status"] == "ok"]
    assert records, f"no committed probes of {preset}"
    for r in records:
        recipe, chosen = r["config"]["recipe"], r["chosen"]
        assert recipe["probe_extend"] >= 1 and min(recipe["probe_cs"]) <= 1e-4 and max(recipe["probe_cs"]) >= 100
        tried = sorted(float(c) for c in chosen["candidates"])
        assert len(tried) == len(recipe["probe_cs"]) + chosen["grid_extended"]
        edge = chosen["C"] in (tried[0], tried[-1])
        assert chosen["at_edge"] == edge, r["key"]
        if edge:
            assert chosen["grid_extended"] == recipe["probe_extend"], f"{r['key']}: on an edge, grid not fully grown"


@requires_mirror
def test_probe_features_are_extracted_once_and_reused_from_disk(results, tmp_path, monkeypatch):
    from backbone_bench.engine import features

    monkeypatch.setattr(features, "features_dir", lambda: tmp_path / "features")
    plan = build_plan("quick", datasets=["uc_merced"], backbones=["tf_efficientnet_lite0"], shots=[10],
                            seeds=[0, 1], resolution=48, modes=["linear_probe"])
    fresh = features.FeatureCache()
    monkeypatch.setattr("backbone_bench.study.run.FEATURES", fresh)
    first = run_configs(plan.configs[:1], "quick", torch.device("cpu"), {})
    extracted = fresh.extracted
    assert extracted > 0 and list((tmp_path / "features").glob("*.npz"))
    later = features.FeatureCache()  # a new process: only the disk holds them
    monkeypatch.setattr("backbone_bench.study.run.FEATURES", later)
    again = run_configs(plan.configs[:1], "quick", torch.device("cpu"), {})
    assert later.extracted == 0
    assert first[0][0]["metrics"] == again[0][0]["metrics"]
    run_configs(plan.configs[1:], "quick", torch.device("cpu"), {})  # another seed: only its new training images
    assert 0 < later.extracted <= 210

