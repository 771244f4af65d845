"""The eight local ImageNet models (timm's and torchvision's) load exactly, get the right head, and fail
clearly otherwise."""
import json
import shutil

import pytest
import torch

from backbone_bench.models.backbones import create_model, reestimate_folded_batchnorm, resolve_weights
from backbone_bench.models.panels import PANELS, check_backbone
from backbone_bench.errors import UnknownNameError, WeightsUnavailableError
from conftest import SHARED

requires_weights = pytest.mark.skipif(not (SHARED / "weights" / "weights.json").exists(), reason="no local weights")


@requires_weights
@pytest.mark.parametrize("name", PANELS["offline"])
def test_local_weights_reproduce_the_state_dict_function(name):
    import timm
    from safetensors.torch import load_file

    weights = resolve_weights(name)
    assert weights.provenance == "local" and len(weights.sha256) == 64
    manifest = json.loads((SHARED / "weights" / "weights.json").read_text())[name]
    assert (weights.bn_folded, weights.int8_derived) == (manifest["bn_folded"], manifest["int8_derived"])

    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    model = create_model(weights).eval()
    # the reference: a fresh network evaluated with the file's tensors as its parameters
    if manifest.get("library", "timm") == "torchvision":  # torchvision's own network, not the study's adapter
        import torchvision

        reference_net = getattr(torchvision.models, name)(weights=None, **manifest["create_kwargs"]).eval()
    else:
        reference_net = timm.create_model(name, pretrained=False, **manifest["create_kwargs"]).eval()
    assert weights.library == manifest.get("library", "timm")
    state = {k: v.float() for k, v in load_file(SHARED / "weights" / manifest["file"]).items()}
    with torch.no_grad():
        ours = model(x)
        reference = torch.func.functional_call(reference_net, state, (x,))
    assert ours.shape == (2, 1000)
    assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-4)
    # and it is not a random network: the random twin disagrees
    with torch.no_grad():
        assert not torch.allclose(reference_net(x), reference, atol=1e-2)

    head = create_model(weights, num_classes=7)
    last = head.get_classifier()
    assert (last.out_features if isinstance(last, torch.nn.Linear) else last.out_channels) == 7
    assert head(x[:1]).shape == (1, 7)
    head.reset_classifier(0)  # the probes' frozen features: pooled, one vector per image
    assert head(x[:1]).shape == (1, getattr(head, "head_hidden_size", None) or head.num_features)


@requires_weights
@pytest.mark.parametrize("name", [n for n in PANELS["offline"] if n in ("mobilenetv2_100", "regnetx_002",
                                                                        "mobilenetv1_100")])
def test_folded_batchnorm_is_reestimated_to_an_identity_in_train_mode(name):
    weights = resolve_weights(name)
    assert weights.bn_folded
    torch.manual_seed(0)
    x = torch.randn(16, 3, 96, 96)
    model = create_model(weights).eval()
    with torch.no_grad():
        before = model(x)
        model.train()
        naive = model(x)  # train mode without re-estimation: the pretrained function is lost
    assert (naive - before).norm() / before.norm() > 0.1
    model = create_model(weights)
    assert reestimate_folded_batchnorm(model, x) > 10
    model.train()
    with torch.no_grad():
        after = model(x)
    assert (after - before).norm() / before.norm() < 1e-3


def test_unknown_backbone_names_close_matches():
    with pytest.raises(UnknownNameError, match="resnet18"):
        check_backbone("resnet_18")
    with pytest.raises(UnknownNameError, match="tag"):
        check_backbone("resnet18.no_such_tag")


def test_backbone_without_weights_is_unavailable_never_random(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="no ImageNet weights"):
        resolve_weights("resnet18.tv_in1k")
    assert resolve_weights("resnet18.tv_in1k", pretrained=False).provenance == "random"


@requires_weights
def test_damaged_weights_file_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(SHARED / "weights" / "weights.json", folder)
    data = bytearray((SHARED / "weights" / "regnetx_002.safetensors").read_bytes())
    data[-100] ^= 0xFF
    (folder / "regnetx_002.safetensors").write_bytes(data)
    monkeypatch.setenv("BACKBONE_BENCH_WEIGHTS", str(folder))
    with pytest.raises(WeightsUnavailableError, match="does not match"):
        resolve_weights("regnetx_002")


def test_panels_are_what_the_study_asks_for():
    """Every panel name is one timm knows (check_backbone accepts them without asking timm)."""
    import timm

    from backbone_bench.models.torchvision_models import TORCHVISION

    assert len(PANELS["offline"]) == 8 and {"mobilenetv1_100", "squeezenet1_1"} <= set(PANELS["offline"])
    assert len(PANELS["lightweight"]) >= 20
    assert len(PANELS["seed"]) == 9
    for name in PANELS["lightweight"] + PANELS["seed"]:
        assert name in timm.list_pretrained(name), name
    assert set(PANELS["offline"]) - set(TORCHVISION) <= set(timm.list_models())


@requires_weights
@pytest.mark.parametrize("name", PANELS["offline"])
def test_scratch_twin_is_the_same_network_with_the_same_normalisation(name):
    """The twin differs from the pretrained run in its weights only (mobilenetv2_100 used to lose
    its pad_type="same" and every TF model its 0.5/0.5 normalisation)."""
    pretrained, twin = resolve_weights(name), resolve_weights(name, pretrained=False)
    assert twin.provenance == "random" and not twin.bn_folded
    assert (twin.create_kwargs, twin.mean, twin.std) == (pretrained.create_kwargs, pretrained.mean, pretrained.std)
    a, b = create_model(pretrained, 5), create_model(twin, 5)
    assert str(a) == str(b)  # same modules, padding included
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]
    x = torch.randn(1, 3, 64, 64)
    assert not torch.allclose(a.eval()(x), b.eval()(x))  # and really other weights


def test_squeezenets_head_is_its_1x1_convolution_and_a_new_one_keeps_the_published_structure():
    """SqueezeNet has no reset_classifier of its own: the adapter replaces classifier.1 (512 -> classes)
    between the dropout and the ReLU + pool, and with 0 classes returns the pooled conv output."""
    from backbone_bench.models.backbones import scratch_twin

    net = create_model(scratch_twin("squeezenet1_1"), 10).eval()
    assert [type(m).__name__ for m in net.classifier] == ["Dropout", "Conv2d", "ReLU", "AdaptiveAvgPool2d"]
    assert net.classifier[1].in_channels == 512 and net.classifier[1].out_channels == 10
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        pooled = net.features(x).mean((2, 3))
        net.reset_classifier(0)
        assert torch.allclose(net(x), pooled, atol=1e-6)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())


def test_a_torchvision_backbone_without_a_local_file_asks_torchvision_for_its_own_weights(monkeypatch, tmp_path):
    """Users with internet get torchvision's own SqueezeNet 1.1 weights (other weights than the local
    file's, and said so); offline, a clear error, never a random network."""
    import torchvision.models as tvm

    from backbone_bench import paths
    from backbone_bench.models import torchvision_models
    from backbone_bench.models.backbones import create_model as build

    monkeypatch.setattr(paths, "weights_folders", lambda: [tmp_path])
    state = torchvision_models.SqueezeNet11().state_dict()
    monkeypatch.setattr(tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1, "get_state_dict", lambda **kw: state, raising=False)
    weights = resolve_weights("squeezenet1_1")
    assert (weights.provenance, weights.library, weights.source) == ("hub", "torchvision",
                                                                    "torchvision:squeezenet1_1.IMAGENET1K_V1")
    assert weights.mean == (0.485, 0.456, 0.406)
    assert torch.equal(build(weights).features[0].weight, state["features.0.weight"])

    def offline(**kw):
        raise OSError("no internet")
    monkeypatch.setattr(tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1, "get_state_dict", offline, raising=False)
    with pytest.raises(WeightsUnavailableError, match="torchvision could not download its own"):
        resolve_weights("squeezenet1_1")


def test_scratch_twin_of_a_hub_backbone_takes_the_hub_normalisation(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    twin = resolve_weights("vit_tiny_patch16_224.augreg_in21k_ft_in1k", pretrained=False)
    assert twin.provenance == "random" and twin.mean == (0.5, 0.5, 0.5)
