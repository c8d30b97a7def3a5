"""Compile, fit with the usual Keras callbacks, choose the operating points on
validation, and keep what was chosen with the model. One path for both tasks
(see ``tasks``) and every recipe (see ``recipes``)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property

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


def matched_weights(labels, covariate, bins: int = 8, clip: float = 6.0) -> np.ndarray:
    """Per-image training weights under which every class counts as much as
    the others (as :func:`class_weights`) and, within each class, ``covariate``
    has the distribution it has over all images: the images are put into
    ``bins`` bins of equal count of the covariate, and an image of class ``c``
    in bin ``b`` weighs ``n_b / (k n_cb)`` (``k`` classes). A class rare in a
    bin has its few images there weigh more, at most ``clip`` times the mean
    weight; the weights are then scaled to a mean of 1. Under them the
    covariate, binned, tells the classes apart no better than chance."""
    labels, covariate = np.asarray(labels), np.asarray(covariate, dtype=float)
    if labels.shape != covariate.shape or labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"labels and covariate must be two vectors of one length, got "
                         f"{labels.shape} and {covariate.shape}")
    edges = np.quantile(covariate, np.linspace(0, 1, bins + 1)[1:-1])
    binned = np.searchsorted(edges, covariate, side="right")
    classes = np.unique(labels)
    weights = np.zeros(len(labels))
    for b in np.unique(binned):
        in_bin = binned == b
        for c in classes:
            cell = in_bin & (labels == c)
            if cell.any():
                weights[cell] = in_bin.sum() / (len(classes) * cell.sum())
    weights = np.minimum(weights / weights.mean(), clip)
    return (weights / weights.mean()).astype("float32")


OPTIMIZERS = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}


def compile_model(model: keras.Model, task: Task, learning_rate=1e-3,
                  optimizer: str = "adam", ema: float | None = None) -> keras.Model:
    """Compile with the task's loss and metrics. ``learning_rate`` may be a
    schedule. ``ema``: the momentum of an exponential moving average of the
    weights kept by the optimizer (see :func:`fit`), or ``None``."""
    model.compile(optimizer=make_optimizer(optimizer, learning_rate, ema), loss=task.loss(),
                  metrics=task.compile_metrics())
    return model


def make_optimizer(optimizer: str = "adam", learning_rate=1e-3, ema: float | None = None):
    """The optimizer called ``optimizer`` (a key of :data:`OPTIMIZERS`), with a
    moving average of the weights of momentum ``ema`` when given."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    averaged = dict(use_ema=True, ema_momentum=ema) if ema else {}
    return OPTIMIZERS[optimizer](learning_rate=learning_rate, **averaged)


def predict_scores(model: keras.Model, ds) -> np.ndarray:
    """The model's outputs for every image of ``ds`` (batches of images or of
    ``(image, label)``): ``(n,)`` for one sigmoid, ``(n, k)`` for a softmax."""
    images = ds.map(lambda x, *rest: x)
    probs = model.predict(images, verbose=0)
    return probs[:, 0] if probs.shape[-1] == 1 else probs


def fit(model: keras.Model, train_ds, val_ds, epochs: int, n_train: int, class_weight=None,
        monitor: str = "val_auc", patience: int = 5,
        verbose: int | str = "auto") -> tuple[dict, dict]:
    """Fit with early stopping that restores the best epoch (on validation).
    With an optimizer that keeps a moving average of the weights
    (``compile_model(ema=)``), validation, the best epoch and the weights kept
    are the averaged ones.

    ``n_train`` is the number of training images (for the throughput figure).
    Returns the history and a timing dict (``train_seconds``,
    ``train_images_per_second``, ``epochs_run``).
    """
    mode = "min" if "loss" in monitor else "max"
    stop = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience,
                                         restore_best_weights=True)
    callbacks = [stop]
    if getattr(model.optimizer, "use_ema", False):  # the average in the model at each epoch's end
        callbacks = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True), stop]
    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                        class_weight=class_weight, callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - start
    epochs_run = len(history.history["loss"])
    timing = {"train_seconds": round(seconds, 2), "epochs_run": epochs_run,
              "train_images_per_second": round(n_train * epochs_run / seconds, 2)}
    return history.history, timing


@dataclass
class TrainedModel:
    """Trained networks with everything chosen for them on validation: the
    recipe they were trained with (its preprocessing and test-time views), the
    operating points, and the validation scores and metrics at them. One
    network for one training seed; several for the mean of seeds (see
    ``recipes.ensemble``), whose single-seed models are kept in ``members``."""

    name: str
    recipe: object  # recipes.Recipe
    networks: list
    thresholds: dict
    val_scores: np.ndarray
    validation: dict
    target_recall: float = 0.98  # what the pneumonia threshold was chosen for
    history: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    seeds: tuple = ()
    members: list = field(default_factory=list)

    @cached_property
    def model(self) -> keras.Model:
        """The model as it is used and saved: preprocessing, test-time views and
        the mean of the networks in one Keras model (``models.inference_model``)."""
        return self.recipe.inference_model(self.networks)

    def scores(self, ds) -> np.ndarray:
        """Scores of every image of ``ds``, through :attr:`model`."""
        return predict_scores(self.model, ds)


def operating_points(name: str, recipe, networks: list, data, target_recall: float = 0.98,
                     val_scores=None, **kwargs) -> TrainedModel:
    """Score ``validation`` (unless ``val_scores`` are given), choose the
    task's operating points there, compute the validation metrics at them, and
    return the :class:`TrainedModel` that carries them."""
    labels = data.labels("validation")
    trained = TrainedModel(name, recipe, list(networks), {}, np.empty(0), {},
                           target_recall=target_recall, **kwargs)
    if val_scores is None:
        val_scores = trained.scores(data.dataset("validation", recipe.decode_size(data)))
    trained.val_scores = np.asarray(val_scores)
    trained.thresholds = data.task.thresholds(labels, trained.val_scores, target_recall)
    trained.validation = data.task.metrics(labels, trained.val_scores, trained.thresholds)
    return trained


def fit_network(network: keras.Model, data, recipe, epochs: int, seed: int,
                learning_rate: float | None = None, strategy=None, verbose=0) -> tuple[dict, dict]:
    """Compile ``network`` with ``recipe``'s optimizer and learning rate (a
    warm-up and cosine schedule when the recipe says so; ``learning_rate``
    overrides the recipe's, e.g. scaled for several replicas) and fit it on
    ``data``'s training images, prepared by the recipe, shuffled by ``seed``,
    early stopping on validation. Returns the history and the timing."""
    from .distribute import scope

    task = data.task
    y_train = data.labels("train")
    lr = learning_rate or recipe.learning_rate
    if recipe.schedule:
        lr = cosine_schedule(lr, epochs, math.ceil(len(y_train) / data.batch_size))
    if recipe.lung_focus:
        from .lung_focus import fit_focused
        return fit_focused(network, data, recipe, epochs, seed, lr, strategy, verbose)
    with scope(strategy):
        compile_model(network, task, lr, recipe.optimizer, recipe.ema)
    train_ds = recipe.training_images(data, seed)
    val_ds = recipe.prepared(data, "validation")
    weighted = recipe.balance and not recipe.structure_balanced  # those weights balance classes
    return fit(network, train_ds, val_ds, epochs, n_train=len(y_train),
               class_weight=class_weights(y_train) if weighted else None,
               monitor=recipe.monitor or task.monitor, patience=recipe.patience, verbose=verbose)
