"""Cost profiling: parameters, GMACs, training and inference throughput, latency, peak memory.

Timings warm up first, synchronise the device around every timed region, repeat, and keep the
spread. Weights are random: cost does not depend on their values, so every backbone of a panel
is measured, with or without pretrained weights. Rows append to results/cost.csv, one per
(backbone, device, precision, memory format, compile flag, batch, resolution); a re-measurement
of the same setup replaces its row.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from backbone_bench import paths
from backbone_bench.models.backbones import create_model, scratch_twin
from backbone_bench.environment import device_name, environment

SETUP = ["backbone", "device", "precision", "channels_last", "compile", "train_batch", "infer_batch", "resolution"]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, repeats: int, inner: int) -> np.ndarray:
    """Seconds per call of ``fn`` over ``repeats`` blocks of ``inner`` calls each."""
    out = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(device)
        out.append((time.perf_counter() - start) / inner)
    return np.asarray(out)


def gmacs(model, resolution: int) -> float:
    """Multiply-accumulates of one forward pass at batch 1 (torch's FLOP counter, FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    x = torch.randn(1, 3, resolution, resolution, device=next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2 / 1e9


def setup(backbone: str, device: torch.device, resolution: int = 224, train_batch: int = 64, infer_batch: int = 256,
          channels_last: bool | None = None, compile: bool = False, **_) -> dict:
    """The SETUP columns of a row: what was measured, and how (failed rows carry them too)."""
    cuda = device.type == "cuda"
    return dict(backbone=backbone, device=device_name(device), precision="bf16-autocast" if cuda else "fp32",
                channels_last=cuda if channels_last is None else channels_last, compile=compile,
                train_batch=train_batch, infer_batch=infer_batch, resolution=resolution)


def profile(backbone: str, device: torch.device, resolution: int = 224, train_batch: int = 64,
            infer_batch: int = 256, repeats: int = 5, warmup: int = 3, channels_last: bool | None = None,
            compile: bool = False, num_classes: int = 10) -> dict:
    cuda = device.type == "cuda"
    row = setup(backbone, device, resolution, train_batch, infer_batch, channels_last, compile)
    channels_last = row["channels_last"]
    model = create_model(scratch_twin(backbone), num_classes, resolution).to(device)  # cost: the network, any weights
    row |= dict(params_m=sum(p.numel() for p in model.parameters()) / 1e6, gmacs=gmacs(model, resolution))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    run = torch.compile(model) if compile else model
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    x = torch.randn(train_batch, 3, resolution, resolution, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, num_classes, (train_batch,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step():
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = torch.nn.functional.cross_entropy(run(x).float(), y)
        loss.backward()
        opt.step()

    model.train()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    _timed(train_step, device, 1, warmup)
    t = _timed(train_step, device, repeats, 3)
    row |= _stats("train_images_per_s", train_batch / t)
    row["train_peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else float("nan")
    opt = x = None  # free them before the inference pass (the closure above reads them)
    model.eval()

    xi = torch.randn(infer_batch, 3, resolution, resolution, device=device).contiguous(memory_format=fmt)
    x1 = xi[:1].clone()

    @torch.no_grad()
    def infer(batch):
        with amp:
            run(batch)

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    _timed(lambda: infer(xi), device, 1, warmup)
    t = _timed(lambda: infer(xi), device, repeats, 2)
    row |= _stats("infer_images_per_s", infer_batch / t)
    row["infer_peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else float("nan")
    _timed(lambda: infer(x1), device, 1, warmup)
    lat = _timed(lambda: infer(x1), device, max(10, repeats * 4), 1) * 1000
    row |= dict(latency_ms_median=float(np.median(lat)), latency_ms_p90=float(np.percentile(lat, 90)),
                latency_ms_sd=float(lat.std(ddof=1)), repeats=repeats)
    return row


def _stats(name: str, values: np.ndarray) -> dict:
    return {name: float(np.median(values)), f"{name}_sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            f"{name}_p10": float(np.percentile(values, 10))}


def measure(backbones, device: torch.device, results: Path | None = None, progress: bool = True, **kw) -> pd.DataFrame:
    """Profile each backbone, failures included as rows with a reason; append to results/cost.csv."""
    from tqdm import tqdm

    import timm

    env = environment(device)
    rows = []
    for name in tqdm(backbones, desc="cost", unit="model", disable=not progress):
        try:
            row = profile(name, device, **kw) | dict(status="ok", reason="")
        except torch.OutOfMemoryError as err:
            row = setup(name, device, **kw) | dict(status="oom", reason=str(err)[:200])
        except Exception as err:  # recorded; the next model is measured
            row = setup(name, device, **kw) | dict(status="error", reason=f"{type(err).__name__}: {str(err)[:200]}")
        row |= dict(torch=env["torch"], timm=timm.__version__, git_commit=env["git_commit"],
                    measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    new = pd.DataFrame(rows)
    path = (results or paths.results_dir()) / "cost.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.concat([pd.read_csv(path, float_precision="round_trip"), new], ignore_index=True) if path.exists() else new
    table = table.drop_duplicates(subset=[c for c in SETUP if c in table], keep="last")
    tmp = path.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(path)
    return new
