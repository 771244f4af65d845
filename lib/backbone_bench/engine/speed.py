"""How a group runs on this device: memory format and compilation, chosen by measurement.

Precision is not chosen here: it is the recipe's (recipe.PRECISIONS), the same for every backbone,
run and host of an edition, and records say it. What this module may vary is speed only: the memory
layout (channels-last or not) and compilation, which reorder the same fp32 (or bf16) arithmetic and
so change results at the rounding of that precision, never the precision itself; tests/test_speed.py
holds the difference below the smallest gap the book decides on. On a GPU, fp32 means IEEE fp32:
TF32 tensor-core matmuls and convolutions are switched off for it (``exact_fp32``).

GPU: the committed fused measurement of this fusion form (train_throughput.py --variants) picks
torch.compile and channels-last per backbone; unmeasured, a fused stack stays NCHW.
CPU: the committed solo measurement (train_throughput.py --device cpu --variants) picks the layout
per backbone for the processor it was measured on (its name, as records write it; the thread count
aside), among the rows measured in the recipe's precision. An unmeasured CPU runs the default layout.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from backbone_bench.engine.fused import FUSION
from backbone_bench.environment import device_name, processor
from backbone_bench.paths import BENCHMARKS

#: Fused images/s per backbone and speed option, measured on a GPU (train_throughput.py --variants).
VARIANTS_CSV = BENCHMARKS / "train_throughput_gpu_variants.csv"
#: Solo images/s per backbone, layout and precision, measured on CPUs (train_throughput.py --device cpu --variants).
CPU_VARIANTS_CSV = BENCHMARKS / "train_throughput_cpu_variants.csv"
MIN_GAIN = 1.05  # an option is used only where it measured at least this much faster than the plain form


def native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (AVX512_BF16 or AMX), as oneDNN sees it."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def speed_options(backbone: str, device: torch.device | str, compile_model: bool = False,
                  precision: str = "fp32") -> dict:
    """{compiled, channels_last, bf16, speed_from} for a group of ``backbone`` on ``device`` computing
    in ``precision`` (the recipe's; ``bf16`` only says it back). ``compile_model``, the --compile flag,
    picks among compiled variants."""
    from backbone_bench.engine.recipe import PRECISIONS

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    bf16 = precision == "bf16-autocast"
    if device.type == "cuda":
        return _gpu(backbone, compile_model, bf16)
    return _cpu(backbone, compile_model, bf16)


def exact_fp32(device: torch.device, precision: str) -> None:
    """On a GPU, fp32 is IEEE fp32: no TF32 in matmuls or cuDNN convolutions (PyTorch lets cuDNN use
    TF32 by default, which keeps 10 mantissa bits, not 23). Nothing to do on a CPU."""
    if torch.device(device).type == "cuda" and precision == "fp32":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def _choose(measured: dict, plain_key, compile_model: bool):
    """The fastest measured option (only compiled ones with --compile), or the plain form where none
    measured MIN_GAIN faster; None where the plain form was not measured."""
    base = measured.get(plain_key)
    candidates = {k: v for k, v in measured.items() if k[0] or not compile_model}
    if base is None or not candidates:
        return None
    best, rate = max(candidates.items(), key=lambda kv: kv[1])
    return plain_key if rate < MIN_GAIN * base and not compile_model else best


def _gpu(backbone: str, compile_model: bool, bf16: bool) -> dict:
    # unmeasured: a fused stack stays NCHW, the layout every GPU record so far ran (a solo network is
    # channels-last on a GPU regardless: fused.Stack). The GPU measurement was made under bf16
    # autocast; a layout that is faster there is taken as faster in fp32 too (speed only, either way)
    plain = dict(compiled=compile_model, channels_last=False, bf16=bf16, speed_from="default")
    measured = _gpu_measured().get(backbone, {})
    best = _choose(measured, (False, False), compile_model)
    if best is None:
        return plain
    return dict(compiled=best[0], channels_last=best[1], bf16=bf16, speed_from=f"measured ({VARIANTS_CSV.name})")


def _cpu(backbone: str, compile_model: bool, bf16: bool) -> dict:
    plain = dict(compiled=compile_model, channels_last=False, bf16=bf16, speed_from="default")
    if bf16 and not native_bf16():
        raise RuntimeError("this recipe computes in bf16, and this CPU has no native bf16 (AVX512_BF16 or AMX): "
                           "emulated bf16 would be many times slower; run the preset on a CPU or GPU that has it")
    measured = _cpu_measured(processor(device_name(torch.device("cpu"))), bf16).get(backbone, {})
    # compiling costs a minute or more per group on a CPU, more than a short run gains: only on request
    measured = {k: v for k, v in measured.items() if k[0] == compile_model or k == (False, False)}
    best = _choose(measured, (False, False), compile_model)
    if best is None:
        return plain
    return dict(compiled=best[0], channels_last=best[1], bf16=bf16, speed_from=f"measured ({CPU_VARIANTS_CSV.name})")


def precision(options: dict, device: torch.device | None = None) -> str:
    """The precision records name for these options."""
    return "bf16-autocast" if options.get("bf16") else "fp32"


@lru_cache(maxsize=1)
def _gpu_measured() -> dict:
    """{backbone: {(compiled, channels_last): fused images/s}} of the committed measurement of this
    fusion, if any (rows without a ``fusion`` column measured the vmap engine)."""
    if not VARIANTS_CSV.exists():
        return {}
    import pandas as pd

    table = pd.read_csv(VARIANTS_CSV)
    if "fusion" not in table:
        return {}
    out: dict = {}
    for r in table[(table["status"] == "ok") & (table["fusion"] == FUSION)].itertuples():
        out.setdefault(r.backbone, {})[(bool(r.compiled), bool(r.channels_last))] = float(r.fused_images_per_s)
    return out


@lru_cache(maxsize=4)
def _cpu_measured(device: str, bf16: bool) -> dict:
    """{backbone: {(compiled, channels_last): solo images/s}} measured on this processor in the
    precision asked for (bf16 rows: bf16 autocast; the others: fp32)."""
    if not CPU_VARIANTS_CSV.exists():
        return {}
    import pandas as pd

    table = pd.read_csv(CPU_VARIANTS_CSV)
    table = table[(table["status"] == "ok") & (table["device"].map(processor) == device)]
    out: dict = {}
    for r in table[(table["precision"] != "fp32") == bf16].itertuples():
        out.setdefault(r.backbone, {})[(bool(r.compiled), bool(r.channels_last))] = float(r.images_per_s)
    return out
