"""The words the pages use for modes, domains and gains, and how an interval is written."""
from __future__ import annotations

from backbone_bench.analysis import uncertainty
from backbone_bench.engine.metrics import PRIMARY


METRIC = f"test_{PRIMARY}"


MODE_NAMES = {"finetune": "fine-tuning", "linear_probe": "linear probes", "scratch": "scratch twins"}


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
