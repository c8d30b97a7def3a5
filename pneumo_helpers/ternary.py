"""Ternary classification: normal, bacterial pneumonia, viral pneumonia.

The type comes from the file names (``bacteria`` / ``virus``, see
``data.parse_filename``) as ``type_label`` (0 normal, 1 bacteria, 2 virus).
A softmax model is trained and selected like the binary one (class weights,
early stopping on validation), and read three ways:

- **three classes**, each image given its most probable class: per-class
  recall and precision, the 3x3 confusion matrix, accuracy, and the macro
  one-vs-rest ROC AUC of the probabilities;
- **bacterial vs viral**, on the pneumonia cases alone: score
  ``p_virus / (p_bacteria + p_virus)``, viral as the positive class
  (sensitivity = recall on viral, specificity = recall on bacterial), at the
  threshold that maximises sensitivity + specificity (Youden's J) on
  validation;
- **pneumonia vs normal**: ``p(pneumonia) = p_bacteria + p_virus``, at the
  threshold chosen on validation for ``target_recall`` exactly as in the
  binary task, so the figures compare one for one with it.

Patients: a ``personNNN`` id can have both bacterial and viral images, so the
patient split stays stratified by the binary ``label`` (whole patients on one
side), never by type.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pandas as pd
from sklearn import metrics as skm

from . import metrics as M
from . import workflow
from .stress import stress_test
from .training import class_weights, compile_model, fit, predict

TYPE_LABELS = ("normal", "bacteria", "virus")

# Kermany et al. (Cell, 2018), bacterial vs viral with a pretrained InceptionV3
# (on their own test split, so a reference point, not a like-for-like comparison).
PAPER_BACTERIAL_VS_VIRAL = {"accuracy": 0.907, "sensitivity": 0.886, "specificity": 0.909,
                            "roc_auc": 0.940}


# ------------------------------------------------------------------- labels

def add_type_labels(table: pd.DataFrame, verbose: bool = True) -> pd.DataFrame:
    """A copy of ``table`` with ``type_label`` (0 normal, 1 bacteria, 2 virus)
    from its ``type`` column; pneumonia images whose name says neither
    ``bacteria`` nor ``virus`` (type ``"unknown"``) are dropped, with a note."""
    known = table["type"].isin(TYPE_LABELS)
    if not known.all():
        names = table.loc[~known, "path"].map(lambda p: str(p).rsplit("/", 1)[-1])
        note = (f"ternary task: dropped {int((~known).sum())} pneumonia image(s) whose name "
                f"gives no type (bacteria/virus), e.g. {', '.join(names.head(3))}")
        if verbose:
            print(note)
        warnings.warn(note, stacklevel=2)
    out = table[known].copy()
    out["type_label"] = out["type"].map({t: i for i, t in enumerate(TYPE_LABELS)}).astype(int)
    return out


def prepare_ternary_data(data_dir, image_size: int = 128, batch_size: int = 32, seed: int = 42,
                         max_train_images: int = 0, val_fraction: float = 0.15,
                         progress: bool = False) -> workflow.Data:
    """``workflow.prepare_data`` (patient split stratified by the binary label,
    optional class-balanced sample) with ``type_label`` as the target."""
    data = workflow.prepare_data(data_dir, image_size, batch_size, seed, max_train_images,
                                 val_fraction, label_column="type_label", progress=progress)
    data.table = add_type_labels(data.table)
    return data


def type_counts(data: workflow.Data) -> dict:
    """Images per subset and type: ``{subset: {normal: n, bacteria: n, virus: n}}``."""
    c = data.table.groupby(["subset", "type"]).size()
    return {s: {t: int(c[s].get(t, 0)) for t in TYPE_LABELS}
            for s in c.index.levels[0] if s in c}


# ------------------------------------------------------------------ metrics

def pneumonia_score(probs) -> np.ndarray:
    """p(pneumonia) = p(bacteria) + p(virus)."""
    probs = np.asarray(probs, dtype=float)
    return probs[:, 1] + probs[:, 2]


def viral_score(probs) -> np.ndarray:
    """p(virus) / (p(bacteria) + p(virus)): viral rather than bacterial, given pneumonia."""
    probs = np.asarray(probs, dtype=float)
    return probs[:, 2] / np.maximum(probs[:, 1] + probs[:, 2], 1e-12)


def _check3(y_true, probs):
    y_true = np.asarray(y_true).astype(int).ravel()
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != 3:
        raise ValueError(f"need probabilities of shape (n, 3), got {probs.shape}")
    if len(y_true) != len(probs):
        raise ValueError(f"{len(y_true)} labels but {len(probs)} probability rows")
    missing = [TYPE_LABELS[c] for c in range(3) if not (y_true == c).any()]
    if missing:
        raise ValueError(f"need all three classes to compute these metrics; missing: "
                         f"{', '.join(missing)}")
    return y_true, probs


def youden_threshold(y_true, y_score) -> float:
    """The threshold that maximises sensitivity + specificity (Youden's J)."""
    y_true, y_score = M._check(y_true, y_score)
    fpr, tpr, thresholds = skm.roc_curve(y_true, y_score, drop_intermediate=False)
    i = int(np.argmax(tpr - fpr))
    return float(min(thresholds[i], 1.0))


def choose_thresholds(y_true, probs, target_recall: float = 0.98) -> dict:
    """The two operating points, chosen on validation data:
    ``binary`` (pneumonia vs normal, the most specific threshold reaching
    ``target_recall``) and ``bacterial_vs_viral`` (Youden's J on the pneumonia
    cases)."""
    y_true, probs = _check3(y_true, probs)
    pneu = y_true > 0
    return {"binary": M.threshold_for_recall(pneu, pneumonia_score(probs), target_recall),
            "bacterial_vs_viral": youden_threshold(y_true[pneu] == 2, viral_score(probs)[pneu])}


def bacterial_vs_viral(y_true, probs, threshold: float = 0.5) -> dict:
    """Bacterial vs viral on the pneumonia cases alone, viral as positive."""
    y_true, probs = _check3(y_true, probs)
    pneu = y_true > 0
    m = M.binary_metrics(y_true[pneu] == 2, viral_score(probs)[pneu], threshold)
    return {"roc_auc": m["roc_auc"], "threshold": m["threshold"], "accuracy": m["accuracy"],
            "sensitivity": m["recall"], "specificity": m["specificity"],
            "n_bacteria": int((y_true == 1).sum()), "n_virus": int((y_true == 2).sum()),
            "positive": "virus"}


def ternary_metrics(y_true, probs, binary_threshold: float = 0.5,
                    bv_threshold: float = 0.5) -> dict:
    """All the ternary figures of softmax ``probs`` (n, 3) against ``y_true``
    (0 normal, 1 bacteria, 2 virus):

    ``accuracy``, ``macro_recall`` (balanced accuracy), ``macro_roc_auc``
    (one-vs-rest, unweighted mean over the classes), ``per_class``
    (recall, precision, f1, one-vs-rest roc_auc, support), ``confusion``
    (3x3 counts, rows truth, columns the most probable class, in ``labels``
    order), ``bacterial_vs_viral`` (see :func:`bacterial_vs_viral`, at
    ``bv_threshold``) and ``binary`` (``metrics.binary_metrics`` of
    p(pneumonia) at ``binary_threshold``: the same keys as the binary task).
    """
    y_true, probs = _check3(y_true, probs)
    pred = probs.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, pred, labels=[0, 1, 2], zero_division=0)
    per_class = {
        name: {"recall": float(recall[c]), "precision": float(precision[c]),
               "f1": float(f1[c]),
               "roc_auc": float(skm.roc_auc_score(y_true == c, probs[:, c])),
               "support": int(support[c])}
        for c, name in enumerate(TYPE_LABELS)}
    return {
        "accuracy": float(np.mean(pred == y_true)),
        "macro_recall": float(np.mean(recall)),
        "macro_roc_auc": float(np.mean([per_class[n]["roc_auc"] for n in TYPE_LABELS])),
        "per_class": per_class,
        "labels": list(TYPE_LABELS),
        "confusion": skm.confusion_matrix(y_true, pred, labels=[0, 1, 2]).tolist(),
        "bacterial_vs_viral": bacterial_vs_viral(y_true, probs, bv_threshold),
        "binary": M.binary_metrics(y_true > 0, pneumonia_score(probs), binary_threshold),
    }


def per_class_table(m: dict) -> pd.DataFrame:
    """Per-class recall, precision, f1, ROC AUC and support as a table."""
    return pd.DataFrame(m["per_class"]).T[["recall", "precision", "f1", "roc_auc", "support"]]


def paper_comparison(m: dict) -> pd.DataFrame:
    """Bacterial vs viral here next to the dataset paper's figures."""
    bv = m["bacterial_vs_viral"]
    keys = ("accuracy", "sensitivity", "specificity", "roc_auc")
    return pd.DataFrame({"this model": [bv[k] for k in keys],
                         "Kermany et al. 2018 (InceptionV3)":
                         [PAPER_BACTERIAL_VS_VIRAL[k] for k in keys]}, index=list(keys))


def describe_ternary(m: dict) -> str:
    """The ternary figures in one line."""
    pc, bv = m["per_class"], m["bacterial_vs_viral"]
    recalls = ", ".join(f"{n} {pc[n]['recall']:.3f}" for n in TYPE_LABELS)
    return (f"accuracy {m['accuracy']:.3f}, macro ROC AUC {m['macro_roc_auc']:.3f}; "
            f"recall {recalls}; bacterial vs viral ROC AUC {bv['roc_auc']:.3f}, "
            f"sensitivity {bv['sensitivity']:.3f}, specificity {bv['specificity']:.3f}")


# ------------------------------------------------------- train and evaluate

def train_ternary(name: str, model: keras.Model, data: workflow.Data, epochs: int = 20,
                  learning_rate: float = 1e-3, optimizer: str = "adam", balance: bool = True,
                  target_recall: float = 0.98, patience: int = 5, monitor: str = "val_loss",
                  verbose="auto", tta=None, lr_schedule: bool = False) -> workflow.Result:
    """Like ``workflow.train_binary``, for a softmax model over normal /
    bacteria / virus (``data.label_column == "type_label"``): sparse categorical
    cross-entropy, 'balanced' class weights, early stopping on ``monitor``
    (``val_loss`` or ``val_accuracy``) restoring the best epoch; then both
    operating points (:func:`choose_thresholds`) and all the figures on
    validation. ``val_scores`` holds the (n, 3) probabilities."""
    from .training import cosine_schedule

    if data.label_column != "type_label":
        raise ValueError(f"train_ternary needs data with label_column='type_label', "
                         f"got {data.label_column!r} (use prepare_ternary_data)")
    y_train = data.labels("train")
    lr = learning_rate
    if lr_schedule:
        steps = int(np.ceil(len(y_train) / data.batch_size))
        lr = cosine_schedule(learning_rate, epochs, steps)
    compile_model(model, lr, optimizer, n_classes=3)
    history, timing = fit(model, data.dataset("train"), data.dataset("validation"), epochs,
                          n_train=len(y_train),
                          class_weight=class_weights(y_train) if balance else None,
                          monitor=monitor, patience=patience, verbose=verbose)
    probs, _ = predict(model, data.dataset("validation"), tta)
    y_val = data.labels("validation")
    t = choose_thresholds(y_val, probs, target_recall)
    return workflow.Result(name, model, history.history, timing,
                           ternary_metrics(y_val, probs, t["binary"], t["bacterial_vs_viral"]),
                           val_scores=probs)


def evaluate_ternary_test(result: workflow.Result, data: workflow.Data, tta=None,
                          stress_images=None) -> workflow.Result:
    """The single look at ``test``, at both thresholds chosen on validation;
    with ``stress_images`` (the test images as an array), the framing stress
    test of the pneumonia-vs-normal read-out."""
    probs, speed = predict(result.model, data.dataset("test"), tta)
    result.test_scores = probs
    result.timing["predict_images_per_second"] = speed
    v = result.validation
    result.test = ternary_metrics(data.labels("test"), probs, v["binary"]["threshold"],
                                  v["bacterial_vs_viral"]["threshold"])
    if stress_images is not None:
        def scorer(batch):
            return pneumonia_score(predict(result.model,
                                           workflow._batches(batch, data.batch_size), tta)[0])
        result.stress = stress_test(scorer, stress_images, (data.labels("test") > 0).astype(int),
                                    v["binary"]["threshold"])
    return result


def ternary_row(result: workflow.Result) -> dict:
    """One line of a comparison table for a ternary model."""
    r = {"model": result.name, "params": result.model.count_params(),
         "epochs": result.timing.get("epochs_run"), "train_s": result.timing.get("train_seconds")}
    for block, m in (("val", result.validation), ("test", result.test)):
        if m:
            r.update({f"{block}_accuracy": m["accuracy"], f"{block}_macro_auc": m["macro_roc_auc"],
                      f"{block}_bv_auc": m["bacterial_vs_viral"]["roc_auc"],
                      f"{block}_auc": m["binary"]["roc_auc"],
                      f"{block}_recall": m["binary"]["recall"],
                      f"{block}_specificity": m["binary"]["specificity"]})
    return r


def ternary_metrics_document(params: dict, data: workflow.Data, result: workflow.Result,
                             n_boot: int = 1000) -> dict:
    """What ``metrics.json`` holds in ternary mode: ``params``, ``data``
    (images per subset and type), ``validation`` and ``test`` (the ternary
    figures of :func:`ternary_metrics`, each with its ``binary`` block of the
    pneumonia-vs-normal figures, as in binary mode), ``timing``, and
    ``stress_test`` when it was run. ``test.binary.ci95`` and
    ``test.bacterial_vs_viral.ci95`` are stratified bootstrap intervals."""
    y, probs = data.labels("test"), result.test_scores
    test = dict(result.test)
    test["binary"] = dict(test["binary"])
    test["binary"]["ci95"] = M.bootstrap_intervals(
        y > 0, pneumonia_score(probs), test["binary"]["threshold"], n_boot=n_boot,
        seed=data.seed)
    pneu = y > 0
    test["bacterial_vs_viral"] = dict(test["bacterial_vs_viral"])
    ci = M.bootstrap_intervals(y[pneu] == 2, viral_score(probs)[pneu],
                               test["bacterial_vs_viral"]["threshold"], n_boot=n_boot,
                               seed=data.seed)
    test["bacterial_vs_viral"]["ci95"] = {"roc_auc": ci["roc_auc"],
                                          "sensitivity": ci["recall"],
                                          "specificity": ci["specificity"]}
    doc = {"params": params, "data": type_counts(data), "validation": result.validation,
           "test": test, "timing": workflow.timing_summary(result)}
    if result.stress is not None:
        doc["stress_test"] = result.stress.round(4).to_dict(orient="index")
    return doc
