"""One evaluator for every model and both tasks.

:func:`validation_instruments` gives everything a model is selected on, from
validation patients alone: the plain validation metrics at the operating
points chosen there, the **counter-framed** validation subset (see
``framing``), the **stress test** of validation images (see ``stress``),
and, for the record, Kaggle's 16 ``val`` images (``sanity``: drawn like the
official test split, too few to choose on). It works from scores
(:func:`model_scores`), so the instruments of a mean of models come from
the mean of their scores (:func:`average_scores`). :func:`evaluate_test` is
the single look at ``test``, with patient-bootstrap intervals.
:func:`comparison_row` flattens them into one row of a comparison table,
:func:`seed_spread` summarises rows of several training seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import binary_metrics, pneumonia_score
from ..modeling.training import TrainedModel, predict
from . import framing
from .stress import stress_table, view_scores, views_for


def counter_framed_metrics(data, scores, thresholds: dict,
                           subset: str = "validation") -> dict:
    """The task's metrics on the counter-framed images of ``subset`` (at the
    operating points chosen on all of validation), with the image counts."""
    frame = framing.add_frame_scores(data)[(data.table["subset"] == subset).to_numpy()]
    labels = data.labels(subset)
    mask = framing.counter_framed_mask(labels, frame)
    m = data.task.metrics(labels[mask], np.asarray(scores)[mask], thresholds, partial=True)
    m["n_normal"] = int((mask & (labels == 0)).sum())
    m["n_pneumonia"] = int((mask & (labels > 0)).sum())
    return m


def model_scores(trained: TrainedModel, data, tta=None, views: dict | None = None) -> dict:
    """Everything the instruments read, as scores: ``validation`` (the
    trained model's own validation scores), ``views`` (each stress view of the
    validation images; default ``stress.views_for(data)``) and ``sanity``
    (Kaggle's 16 ``val`` images, when they hold both classes)."""
    out = {"validation": np.asarray(trained.val_scores),
           "views": view_scores(trained.model, data.dataset("validation"), tta,
                                views or views_for(data))}
    if len(data.subset("sanity")) and data.subset("sanity")["label"].nunique() == 2:
        out["sanity"] = predict(trained.model, data.dataset("sanity"), tta)[0]
    return out


def average_scores(all_scores: list[dict]) -> dict:
    """The mean of several models' :func:`model_scores`: the scores of the
    model that averages them (``models.average_model``)."""
    first = all_scores[0]
    out = {"validation": np.mean([s["validation"] for s in all_scores], axis=0),
           "views": {v: np.mean([s["views"][v] for s in all_scores], axis=0)
                     for v in first["views"]}}
    if "sanity" in first:
        out["sanity"] = np.mean([s["sanity"] for s in all_scores], axis=0)
    return out


def instruments_from_scores(data, scores: dict, thresholds: dict) -> dict:
    """``validation``, ``counter_framed``, ``stress`` (a table, one row per
    view) and ``sanity`` (pneumonia vs normal on the 16 ``val`` images), all
    at ``thresholds``, from :func:`model_scores`."""
    labels = data.labels("validation")
    out = {"validation": data.task.metrics(labels, scores["validation"], thresholds),
           "counter_framed": counter_framed_metrics(data, scores["validation"], thresholds)}
    if scores.get("views"):
        out["stress"] = stress_table(scores["views"], labels, data.task, thresholds)
    if "sanity" in scores:
        out["sanity"] = binary_metrics(data.labels("sanity") > 0,
                                       pneumonia_score(scores["sanity"]),
                                       thresholds["pneumonia"])
    return out


def validation_instruments(trained: TrainedModel, data, tta=None,
                           views: dict | None = None) -> dict:
    """:func:`instruments_from_scores` of a trained model, at its validation thresholds."""
    return instruments_from_scores(data, model_scores(trained, data, tta, views),
                                   trained.thresholds)


def scores_instruments(data, scores, target_recall: float = 0.98) -> dict:
    """``validation`` and ``counter_framed`` for validation scores that come
    from something other than a Keras model (e.g. the border-only model), at
    thresholds chosen on those scores."""
    thresholds = data.task.thresholds(data.labels("validation"), scores, target_recall)
    return instruments_from_scores(data, {"validation": scores}, thresholds)


def evaluate_test(trained: TrainedModel, data, tta=None, n_boot: int = 1000) -> dict:
    """The single look at ``test``: the task's metrics at the validation
    thresholds, with patient-bootstrap 95% intervals (``n_boot`` resamples),
    the scores and the prediction speed."""
    scores, speed = predict(trained.model, data.dataset("test"), tta)
    m = data.task.metrics(data.labels("test"), scores, trained.thresholds,
                          patients=data.patients("test"), n_boot=n_boot, seed=data.seed)
    return {"metrics": m, "scores": scores, "predict_images_per_second": speed}


def comparison_row(name: str, task, instruments: dict, test: dict | None = None,
                   timing: dict | None = None) -> dict:
    """One row of a comparison table: the key figures on validation, on the
    counter-framed subset, the worst stress view, the 16 sanity images, and
    test when given (each column prefixed by where it was measured)."""
    row = {"model": name}
    row.update({f"val_{k}": v for k, v in task.key_figures(instruments["validation"]).items()})
    row["threshold"] = instruments["validation"]["binary"]["threshold"]
    cf = instruments["counter_framed"]
    row.update({f"cf_{k}": v for k, v in task.key_figures(cf).items()})
    stress = instruments.get("stress")
    if stress is not None:
        figures = stress.drop(columns=["mean_score_normal", "mean_score_pneumonia"])
        row.update({f"stress_worst_{k}": v for k, v in figures.min().items()})
        for view in ("counter_exposed", "zoom_in_1.2"):
            if view in stress.index:
                row[f"stress_{view}_specificity"] = stress.loc[view, "specificity"]
    if "sanity" in instruments:
        s = instruments["sanity"]
        row.update({"sanity_auc": s["roc_auc"], "sanity_specificity": s["specificity"]})
    if test is not None:
        row.update({f"test_{k}": v for k, v in task.key_figures(test["metrics"]).items()})
    if timing:
        row.update({k: timing[k] for k in ("epochs_run", "train_seconds") if k in timing})
    return row


def instruments_from_document(doc: dict) -> dict:
    """The validation instruments of a run, read back from its ``metrics.json``."""
    out = {k: doc[k] for k in ("validation", "counter_framed", "sanity") if k in doc}
    if "stress" in doc:
        out["stress"] = pd.DataFrame.from_dict(doc["stress"], orient="index")
    return out


SHORT_NAMES = {  # in reading order: validation, counter-framed, stress views, sanity
    "val_auc": "AUC", "val_recall": "recall", "val_specificity": "spec", "threshold": "threshold",
    "cf_auc": "cf AUC", "cf_recall": "cf recall", "cf_specificity": "cf spec",
    "stress_counter_exposed_specificity": "exposed spec",
    "stress_zoom_in_1.2_specificity": "zoom-in spec", "stress_worst_auc": "worst-view AUC",
    "stress_worst_recall": "worst-view recall", "stress_worst_specificity": "worst-view spec",
    "sanity_auc": "sanity AUC", "sanity_specificity": "sanity spec"}


def short_table(table: pd.DataFrame, keep=("recipe", "seed")) -> pd.DataFrame:
    """The columns of :data:`SHORT_NAMES` (and ``keep``) under their short names:
    validation (``AUC``, ``spec``), counter-framed (``cf``), stress views,
    the 16 sanity images."""
    cols = [c for c in (*keep, *SHORT_NAMES) if c in table]
    return table[cols].rename(columns=SHORT_NAMES)


def comparison_table(rows: list[dict]) -> pd.DataFrame:
    """Rows of :func:`comparison_row` as a table indexed by model name."""
    return pd.DataFrame(rows).set_index("model")


SPREAD_FIGURES = ("threshold", "val_auc", "val_specificity", "cf_auc", "cf_specificity",
                  "stress_worst_specificity", "sanity_specificity", "val_accuracy", "val_bv_auc")


def seed_spread(rows: list[dict]) -> dict:
    """Rows of :func:`comparison_row`, one per training seed, and the spread of
    each figure across them: ``{"per_seed": rows, "spread": {figure: {min, max,
    mean, range}}}`` (range = max - min). A recipe whose threshold or
    specificity wanders with the seed is not finished."""
    table = pd.DataFrame(rows)
    spread = {}
    for k in SPREAD_FIGURES:
        if k in table:
            v = table[k].astype(float)
            spread[k] = {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()),
                         "range": float(v.max() - v.min())}
    return {"per_seed": rows, "spread": spread}
