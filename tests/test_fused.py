"""Fused groups against solo runs, on real uc_merced tiles and the real local weights (CPU).

In float64 the fused trainer must reproduce each member trained solo to round-off: that checks
that every member keeps its own initialisation, subset, batch order, augmentation, optimizer,
schedule, BatchNorm statistics, checkpoint and early-stopping point. In float32 (what runs) the
first steps agree to about 1e-4 relative: Adam's first update is the sign of the gradient, so
the round-off of a grouped against a plain convolution (sums in another order) flips near-zero
elements by a whole learning-rate step, and later steps amplify that as any change of summation
order would. Long float32 runs are therefore compared through the float64 check.
"""
import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from backbone_bench.engine import train
from backbone_bench.engine.fused import Stack
from backbone_bench.study.presets import get_preset
from backbone_bench.study.plan import make_config, make_groups
from backbone_bench.study import run as run_module
from conftest import requires_mirror

CPU = torch.device("cpu")
# a few steps on 40 validation images: some classes are never predicted, which sklearn mentions
pytestmark = pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
RECIPE = replace(get_preset("quick").recipe_for("finetune", 10), steps=6, eval_every=2, patience=1, eval_limit=40,
                 batch_size=8, lrs=(1e-3, 3e-3), bn_reestimate_images=32)


def configs(backbone, seeds=(0, 1), scratch=True, recipe=RECIPE):
    out = [make_config("uc_merced", 10, s, backbone, "finetune", 32, recipe) for s in seeds]
    if scratch:
        out.append(make_config("uc_merced", 10, 0, backbone, "scratch", 32, replace(recipe, lrs=(3e-3,))))
    return out


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def curve(record, key="val_nll"):
    return np.array([c[key] for c in record["curves"]])


@requires_mirror
@pytest.mark.parametrize("backbone, seeds, scratch, stops", [("tf_efficientnet_lite0", (0, 1), False, True),
                                                            ("tf_mobilenetv3_small_100", (0,), True, False)])
def test_members_of_a_fused_group_reproduce_their_solo_runs(backbone, seeds, scratch, stops, float64, results):
    """Pretrained (lite0, two seeds), pretrained with folded BatchNorm (mobilenetv3) and scratch
    members; with lite0 some members stop early (patience 1), at their solo run's step."""
    group = configs(backbone, seeds, scratch)
    fused = run_module.run_group(group, CPU)
    solo = [run_module.run_group([c], CPU)[0] for c in group]
    size = sum(len(c["recipe"]["lrs"]) for c in group)
    passes = [sum(1 for x in r["curves"] if x["lr"] == lr) for r, _ in fused for lr in r["chosen"]["candidates"]]
    assert (min(passes) < RECIPE.steps // RECIPE.eval_every) == stops
    for (f, fa), (s, sa), c in zip(fused, solo, group):
        assert f["fused"]["group_members"] == size and s["fused"]["group_members"] == len(c["recipe"]["lrs"])
        assert [c["step"] for c in f["curves"]] == [c["step"] for c in s["curves"]]  # same early-stopping points
        assert np.abs(curve(f) - curve(s)).max() < 1e-6       # measured: below 1e-7 (round-off of float64)
        assert f["chosen"] == s["chosen"] or np.allclose(f["chosen"]["candidates"][f["chosen"]["lr"]]["val_nll"],
                                                         s["chosen"]["candidates"][s["chosen"]["lr"]]["val_nll"])
        assert np.array_equal(fa["test_pred"], sa["test_pred"])
        assert np.abs(fa["test_prob"].astype(float) - sa["test_prob"].astype(float)).max() < 1e-3  # float16 storage
        for r in (f, s):  # the recorded validation metrics are those that chose the checkpoint, not a re-run
            best = r["chosen"]["candidates"][r["chosen"]["lr"]]
            assert (r["metrics"]["val"]["balanced_accuracy"], r["metrics"]["val"]["nll"]) == (best["val_score"], best["val_nll"])
    # the members really differ: seeds (hence training subsets), modes and learning rates
    (a, _), (b, _) = fused[:2]
    n = min(len(curve(a)), len(curve(b)))
    assert np.abs(curve(a)[:n] - curve(b)[:n]).max() > 1e-3
    nll = [c["val_nll"] for c in a["chosen"]["candidates"].values()]
    assert abs(nll[0] - nll[1]) > 1e-3
    if len(seeds) > 1:
        data = run_module._Data(group[0], RECIPE, CPU)
        assert not np.array_equal(data.train(0)[0], data.train(1)[0])


@requires_mirror
def test_float32_members_agree_with_solo_after_their_first_step(results):
    recipe = replace(RECIPE, steps=1, eval_every=1)
    group = configs("tf_efficientnet_lite0", recipe=recipe)
    fused = run_module.run_group(group, CPU)
    for (f, _), c in zip(fused, group):
        s, _ = run_module.run_group([c], CPU)[0]
        assert np.abs(curve(f, "train_loss") - curve(s, "train_loss")).max() < 1e-5  # the first loss: measured 1e-6
        assert np.abs(curve(f) - curve(s)).max() < 2e-3      # after one update: measured at most 5e-4 on NLL 3.0


@requires_mirror
def test_a_diverging_member_leaves_the_others_as_they_would_be_without_it(results, monkeypatch):
    group = configs("tf_mobilenetv3_small_100")
    without = run_module.run_group(group[:2], CPU)
    real = run_module.create_model

    def poisoned(weights, *a, **k):  # the scratch member's head outputs NaN
        model = real(weights, *a, **k)
        if weights.provenance == "random":
            torch.nn.init.constant_(model.get_classifier().weight, float("nan"))
        return model

    monkeypatch.setattr(run_module, "create_model", poisoned)
    fused = run_module.run_group(group, CPU)
    assert isinstance(fused[2], train.Diverged) and "step 1" in str(fused[2])
    for (f, fa), (w, wa) in zip(fused[:2], without):
        assert np.abs(curve(f) - curve(w)).max() < 1e-5     # measured: 0.0, identical
        assert np.array_equal(fa["test_pred"], wa["test_pred"])


@requires_mirror
@pytest.mark.parametrize("error", [torch.OutOfMemoryError("simulated: CUDA out of memory"),
                                   RuntimeError("simulated: GET was unable to find an engine to execute this computation")],
                         ids=["oom", "cudnn"])
def test_a_group_too_large_for_the_device_is_split_and_every_run_is_recorded(error, results, monkeypatch):
    real = Stack.train_forward

    def one_at_a_time(self, x):
        if x.shape[0] > 1:
            raise error
        return real(self, x)

    monkeypatch.setattr(Stack, "train_forward", one_at_a_time)
    out = run_module.run_group(configs("tf_mobilenetv3_small_100", seeds=(0,), scratch=True), CPU)
    assert [r["fused"]["group_members"] for r, _ in out] == [1, 1]
    assert all(r["micro_batch"] == RECIPE.batch_size for r, _ in out)


def test_another_error_of_a_group_is_retried_solo_once_not_taken_for_a_size_limit(monkeypatch):
    calls = []

    def broken(self, x):
        calls.append(len(x))
        raise RuntimeError("a bug")

    monkeypatch.setattr(Stack, "train_forward", broken)
    split = train.Split(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), 8)
    members = [train.Member(0, lr, 0, lambda: torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.AdaptiveAvgPool2d(1),
                                                                   torch.nn.Flatten()), split, (0.5,) * 3, (0.5,) * 3, False)
               for lr in (1e-3, 1e-4)]
    with pytest.raises(RuntimeError, match="a bug"), pytest.warns(UserWarning, match="one model at a time"):
        train.train_group(members, split, replace(RECIPE, steps=1), 2, CPU, 4)
    assert calls == [2, 1]  # the group once, then its first member alone, whose failure is its run's


@requires_mirror
def test_a_fused_group_that_fails_for_another_reason_is_trained_again_solo_and_every_run_recorded(results, monkeypatch):
    real = Stack.train_forward

    def fails_fused(self, x):
        if x.shape[0] > 1:
            raise RuntimeError("simulated: a kernel that only the fused form meets")
        return real(self, x)

    monkeypatch.setattr(Stack, "train_forward", fails_fused)
    with pytest.warns(UserWarning, match="running its 3 trainings one model at a time"):
        out = run_module.run_group(configs("tf_mobilenetv3_small_100", seeds=(0,), scratch=True), CPU)
    assert [r["fused"]["group_members"] for r, _ in out] == [1, 1]
    assert all(r["metrics"]["test"]["balanced_accuracy"] > 0 for r, _ in out)


@requires_mirror
@pytest.mark.parametrize("error", [torch.OutOfMemoryError("simulated: CUDA out of memory"),
                                   RuntimeError("simulated: GET was unable to find an engine to execute this computation")],
                         ids=["oom", "cudnn"])
def test_evaluation_past_the_device_limit_splits_its_stack_and_keeps_the_trained_group(error, results, monkeypatch):
    group = configs("tf_mobilenetv3_small_100", seeds=(0,), scratch=True)
    plain = run_module.run_group(group, CPU)
    real = Stack.eval_forward

    def only_one(self, x, shared):
        if len(self) > 1:
            raise error
        return real(self, x, shared)

    monkeypatch.setattr(Stack, "eval_forward", only_one)
    out = run_module.run_group(group, CPU)
    assert [r["fused"]["group_members"] for r, _ in out] == [3, 3]  # trained fused, evaluated member by member
    for (a, aa), (b, ba) in zip(plain, out):  # the same models: grouped and plain convolutions sum in another order
        assert np.array_equal(aa["test_pred"], ba["test_pred"])
        assert (a["chosen"]["lr"], a["chosen"]["step"]) == (b["chosen"]["lr"], b["chosen"]["step"])
        assert abs(a["metrics"]["val"]["nll"] - b["metrics"]["val"]["nll"]) < 1e-5 * a["metrics"]["val"]["nll"]


def test_a_lost_gpu_context_stops_the_sweep_instead_of_being_recorded(monkeypatch):
    from backbone_bench.engine.train import DeviceLost, _sticky

    with pytest.raises(DeviceLost, match="restart the sweep"):
        _sticky(RuntimeError("CUDA error: an illegal memory access was encountered"), "cuda")
    _sticky(RuntimeError("CUDA error: an illegal memory access was encountered"), "cpu")  # not on a CPU

    def lost(*a, **k):
        raise DeviceLost("simulated")

    monkeypatch.setattr(run_module, "run_group", lost)
    config = make_config("uc_merced", 10, 0, "regnetx_002", "finetune", 32, RECIPE)
    with pytest.raises(DeviceLost):
        run_module.run_configs([config], "quick", CPU, {})


def test_the_fusion_check_lets_out_of_memory_through_and_caches_no_verdict():
    from backbone_bench.engine import fused

    class Hungry(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1)

        def forward(self, x):
            raise torch.OutOfMemoryError("simulated")

    models = [Hungry(), Hungry()]
    with pytest.raises(torch.OutOfMemoryError):
        fused._computes_the_members(models[0], models)
    assert not any(k[0].endswith("Hungry") for k in fused._checked)


def test_dropout_draws_its_own_mask_per_member():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 12), torch.nn.Dropout(0.5))
    stack = Stack([net, copy.deepcopy(net)])
    y = stack.train_forward(torch.ones(2, 4, 3, 2, 2))
    assert not torch.equal(y[0] == 0, y[1] == 0)


def test_drop_path_draws_its_own_mask_per_member_and_sample():
    from timm.layers import DropPath

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), DropPath(0.5), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 2))
    stack = Stack([net, copy.deepcopy(net)])
    assert stack.fused is not None
    stack.fused[1].train()
    kept = stack.fused[1](torch.ones(64, 8, 1, 1))[:, ::4, 0, 0] != 0  # (samples, members)
    assert not torch.equal(kept[:, 0], kept[:, 1]) and 0.3 < kept.float().mean() < 0.7


def pair(backbone, size=32, classes=5):
    from backbone_bench.models.backbones import create_model, scratch_twin

    torch.manual_seed(0)
    return [create_model(scratch_twin(backbone), classes, size) for _ in range(2)]


def test_a_channels_last_stack_computes_what_the_plain_stack_computes(float64):
    """The layout the GPU benchmark may choose changes memory order only: same logits, same
    gradients (float64, a real timm model, training and evaluation forwards)."""
    nets = [n.double() for n in pair("tf_mobilenetv3_small_100")]
    x = torch.randn(2, 3, 3, 32, 32)
    plain, nhwc = Stack(copy.deepcopy(nets)), Stack(copy.deepcopy(nets), channels_last=True)
    conv = next(m for m in nhwc.fused.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    out = {}
    for name, stack in (("plain", plain), ("nhwc", nhwc)):
        logits = stack.train_forward(x)
        logits.square().sum().backward()
        stack.hand_gradients()
        out[name] = (logits.detach(), [p.grad.clone() for p in stack.models[1].parameters()],
                     stack.eval_forward(x[0], shared=True), stack.eval_forward(x, shared=False))
    assert torch.allclose(out["plain"][0], out["nhwc"][0], atol=1e-10)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(out["plain"][1], out["nhwc"][1]))
    assert torch.allclose(out["plain"][2], out["nhwc"][2], atol=1e-10)
    assert torch.allclose(out["plain"][3], out["nhwc"][3], atol=1e-10)


@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite0", "mobilenetv2_100", "regnetx_002",
                                      "tf_mobilenetv3_small_100"])
def test_a_fused_stack_is_its_members_side_by_side(backbone, float64):
    """Every panel architecture fuses, and the fused network is exactly its members: training
    logits, each member's gradients and running statistics, evaluation logits; the members'
    tensors are views of the fused ones, so a member's optimizer step is the fused weights' step."""
    nets = [n.double() for n in pair(backbone)]
    solo = copy.deepcopy(nets)
    x = torch.randn(2, 4, 3, 32, 32)
    stack = Stack(nets)
    assert stack.fused is not None
    logits = stack.train_forward(x)
    logits.square().sum().backward()
    stack.hand_gradients()
    alone = torch.stack([net.train()(images) for net, images in zip(solo, x)])
    alone.square().sum().backward()
    assert torch.allclose(logits, alone, atol=1e-12)
    for i, reference in enumerate(solo):
        mine = dict(nets[i].named_parameters())
        assert all(torch.allclose(mine[n].grad, p.grad, atol=1e-12) for n, p in reference.named_parameters())
        assert all(torch.allclose(stack.state(i)[n], t) for n, t in reference.state_dict().items())
    assert torch.allclose(stack.eval_forward(x, shared=False), torch.stack([n.eval()(i) for n, i in zip(solo, x)]))
    head = nets[1].get_classifier().weight
    with torch.no_grad():
        head.add_(1.0)  # what a member's optimizer does: in place, on its view
    assert torch.equal(stack.fused.get_classifier().weight[1], head)


class _Shuffled(torch.nn.Module):
    """Channels mixed by a layer without weights: the side-by-side layout would mix members."""

    def __init__(self):
        super().__init__()
        self.conv, self.shuffle, self.head = torch.nn.Conv2d(3, 4, 3), torch.nn.ChannelShuffle(2), torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.shuffle(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize("make", [_Shuffled, lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LayerNorm(12))],
                         ids=["channel-shuffle", "layer-norm"])
def test_an_architecture_that_does_not_fuse_runs_its_members_one_after_another(make):
    torch.manual_seed(0)
    nets = [make() for _ in range(3)]
    solo = copy.deepcopy(nets)
    x = torch.randn(3, 2, 3, 8, 8) if make is _Shuffled else torch.randn(3, 2, 3, 2, 2)
    stack = Stack(nets)
    assert stack.fused is None
    assert torch.allclose(stack.train_forward(x), torch.stack([n(i) for n, i in zip(solo, x)]))


@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite0", "mobilenetv2_100", "regnetx_002",
                                      "tf_mobilenetv3_small_100"])
def test_a_stack_under_autocast_computes_in_bf16_with_float32_norms(backbone):
    """What a GPU run asks of a stack: autocast to bf16, here on the CPU's bf16 kernels with
    channels-last images as the GPU lays them out. The logits are as close to float32's as
    autocast brings a solo member's; gradients reach the float32 weights; statistics stay float32."""
    nets = pair(backbone, 64, 3)
    for module in (m for net in nets for m in net.modules()):  # dropout draws differ between dtypes
        for rate in ("drop_rate", "drop_prob", "p"):
            if isinstance(getattr(module, rate, None), float):
                setattr(module, rate, 0.0)
    x = torch.randn(2, 8, 3, 64, 64)
    solo = []
    for net, images in zip(nets, x):
        reference = copy.deepcopy(net)(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            solo.append(((copy.deepcopy(net)(images).float() - reference).norm() / reference.norm()).item())
    full, half = Stack(copy.deepcopy(nets)), Stack(nets, channels_last=True)
    reference = full.train_forward(x).detach()
    before = {n: b.clone() for n, b in half.buffers.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = half.train_forward(x)
        evaluated = half.eval_forward(x[0], shared=True)
    assert logits.dtype == evaluated.dtype == torch.bfloat16 and logits.shape == (2, 8, 3)
    for member, error in enumerate(solo):
        stacked = (logits[member].float() - reference[member]).norm() / reference[member].norm()
        assert stacked < 1.5 * error + 0.01
    logits.float().square().sum().backward()
    half.hand_gradients()
    grads = [p.grad for net in nets for p in net.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    moved = [n for n, b in half.buffers.items() if "running_mean" in n and not torch.equal(b, before[n])]
    assert moved and all(half.buffers[n].dtype == torch.float32 for n in moved)


def test_groups_hold_runs_that_share_everything_but_seed_mode_and_learning_rate():
    recipe = get_preset("offline").recipe_for("finetune", 10)
    grid = [make_config(d, 10, s, b, m, 224, replace(recipe, lrs=(1e-3, 3e-4)))
            for d in ("uc_merced", "cifar10") for b in ("regnetx_002", "mobilenetv2_100")
            for m in ("finetune", "scratch") for s in (0, 1, 2)]
    groups = make_groups(grid, 12)
    assert len(groups) == 4 and all(len(g) == 6 for g in groups)
    assert all(len({(c["dataset"], c["backbone"]) for c in g}) == 1 for g in groups)
    assert [len(g) for g in make_groups(grid, 5)] == [2, 2, 2] * 4   # a run's learning rates stay together
    assert [len(g) for g in make_groups(grid, 1)] == [1] * 24
    probe = make_config("uc_merced", 10, 0, "regnetx_002", "linear_probe", 224, recipe)
    assert make_groups([probe, probe | {"seed": 1}], 12) == [[probe], [probe | {"seed": 1}]]


def test_records_of_the_old_engine_are_run_again(tmp_path):
    """Engine 1 trained on in eval mode after its first validation pass: its fine-tune and scratch
    records are planned and claimable again; linear probes (no training loop) are kept."""
    from backbone_bench.study import store

    recipe = get_preset("quick").recipe_for("finetune", 10)
    old = make_config("uc_merced", 10, 0, "regnetx_002", "finetune", 64, recipe)
    probe = make_config("uc_merced", 10, 0, "regnetx_002", "linear_probe", 64, recipe)
    new = make_config("uc_merced", 10, 1, "regnetx_002", "finetune", 64, recipe)
    for config, extra in ((old, {}), (probe, {}), (new, {"engine": store.ENGINE})):
        store.write_record(dict(key=store.config_key(config), config=config, status="ok", **extra),
                           dict(test_pred=np.zeros(1, np.uint8)), tmp_path)
    assert store.done_keys(tmp_path) == {store.config_key(probe), store.config_key(new)}
    assert store.claim(store.config_key(old), tmp_path) and not store.claim(store.config_key(new), tmp_path)
