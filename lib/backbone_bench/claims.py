"""The earlier studies' claims (STUDY.md), each checked against our results where it can be.

A verdict is "agree", "disagree" or "not testable here" (with the reason); the evidence column
says which numbers decided it. Nothing here is typed in by hand but the claims themselves.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

JS = "Jeevan & Sethi 2025"
BOB = "Goldblum et al. 2023 (BoB)"


def _arch(name: str) -> str:
    return name.partition(".")[0]


def _best_in(scores: pd.DataFrame, domain: str):
    d = scores[scores["domain"] == domain].sort_values("score", ascending=False)
    return None if d.empty else d.iloc[0]


def _winner_claim(scores, domain, arch, label):
    have = {_arch(b) for b in scores["backbone"]}
    if arch not in have:
        return "not testable here", f"{arch} is not in these results (no weights on this machine)"
    best = _best_in(scores, domain)
    if best is None:
        return "not testable here", f"no {domain} results"
    verdict = "agree" if _arch(best["backbone"]) == arch else "disagree"
    return verdict, f"best {domain} backbone here: {best['backbone']} (score {best['score']:.2f})"


def check_claims(scores: pd.DataFrame, gains: pd.DataFrame, cost: pd.DataFrame | None = None) -> pd.DataFrame:
    """scores: ranking.bootstrap/scores output; gains: ranking.pretraining_gain; cost: cost table."""
    rows = []

    def add(study, claim, verdict_evidence):
        rows.append(dict(study=study, claim=claim, verdict=verdict_evidence[0], evidence=verdict_evidence[1]))

    add(JS, "ConvNeXt-T is best on natural images", _winner_claim(scores, "natural", "convnext_tiny", "natural"))
    add(JS, "ConvNeXt-T is best overall", _winner_claim(scores, "overall", "convnext_tiny", "overall"))
    add(JS, "ResNeXt-50 is best on remote sensing", _winner_claim(scores, "remote_sensing", "resnext50_32x4d", ""))
    add(JS, "WaveMix is best on astronomy and medical images",
        ("not testable here", "WaveMix is in neither timm nor torchvision, so not in this study's panels"))
    attention = {"swin", "vit", "deit", "swinv2", "mobilevit", "efficientformer", "fastvit"}
    have_attention = [b for b in scores["backbone"].unique() if _arch(b).split("_")[0] in attention]
    add(JS, "Attention-based models do poorly with little data",
        ("not testable here", "no attention-based backbone has weights on this machine") if not have_attention else
        _attention_claim(scores, have_attention))
    tiny = ["efficientnet_b0", "regnetx_004", "resnet18"]
    have = {_arch(b): b for b in scores["backbone"].unique()}
    if all(t in have for t in tiny):
        o = scores[scores["domain"] == "overall"].set_index("backbone")["score"]
        vals = [o[have[t]] for t in tiny]
        add(BOB, "EfficientNet-B0 > RegNetX-400MF > ResNet-18", ("agree" if vals[0] > vals[1] > vals[2] else "disagree",
            ", ".join(f"{t} {v:.2f}" for t, v in zip(tiny, vals))))
    else:
        add(BOB, "EfficientNet-B0 > RegNetX-400MF > ResNet-18",
            ("not testable here", f"missing: {', '.join(t for t in tiny if t not in have)}"))
    wide = scores[scores["domain"] != "overall"].pivot(index="backbone", columns="domain", values="score")
    if wide.shape[0] >= 3 and wide.shape[1] >= 2:
        rho = spearmanr(wide.to_numpy()).statistic
        rho = np.array([[1, rho], [rho, 1]]) if np.ndim(rho) == 0 else rho
        off = rho[np.triu_indices_from(rho, 1)]
        add(BOB, "Backbone rankings are strongly correlated across tasks (Spearman often > 0.8)",
            ("agree" if np.median(off) > 0.8 else "disagree",
             f"median Spearman between domains {np.median(off):.2f} (range {off.min():.2f} to {off.max():.2f})"))
    else:
        add(BOB, "Backbone rankings are strongly correlated across tasks (Spearman often > 0.8)",
            ("not testable here", "needs at least 3 backbones and 2 domains"))
    add(BOB, "Throughput and score are negatively correlated (Spearman -0.41)", _throughput_claim(scores, cost))
    if gains["gain_over_scratch"].notna().any():
        g = gains.groupby("shots")["gain_over_scratch"].mean()
        add(JS, "ImageNet pretraining helps most when labelled data is scarce",
            ("agree" if g.index.size > 1 and g.iloc[0] > g.iloc[-1] else
             "not testable here" if g.index.size == 1 else "disagree",
             "; ".join(f"{k} shots: fine-tune beats scratch by {v:+.2f}" for k, v in g.items())))
    return pd.DataFrame(rows)


def _attention_claim(scores, attention):
    o = scores[scores["domain"] == "overall"].set_index("backbone")["score"]
    att, conv = o[o.index.isin(attention)].mean(), o[~o.index.isin(attention)].mean()
    return ("agree" if att < conv else "disagree", f"mean overall z: attention {att:.2f}, convolutional {conv:.2f}")


def _throughput_claim(scores, cost):
    if cost is None or cost.empty:
        return "not testable here", "no cost measurements yet"
    o = scores[scores["domain"] == "overall"].set_index("backbone")["score"]
    thr = cost.groupby("backbone")["infer_images_per_s"].median()
    both = o.to_frame("score").join(thr, how="inner")
    if len(both) < 3:
        return "not testable here", "fewer than 3 backbones with both scores and cost"
    rho = spearmanr(both["score"], both["infer_images_per_s"]).statistic
    return ("agree" if rho < 0 else "disagree", f"Spearman(score, inference images/s) = {rho:.2f} over {len(both)} backbones")
