"""What a plan will cost, from the committed speed measurements, before anything runs.

A gradient run trains every learning rate of its grid for at most its step budget (early stopping
only shortens it) and validates ``steps / eval_every`` times; a probe passes each of its images
(training subset, validation, test) through the frozen backbone once (fewer when the feature cache
already holds them); its fit is not measured and not counted, which is why the sweep's log sets
beside the projection how far the preset's recorded runs strayed from theirs. Training
runs at the measured CPU path's rate (results/benchmarks/train_throughput_cpu_path.csv, column b,
on the CPU it was measured on) scaled by pixels from the measured resolution, evaluation at the
measured extraction rate. Unmeasured backbones or devices give no projection rather than a guess.
"""
from __future__ import annotations

from backbone_bench.data.registry import DATASETS
from backbone_bench.environment import processor
from backbone_bench.paths import BENCHMARKS
from backbone_bench.study.presets import get_preset

PATH_CSV = BENCHMARKS / "train_throughput_cpu_path.csv"
_CPU = get_preset("cpu")
#: what writes PATH_CSV's rows for the processor it runs on, at the cpu edition's resolution and batch
#: (about 8 minutes on 2 cores, the sweep stopped)
MEASURE_COMMAND = (f"python benchmarks/train_throughput.py --device cpu --variants --resolution {_CPU.resolution} "
                   f"--batch {_CPU.recipe.batch_size} --steps 10 --out results/benchmarks/train_throughput_cpu.csv")


def measured_devices() -> list[str]:
    """The processors the committed measurement covers, as its rows name them, in the order measured."""
    if not PATH_CSV.exists():
        return []
    import pandas as pd

    return list(dict.fromkeys(pd.read_csv(PATH_CSV)["device"]))


def measured_rates(device: str) -> dict:
    """{backbone: (train images/s, eval images/s, resolution)} measured on ``device``."""
    if not PATH_CSV.exists():
        return {}
    import pandas as pd

    table = pd.read_csv(PATH_CSV)
    table = table[(table["device"].map(processor) == processor(device)) & table["b_images_per_s"].notna()]
    out = {}
    for r in table.itertuples():
        train = float(r.b_images_per_s)
        if r.chosen.startswith("bf16"):  # measured before precision was the recipe's: its fastest fp32 layout
            from backbone_bench.engine.speed import _cpu_measured

            fp32 = _cpu_measured(processor(device), False).get(r.backbone, {})
            train = max((v for (compiled, _), v in fp32.items() if not compiled), default=float(r.a_images_per_s))
        out[r.backbone] = (train, float(r.extract_fp32_images_per_s), int(r.resolution))
    return out


def run_seconds(config: dict, rates: dict, n_eval: int = 2500) -> float | None:
    """Projected seconds of one run; ``n_eval``: validation + test images it evaluates (an upper bound)."""
    if config["backbone"] not in rates:
        return None
    train_rate, eval_rate, measured_at = rates[config["backbone"]]
    scale = (config["resolution"] / measured_at) ** 2  # cost grows with pixels at these sizes
    r = config["recipe"]
    if config["mode"] == "linear_probe":
        # the training subset is extracted too: at 1000 shots it outnumbers validation and test
        spec = DATASETS.get(config["dataset"])
        pool = config["shots"] * spec.num_classes if spec else 0
        return scale * (n_eval + pool) / eval_rate
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


def recorded_against_projection(records: list, device: str) -> tuple[float, float, int]:
    """(hours the ``records`` on ``device`` took, hours projected for them, how many): how far the
    projection strays on this machine, said beside every new projection."""
    rates = measured_rates(device)
    pairs = [(r["timing"]["total_seconds"], run_seconds(r["config"], rates)) for r in records
             if r.get("status") == "ok" and r.get("environment", {}).get("device") == device
             and r.get("timing", {}).get("total_seconds")]
    pairs = [(m, p) for m, p in pairs if p is not None]
    return sum(m for m, _ in pairs) / 3600, sum(p for _, p in pairs) / 3600, len(pairs)


def calibrated_hours(configs: list, records: list, device: str) -> tuple[float | None, int]:
    """(hours of ``configs``, each mode's projection scaled by how far that mode's ``records`` on
    ``device`` strayed from theirs; how many records set the scale). A mode with no records keeps
    its projection; the probes' unmeasured fit, for one, only shows up this way."""
    hours, n = 0.0, 0
    for mode in {c["mode"] for c in configs}:
        projected, _ = projected_hours([c for c in configs if c["mode"] == mode], device)
        if projected is None:
            continue
        took, then, k = recorded_against_projection([r for r in records if r["config"]["mode"] == mode], device)
        hours += projected * (took / then if k else 1.0)
        n += k
    return (hours if n else None), n
