"""Operating point and metrics for the pneumonia-vs-normal decision.

The threshold is chosen on validation data for a target recall, then
applied unchanged to the test split. Bootstrap intervals resample test
images with a seed.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def _check(y_true, y_score):
    y_true = np.asarray(y_true).astype(int).ravel()
    y_score = np.asarray(y_score, dtype=float).ravel()
    if y_true.shape != y_score.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_score)} scores")
    if len(np.unique(y_true)) != 2:
        raise ValueError("need both classes (normal and pneumonia) to compute these metrics")
    return y_true, y_score


def threshold_for_recall(y_true, y_score, target_recall: float = 0.98) -> float:
    """The highest threshold whose recall (sensitivity) reaches ``target_recall``:
    the most specific operating point that still catches that share of pneumonia."""
    if not 0 < target_recall <= 1:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    y_true, y_score = _check(y_true, y_score)
    _, tpr, thresholds = skm.roc_curve(y_true, y_score, drop_intermediate=False)
    i = int(np.argmax(tpr >= target_recall - 1e-12))
    return float(min(thresholds[i], 1.0))


def binary_metrics(y_true, y_score, threshold: float = 0.5) -> dict:
    """ROC AUC, PR AUC and the confusion-matrix figures at ``threshold``
    (score >= threshold means pneumonia)."""
    y_true, y_score = _check(y_true, y_score)
    y_pred = (y_score >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel())
    div = lambda a, b: float(a / b) if b else 0.0  # noqa: E731
    precision, recall = div(tp, tp + fp), div(tp, tp + fn)
    return {
        "roc_auc": float(skm.roc_auc_score(y_true, y_score)),
        "pr_auc": float(skm.average_precision_score(y_true, y_score)),
        "threshold": float(threshold),
        "recall": recall,
        "specificity": div(tn, tn + fp),
        "precision": precision,
        "f1": div(2 * precision * recall, precision + recall),
        "accuracy": div(tp + tn, len(y_true)),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def bootstrap_intervals(y_true, y_score, threshold: float, n_boot: int = 1000,
                        seed: int = 42, level: float = 0.95) -> dict:
    """Percentile bootstrap intervals for ROC AUC, recall and specificity
    (images resampled with replacement, stratified by class)."""
    y_true, y_score = _check(y_true, y_score)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y_true == 1), np.flatnonzero(y_true == 0)
    stats = {"roc_auc": [], "recall": [], "specificity": []}
    for _ in range(n_boot):
        p = y_score[rng.choice(pos, len(pos))]
        n = y_score[rng.choice(neg, len(neg))]
        scores = np.concatenate([p, n])
        truth = np.r_[np.ones(len(p)), np.zeros(len(n))]
        stats["roc_auc"].append(skm.roc_auc_score(truth, scores))
        stats["recall"].append(np.mean(p >= threshold))
        stats["specificity"].append(np.mean(n < threshold))
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return {k: [float(np.percentile(v, lo)), float(np.percentile(v, hi))]
            for k, v in stats.items()}


def describe(m: dict) -> str:
    """The confusion matrix in plain words."""
    c = m["confusion"]
    return (f"missed {c['fn']} of {c['fn'] + c['tp']} pneumonia cases; "
            f"{c['fp']} of {c['tn'] + c['fp']} healthy children flagged "
            f"(recall {m['recall']:.3f}, specificity {m['specificity']:.3f}, "
            f"ROC AUC {m['roc_auc']:.3f}, threshold {m['threshold']:.3f})")
