"""The first minute of a GPU call: prove the engine's path end to end at the real shape, per backbone.

For each backbone of the chunk, on random uint8 images at the study's resolution (a check, not a
result): solo and fused training steps through the engine in both layouts (images/s, peak
memory), whether the fused network computes each member (fused.py's check), an evaluation's
output (probabilities of every member, rows summing to one), and a short train_group in which
one member diverges on purpose while the other trains on. A backbone that passes every check is
"cleared" to train fused; the others train solo. Writes:
  OUT/smoke.csv                 one row per backbone and layout, with every check
  OUT/cleared.txt               the cleared backbones, one per line (call.sh reads it)
  results/benchmarks/train_throughput_gpu_variants.csv   the fused rates per layout in the form
                                speed.py reads, so the sweep of the same call picks the faster layout
Stops measuring when --budget seconds have passed (the backbones left are not cleared).

    python3 benchmarks/device/smoke.py --backbones regnetx_002,tf_mobilenetv3_small_100 --out $OUT
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: train_throughput's helpers

from backbone_bench.engine import fused, speed
from backbone_bench.engine import train  # noqa: E402
from backbone_bench.models.backbones import create_model, scratch_twin  # noqa: E402
from backbone_bench.environment import environment, pick_device  # noqa: E402
from train_throughput import engine_rate  # noqa: E402

CLASSES = 10


def checks(name: str, device, args) -> dict:
    """Isolation, evaluation output and a deliberately diverging member, for one backbone."""
    weights = scratch_twin(name)
    torch.manual_seed(0)
    models = [create_model(weights, CLASSES, args.resolution).to(device) for _ in range(2)]
    stack = fused.Stack(models)
    isolation = stack.fused is not None and fused._computes_the_members(stack.fused, models)
    images = torch.randint(0, 256, (16, 3, args.resolution, args.resolution), dtype=torch.uint8, device=device)
    labels = torch.arange(16, device=device) % CLASSES
    split = train.Split(images, labels, args.resolution)
    probs = train.predict_group(models, split, [(weights.mean, weights.std)] * 2, 8, device)
    evaluation = len(probs) == 2 and all(p.shape == (16, CLASSES) and abs(p.sum(1) - 1).max() < 1e-3 for p in probs)
    def poisoned():  # a member whose loss is NaN from its first step
        model = create_model(weights, CLASSES, args.resolution)
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        return model

    members = [train.Member(0, 1e-3, 0, lambda: create_model(weights, CLASSES, args.resolution), split, weights.mean,
                            weights.std, True),
               train.Member(1, 1e-3, 0, poisoned, split, weights.mean, weights.std, True)]
    recipe = train.Recipe(steps=4, batch_size=8, eval_every=2, patience=10, eval_batch=16, lrs=(1e-3,))
    trained = train.train_group(members, split, recipe, CLASSES, device, 8)
    diverging = trained[0].failure is None and trained[0].model is not None and (
        trained[1].failure is not None and trained[1].failure[0] == "diverged")
    return dict(isolation_ok=bool(isolation), evaluation_ok=bool(evaluation), divergence_isolated=bool(diverging))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--batch", type=int, default=64, help="images per member per step")
    p.add_argument("--members", type=int, default=12)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--budget", type=float, default=90, help="seconds; backbones not reached are not cleared")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    start = time.perf_counter()
    device = pick_device(args.device)
    env = environment(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bench = SimpleNamespace(resolution=args.resolution, batch=args.batch, warmup=1, steps=args.steps, compile=False)
    images = torch.randint(0, 256, (256, 3, args.resolution, args.resolution), dtype=torch.uint8, device=device)
    labels = torch.arange(256, device=device) % CLASSES
    rows, cleared = [], []
    for name in args.backbones.split(","):
        if time.perf_counter() - start > args.budget:
            rows.append(dict(backbone=name, device=env["device"], status="skipped", reason="smoke budget spent"))
            continue
        try:
            found = checks(name, device, args)
            solo = engine_rate(name, images, labels, bench, device, CLASSES, 1)
            for channels_last in (False, True):
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                rate = engine_rate(name, images, labels, bench, device, CLASSES, args.members, False, channels_last)
                peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
                rows.append(dict(backbone=name, device=env["device"], torch=env["torch"], git_commit=env["git_commit"],
                                 fusion=fused.FUSION, variant="channels_last" if channels_last else "plain",
                                 compiled=False, channels_last=channels_last, members=args.members, batch=args.batch,
                                 resolution=args.resolution, solo_images_per_s=solo, fused_images_per_s=rate,
                                 fused_over_solo=rate / solo, peak_mib=peak, status="ok", **found))
            if all(found.values()):
                cleared.append(name)
        except Exception as err:  # recorded: this backbone trains solo
            rows.append(dict(backbone=name, device=env["device"], status="error",
                             reason=f"{type(err).__name__}: {str(err)[:300]}"))
        pd.DataFrame(rows).to_csv(out / "smoke.csv", index=False)  # as it goes: a cut-off call keeps them
        if device.type == "cuda":
            torch.cuda.empty_cache()
    (out / "cleared.txt").write_text("".join(f"{n}\n" for n in cleared))
    table = pd.DataFrame(rows)
    ok = table[table["status"] == "ok"] if "status" in table else table
    if len(ok) and device.type == "cuda":  # the layouts' rates, where the engine reads them for this call's sweep
        speed.VARIANTS_CSV.parent.mkdir(parents=True, exist_ok=True)
        ok.to_csv(speed.VARIANTS_CSV, index=False)
    print(f"smoke: {len(cleared)} of {len(args.backbones.split(','))} backbones cleared to fuse "
          f"({', '.join(cleared) or 'none'}) in {time.perf_counter() - start:.0f} s; wrote {out / 'smoke.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
