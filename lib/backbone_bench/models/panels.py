"""The backbone panels (timm names, and torchvision's where timm lacks one) and the check that a name
is one timm (or the study's torchvision adapter) knows.

Kept apart from backbones.py, which imports torch: a typo in a command line is answered before
anything heavy is imported.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache

from backbone_bench.errors import unknown_name

PANELS: dict[str, tuple[str, ...]] = {
    # The eight models with ImageNet weights in ../shared/weights (see its README for the flags): six
    # 2018-2020 mobile designs, then MobileNetV1 (2017) and SqueezeNet 1.1 (2016, torchvision's).
    "offline": ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2",
                "mobilenetv2_100", "tf_mobilenetv3_small_100", "regnetx_002", "mobilenetv1_100", "squeezenet1_1"),
    # Under ~30 M parameters, across families; each with its exact pretrained tag.
    "lightweight": (
        "resnet18.tv_in1k", "resnet50.tv_in1k", "mobilenetv2_100.ra_in1k", "mobilenetv3_large_100.ra_in1k",
        "mobilenetv3_small_100.lamb_in1k", "efficientnet_b0.ra_in1k", "tf_efficientnet_lite0.in1k",
        "regnetx_002.pycls_in1k", "regnetx_004.pycls_in1k", "regnety_008.pycls_in1k", "regnety_032.ra_in1k",
        "convnext_atto.d2_in1k", "convnext_nano.d1h_in1k", "convnext_tiny.fb_in1k", "ghostnet_100.in1k",
        "mnasnet_100.rmsp_in1k", "densenet121.tv_in1k", "mobilevit_s.cvnets_in1k",
        "efficientformer_l1.snap_dist_in1k", "edgenext_small.usi_in1k", "repvit_m1_1.dist_450e_in1k",
        "fastvit_t8.apple_in1k", "deit_tiny_patch16_224.fb_in1k", "vit_tiny_patch16_224.augreg_in21k_ft_in1k",
        "swin_tiny_patch4_window7_224.ms_in1k"),
    # timm equivalents of the torchvision backbones of Jeevan and Sethi (TMLR 2025). Not in timm:
    # ShuffleNetV2 x2.0 and WaveMix, so the seed panel has nine of their eleven.
    "seed": ("resnet50.tv_in1k", "convnext_tiny.fb_in1k", "swin_tiny_patch4_window7_224.ms_in1k",
             "swinv2_tiny_window8_256.ms_in1k", "tf_efficientnetv2_s.in1k", "densenet161.tv_in1k",
             "mobilenetv3_large_100.ra_in1k", "regnety_032.tv2_in1k", "resnext50_32x4d.tv_in1k"),
}
NOT_IN_TIMM = {"shufflenet_v2_x2_0": "torchvision only", "wavemix": "not in timm or torchvision"}


def panel(name: str) -> tuple[str, ...]:
    try:
        return PANELS[name]
    except KeyError:
        raise unknown_name("panel", name, PANELS) from None


@lru_cache(maxsize=None)
def check_backbone(name: str) -> str:
    """``name`` if timm knows the architecture (and the tag, when one is given); else a clear error.
    A panel's names are known without asking timm (test_backbones checks them against timm)."""
    if any(name in names for names in PANELS.values()):
        return name
    models, pretrained = timm_names()
    arch, _, tag = name.partition(".")
    if arch not in models:
        raise unknown_name("backbone", arch, set(models) | {m for p in PANELS.values() for m in p})
    tags = [n for n in pretrained if n.startswith(arch + ".")]
    if tag and name not in tags:
        raise unknown_name("pretrained tag", name, tags)
    return name


@lru_cache(maxsize=1)
def timm_names() -> tuple[list, list]:
    """timm's architectures and pretrained tags, kept per timm version in the cache folder:
    importing timm takes seconds, and a typo should be answered in less than one."""
    from importlib.metadata import version

    from backbone_bench import paths

    file = paths.cache_dir() / f"timm-{version('timm')}-names.json"
    try:
        return tuple(json.loads(file.read_text()))
    except (OSError, ValueError):
        import timm

        names = (timm.list_models(), timm.list_pretrained())
        tmp = file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(names))
        os.replace(tmp, file)  # atomic: concurrent workers never read half a file
        return names
