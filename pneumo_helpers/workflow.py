"""One experiment end to end: data -> fit -> threshold on validation -> test.

The chapters call these so that each model is trained, selected and
reported the same way, and every result becomes one row of the comparison
table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd

from . import metrics as M
from .data import load_image_table
from .pipeline import make_dataset
from .splits import balanced_subset, patient_split
from .stress import stress_test
from .training import class_weights, compile_model, fit, predict


@dataclass
class Data:
    """The image table (with ``subset``) and the cached tf.data pipelines."""

    table: pd.DataFrame
    image_size: int
    batch_size: int
    seed: int
    label_column: str = "label"
    datasets: dict = field(default_factory=dict)

    def subset(self, name: str) -> pd.DataFrame:
        return self.table[self.table["subset"] == name]

    def dataset(self, name: str):
        """``train`` is shuffled each epoch; the others keep table order."""
        if name not in self.datasets:
            self.datasets[name] = make_dataset(
                self.subset(name), self.image_size, self.batch_size, shuffle=name == "train",
                seed=self.seed, label_column=self.label_column)
        return self.datasets[name]

    def labels(self, name: str) -> np.ndarray:
        return self.subset(name)[self.label_column].to_numpy()

    def counts(self) -> dict:
        c = self.table.groupby(["subset", "class_name"]).size()
        return {s: {k: int(v) for k, v in c[s].items()} for s in c.index.levels[0] if s in c}


def prepare_data(data_dir, image_size: int = 128, batch_size: int = 32, seed: int = 42,
                 max_train_images: int = 0, val_fraction: float = 0.15,
                 label_column: str = "label", progress: bool = False) -> Data:
    """Load and check every image, split ``train`` by patient, and optionally
    keep a class-balanced sample of at most ``max_train_images`` training
    images (and proportionally fewer validation and test images) for quick runs."""
    table = patient_split(load_image_table(data_dir, progress=progress), val_fraction, seed)
    if max_train_images:
        parts = []
        for name, part in table.groupby("subset", sort=False):
            share = max_train_images if name == "train" else max(
                20, int(max_train_images * len(part) / max(1, (table["subset"] == "train").sum())))
            parts.append(balanced_subset(part, share, seed) if name != "sanity" else part)
        table = pd.concat(parts).sort_index()
    return Data(table, image_size, batch_size, seed, label_column)


@dataclass
class Result:
    name: str
    model: keras.Model
    history: dict
    timing: dict
    validation: dict
    test: dict | None = None
    val_scores: np.ndarray | None = None
    test_scores: np.ndarray | None = None
    stress: pd.DataFrame | None = None

    def row(self) -> dict:
        """One line of the comparison table."""
        r = {"model": self.name, "params": self.model.count_params(),
             "epochs": self.timing.get("epochs_run"), "train_s": self.timing.get("train_seconds")}
        for block, m in (("val", self.validation), ("test", self.test)):
            if m:
                r.update({f"{block}_auc": m["roc_auc"], f"{block}_recall": m["recall"],
                          f"{block}_specificity": m["specificity"]})
        if self.stress is not None:
            r["stress_worst_auc"] = self.stress["roc_auc"].min()
            r["stress_worst_specificity"] = self.stress["specificity"].min()
            r["stress_worst_recall"] = self.stress["recall"].min()
        return r


def train_binary(name: str, model: keras.Model, data: Data, epochs: int = 20,
                 learning_rate: float = 1e-3, optimizer: str = "adam", balance: bool = True,
                 target_recall: float = 0.98, patience: int = 5, monitor: str = "val_auc",
                 verbose="auto", tta=None, lr_schedule: bool = False) -> Result:
    """Fit on ``train``, select the epoch and the threshold on ``validation``."""
    from .training import cosine_schedule

    y_train = data.labels("train")
    lr = learning_rate
    if lr_schedule:
        steps = int(np.ceil(len(y_train) / data.batch_size))
        lr = cosine_schedule(learning_rate, epochs, steps)
    compile_model(model, lr, optimizer)
    history, timing = fit(model, data.dataset("train"), data.dataset("validation"), epochs,
                          n_train=len(y_train),
                          class_weight=class_weights(y_train) if balance else None,
                          monitor=monitor, patience=patience, verbose=verbose)
    val_scores, _ = predict(model, data.dataset("validation"), tta)
    threshold = M.threshold_for_recall(data.labels("validation"), val_scores, target_recall)
    return Result(name, model, history.history, timing,
                  M.binary_metrics(data.labels("validation"), val_scores, threshold),
                  val_scores=val_scores)


def evaluate_test(result: Result, data: Data, tta=None, stress_images=None) -> Result:
    """The single look at ``test``: metrics at the validation threshold, and
    the framing stress test when ``stress_images`` (test images as an array)
    is given."""
    scores, speed = predict(result.model, data.dataset("test"), tta)
    result.test_scores = scores
    result.timing["predict_images_per_second"] = speed
    result.test = M.binary_metrics(data.labels("test"), scores, result.validation["threshold"])
    if stress_images is not None:
        def scorer(batch):
            return predict(result.model, _batches(batch, data.batch_size), tta)[0]
        result.stress = stress_test(scorer, stress_images, data.labels("test"),
                                    result.validation["threshold"])
    return result


def _batches(images, batch_size):
    import tensorflow as tf
    return tf.data.Dataset.from_tensor_slices(images).batch(batch_size)


def metrics_document(params: dict, data: Data, result: Result, n_boot: int = 1000) -> dict:
    """Everything ``metrics.json`` holds: params, data counts, validation and
    test metrics (with bootstrap intervals), timing, and the stress test."""
    test = dict(result.test)
    test["ci95"] = M.bootstrap_intervals(data.labels("test"), result.test_scores,
                                         test["threshold"], n_boot=n_boot, seed=data.seed)
    doc = {"params": params, "data": data.counts(), "validation": result.validation,
           "test": test, "timing": timing_summary(result)}
    if result.stress is not None:
        doc["stress_test"] = result.stress.round(4).to_dict(orient="index")
    return doc


def timing_summary(result: Result) -> dict:
    """The ``timing`` block of ``metrics.json``."""
    keys = ("train_seconds", "train_images_per_second", "predict_images_per_second",
            "epochs_run")
    return {k: result.timing[k] for k in keys if k in result.timing}


def check_output_dir(output_dir, data_dir):
    """Create ``output_dir``; refuse one inside the data folder (never written to)."""
    from pathlib import Path

    out, data = Path(output_dir).resolve(), Path(data_dir).resolve()
    if out == data or data in out.parents:
        raise ValueError(f"output_dir {out} is inside the data folder {data}; "
                         "choose a folder outside it (the data folder is only read)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def binary_view(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """Pneumonia-vs-normal labels and scores from either task: a ternary
    model.s (n, 3) probabilities give ``p(bacteria) + p(virus)`` and ``label > 0``."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    if scores.ndim == 2:
        return (labels > 0).astype(int), scores[:, 1:].sum(axis=1)
    return labels, scores
