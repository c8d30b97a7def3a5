"""Threshold choice, metrics and bootstrap intervals, against hand-counted cases."""

import numpy as np
import pytest

from pneumo_helpers.metrics import (binary_metrics, bootstrap_intervals, describe,
                                    threshold_for_recall)

Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
S = np.array([0.1, 0.2, 0.35, 0.8, 0.3, 0.6, 0.7, 0.9])


def test_threshold_for_recall_is_most_specific_reaching_target():
    assert threshold_for_recall(Y, S, 1.0) == pytest.approx(0.3)
    assert threshold_for_recall(Y, S, 0.75) == pytest.approx(0.6)
    assert threshold_for_recall(Y, S, 0.5) == pytest.approx(0.7)


def test_binary_metrics_by_hand():
    m = binary_metrics(Y, S, 0.5)
    assert m["confusion"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 3}
    assert m["recall"] == 0.75 and m["specificity"] == 0.75
    assert m["precision"] == 0.75 and m["accuracy"] == 0.75 and m["f1"] == 0.75
    assert m["roc_auc"] == pytest.approx(12 / 16)  # 12 of 16 pairs ranked right


def test_original_project_confusion_in_words():
    m = {"confusion": {"tn": 71, "fp": 163, "fn": 4, "tp": 386}, "recall": 386 / 390,
         "specificity": 71 / 234, "roc_auc": 0.9, "threshold": 0.5}
    assert describe(m).startswith("missed 4 of 390 pneumonia cases; 163 of 234 healthy")


def test_bootstrap_intervals_contain_point_estimates():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(200), np.ones(300)].astype(int)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0, 1)
    m = binary_metrics(y, s, 0.5)
    ci = bootstrap_intervals(y, s, 0.5, n_boot=200, seed=1)
    for k in ("roc_auc", "recall", "specificity"):
        lo, hi = ci[k]
        assert lo < m[k] < hi and hi - lo < 0.15
    assert ci == bootstrap_intervals(y, s, 0.5, n_boot=200, seed=1)


def test_metrics_need_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        binary_metrics([1, 1], [0.2, 0.9])
    with pytest.raises(ValueError, match="labels but"):
        binary_metrics([0, 1], [0.2])
