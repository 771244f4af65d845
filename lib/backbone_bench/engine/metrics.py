"""Classification metrics from class probabilities. Balanced accuracy is the study's primary one."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

PRIMARY = "balanced_accuracy"
COLLAPSE_SHARE = 0.98


def collapsed(predicted: np.ndarray) -> bool:
    """A (near-)constant predictor: one class receives at least 98 % of the predictions."""
    predicted = np.asarray(predicted)
    return bool(np.bincount(predicted).max() / len(predicted) >= COLLAPSE_SHARE)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins (Guo et al. 2017)."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def classification_metrics(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(1, keepdims=True)
    labels = np.asarray(labels)
    preds = probs.argmax(1)
    present = np.unique(labels)
    try:
        if num_classes == 2:
            auc = roc_auc_score(labels, probs[:, 1])
        else:  # macro one-vs-rest over the classes present in this split
            auc = roc_auc_score(labels, probs[:, present] / probs[:, present].sum(1, keepdims=True),
                                multi_class="ovr", average="macro", labels=present) if len(present) > 2 else float("nan")
    except ValueError:
        auc = float("nan")
    return dict(
        balanced_accuracy=float(balanced_accuracy_score(labels, preds)),
        accuracy=float((preds == labels).mean()),
        macro_f1=float(f1_score(labels, preds, average="macro", labels=np.arange(num_classes), zero_division=0)),
        auc_ovr=float(auc),
        ece=expected_calibration_error(probs, labels),
        nll=float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()),
    )
