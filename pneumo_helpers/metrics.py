"""Operating points and metrics, for both tasks.

Pneumonia vs normal: the threshold is chosen on validation data for a target
recall, then applied unchanged to every other set. Normal / bacterial / viral
(softmax over :data:`info.TYPES`) is read three ways: three classes,
bacterial vs viral on the pneumonia cases, and pneumonia vs normal from
``p(bacteria) + p(virus)``. Bootstrap intervals resample **patients**, not
images: a patient's images are not independent.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from .info import TYPES


def check_binary(y_true, y_score):
    """Labels (0/1) and scores as flat arrays of equal length, both classes present."""
    y_true = np.asarray(y_true).astype(int).ravel()
    y_score = np.asarray(y_score, dtype=float).ravel()
    if y_true.shape != y_score.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_score)} scores")
    if len(np.unique(y_true)) != 2:
        raise ValueError("need both classes (normal and pneumonia) to compute these metrics")
    return y_true, y_score


def check_three_class(y_true, probs):
    """Labels (0/1/2) and ``(n, 3)`` probabilities, all three classes present."""
    y_true = np.asarray(y_true).astype(int).ravel()
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != 3:
        raise ValueError(f"need probabilities of shape (n, 3), got {probs.shape}")
    if len(y_true) != len(probs):
        raise ValueError(f"{len(y_true)} labels but {len(probs)} probability rows")
    missing = [TYPES[c] for c in range(3) if not (y_true == c).any()]
    if missing:
        raise ValueError(f"need all three classes to compute these metrics; missing: "
                         f"{', '.join(missing)}")
    return y_true, probs


# ------------------------------------------------------------ operating points

def threshold_for_recall(y_true, y_score, target_recall: float = 0.98) -> float:
    """The highest threshold whose recall (sensitivity) reaches ``target_recall``:
    the most specific operating point that still catches that share of pneumonia."""
    if not 0 < target_recall <= 1:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    y_true, y_score = check_binary(y_true, y_score)
    _, tpr, thresholds = skm.roc_curve(y_true, y_score, drop_intermediate=False)
    i = int(np.argmax(tpr >= target_recall - 1e-12))
    return float(min(thresholds[i], 1.0))


def youden_threshold(y_true, y_score) -> float:
    """The threshold that maximises sensitivity + specificity (Youden's J)."""
    y_true, y_score = check_binary(y_true, y_score)
    fpr, tpr, thresholds = skm.roc_curve(y_true, y_score, drop_intermediate=False)
    return float(min(thresholds[int(np.argmax(tpr - fpr))], 1.0))


# ----------------------------------------------------------------- read-outs

def pneumonia_score(probs) -> np.ndarray:
    """p(pneumonia): the score itself for a sigmoid output, ``p(bacteria) + p(virus)``
    for ``(n, 3)`` softmax probabilities."""
    probs = np.asarray(probs, dtype=float)
    return probs[:, 1:].sum(axis=1) if probs.ndim == 2 and probs.shape[1] > 1 else probs.ravel()


def viral_score(probs) -> np.ndarray:
    """p(virus) / (p(bacteria) + p(virus)): viral rather than bacterial, given pneumonia."""
    probs = np.asarray(probs, dtype=float)
    return probs[:, 2] / np.maximum(probs[:, 1] + probs[:, 2], 1e-12)


# ------------------------------------------------------------------- metrics

def binary_metrics(y_true, y_score, threshold: float = 0.5) -> dict:
    """ROC AUC, PR AUC and the confusion-matrix figures at ``threshold``
    (score >= threshold means pneumonia)."""
    y_true, y_score = check_binary(y_true, y_score)
    y_pred = (y_score >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel())

    def div(a, b):
        return float(a / b) if b else 0.0

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


def bacterial_vs_viral(y_true, probs, threshold: float = 0.5) -> dict:
    """Bacterial vs viral on the pneumonia cases alone, viral as positive
    (sensitivity = recall on viral, specificity = recall on bacterial)."""
    y_true, probs = check_three_class(y_true, probs)
    pneu = y_true > 0
    m = binary_metrics(y_true[pneu] == 2, viral_score(probs)[pneu], threshold)
    return {"roc_auc": m["roc_auc"], "threshold": m["threshold"], "accuracy": m["accuracy"],
            "sensitivity": m["recall"], "specificity": m["specificity"],
            "n_bacteria": int((y_true == 1).sum()), "n_virus": int((y_true == 2).sum()),
            "positive": "virus"}


def three_class_metrics(y_true, probs) -> dict:
    """Each image given its most probable class: ``accuracy``, ``macro_recall``
    (balanced accuracy), ``macro_roc_auc`` (one-vs-rest, unweighted mean),
    ``per_class`` (recall, precision, f1, one-vs-rest roc_auc, support) and
    ``confusion`` (3x3 counts, rows truth, columns prediction, ``labels`` order)."""
    y_true, probs = check_three_class(y_true, probs)
    pred = probs.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, pred, labels=[0, 1, 2], zero_division=0)
    per_class = {
        name: {"recall": float(recall[c]), "precision": float(precision[c]), "f1": float(f1[c]),
               "roc_auc": float(skm.roc_auc_score(y_true == c, probs[:, c])),
               "support": int(support[c])}
        for c, name in enumerate(TYPES)}
    return {
        "accuracy": float(np.mean(pred == y_true)),
        "macro_recall": float(np.mean(recall)),
        "macro_roc_auc": float(np.mean([per_class[n]["roc_auc"] for n in TYPES])),
        "per_class": per_class,
        "labels": list(TYPES),
        "confusion": skm.confusion_matrix(y_true, pred, labels=[0, 1, 2]).tolist(),
    }


# ----------------------------------------------------- bootstrap by patient

def patient_bootstrap(stat, y_true, patients, n_boot: int = 1000, seed: int = 42,
                      level: float = 0.95) -> dict:
    """Percentile bootstrap intervals of ``stat(indices) -> {name: value}``,
    resampling **patients** with replacement (all images of a drawn patient
    come along), stratified by each patient's class (``y_true > 0``, so
    every resample has normal and pneumonia patients). Returns
    ``{name: [low, high]}``."""
    y = np.asarray(y_true).astype(int).ravel() > 0
    patients = np.asarray(patients)
    if len(patients) != len(y):
        raise ValueError(f"{len(y)} labels but {len(patients)} patient ids")
    codes = np.unique(patients, return_inverse=True)[1]
    order = np.argsort(codes, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(codes))[:-1])
    pneumonia_patient = np.array([y[m].any() for m in members])
    strata = [np.flatnonzero(pneumonia_patient == flag) for flag in (False, True)]
    rng = np.random.default_rng(seed)
    draws: dict[str, list] = {}
    for _ in range(n_boot):
        chosen = np.concatenate([rng.choice(s, len(s)) for s in strata if len(s)])
        idx = np.concatenate([members[c] for c in chosen])
        for k, v in stat(idx).items():
            draws.setdefault(k, []).append(v)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return {k: [float(np.nanpercentile(v, lo)), float(np.nanpercentile(v, hi))]
            for k, v in draws.items()}


def binary_intervals(y_true, y_score, threshold: float, patients, n_boot: int = 1000,
                     seed: int = 42) -> dict:
    """Patient-bootstrap intervals for ROC AUC, recall and specificity at ``threshold``."""
    y_true, y_score = check_binary(y_true, y_score)

    def stat(i):
        y, s = y_true[i], y_score[i]
        return {"roc_auc": skm.roc_auc_score(y, s), "recall": np.mean(s[y == 1] >= threshold),
                "specificity": np.mean(s[y == 0] < threshold)}

    return patient_bootstrap(stat, y_true, patients, n_boot, seed)


def bacterial_vs_viral_intervals(y_true, probs, threshold: float, patients,
                                 n_boot: int = 1000, seed: int = 42) -> dict:
    """Patient-bootstrap intervals for bacterial vs viral ROC AUC, sensitivity
    and specificity (on the pneumonia cases of each resample)."""
    y_true, probs = check_three_class(y_true, probs)
    score = viral_score(probs)

    def stat(i):
        i = i[y_true[i] > 0]
        viral, s = y_true[i] == 2, score[i]
        if viral.all() or not viral.any():
            return {"roc_auc": np.nan, "sensitivity": np.nan, "specificity": np.nan}
        return {"roc_auc": skm.roc_auc_score(viral, s),
                "sensitivity": np.mean(s[viral] >= threshold),
                "specificity": np.mean(s[~viral] < threshold)}

    return patient_bootstrap(stat, y_true, patients, n_boot, seed)


# ------------------------------------------------------------------ in words

def in_words(m: dict) -> str:
    """Pneumonia-vs-normal figures (a :func:`binary_metrics` dict) in plain words."""
    c = m["confusion"]
    return (f"missed {c['fn']} of {c['fn'] + c['tp']} pneumonia cases; "
            f"{c['fp']} of {c['tn'] + c['fp']} healthy children flagged "
            f"(recall {m['recall']:.3f}, specificity {m['specificity']:.3f}, "
            f"ROC AUC {m['roc_auc']:.3f}, threshold {m['threshold']:.3f})")


def per_hundred(m) -> str:
    """The operating point as a clinician reads it: of 100 children with
    pneumonia, how many are missed; of 100 healthy ones, how many are flagged.
    ``m`` holds ``recall`` and ``specificity``."""
    missed = round(100 * (1 - float(m["recall"])))
    flagged = round(100 * (1 - float(m["specificity"])))
    return (f"of 100 children with pneumonia, {missed} {'is' if missed == 1 else 'are'} missed; "
            f"of 100 healthy children, {flagged} {'is' if flagged == 1 else 'are'} flagged")


def predictive_values(recall: float, specificity: float, prevalence: float) -> tuple:
    """Positive and negative predictive values at ``prevalence`` (Bayes' rule)."""
    tp, fn = recall * prevalence, (1 - recall) * prevalence
    fp, tn = (1 - specificity) * (1 - prevalence), specificity * (1 - prevalence)
    return (tp / (tp + fp) if tp + fp else float("nan"),
            tn / (tn + fn) if tn + fn else float("nan"))


def three_class_in_words(three: dict, bv: dict) -> str:
    """The three-class and bacterial-vs-viral figures in one line."""
    recalls = ", ".join(f"{n} {three['per_class'][n]['recall']:.3f}" for n in TYPES)
    return (f"accuracy {three['accuracy']:.3f}, macro ROC AUC {three['macro_roc_auc']:.3f}; "
            f"recall {recalls}; bacterial vs viral ROC AUC {bv['roc_auc']:.3f}, "
            f"sensitivity {bv['sensitivity']:.3f}, specificity {bv['specificity']:.3f}")


# ------------------------------------------------------------ label shift

def adjust_to_prior(probs, new_prior, train_prior):
    """Posterior probabilities rescaled from the class prior a model was
    trained under to ``new_prior`` (Bayes' rule; Saerens et al. 2002).
    ``probs``: ``(n,)`` pneumonia probabilities or ``(n, k)`` class
    probabilities; priors as a float (pneumonia share) or a length-k vector."""
    probs = np.asarray(probs, dtype=float)
    binary = probs.ndim == 1
    p = np.stack([1 - probs, probs], axis=1) if binary else probs
    new = np.atleast_1d(new_prior).astype(float)
    old = np.atleast_1d(train_prior).astype(float)
    if binary:
        new, old = np.r_[1 - new[0], new[0]], np.r_[1 - old[0], old[0]]
    w = p * (new / old)
    w /= w.sum(axis=1, keepdims=True)
    return w[:, 1] if binary else w


def estimate_prior(probs, train_prior, tol: float = 1e-6, max_iter: int = 1000):
    """The class prior of a new set of images, estimated from the model's
    probabilities alone by expectation-maximisation (Saerens, Latinne and
    Decaestecker, Neural Computation 2002), and the probabilities adjusted to
    it. No labels are used. ``train_prior``: the prior the model's
    probabilities assume (0.5 for models trained with balanced class
    weights). Returns ``(prior, adjusted_probs)``."""
    probs = np.asarray(probs, dtype=float)
    prior = np.asarray(train_prior, dtype=float)
    for _ in range(max_iter):
        adjusted = adjust_to_prior(probs, prior, train_prior)
        new = adjusted.mean(axis=0)
        if np.max(np.abs(new - prior)) < tol:
            prior = new
            break
        prior = new
    return (float(prior) if np.ndim(prior) == 0 else prior), adjust_to_prior(probs, prior,
                                                                             train_prior)
