"""Training throughput of the engine, solo and fused, against its ceiling and a conventional loop.

Per backbone, on one device and resolution, measured side by side in one process:
  (a1)  engine, solo   one training at --batch through the engine (train.train_group): uint8
                       images on the device, crop + flip + normalisation on the device, fwd+bwd+step;
  (aM)  engine, fused  --members trainings (2 lrs x seeds x {pretrained, scratch}, as a group of
                       the offline grid) at --batch each, one stacked model; aggregate images/s;
  (b)   compute        fwd+bwd+step of one model on one synthetic batch of members x batch images
                       already on the device: the ceiling;
  (c)   baseline       the way Jeevan and Sethi's code trains: a DataLoader (2 workers) decoding
                       JPEGs per sample with PIL transforms, fp32, at --batch.
The engine rates are differences of two runs (few and many steps), so model creation, BatchNorm
set-up and the final validation cancel. Writes a CSV (images/s, the ratios aM/b, aM/a1, aM/c,
GFLOPs per image and, on a GPU with a known peak, MFU) and a second CSV projecting the `offline`
grid's training time from a1, aM and c. CPU figures say so in their device column.

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
from tqdm import tqdm

from backbone_bench.engine import train
from backbone_bench.engine.augment import resize
from backbone_bench.models.backbones import create_model, scratch_twin
from backbone_bench.models.panels import panel
from backbone_bench.environment import environment, pick_device
from backbone_bench.engine.fused import FUSION


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


def engine_rate(name, images, labels, args, device, classes, members: int, compile_model=None,
                channels_last=False, bf16=False) -> float:
    """Aggregate images/s of ``members`` trainings fused (1: solo), through the engine itself."""
    compile_model = args.compile if compile_model is None else compile_model
    from backbone_bench.models.backbones import scratch_twin

    weights = scratch_twin(name)
    split = train.Split(images, labels, args.resolution)
    val = train.Split(images[:8], labels[:8], args.resolution)
    grid = [(lr, seed) for seed in range(3) for lr in (1e-3, 3e-4)] * 2  # x {pretrained, scratch}
    group = [train.Member(i, lr, seed, lambda: create_model(weights, classes, args.resolution), split,
                          weights.mean, weights.std, True) for i, (lr, seed) in enumerate(grid[:members])]

    def seconds(steps):
        recipe = train.Recipe(steps=steps, batch_size=args.batch, eval_every=10**9, patience=10**9, eval_batch=64)
        sync(device)
        start = time.perf_counter()
        train.train_group(group, val, recipe, classes, device, args.batch, compile_model=compile_model,
                          channels_last=channels_last, bf16=bf16)
        sync(device)
        return time.perf_counter() - start

    seconds(2)  # warm-up: allocator, kernels, weights in the page cache
    few, many = seconds(args.warmup), seconds(args.warmup + args.steps)
    return members * args.batch * args.steps / (many - few)


def setting(name, args, env, compiled: bool) -> dict:
    """The context every row of both CSVs carries: what was measured, where, with which code."""
    return dict(backbone=name, device=env["device"], resolution=args.resolution, batch=args.batch,
                members=args.members, steps=args.steps, precision=env["precision"], compiled=compiled,
                torch=env["torch"], git_commit=env["git_commit"], fusion=FUSION)


VARIANTS = {"plain": (False, False), "channels_last": (False, True), "compile": (True, False),
            "compile+channels_last": (True, True)}


def variants(names, images, labels, args, device, classes, env) -> int:
    """Fused images/s per backbone under each speed option of the engine, side by side."""
    out = Path(args.out)
    out = out.with_name(out.stem + "_variants.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in tqdm(names, desc="engine variants", unit="backbone"):
        for variant, (compile_model, channels_last) in VARIANTS.items():
            row = setting(name, args, env, compile_model) | dict(variant=variant, channels_last=channels_last)
            try:
                row["fused_images_per_s"] = engine_rate(name, images, labels, args, device, classes, args.members,
                                                        compile_model, channels_last)
                row["status"] = "ok"
            except Exception as err:  # recorded; the next variant is measured
                row |= dict(status="error", reason=f"{type(err).__name__}: {str(err)[:200]}")
            rows.append(row)
            table = pd.DataFrame(rows)
            plain = table[(table["variant"] == "plain") & (table["status"] == "ok")].set_index("backbone")["fused_images_per_s"]
            table["over_plain"] = table["fused_images_per_s"] / table["backbone"].map(plain)
            table.to_csv(out, index=False)  # each variant as it lands
            if device.type == "cuda":
                torch.cuda.empty_cache()
        tqdm.write(table[table["backbone"] == name][["variant", "fused_images_per_s", "over_plain", "status"]].to_string(index=False))
    print(f"wrote {out}")
    return 0


def compute_rate(name, args, device, classes, batch, channels_last=None, bf16=False):
    """fwd+bwd+step of one model on a synthetic batch already on the device (channels-last by
    default on a GPU; on a CPU as asked)."""
    from timm.optim import create_optimizer_v2

    channels_last = device.type == "cuda" if channels_last is None else channels_last
    model = model_for(name, device, classes, args.resolution)
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    opt = create_optimizer_v2(model, "adamw", lr=1e-4, weight_decay=0.05)
    x = torch.randn(batch, 3, args.resolution, args.resolution, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        with train.autocast(device, bf16):
            loss = F.cross_entropy(model(x).float(), y, label_smoothing=0.1)
        loss.backward()
        opt.step()

    return rate(step, batch, device, args.warmup, args.steps)


PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 tensor-core FLOP/s


def gflops_per_image(name, resolution, classes) -> float:
    """Forward FLOPs of one image (torch's FlopCounterMode counts a multiply-add as 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(scratch_twin(name), classes, resolution).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    return counter.get_total_flops() / 1e9


def projection(rows, device_name, resolution) -> pd.DataFrame:
    """Training images of the `offline` grid's gradient runs (every lr at its full step budget:
    early stopping only shortens it) per backbone, and the hours they take at each rate."""
    from backbone_bench.study.presets import get_preset
    from backbone_bench.study.plan import _grid

    p = get_preset("offline")
    images: dict = {}
    for c in _grid(p, p.datasets, p.backbones, p.shots, ("finetune", "scratch"), p.seeds, p.resolution, None, []):
        r = c["recipe"]
        images[c["backbone"]] = images.get(c["backbone"], 0) + r["steps"] * r["batch_size"] * len(r["lrs"])
    out = []
    for row in rows:
        if row.get("status") != "ok" or row["backbone"] not in images:
            continue
        n = images[row["backbone"]]
        out.append(dict(backbone=row["backbone"], device=device_name, rates_at_px=resolution, train_images=n,
                        hours_baseline=n / row["baseline_images_per_s"] / 3600 if row.get("baseline_images_per_s") else None,
                        hours_solo=n / row["solo_images_per_s"] / 3600,
                        hours_fused=n / row["fused_images_per_s"] / 3600))
    table = pd.DataFrame(out)
    if len(table):
        total = dict(backbone="all", device=device_name, rates_at_px=resolution, train_images=table["train_images"].sum(),
                     **{k: table[k].sum(min_count=1) for k in ("hours_baseline", "hours_solo", "hours_fused")})
        table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    return table


def write_projection(rows: list, out: Path) -> None:
    """The projection CSV beside ``out``. It reads the offline grid's plan, hence the data: on a
    machine without it, run ``--project CSV`` later where the data is."""
    from backbone_bench.errors import DataMissingError

    rows = [r for r in rows if r.get("status") == "ok"]
    if not rows:
        return
    try:
        proj = projection(rows, rows[0]["device"], rows[0]["resolution"])
    except DataMissingError:
        print(f"no projection here (the offline grid's data is not on this machine): "
              f"python benchmarks/train_throughput.py --project {out}")
        return
    proj_out = out.with_name(out.stem + "_projection.csv")
    proj.to_csv(proj_out, index=False)
    last = proj.iloc[-1]
    print(f"offline grid, gradient runs: {last['hours_baseline']:.1f} h baseline, {last['hours_solo']:.1f} h solo, "
          f"{last['hours_fused']:.1f} h fused on {last['device']} (rates measured at {last['rates_at_px']} px; the "
          f"grid is 224 px); wrote {proj_out}")


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
    """Real JPEGs of uc_merced (256 px aerial tiles) and their decoded uint8 arrays: from the mirror,
    or from a bundle of it (`backbone-bench bundle`) on a machine that has no mirror."""
    import pyarrow.parquet as pq

    from backbone_bench.data.bundled import find_bundle
    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.sources import _mirror_lookup

    prepared = prepare("uc_merced", progress=False)
    bundle = find_bundle("uc_merced")
    if bundle is not None:  # the bundle's rows: their prepared index and the source's own bytes
        table = pq.read_table(bundle / "images.parquet", columns=["index", "payload"]).slice(0, n).to_pydict()
        index, blobs = np.asarray(table["index"]), table["payload"]
    else:
        table = pq.read_table(_mirror_lookup("uc_merced") / "train.parquet").slice(0, n).to_pylist()
        index, blobs = np.arange(len(table)), [r["image"]["bytes"] for r in table]
    return (blobs, list(range(len(blobs))), np.ascontiguousarray(prepared.images[index]),
            prepared.labels[index].astype(np.int64))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--panel", default="offline")
    p.add_argument("--backbones", help="comma-separated; overrides --panel")
    p.add_argument("--device", default="auto")
    p.add_argument("--resolution", type=int, default=0, help="default 224 on GPU, 64 on CPU")
    p.add_argument("--batch", type=int, default=0, help="images per training step, default 64 on GPU, 16 on CPU")
    p.add_argument("--members", type=int, default=0, help="trainings fused, default 12 on GPU, 4 on CPU")
    p.add_argument("--steps", type=int, default=0, help="timed steps, default 30 on GPU, 4 on CPU")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--images", type=int, default=1024, help="real images held for the engine and the baseline")
    p.add_argument("--compile", action="store_true", help="the engine with torch.compile (the stacked forward)")
    p.add_argument("--skip-baseline", action="store_true", help="leave out (c) (it needs 2 spare cores)")
    p.add_argument("--variants", action="store_true",
                   help="GPU: only the fused engine, per backbone with and without channels-last stacks and "
                        "torch.compile, into OUT_variants.csv; CPU: the CPU path (cpu_path.py): the solo engine per "
                        "layout and precision, its ceiling and feature extraction, into OUT_variants.csv")
    p.add_argument("--bf16", action="store_true", help="CPU --variants: measure bf16 autocast too (informs only: "
                   "every CPU preset computes in fp32)")
    p.add_argument("--rounds", type=int, default=3, help="CPU --variants: alternating rounds, the median kept")
    p.add_argument("--out", default="results/benchmarks/train_throughput.csv")
    p.add_argument("--project", metavar="CSV", help="only write the projection of a CSV this script wrote")
    args = p.parse_args(argv)
    if args.project:
        write_projection(pd.read_csv(args.project).to_dict("records"), Path(args.project))
        return 0
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    args.resolution = args.resolution or (224 if gpu else 64)
    args.batch = args.batch or (64 if gpu else 16)
    args.members = args.members or (12 if gpu else 4)
    args.steps = args.steps or (30 if gpu else 4)
    names = args.backbones.split(",") if args.backbones else list(dict.fromkeys(
        n for name in args.panel.split(",") for n in panel(name)))
    blobs, idx_labels, arrays, labels = load_jpegs(args.images)
    classes = 21
    images = resize(torch.from_numpy(arrays).permute(0, 3, 1, 2).to(device), min(args.resolution, arrays.shape[1]))
    labels = torch.from_numpy(labels).to(device)
    env = environment(device)
    if args.variants and not gpu:  # the CPU path: layout x precision per backbone, solo (cpu_path.py)
        from cpu_path import cpu_variants

        return cpu_variants(names, images, labels, args, device, classes, env)
    if args.variants:
        return variants(names, images, labels, args, device, classes, env)
    peak = next((v for k, v in PEAK_BF16.items() if k in env["device"]), None) if gpu else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in tqdm(names, desc="train throughput", unit="backbone"):
        row = setting(name, args, env, args.compile)
        try:
            row["solo_images_per_s"] = engine_rate(name, images, labels, args, device, classes, 1)
            row["fused_images_per_s"] = engine_rate(name, images, labels, args, device, classes, args.members)
            row["compute_images_per_s"] = compute_rate(name, args, device, classes, args.members * args.batch)
            if not args.skip_baseline:
                row["baseline_images_per_s"] = baseline_rate(name, blobs, [l % classes for l in idx_labels], args,
                                                             device, classes)
                row["fused_over_baseline"] = row["fused_images_per_s"] / row["baseline_images_per_s"]
            row["fused_over_compute"] = row["fused_images_per_s"] / row["compute_images_per_s"]
            row["fused_over_solo"] = row["fused_images_per_s"] / row["solo_images_per_s"]
            row["gflops_per_image"] = gflops_per_image(name, args.resolution, classes)
            # fwd + bwd ~ 3x the forward's FLOPs
            row["fused_tflops"] = 3 * row["gflops_per_image"] * row["fused_images_per_s"] / 1e3
            row["fused_mfu"] = row["fused_tflops"] * 1e12 / peak if peak else None
            row["status"] = "ok"
        except Exception as err:  # recorded; the next backbone is measured
            row |= dict(status="error", reason=f"{type(err).__name__}: {str(err)[:200]}")
        rows.append(row)
        tqdm.write(str({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()
                        if k.endswith(("_per_s", "_over_compute", "_over_solo", "_over_baseline")) or k == "backbone"}))
        pd.DataFrame(rows).to_csv(out, index=False)  # each backbone as it lands: a cut-off run keeps them
        if gpu:
            torch.cuda.empty_cache()
    table = pd.DataFrame(rows)
    ok = table[table["status"] == "ok"]
    if len(ok):
        print(f"fused/compute min {ok['fused_over_compute'].min():.2f}; fused/solo min {ok['fused_over_solo'].min():.2f}"
              + (f"; fused/baseline min {ok['fused_over_baseline'].min():.2f}" if "fused_over_baseline" in ok else "")
              + f"; wrote {out}")
    write_projection(rows, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
