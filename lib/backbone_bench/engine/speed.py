"""How a group runs on this device: memory format, precision and compilation, chosen by measurement.

Speed only: every option computes the same function (to rounding, for bf16; tests/test_speed.py
states the tolerance), so none of them enters a run's config or key; records say what ran.

GPU: the committed fused measurement of this fusion form (train_throughput.py --variants) picks
torch.compile and channels-last per backbone; unmeasured, a fused stack stays NCHW (every GPU
record so far was) and computes under bf16 autocast, as every GPU run has.
CPU: the committed solo measurement (train_throughput.py --device cpu --variants) picks layout and
precision per backbone for the processor it was measured on (its name, as records write it;
the thread count aside); bf16 only on a processor with native bf16 kernels. An unmeasured CPU runs fp32 in
the default layout, the engine's behaviour before any measurement (safe, if slower).
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


def speed_options(backbone: str, device: torch.device | str, compile_model: bool = False) -> dict:
    """{compiled, channels_last, bf16, speed_from} for a group of ``backbone`` on ``device``
    (``compile_model``, the --compile flag, picks among compiled variants)."""
    device = torch.device(device)
    if device.type == "cuda":
        return _gpu(backbone, compile_model)
    return _cpu(backbone, compile_model)


def _choose(measured: dict, plain_key, compile_model: bool):
    """The fastest measured option (only compiled ones with --compile), or the plain form where none
    measured MIN_GAIN faster; None where the plain form was not measured."""
    base = measured.get(plain_key)
    candidates = {k: v for k, v in measured.items() if k[0] or not compile_model}
    if base is None or not candidates:
        return None
    best, rate = max(candidates.items(), key=lambda kv: kv[1])
    return plain_key if rate < MIN_GAIN * base and not compile_model else best


def _gpu(backbone: str, compile_model: bool) -> dict:
    # unmeasured: a fused stack stays NCHW, the layout every GPU record so far ran (a solo network is
    # channels-last on a GPU regardless: fused.Stack)
    plain = dict(compiled=compile_model, channels_last=False, bf16=True, speed_from="default")
    measured = _gpu_measured().get(backbone, {})
    best = _choose(measured, (False, False), compile_model)
    if best is None:
        return plain
    return dict(compiled=best[0], channels_last=best[1], bf16=True, speed_from=f"measured ({VARIANTS_CSV.name})")


def _cpu(backbone: str, compile_model: bool) -> dict:
    plain = dict(compiled=compile_model, channels_last=False, bf16=False, speed_from="default")
    measured = _cpu_measured(processor(device_name(torch.device("cpu"))), native_bf16()).get(backbone, {})
    # compiling costs a minute or more per group on a CPU, more than a short run gains: only on request
    measured = {k: v for k, v in measured.items() if k[0] == compile_model or k == (False, False, False)}
    best = _choose(measured, (False, False, False), compile_model)
    if best is None:
        return plain
    return dict(compiled=best[0], channels_last=best[1], bf16=best[2], speed_from=f"measured ({CPU_VARIANTS_CSV.name})")


def precision(options: dict, device: torch.device) -> str:
    """The precision records name for these options."""
    return "bf16-autocast" if options.get("bf16", device.type == "cuda") else "fp32"


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
def _cpu_measured(device: str, bf16_ok: bool) -> dict:
    """{backbone: {(compiled, channels_last, bf16): solo images/s}} measured on this processor;
    bf16 rows only where it has native bf16."""
    if not CPU_VARIANTS_CSV.exists():
        return {}
    import pandas as pd

    table = pd.read_csv(CPU_VARIANTS_CSV)
    table = table[(table["status"] == "ok") & (table["device"].map(processor) == device)]
    out: dict = {}
    for r in table.itertuples():
        bf16 = r.precision != "fp32"
        if bf16 and not bf16_ok:
            continue
        out.setdefault(r.backbone, {})[(bool(r.compiled), bool(r.channels_last), bf16)] = float(r.images_per_s)
    return out
