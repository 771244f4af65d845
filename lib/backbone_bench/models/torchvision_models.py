"""Backbones that timm does not have, built from torchvision, with the part of timm's interface the
study uses: ``reset_classifier`` (0: the network returns its pooled features, as timm's does),
``num_features`` and ``num_classes``. Their state dicts are torchvision's, key for key, so a
weights file made for torchvision loads strictly.

SqueezeNet 1.1: the head is ``classifier.1``, a 1x1 convolution from 512 channels to the classes,
between a dropout and a ReLU + global average pool (the architecture as published); a new head
keeps that structure with a fresh convolution initialised as torchvision initialises its final
one. Its frozen features are the pooled output of ``features`` (512 values), the input of that
head. It has no BatchNorm, so nothing is re-estimated, and its Fire modules concatenate channels,
so a fused group of it runs its members one after another (engine/fused.py checks that).
"""
from __future__ import annotations

import torch
import torch.nn as nn

#: torchvision architectures the study can build, by the name weights.json and the panels use.
TORCHVISION = ("squeezenet1_1",)


class SqueezeNet11(nn.Module):
    """torchvision's SqueezeNet 1.1 (``features`` and ``classifier``, state-dict compatible)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        from torchvision.models import squeezenet1_1

        net = squeezenet1_1(weights=None, num_classes=num_classes, dropout=dropout)
        self.features, self.classifier = net.features, net.classifier
        self.num_features, self.num_classes, self.dropout = 512, num_classes, dropout

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        if num_classes == 0:  # pooled features, as timm's models return after reset_classifier(0)
            self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)))
            return
        conv = nn.Conv2d(self.num_features, num_classes, kernel_size=1)
        nn.init.normal_(conv.weight, mean=0.0, std=0.01)  # torchvision's init of the final convolution
        nn.init.zeros_(conv.bias)
        self.classifier = nn.Sequential(nn.Dropout(p=self.dropout), conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))

    def get_classifier(self) -> nn.Module:
        """The head's convolution (timm's name for a model's last layer); the pool when it has none."""
        return self.classifier[1] if len(self.classifier) > 1 else self.classifier[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def create(name: str, pretrained_download: bool = False, **kwargs) -> nn.Module:
    """The torchvision backbone ``name`` with a 1000-class head; ``pretrained_download``: torchvision's
    own ImageNet weights from download.pytorch.org (other weights than a local file's)."""
    if name != "squeezenet1_1":
        raise ValueError(f"{name}: not a torchvision backbone this study builds ({', '.join(TORCHVISION)})")
    model = SqueezeNet11(**kwargs)
    if pretrained_download:
        from torchvision.models import SqueezeNet1_1_Weights

        model.load_state_dict(SqueezeNet1_1_Weights.IMAGENET1K_V1.get_state_dict(progress=False), strict=True)
    return model


def download_normalisation(name: str) -> tuple[tuple, tuple]:
    """The mean and std torchvision's own weights of ``name`` expect (ImageNet's, in 0..1 units)."""
    from torchvision.models import SqueezeNet1_1_Weights

    transforms = SqueezeNet1_1_Weights.IMAGENET1K_V1.transforms()
    return tuple(transforms.mean), tuple(transforms.std)
