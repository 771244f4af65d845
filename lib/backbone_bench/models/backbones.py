"""ImageNet weights for the panels' backbones (panels.py): local folder first, then the Hub.

A backbone whose weights cannot be resolved raises WeightsUnavailableError with the reason;
nothing here ever hands back a randomly initialised network under a pretrained label.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import torch

from backbone_bench import paths
from backbone_bench.errors import WeightsUnavailableError
from backbone_bench.models.panels import check_backbone
from backbone_bench.models.torchvision_models import TORCHVISION


@dataclass(frozen=True)
class Weights:
    """Where a backbone's starting weights come from, and what a result row must say about them."""
    backbone: str
    provenance: str                  # "local", "hub" or "random"
    source: str = ""
    sha256: str = ""
    file: str = ""
    create_kwargs: dict = field(default_factory=dict)
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    bn_folded: bool = False
    int8_derived: bool = False
    reported_top1: float | None = None
    library: str = "timm"            # which library builds the network: "timm" or "torchvision"

    def row(self) -> dict:
        d = asdict(self)
        d.pop("file")
        d["create_kwargs"] = json.dumps(self.create_kwargs, sort_keys=True)
        return {f"weights_{k}": v for k, v in d.items()}


@lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _local(backbone: str) -> Weights | None:
    # Exact names only: a tagged name (mobilenetv2_100.ra_in1k) means other weights than the
    # local file of the bare name, so it goes to the Hub.
    for folder in paths.weights_folders():
        manifest = folder / "weights.json"
        if not manifest.exists():
            continue
        entry = json.loads(manifest.read_text()).get(backbone)
        if entry is None:
            continue
        file = folder / entry["file"]
        stat = file.stat()
        digest = _sha256(str(file), stat.st_size, stat.st_mtime)
        if digest != entry["sha256"]:
            raise WeightsUnavailableError(f"{file}: sha256 {digest[:12]}.. does not match weights.json "
                                          f"({entry['sha256'][:12]}..); the file is damaged or replaced. Restore it.")
        return Weights(backbone, "local", entry.get("source", ""), digest, str(file), entry.get("create_kwargs", {}),
                       tuple(entry["mean"]), tuple(entry["std"]), bool(entry.get("bn_folded")),
                       bool(entry.get("int8_derived")), entry.get("reported_top1"), entry.get("library", "timm"))
    return None


def resolve_weights(backbone: str, pretrained: bool = True) -> Weights:
    """Local folder, then the Hub (timm's own cache included). Raises when neither has them."""
    check_backbone(backbone)
    if not pretrained:
        return scratch_twin(backbone)
    local = _local(backbone)
    if local is not None:
        return local
    if backbone in TORCHVISION:
        return _torchvision_download(backbone)
    import timm

    try:  # timm goes to the Hub, or to its cache when HF_HUB_OFFLINE is set
        model = timm.create_model(backbone, pretrained=True)
    except Exception as err:
        raise _unavailable(backbone, "the Hub did not serve them", err) from None
    cfg = model.pretrained_cfg
    return Weights(backbone, "hub", f"hf-hub:{cfg.get('hf_hub_id') or backbone}", mean=tuple(cfg["mean"]),
                   std=tuple(cfg["std"]))


def _unavailable(backbone: str, why: str, err: Exception) -> WeightsUnavailableError:
    """No local file and no download: the error a user acts on (where it looked, why, what to do)."""
    folders = ", ".join(map(str, paths.weights_folders())) or "(BACKBONE_BENCH_WEIGHTS is not set)"
    return WeightsUnavailableError(
        f"{backbone}: no ImageNet weights. Not in the local weights folders ({folders}) and {why} "
        f"({type(err).__name__}: {str(err)[:160]}). Connect to the internet, or add "
        f"{backbone.partition('.')[0]}.safetensors with a weights.json entry.")


def _torchvision_download(backbone: str) -> Weights:
    """torchvision's own ImageNet weights (download.pytorch.org, checked by torchvision's hash), for a
    torchvision backbone with no local file: other weights than the local file's, and said so."""
    from backbone_bench.models import torchvision_models

    try:
        torchvision_models.create(backbone, pretrained_download=True)
    except Exception as err:
        raise _unavailable(backbone, "torchvision could not download its own", err) from None
    mean, std = torchvision_models.download_normalisation(backbone)
    return Weights(backbone, "hub", f"torchvision:{backbone}.IMAGENET1K_V1", mean=mean, std=std, library="torchvision")


def scratch_twin(backbone: str) -> Weights:
    """Random init of the very network the pretrained run fine-tunes: the same create_kwargs
    (e.g. mobilenetv2_100's ``pad_type="same"``) and the same input normalisation, so the
    pretrained-minus-scratch difference measures the weights and nothing else."""
    local = _local(backbone)
    if local is not None:
        return Weights(backbone, "random", f"random init; twin of {local.source or local.file}",
                       create_kwargs=local.create_kwargs, mean=local.mean, std=local.std, library=local.library)
    if backbone in TORCHVISION:
        from backbone_bench.models import torchvision_models

        mean, std = torchvision_models.download_normalisation(backbone)
        return Weights(backbone, "random", f"random init; twin of torchvision:{backbone}.IMAGENET1K_V1", mean=mean,
                       std=std, library="torchvision")
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(backbone)  # the Hub weights' normalisation, known without downloading
    if cfg is None:
        return Weights(backbone, "random", "random init; timm has no pretrained config for it")
    return Weights(backbone, "random", f"random init; twin of hf-hub:{cfg.hf_hub_id or backbone}",
                   mean=tuple(cfg.mean), std=tuple(cfg.std))


def size_kwargs(backbone: str, resolution: int | None) -> dict:
    """``img_size`` for models built for one input size (ViT, Swin) when the study's differs.

    Convolutional networks take any size; transformers with position embeddings or fixed
    windows must be built for it (timm resamples pretrained position embeddings on load).
    """
    if backbone in TORCHVISION:  # convolutional: any size
        return {}
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(backbone)
    if resolution and cfg is not None and cfg.fixed_input_size and cfg.input_size[-1] != resolution:
        return {"img_size": resolution}
    return {}


def create_model(weights: Weights, num_classes: int | None = None, resolution: int | None = None) -> torch.nn.Module:
    """The network with the resolved weights loaded; with ``num_classes``, a fresh head of that size."""
    kwargs = weights.create_kwargs | size_kwargs(weights.backbone, resolution)
    if weights.library == "torchvision":
        from backbone_bench.models import torchvision_models

        model = torchvision_models.create(weights.backbone, pretrained_download=weights.provenance == "hub", **kwargs)
    else:
        import timm

        model = timm.create_model(weights.backbone, pretrained=weights.provenance == "hub", **kwargs)
    if weights.provenance == "local":
        from safetensors.torch import load_file

        state = {k: v.float() for k, v in load_file(weights.file).items()}
        model.load_state_dict(state, strict=True)
    if num_classes is not None:
        model.reset_classifier(num_classes)
    return model


@torch.no_grad()
def reestimate_folded_batchnorm(model: torch.nn.Module, images: torch.Tensor, batch: int = 64) -> int:
    """Make folded (identity) BatchNorm layers stay identities when trained.

    With BN folded into the convolutions, every BN holds running mean 0 and var 1 (the folded
    conv bias may sit in its bias), so in train mode it would re-normalise by batch statistics
    and wreck the pretrained function. We measure each BN input's per-channel mean and variance
    on training images (in eval mode, where the network is exact), set the running stats to
    them and rescale weight and bias so that the layer computes the same affine map as before:
    then the network starts as the pretrained function in train mode as in eval mode.
    Returns the number of BN layers adjusted.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    sums = {id(m): [0.0, 0.0, 0] for m in bns}

    def hook(module, inputs):
        x = inputs[0].float()
        dims = [d for d in range(x.dim()) if d != 1]
        s = sums[id(module)]
        s[0] = s[0] + x.sum(dims)
        s[1] = s[1] + (x * x).sum(dims)
        s[2] += x.numel() // x.shape[1]

    handles = [m.register_forward_pre_hook(hook) for m in bns]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch):
            model(images[start:start + batch])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for m in bns:
        total, total_sq, n = sums[id(m)]
        mean = total / n
        var = (total_sq / n - mean * mean).clamp_min(0)
        scale = m.weight / (m.running_var + m.eps).sqrt()   # eval-mode map: y = scale * x + shift
        shift = m.bias - m.running_mean * scale
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
        m.weight.copy_(scale * (var + m.eps).sqrt())
        m.bias.copy_(shift + scale * mean)
    return len(bns)
