"""The words the pages use for modes, domains and gains, how an interval is written, and chance."""
from __future__ import annotations

from backbone_bench.analysis import uncertainty
from backbone_bench.data.registry import get_dataset
from backbone_bench.engine.metrics import PRIMARY


METRIC = f"test_{PRIMARY}"


MODE_NAMES = {"finetune": "fine-tuning", "linear_probe": "linear probes", "scratch": "scratch twins"}
#: The same modes in the prose's other forms: "backbones probed at both resolutions", "the 224 px probes choose".
MODE_RAN = {"finetune": "fine-tuned", "linear_probe": "probed", "scratch": "trained from scratch"}
MODE_RUNS = {"finetune": "fine-tunes", "linear_probe": "probes", "scratch": "scratch twins"}


DOMAINS_IN_ORDER = ("natural", "medical", "galaxy", "remote_sensing")


SHORT_DOMAIN = {"natural": "natural photos", "medical": "medical", "galaxy": "galaxies", "remote_sensing": "aerial tiles"}


GAINS = {"scratch": "fine-tune minus scratch twin", "linear_probe": "fine-tune minus linear probe"}


COST_COLUMNS = {"backbone": "architecture", "params_m": "params (M)", "gmacs": "GMACs", "train_images_per_s": "train img/s",
                "infer_images_per_s": "infer img/s", "latency_ms_median": "latency ms (median)",
                "latency_ms_p90": "latency ms (p90)", "train_peak_mem_mb": "train peak MiB", "infer_peak_mem_mb": "infer peak MiB"}


def domain_title(domain: str) -> str:
    return {"natural": "Natural photos", "medical": "Medical imaging", "galaxy": "Galaxy images",
            "remote_sensing": "Aerial and remote-sensing tiles"}[domain]


def listed(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def fmt_interval(row, value="score", lo="score_lo", hi="score_hi") -> str:
    return uncertainty.fmt(row[value], row[lo], row[hi], digits=2, signed=True)


#: The panel's names as a narrow table writes them (a phone screen has room for about 12 characters).
SHORT_BACKBONE = {"tf_efficientnet_lite0": "lite0", "tf_efficientnet_lite1": "lite1", "tf_efficientnet_lite2": "lite2",
                  "mobilenetv2_100": "mnv2", "tf_mobilenetv3_small_100": "mnv3-small", "regnetx_002": "regnetx-002",
                  "mobilenetv1_100": "mnv1", "squeezenet1_1": "squeezenet1.1"}


def short_name(backbone: str) -> str:
    return SHORT_BACKBONE.get(backbone, backbone)


SHORT_MODES = {"finetune": "fine-tune", "linear_probe": "probe", "scratch": "scratch"}


def chance_of(dataset: str) -> float:
    """The balanced accuracy of guessing (any constant or random answer): 1 / classes."""
    return 1 / len(get_dataset(dataset).classes)


#: The marks of a cell whose interval holds test images only (pages explain them above their tables):
#: one seed, or seeds that share one training subset (a class has fewer images than the shot level).
ONE_SEED, SHARED_SUBSET = "†", "‡"


#: Seeds whose subsets share at least this share of their images are flagged (n_eff beside n).
FLAG_OVERLAP = 0.1


def interval_note(n_subsets: int, shared: bool = False, runs: int = 1, overlap: float = 0.0,
                  n_effective: float | None = None) -> str:
    """What a cell's interval holds, for a table cell: n independent training subsets, marked where
    there is one († one seed, ‡ seeds sharing one subset), so the interval holds test images only;
    where the seeds share part of their images, the seeds they are worth (≈n_eff, the share)."""
    if shared:
        return f"n=1{SHARED_SUBSET}"
    if n_subsets <= 1:
        return f"n=1{ONE_SEED}"
    if overlap >= FLAG_OVERLAP and n_effective is not None:
        return f"n={n_subsets}≈{n_effective:.1f} ({overlap:.0%} shared)"
    return f"n={n_subsets}"
