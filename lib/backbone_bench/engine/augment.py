"""Batched augmentation and normalisation on the training device: no per-sample Python.

Images arrive as uint8 (B, C, S, S) tensors already on the device. Training batches get a
random resized crop (one affine warp for the whole batch) and, where the dataset allows it,
a horizontal flip; evaluation images are only resized. Grayscale is repeated to 3 channels.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def resize(images: torch.Tensor, size: int, chunk: int = 512) -> torch.Tensor:
    """uint8 (N, C, S, S) -> uint8 (N, C, size, size), antialiased; chunked to bound memory."""
    if images.shape[-1] == size:
        return images
    out = []
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 or float in [0, 255] (B, C, H, W) -> float normalised, 3 channels."""
    x = x.to(torch.get_default_dtype()).div_(255)  # float32 unless a test asks for float64
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.as_tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.as_tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def random_resized_crop(images: torch.Tensor, size: int, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3),
                        flip: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random crop of area fraction ``scale`` and aspect ``ratio`` per image, resized to ``size``."""
    b, device = images.shape[0], images.device

    def uniform(lo, hi):
        return torch.rand(b, device=device, generator=generator) * (hi - lo) + lo

    area = uniform(*scale)
    log_ratio = uniform(math.log(ratio[0]), math.log(ratio[1]))
    w = (area * log_ratio.exp()).sqrt().clamp(max=1.0)     # crop width, fraction of the image side
    h = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    cx = uniform(-1, 1) * (1 - w)                           # crop centre, in [-1, 1] image coordinates
    cy = uniform(-1, 1) * (1 - h)
    sign = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0) if flip else torch.ones(b, device=device)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, (b, images.shape[1], size, size), align_corners=False)
    return F.grid_sample(images.to(grid.dtype), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
