"""Two forms of the fused engine side by side: this checkout's fused.Stack against another's.

Per backbone, one training step of a stack of --members networks (forward, backward, each
member's own AdamW step) at --batch images per member, on random images already on the device,
under the engine's autocast: images/s of each form, measured in alternating rounds in one
process, and their ratio. The other form is a fused.py from a git revision (default: the last
vmap engine) or a file. The step is the engine's inner loop only (no augmentation, no
validation), so the ratio is what the form of fusion changes.

    python benchmarks/fusion_forms.py --out results/benchmarks/fusion_forms_cpu.csv
    python benchmarks/fusion_forms.py --device cuda --against old_fused.py --out results/benchmarks/fusion_forms_gpu.csv
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from backbone_bench.engine import fused, train
from backbone_bench.models.backbones import create_model, scratch_twin
from backbone_bench.models.panels import panel
from backbone_bench.environment import environment, pick_device
from train_throughput import rate  # the same timed loop (benchmarks/ is this script's folder)

VMAP_ENGINE = "8e3ef24"  # the last commit whose fused.py stacked weights per forward under vmap


def load_form(against: str):
    """The Stack class of a fused.py file, or of a git revision's."""
    path = Path(against)
    if not path.is_file():
        source = subprocess.run(["git", "show", f"{against}:lib/backbone_bench/engine/fused.py"], capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parents[1])
        if source.returncode:
            sys.exit(f"--against {against}: neither a file nor a git revision with lib/backbone_bench/engine/fused.py "
                     f"({source.stderr.strip()})")
        path = Path(tempfile.mkdtemp()) / "other_fused.py"
        path.write_text(source.stdout)
    spec = importlib.util.spec_from_file_location("other_fused", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Stack


def stepper(stack_class, name, args, device, classes):
    from timm.optim import create_optimizer_v2

    torch.manual_seed(0)
    models = [create_model(scratch_twin(name), classes, args.resolution).to(device) for _ in range(args.members)]
    optimizers = [create_optimizer_v2(m, "adamw", lr=1e-4, weight_decay=0.05) for m in models]
    stack = stack_class(models, False, args.channels_last)
    x = torch.randn(args.members, args.batch, 3, args.resolution, args.resolution, device=device)
    y = torch.randint(0, classes, (args.members, args.batch), device=device)

    def step():
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        getattr(stack, "zero_grad", lambda: None)()
        with train.autocast(device):
            logits = stack.train_forward(x)
        F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), label_smoothing=0.1).backward()
        getattr(stack, "hand_gradients", lambda: None)()  # the vmap form's members own their gradients
        for o in optimizers:
            o.step()
    return step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--panel", default="offline")
    p.add_argument("--backbones", help="comma-separated; overrides --panel")
    p.add_argument("--device", default="auto")
    p.add_argument("--against", default=VMAP_ENGINE, help="a fused.py file or a git revision (default: the vmap engine)")
    p.add_argument("--resolution", type=int, help="default 224 on GPU, 64 on CPU")
    p.add_argument("--batch", type=int, help="images per member and step, default 64 on GPU, 8 on CPU")
    p.add_argument("--members", type=int, default=12)
    p.add_argument("--steps", type=int, help="timed steps per round, default 20 on GPU, 3 on CPU")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    p.add_argument("--channels-last", action="store_true", help="both forms with channels-last stacks")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    other = load_form(args.against)  # before any compute: a wrong revision answers at once
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    args.resolution = args.resolution or (224 if gpu else 64)
    args.batch = args.batch or (64 if gpu else 8)
    args.steps = args.steps or (20 if gpu else 3)
    names = args.backbones.split(",") if args.backbones else list(panel(args.panel))
    env = environment(device)
    forms = {"this": fused.Stack, "other": other}
    rows = []
    for name in tqdm(names, desc="fusion forms", unit="backbone"):
        row = dict(backbone=name, device=env["device"], resolution=args.resolution, batch=args.batch,
                   members=args.members, steps=args.steps, rounds=args.rounds, precision=env["precision"],
                   channels_last=args.channels_last, torch=env["torch"], git_commit=env["git_commit"],
                   this_form=fused.FUSION, other_form=args.against)
        try:
            steps = {k: stepper(form, name, args, device, 10) for k, form in forms.items()}
            rates = {k: [] for k in forms}
            for _ in range(args.rounds):  # alternating, so a load change hits both forms alike
                for k, step in steps.items():
                    rates[k].append(rate(step, args.members * args.batch, device, 1, args.steps))
            for k in forms:
                row[f"{k}_images_per_s"] = statistics.median(rates[k])
            row["this_over_other"] = row["this_images_per_s"] / row["other_images_per_s"]
            row["status"] = "ok"
        except Exception as err:  # recorded; the next backbone is measured
            row |= dict(status="error", reason=f"{type(err).__name__}: {str(err)[:200]}")
        rows.append(row)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.out, index=False)
        if gpu:
            torch.cuda.empty_cache()
    table = pd.DataFrame(rows)
    shown = [c for c in ("backbone", "this_images_per_s", "other_images_per_s", "this_over_other", "status") if c in table]
    print(table[shown].to_string(index=False))
    print(f"wrote {args.out} ({'GPU' if gpu else 'CPU'} figures: {env['device']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
