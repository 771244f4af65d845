"""Training throughput of the engine against its ceiling and against a conventional loop.

Per backbone, on one device and resolution, measured side by side in one process:
  (a) engine   the engine's fine-tuning step: uint8 images already on the device, batched
               random-resized-crop + flip + normalisation on the device, then fwd+bwd+step;
  (b) compute  fwd+bwd+step on one fixed synthetic batch already on the device: the ceiling;
  (c) baseline the way Jeevan and Sethi's code trains: a DataLoader (2 workers, pinned memory)
               decoding JPEGs per sample with PIL transforms, fp32 forward.
Writes a CSV with images/s for each and the ratios a/b and a/c.

    python benchmarks/train_throughput.py --panel offline --out results/benchmarks/train_throughput_cpu.csv
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from backbone_bench import train
from backbone_bench.augment import resize
from backbone_bench.backbones import create_model, panel, scratch_twin
from backbone_bench.environment import environment, pick_device


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(step, batch, device, warmup, steps) -> float:
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch * steps / (time.perf_counter() - start)


def model_for(name, device, classes, resolution):
    model = create_model(scratch_twin(name), classes, resolution).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model.train()


def engine_rate(name, images, labels, args, device, classes):
    model = model_for(name, device, classes, args.resolution)
    recipe = train.Recipe(steps=10**9, batch_size=args.batch, eval_every=10**9)
    split = train.Split(images, labels, args.resolution)
    steps = train._steps(model, split, recipe, 1e-4, True, (0.5,) * 3, (0.5,) * 3, device, 0, args.batch)
    return rate(lambda: next(steps), args.batch, device, args.warmup, args.steps)


def compute_rate(name, args, device, classes):
    from timm.optim import create_optimizer_v2

    model = model_for(name, device, classes, args.resolution)
    opt = create_optimizer_v2(model, "adamw", lr=1e-4, weight_decay=0.05)
    x = torch.randn(args.batch, 3, args.resolution, args.resolution, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (args.batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        with train.autocast(device):
            loss = F.cross_entropy(model(x).float(), y, label_smoothing=0.1)
        loss.backward()
        opt.step()

    return rate(step, args.batch, device, args.warmup, args.steps)


class JpegDataset(torch.utils.data.Dataset):
    def __init__(self, blobs, labels, resolution):
        from torchvision import transforms as T

        self.blobs, self.labels = blobs, labels
        self.transform = T.Compose([T.RandomResizedCrop(resolution, scale=(0.35, 1.0)), T.RandomHorizontalFlip(),
                                    T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])

    def __len__(self):
        return len(self.blobs)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.open(io.BytesIO(self.blobs[i])).convert("RGB")), self.labels[i]


def baseline_rate(name, blobs, labels, args, device, classes):
    model = model_for(name, device, classes, args.resolution).to(memory_format=torch.contiguous_format)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    loader = torch.utils.data.DataLoader(JpegDataset(blobs, labels, args.resolution), batch_size=args.batch,
                                         shuffle=True, num_workers=2, pin_memory=device.type == "cuda",
                                         drop_last=True, persistent_workers=True)
    batches = iter(())

    def step():
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)  # fp32, as the baseline code trains
        loss.backward()
        opt.step()

    return rate(step, args.batch, device, args.warmup, args.steps)


def load_jpegs(n):
    """Real JPEGs from the uc_merced mirror (256 px aerial tiles) and their decoded uint8 arrays."""
    import pyarrow.parquet as pq

    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.sources import _mirror_lookup

    table = pq.read_table(_mirror_lookup("uc_merced") / "train.parquet").slice(0, n).to_pylist()
    prepared = prepare("uc_merced", progress=False)
    return ([r["image"]["bytes"] for r in table], list(range(n)),
            np.ascontiguousarray(prepared.images[:n]), prepared.labels[:n].astype(np.int64))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--panel", default="offline,lightweight")
    p.add_argument("--backbones", help="comma-separated; overrides --panel")
    p.add_argument("--device", default="auto")
    p.add_argument("--resolution", type=int, default=0, help="default 224 on GPU, 96 on CPU")
    p.add_argument("--batch", type=int, default=0, help="default 128 on GPU, 32 on CPU")
    p.add_argument("--steps", type=int, default=0, help="timed steps, default 50 on GPU, 8 on CPU")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--images", type=int, default=1024, help="real images held for (a) and (c)")
    p.add_argument("--out", default="results/benchmarks/train_throughput.csv")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    args.resolution = args.resolution or (224 if gpu else 96)
    args.batch = args.batch or (128 if gpu else 32)
    args.steps = args.steps or (50 if gpu else 8)
    names = args.backbones.split(",") if args.backbones else list(dict.fromkeys(
        n for name in args.panel.split(",") for n in panel(name)))
    blobs, idx_labels, arrays, labels = load_jpegs(args.images)
    classes = 21
    images = resize(torch.from_numpy(arrays).permute(0, 3, 1, 2).to(device), min(args.resolution, arrays.shape[1]))
    labels = torch.from_numpy(labels).to(device)
    env = environment(device)
    rows = []
    for name in names:
        row = dict(backbone=name, device=env["device"], resolution=args.resolution, batch=args.batch,
                   steps=args.steps, precision=env["precision"], channels_last=gpu, torch=env["torch"],
                   git_commit=env["git_commit"])
        try:
            row["engine_images_per_s"] = engine_rate(name, images, labels, args, device, classes)
            row["compute_images_per_s"] = compute_rate(name, args, device, classes)
            row["baseline_images_per_s"] = baseline_rate(name, blobs, [l % classes for l in idx_labels], args, device, classes)
            row["a_over_b"] = row["engine_images_per_s"] / row["compute_images_per_s"]
            row["a_over_c"] = row["engine_images_per_s"] / row["baseline_images_per_s"]
            row["status"] = "ok"
        except Exception as err:  # recorded; the next backbone is measured
            row |= dict(status="error", reason=f"{type(err).__name__}: {str(err)[:200]}")
        rows.append(row)
        print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()
               if k in ("backbone", "engine_images_per_s", "compute_images_per_s", "baseline_images_per_s",
                        "a_over_b", "a_over_c", "status")}, flush=True)
        if gpu:
            torch.cuda.empty_cache()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out, index=False)
    ok = table[table["status"] == "ok"]
    if len(ok):
        print(f"median a/b {ok['a_over_b'].median():.2f} (min {ok['a_over_b'].min():.2f}); "
              f"median a/c {ok['a_over_c'].median():.2f}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
