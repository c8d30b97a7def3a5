"""Thresholds, metrics for both tasks and patient-bootstrap intervals, against
hand-counted cases."""

import numpy as np
import pytest

from pneumo_helpers import metrics as M
from pneumo_helpers.tasks import BINARY, TERNARY, get_task

Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
S = np.array([0.1, 0.2, 0.35, 0.8, 0.3, 0.6, 0.7, 0.9])

# six images: truth 0 0 1 1 2 2, most probable class 0 1 1 2 2 1
Y3 = np.array([0, 0, 1, 1, 2, 2])
P3 = np.array([[0.8, 0.1, 0.1],
               [0.3, 0.6, 0.1],
               [0.1, 0.7, 0.2],
               [0.2, 0.3, 0.5],
               [0.1, 0.2, 0.7],
               [0.1, 0.6, 0.3]])


def test_threshold_for_recall_is_most_specific_reaching_target():
    assert M.threshold_for_recall(Y, S, 1.0) == pytest.approx(0.3)
    assert M.threshold_for_recall(Y, S, 0.75) == pytest.approx(0.6)
    assert M.threshold_for_recall(Y, S, 0.5) == pytest.approx(0.7)
    with pytest.raises(ValueError, match=r"target_recall must be in \(0, 1\]"):
        M.threshold_for_recall(Y, S, 1.5)


# five healthy, three with pneumonia; at 0.5: tn 3, fp 2, fn 1, tp 2 (no two counts alike)
Y2 = np.array([0, 0, 0, 0, 0, 1, 1, 1])
S2 = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.4, 0.8, 0.9])


def test_binary_metrics_by_hand():
    m = M.binary_metrics(Y2, S2, 0.5)
    assert m["confusion"] == {"tn": 3, "fp": 2, "fn": 1, "tp": 2}
    assert m["recall"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 4) and m["accuracy"] == pytest.approx(5 / 8)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m["roc_auc"] == pytest.approx(13 / 15)  # 13 of 15 pairs ranked right
    # average precision: precision 1/1, 2/2 and 3/5 at the three pneumonia images
    assert m["pr_auc"] == pytest.approx((1 + 1 + 3 / 5) / 3)
    assert m["threshold"] == 0.5


def test_threshold_for_recall_at_its_boundary():
    # recall 2/3 is reached exactly at 0.8: that threshold, not the next lower one
    assert M.threshold_for_recall(Y2, S2, 2 / 3) == pytest.approx(0.8)
    assert M.threshold_for_recall(Y2, S2, 2 / 3 + 1e-6) == pytest.approx(0.4)
    assert M.threshold_for_recall(Y2, S2, 1 / 3) == pytest.approx(0.9)
    assert M.threshold_for_recall(Y2, S2, 1.0) == pytest.approx(0.4)


def test_predictive_values_by_hand():
    # recall 0.9, specificity 0.8 at prevalence 0.1: tp 0.09, fp 0.18, tn 0.72, fn 0.01
    ppv, npv = M.predictive_values(0.9, 0.8, 0.1)
    assert ppv == pytest.approx(0.09 / 0.27) and npv == pytest.approx(0.72 / 0.73)


def test_original_project_confusion_in_words():
    m = {"confusion": {"tn": 71, "fp": 163, "fn": 4, "tp": 386}, "recall": 386 / 390,
         "specificity": 71 / 234, "roc_auc": 0.9, "threshold": 0.5}
    assert M.in_words(m).startswith("missed 4 of 390 pneumonia cases; 163 of 234 healthy")
    assert M.per_hundred(m) == ("of 100 children with pneumonia, 1 is missed; "
                                "of 100 healthy children, 70 are flagged")
    assert M.per_hundred({"recall": 0.97, "specificity": 0.99}) == (
        "of 100 children with pneumonia, 3 are missed; of 100 healthy children, 1 is flagged")


def test_metrics_need_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        M.binary_metrics([1, 1], [0.2, 0.9])
    with pytest.raises(ValueError, match="labels but"):
        M.binary_metrics([0, 1], [0.2])


def test_three_class_metrics_by_hand():
    m = M.three_class_metrics(Y3, P3)
    assert m["confusion"] == [[1, 1, 0], [0, 1, 1], [0, 1, 1]]
    assert m["labels"] == ["normal", "bacteria", "virus"]
    assert m["accuracy"] == 0.5 and m["macro_recall"] == 0.5
    pc = m["per_class"]
    assert [pc[n]["recall"] for n in m["labels"]] == [0.5, 0.5, 0.5]
    assert [pc[n]["precision"] for n in m["labels"]] == pytest.approx([1, 1 / 3, 1 / 2])
    # one-vs-rest AUCs: pairs ranked right 8/8, 6/8, 7/8
    assert [pc[n]["roc_auc"] for n in m["labels"]] == pytest.approx([1, 0.75, 0.875])
    assert m["macro_roc_auc"] == pytest.approx(0.875)


def test_ternary_task_reads_one_model_three_ways():
    t = TERNARY.thresholds(Y3, P3, target_recall=1.0)
    # pneumonia vs normal from p(bacteria) + p(virus): 0.2 0.7 | 0.9 0.8 0.9 0.9
    assert t["pneumonia"] == pytest.approx(0.8)
    # bacterial vs viral on the pneumonia cases: viral scores 2/9, 5/8, 7/9, 3/9
    assert t["viral"] == pytest.approx(7 / 9)
    m = TERNARY.metrics(Y3, P3, {"pneumonia": 0.5, "viral": 0.5})
    assert set(m) == {"binary", "three_class", "bacterial_vs_viral"}
    b, bv = m["binary"], m["bacterial_vs_viral"]
    assert b["roc_auc"] == 1.0 and b["confusion"] == {"tn": 1, "fp": 1, "fn": 0, "tp": 4}
    assert bv["roc_auc"] == pytest.approx(0.75)
    assert (bv["sensitivity"], bv["specificity"], bv["accuracy"]) == (0.5, 0.5, 0.5)
    assert (bv["n_bacteria"], bv["n_virus"]) == (2, 2)
    assert TERNARY.key_figures(m) == {"auc": 1.0, "recall": 1.0, "specificity": 0.5,
                                      "accuracy": 0.5, "bv_auc": pytest.approx(0.75)}


def test_binary_task_has_the_same_binary_block():
    m = BINARY.metrics(Y, S, BINARY.thresholds(Y, S, 0.75))
    assert set(m) == {"binary"} and m["binary"] == M.binary_metrics(Y, S, 0.6)


def test_three_class_metrics_need_three_classes():
    with pytest.raises(ValueError, match="missing: virus"):
        M.three_class_metrics(Y3[:4], P3[:4])
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        M.three_class_metrics(Y3, P3[:, :2])


def test_unknown_task_is_one_clear_error():
    with pytest.raises(ValueError, match="parameter task = 'both': expected one of 'binary', 'ternary'"):
        get_task("both")


def _patients_data(seed=0):
    """60 normal and 60 pneumonia patients, 1-6 images each; a patient's
    images share most of their score (patient effect) plus a little noise."""
    rng = np.random.default_rng(seed)
    y, s, pid = [], [], []
    for p in range(120):
        label = int(p >= 60)
        base = rng.normal(0.35 + 0.3 * label, 0.15)
        n = rng.integers(1, 7)
        y += [label] * n
        s += list(np.clip(base + rng.normal(0, 0.02, n), 0, 1))
        pid += [f"p{p}"] * n
    return np.array(y), np.array(s), np.array(pid)


def test_patient_bootstrap_contains_estimates_and_is_seeded():
    y, s, pid = _patients_data()
    m = M.binary_metrics(y, s, 0.5)
    ci = M.binary_intervals(y, s, 0.5, pid, n_boot=200, seed=1)
    for k in ("roc_auc", "recall", "specificity"):
        lo, hi = ci[k]
        assert lo < m[k] < hi
    assert ci == M.binary_intervals(y, s, 0.5, pid, n_boot=200, seed=1)


def test_patient_bootstrap_is_wider_than_image_bootstrap():
    # images of one patient are near copies: resampling images as if they were
    # independent makes the interval too narrow; resampling patients does not
    y, s, pid = _patients_data()
    by_patient = M.binary_intervals(y, s, 0.5, pid, n_boot=300, seed=2)
    by_image = M.binary_intervals(y, s, 0.5, np.arange(len(y)), n_boot=300, seed=2)
    for k in ("roc_auc", "specificity"):
        assert np.diff(by_patient[k])[0] > 1.3 * np.diff(by_image[k])[0]


def test_patient_bootstrap_keeps_patients_whole():
    # stat sees the drawn indices: every drawn patient comes with all its images
    y = np.array([0, 0, 0, 1, 1])
    pid = np.array(["a", "a", "b", "c", "c"])
    seen = []

    def stat(idx):
        seen.append(sorted(idx))
        return {"n": len(idx)}

    M.patient_bootstrap(stat, y, pid, n_boot=30, seed=0)
    for idx in seen:
        assert idx.count(0) == idx.count(1)  # patient a's two images together
        assert idx.count(3) == idx.count(4) >= 1  # patient c is the only pneumonia patient


def test_bacterial_vs_viral_intervals():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40), np.ones(40), np.full(40, 2)].astype(int)
    p = rng.dirichlet([1, 1, 1], 120)
    p[y == 2, 2] += 1.0
    p /= p.sum(axis=1, keepdims=True)
    ci = M.bacterial_vs_viral_intervals(y, p, 0.5, np.arange(120), n_boot=100)
    auc = M.bacterial_vs_viral(y, p, 0.5)["roc_auc"]
    assert ci["roc_auc"][0] < auc < ci["roc_auc"][1]


def test_label_shift_em_recovers_a_new_prior():
    # a calibrated model at prior 0.5 meets a site with 20% pneumonia
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.2).astype(int)
    x = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0)
    logit = 2 * x  # log N(x | 1, 1) - log N(x | -1, 1): the log-likelihood ratio
    p = 1 / (1 + np.exp(-logit))  # posterior at prior 0.5
    prior, adjusted = M.estimate_prior(p, 0.5)
    assert abs(prior - 0.2) < 0.03
    assert np.mean(adjusted) == pytest.approx(prior, abs=1e-4)
    # the adjusted probabilities are the true posteriors at 20%
    truth = 1 / (1 + np.exp(-(logit + np.log(0.2 / 0.8))))
    np.testing.assert_allclose(adjusted, truth, atol=0.02)
    assert np.all(np.argsort(adjusted) == np.argsort(p))  # the ranking does not change


def test_adjust_to_prior_three_classes():
    p = np.array([[0.5, 0.3, 0.2]])
    out = M.adjust_to_prior(p, [0.5, 0.25, 0.25], [1 / 3] * 3)
    np.testing.assert_allclose(out.sum(axis=1), 1)
    assert out[0, 0] > p[0, 0]
    np.testing.assert_allclose(M.adjust_to_prior(p, [1 / 3] * 3, [1 / 3] * 3), p)
