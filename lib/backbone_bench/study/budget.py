"""What a plan will cost, from the committed speed measurements, before anything runs.

A gradient run trains every learning rate of its grid for at most its step budget (early stopping
only shortens it) and validates ``steps / eval_every`` times; a probe passes each of its images
through the frozen backbone once (fewer when the feature cache already holds them). Training
runs at the measured CPU path's rate (results/benchmarks/train_throughput_cpu_path.csv, column b,
on the CPU it was measured on) scaled by pixels from the measured resolution, evaluation at the
measured extraction rate. Unmeasured backbones or devices give no projection rather than a guess.
"""
from __future__ import annotations

from backbone_bench.engine.speed import BENCHMARKS, processor

PATH_CSV = BENCHMARKS / "train_throughput_cpu_path.csv"


def measured_rates(device: str) -> dict:
    """{backbone: (train images/s, eval images/s, resolution)} measured on ``device``."""
    if not PATH_CSV.exists():
        return {}
    import pandas as pd

    table = pd.read_csv(PATH_CSV)
    table = table[(table["device"].map(processor) == processor(device)) & table["b_images_per_s"].notna()]
    out = {}
    for r in table.itertuples():
        extract = r.extract_bf16_images_per_s if r.chosen.startswith("bf16") else r.extract_fp32_images_per_s
        out[r.backbone] = (float(r.b_images_per_s), float(extract), int(r.resolution))
    return out


def run_seconds(config: dict, rates: dict, n_eval: int = 2500) -> float | None:
    """Projected seconds of one run; ``n_eval``: validation + test images it evaluates (an upper bound)."""
    if config["backbone"] not in rates:
        return None
    train_rate, eval_rate, measured_at = rates[config["backbone"]]
    scale = (config["resolution"] / measured_at) ** 2  # cost grows with pixels at these sizes
    r = config["recipe"]
    if config["mode"] == "linear_probe":
        return scale * n_eval / eval_rate
    lrs = len(r["lrs"])
    val = min(r.get("eval_limit") or 500, 500)
    passes = r["steps"] // r["eval_every"]
    return scale * lrs * (r["steps"] * r["batch_size"] / train_rate + passes * val / eval_rate) + scale * n_eval / eval_rate


def projected_hours(configs: list, device: str) -> tuple[float | None, int]:
    """(hours of ``configs`` on ``device``, how many configs had no measurement)."""
    rates = measured_rates(device)
    seconds = [run_seconds(c, rates) for c in configs]
    known = [s for s in seconds if s is not None]
    if not known:
        return None, len(configs)
    return sum(known) / 3600, len(seconds) - len(known)
