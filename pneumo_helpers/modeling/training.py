"""Compile, fit with the usual Keras callbacks, choose the operating points on
validation, and time the work. One path for both tasks (see ``tasks``)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from ..tasks import Task


def set_seed(seed: int) -> None:
    """Same seed, same data, same parameters: same numbers on the CPU."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def class_weights(labels) -> dict[int, float]:
    """'balanced' weights: each class counts as much as the others in the loss."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights)}


def cosine_schedule(learning_rate: float, epochs: int, steps_per_epoch: int,
                    warmup_epochs: int = 1):
    """Linear warm-up then cosine decay to zero over the run."""
    total = max(1, epochs * steps_per_epoch)
    warm = min(total - 1, warmup_epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warm else learning_rate, decay_steps=total - warm,
        warmup_target=learning_rate if warm else None, warmup_steps=warm)


def compile_model(model: keras.Model, task: Task, learning_rate=1e-3,
                  optimizer: str = "adam") -> keras.Model:
    """Compile with the task's loss and metrics. ``learning_rate`` may be a schedule."""
    optimizers = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    if optimizer not in optimizers:
        raise ValueError(f"optimizer must be one of {sorted(optimizers)}, got {optimizer!r}")
    model.compile(optimizer=optimizers[optimizer](learning_rate=learning_rate),
                  loss=task.loss(), metrics=task.compile_metrics())
    return model


def predict(model: keras.Model, ds, tta=None) -> tuple[np.ndarray, float]:
    """Probabilities for every image of ``ds`` (batches of images or of
    ``(image, label)``), and images per second. ``tta``: callables on image
    batches whose predictions are averaged with the plain one."""
    transforms = [None] + list(tta or [])
    start = time.perf_counter()
    outs = []
    for transform in transforms:
        mapped = ds.map(lambda x, *rest: x if transform is None else transform(x))
        outs.append(model.predict(mapped, verbose=0))
    seconds = time.perf_counter() - start
    probs = np.mean(outs, axis=0)
    if probs.shape[-1] == 1:
        probs = probs[:, 0]
    return probs, round(len(probs) / seconds, 2)


@dataclass
class TrainedModel:
    """A fitted model with what validation chose for it: the best epoch
    (restored), the operating points, and its validation scores and metrics."""

    name: str
    model: keras.Model
    history: dict
    timing: dict
    thresholds: dict
    val_scores: np.ndarray
    validation: dict
    extra: dict = field(default_factory=dict)


def fit(model: keras.Model, train_ds, val_ds, epochs: int, n_train: int, class_weight=None,
        monitor: str = "val_auc", patience: int = 5,
        verbose: int | str = "auto") -> tuple[keras.callbacks.History, dict]:
    """Fit with early stopping that restores the best epoch (on validation).

    ``n_train`` is the number of training images (for the throughput figure).
    Returns the history and a timing dict (``train_seconds``,
    ``train_images_per_second``, ``epochs_run``).
    """
    mode = "min" if "loss" in monitor else "max"
    stop = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience,
                                         restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                        class_weight=class_weight, callbacks=[stop], verbose=verbose)
    seconds = time.perf_counter() - start
    epochs_run = len(history.history["loss"])
    timing = {"train_seconds": round(seconds, 2), "epochs_run": epochs_run,
              "train_images_per_second": round(n_train * epochs_run / seconds, 2)}
    return history, timing


def train(name: str, model: keras.Model, data, epochs: int = 20, learning_rate: float = 1e-3,
          optimizer: str = "adam", balance: bool = True, target_recall: float = 0.98,
          patience: int = 5, monitor: str | None = None, verbose="auto", tta=None,
          lr_schedule: bool = False, strategy=None,
          shuffle_seed: int | None = None) -> TrainedModel:
    """Fit ``model`` on ``data``'s ``train`` subset for ``data.task``, stop
    early on ``monitor`` (default: the task's) restoring the best epoch, then
    choose the operating points on ``validation`` (with test-time
    augmentation ``tta`` when given) and compute the validation metrics.

    ``balance``: 'balanced' class weights; ``lr_schedule``: one warm-up epoch
    then cosine decay from ``learning_rate``; ``strategy``: a
    ``tf.distribute`` strategy whose scope the model was built in (the
    optimizer and metrics are built there too; ``data.batch_size`` is then
    the global batch, see ``distribute``); ``shuffle_seed``: the order of the
    training images (default: the split's seed)."""
    from .distribute import scope

    task = data.task
    y_train = data.labels("train")
    lr = learning_rate
    if lr_schedule:
        lr = cosine_schedule(learning_rate, epochs, math.ceil(len(y_train) / data.batch_size))
    with scope(strategy):
        compile_model(model, task, lr, optimizer)
    history, timing = fit(model, data.dataset("train", shuffle_seed), data.dataset("validation"),
                          epochs,
                          n_train=len(y_train),
                          class_weight=class_weights(y_train) if balance else None,
                          monitor=monitor or task.monitor, patience=patience, verbose=verbose)
    return choose_on_validation(name, model, data, target_recall, tta, history.history, timing)


def choose_on_validation(name: str, model: keras.Model, data, target_recall: float = 0.98,
                         tta=None, history: dict | None = None,
                         timing: dict | None = None) -> TrainedModel:
    """Score ``validation``, choose the task's operating points there, and
    compute the validation metrics at them."""
    scores, _ = predict(model, data.dataset("validation"), tta)
    labels = data.labels("validation")
    thresholds = data.task.thresholds(labels, scores, target_recall)
    return TrainedModel(name, model, history or {}, timing or {}, thresholds, scores,
                        data.task.metrics(labels, scores, thresholds))
