"""Named recipes (a model and how it is trained), training over several
seeds, and seed ensembles. The final notebook trains one recipe; chapter 07
compares them, each over several seeds, on the validation instruments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from . import models
from .augment import tta_transforms
from .training import TrainedModel, set_seed, train


@dataclass(frozen=True)
class Recipe:
    """A model builder's options and the training schedule that goes with it."""

    name: str
    description: str
    model: dict = field(default_factory=dict)  # keyword arguments of models.robust_cnn
    learning_rate: float = 0.002
    tta: bool = True  # average predictions over a few reframed views

    def build(self, image_size: int, task, seed: int) -> keras.Model:
        return models.robust_cnn(image_size, task=task, seed=seed, name=f"{self.name}_seed{seed}",
                                 **self.model)


RECIPES = {r.name: r for r in [
    Recipe("robust_cnn", "the recipe of the first blind evaluation: random reframing, aspect, "
           "gamma and sharpness augmentation, per-image standardisation"),
]}
DEFAULT_RECIPE = "robust_cnn"


def get_recipe(name: str | Recipe) -> Recipe:
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(map(repr, RECIPES))}, got {name!r}")
    return RECIPES[name]


def fit_recipe(recipe, data, seed: int, epochs: int = 15, target_recall: float = 0.98,
               learning_rate: float | None = None, patience: int = 6,
               verbose=0) -> TrainedModel:
    """Train ``recipe`` on ``data`` with training seed ``seed`` (weights,
    augmentation and shuffling; the patient split is ``data``'s), early
    stopping and operating points on validation."""
    recipe = get_recipe(recipe)
    set_seed(seed)
    model = recipe.build(data.image_size, data.task, seed)
    trained = train(f"{recipe.name} seed {seed}", model, data, epochs=epochs,
                    learning_rate=learning_rate or recipe.learning_rate,
                    target_recall=target_recall, lr_schedule=True, patience=patience,
                    verbose=verbose, tta=tta_transforms() if recipe.tta else None)
    trained.extra["seed"] = seed
    return trained


def fit_seeds(recipe, data, seeds, progress: bool = True, **kwargs) -> list[TrainedModel]:
    """:func:`fit_recipe` once per seed; with ``progress``, one line per seed
    as it finishes (readable in JupyterLab and in papermill's saved outputs)."""
    seeds = list(seeds)
    trained = []
    for i, seed in enumerate(seeds, 1):
        t = fit_recipe(recipe, data, seed, **kwargs)
        trained.append(t)
        if progress:
            print(f"[{i}/{len(seeds)}] seed {seed}: {t.timing['epochs_run']} epochs in "
                  f"{t.timing['train_seconds']:.0f} s, validation ROC AUC "
                  f"{t.validation['binary']['roc_auc']:.3f}, threshold "
                  f"{t.thresholds['pneumonia']:.3f}", flush=True)
    return trained


def ensemble(trained: list[TrainedModel], data, target_recall: float = 0.98) -> TrainedModel:
    """The members' mean prediction as one model, its operating points chosen
    afresh on validation (on the mean of the members' validation scores);
    ``extra["members"]`` keeps the members."""
    if len(trained) == 1:
        return trained[0]
    scores = np.mean([t.val_scores for t in trained], axis=0)
    labels = data.labels("validation")
    thresholds = data.task.thresholds(labels, scores, target_recall)
    timing = {"train_seconds": round(sum(t.timing["train_seconds"] for t in trained), 2),
              "epochs_run": sum(t.timing["epochs_run"] for t in trained)}
    return TrainedModel(f"mean of {len(trained)} seeds", models.average_model([t.model for t in trained]),
                        trained[0].history, timing, thresholds, scores,
                        data.task.metrics(labels, scores, thresholds),
                        extra={"members": trained})
