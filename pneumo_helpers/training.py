"""Compile, fit with the usual Keras callbacks, and time the work."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight


def set_seed(seed: int) -> None:
    """Same seed, same data, same parameters: same numbers on the CPU."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def class_weights(labels) -> dict[int, float]:
    """'balanced' weights: each class counts as much as the other in the loss."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights)}


def compile_model(model: keras.Model, learning_rate=1e-3, optimizer: str = "adam",
                  n_classes: int = 1) -> keras.Model:
    opt = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}[optimizer]
    if n_classes == 1:
        loss = "binary_crossentropy"
        metrics = [keras.metrics.AUC(name="auc"), keras.metrics.Recall(name="recall"),
                   "accuracy"]
    else:
        loss = "sparse_categorical_crossentropy"
        metrics = ["accuracy"]
    model.compile(optimizer=opt(learning_rate=learning_rate), loss=loss, metrics=metrics)
    return model


def cosine_schedule(learning_rate: float, epochs: int, steps_per_epoch: int,
                    warmup_epochs: int = 1):
    """Linear warm-up then cosine decay to zero over the run."""
    total = max(1, epochs * steps_per_epoch)
    warm = min(total - 1, warmup_epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warm else learning_rate, decay_steps=total - warm,
        warmup_target=learning_rate if warm else None, warmup_steps=warm)


def fit(model: keras.Model, train_ds, val_ds, epochs: int, n_train: int, class_weight=None,
        monitor: str = "val_auc", patience: int = 5, checkpoint: str | None = None,
        verbose: int | str = "auto", callbacks=()) -> tuple[keras.callbacks.History, dict]:
    """Fit with early stopping that restores the best epoch (on validation).

    ``n_train`` is the number of training images (for the throughput figure).
    Returns the history and a timing dict (``train_seconds``,
    ``train_images_per_second``, ``epochs_run``).
    """
    mode = "min" if "loss" in monitor else "max"
    cbs = [keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience,
                                         restore_best_weights=True)]
    if checkpoint:
        cbs.append(keras.callbacks.ModelCheckpoint(checkpoint, monitor=monitor, mode=mode,
                                                   save_best_only=True))
    cbs.extend(callbacks)
    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                        class_weight=class_weight, callbacks=cbs, verbose=verbose)
    seconds = time.perf_counter() - start
    epochs_run = len(history.history["loss"])
    timing = {"train_seconds": round(seconds, 2), "epochs_run": epochs_run,
              "train_images_per_second": round(n_train * epochs_run / seconds, 2)}
    return history, timing


def predict(model: keras.Model, ds, tta=None) -> tuple[np.ndarray, float]:
    """Probabilities for every image in ``ds`` (images or (image, label) batches),
    and images per second. ``tta``: optional list of callables on image
    batches whose predictions are averaged with the plain one."""
    views = [None] + list(tta or [])
    start = time.perf_counter()
    outs = []
    for view in views:
        mapped = ds.map(lambda x, *rest: x if view is None else view(x))
        outs.append(model.predict(mapped, verbose=0))
    seconds = time.perf_counter() - start
    probs = np.mean(outs, axis=0)
    if probs.shape[-1] == 1:
        probs = probs[:, 0]
    return probs, round(len(probs) / seconds, 2)
