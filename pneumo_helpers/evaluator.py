"""One evaluator for every model and both tasks.

:func:`validation_instruments` gives everything a model is selected on, from
validation patients alone: the plain validation metrics at the operating
points chosen there, the **counter-framed** validation subset (see
``framing``), the **stress test** of validation images, and, for the record,
Kaggle's 16 ``val`` images (``sanity``: drawn like the official test split,
too few to choose on). :func:`evaluate_test` is the single look at ``test``,
with patient-bootstrap intervals. :func:`comparison_row` flattens both into
one row of a comparison table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import framing
from .metrics import binary_metrics, pneumonia_score
from .stress import VIEWS, stress_table
from .training import TrainedModel, predict


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


def validation_instruments(trained: TrainedModel, data, tta=None, stress: bool = True,
                           views: dict = VIEWS) -> dict:
    """``validation``, ``counter_framed``, ``stress`` (a table, one row per
    view) and ``sanity`` (pneumonia vs normal on Kaggle's 16 ``val`` images,
    when present) for a trained model, all at its validation thresholds."""
    out = {"validation": trained.validation,
           "counter_framed": counter_framed_metrics(data, trained.val_scores,
                                                    trained.thresholds)}
    if stress:
        out["stress"] = stress_table(trained.model, data.dataset("validation"),
                                     data.labels("validation"), data.task, trained.thresholds,
                                     tta, views)
    if len(data.subset("sanity")) and data.subset("sanity")["label"].nunique() == 2:
        scores, _ = predict(trained.model, data.dataset("sanity"), tta)
        out["sanity"] = binary_metrics(data.labels("sanity") > 0, pneumonia_score(scores),
                                       trained.thresholds["pneumonia"])
    return out


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
    if "sanity" in instruments:
        s = instruments["sanity"]
        row.update({"sanity_auc": s["roc_auc"], "sanity_specificity": s["specificity"]})
    if test is not None:
        row.update({f"test_{k}": v for k, v in task.key_figures(test["metrics"]).items()})
    if timing:
        row.update({k: timing[k] for k in ("epochs_run", "train_seconds") if k in timing})
    return row


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
