"""Named recipes (a model and how it is trained), training over several
seeds, and seed ensembles. The final notebook trains one recipe; chapter 07
compares them, each over several seeds, on the validation instruments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd

from . import models
from .augment import TTA_FRAMES, tta_transforms
from .training import TrainedModel, set_seed, train


@dataclass(frozen=True)
class Recipe:
    """A model builder's options and the training schedule that goes with it."""

    name: str
    description: str
    model: dict = field(default_factory=dict)  # keyword arguments of models.robust_cnn
    learning_rate: float = 0.002
    tta_frames: tuple = TTA_FRAMES  # test-time views (zoom, shift_x, shift_y); () for none

    def build(self, image_size: int, task, seed: int) -> keras.Model:
        return models.robust_cnn(image_size, task=task, seed=seed, name=f"{self.name}_seed{seed}",
                                 **self.model)

    def tta(self):
        """The test-time augmentation transforms (``None`` without)."""
        return tta_transforms(self.tta_frames) if self.tta_frames else None


# test-time views that zoom out and shift, but never zoom in (zooming in frames a
# normal chest the way pneumonia images are framed in the training data)
TTA_ZOOM_OUT = ((0.8, 0.0, 0.0), (0.9, 0.0, 0.0), (1.0, -0.05, 0.0), (1.0, 0.05, 0.0))


RECIPES = {r.name: r for r in [
    Recipe("robust_cnn", "the recipe of the first blind evaluation: random reframing, aspect, "
           "gamma and sharpness augmentation, per-image standardisation, test-time views"),
    Recipe("equalized", "robust_cnn on histogram-equalised images (exposure curves removed)",
           model=dict(equalize=True)),
    Recipe("equalized_tta_out", "equalized, with test-time views that zoom out but never in",
           model=dict(equalize=True), tta_frames=TTA_ZOOM_OUT),
    Recipe("equalized_deep", "equalized, two convolutions per block",
           model=dict(equalize=True, convs_per_block=2)),
    Recipe("equalized_deep_tta_out", "equalized_deep, with test-time views that zoom out but "
           "never in", model=dict(equalize=True, convs_per_block=2), tta_frames=TTA_ZOOM_OUT),
    Recipe("equalized_body_crop", "equalized, each image first cropped to the body's width",
           model=dict(equalize=True, body_crop=True)),
    Recipe("equalized_no_augment", "histogram equalisation, no random augmentation and no "
           "test-time views (chapter 04's unaugmented steps ranked the counter-framed subset best)",
           model=dict(equalize=True, augment="none"), tta_frames=()),
    Recipe("zoom_0.7_2.0", "robust_cnn with random zoom up to 2x (crops of a quarter of the "
           "image)", model=dict(zoom=(0.7, 2.0))),
]}
DEFAULT_RECIPE = "equalized_tta_out"  # chosen in chapter 07 on validation instruments


def get_recipe(name: str | Recipe) -> Recipe:
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(map(repr, RECIPES))}, got {name!r}")
    return RECIPES[name]


def fit_recipe(recipe, data, seed: int, epochs: int = 15, target_recall: float = 0.98,
               learning_rate: float | None = None, patience: int = 6,
               verbose=0, strategy=None) -> TrainedModel:
    """Train ``recipe`` on ``data`` with training seed ``seed`` (weights,
    augmentation and shuffling; the patient split is ``data``'s), early
    stopping and operating points on validation. With a ``tf.distribute``
    ``strategy``, the model is built in its scope (see ``distribute``)."""
    from .distribute import scope

    recipe = get_recipe(recipe)
    set_seed(seed)
    with scope(strategy):
        model = recipe.build(data.image_size, data.task, seed)
    trained = train(f"{recipe.name} seed {seed}", model, data, epochs=epochs,
                    learning_rate=learning_rate or recipe.learning_rate,
                    target_recall=target_recall, lr_schedule=True, patience=patience,
                    verbose=verbose, tta=recipe.tta(), strategy=strategy, shuffle_seed=seed)
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


# ------------------------------------------------------------- comparing recipes

def _cache_key(name, data, seed, epochs, target_recall) -> dict:
    from .. import __version__

    return {"package_version": __version__, "recipe": repr(get_recipe(name)), "seed": seed,
            "epochs": epochs, "target_recall": target_recall,
            "image_size": data.image_size, "batch_size": data.batch_size, "split_seed": data.seed,
            "task": data.task.name, "n_train": int((data.table["subset"] == "train").sum()),
            "n_validation": int((data.table["subset"] == "validation").sum())}


def _to_json(scores: dict) -> dict:
    return {k: (_to_json(v) if isinstance(v, dict) else np.asarray(v).tolist())
            for k, v in scores.items()}


def _from_json(scores: dict) -> dict:
    return {k: (_from_json(v) if isinstance(v, dict) else np.asarray(v))
            for k, v in scores.items()}


def scored_training(name, data, seed: int, epochs: int = 15, target_recall: float = 0.98,
                    cache_dir=None, trained_models: dict | None = None) -> dict:
    """Train recipe ``name`` with ``seed`` and score it on every instrument:
    ``{"scores": evaluator.model_scores(...), "thresholds", "timing"}``. With
    ``cache_dir``, the result (scores and figures, not the model) is kept in
    ``<cache_dir>/<recipe>/seed<seed>.json`` and reused when the recipe, seed,
    data and parameters match. ``trained_models`` (a dict) keeps the fitted
    models of this session, so that recipes differing only in their
    test-time views share one training."""
    import json
    from pathlib import Path

    from ..evaluation import instruments as evaluator
    from .training import choose_on_validation

    key = _cache_key(name, data, seed, epochs, target_recall)
    path = Path(cache_dir) / name / f"seed{seed}.json" if cache_dir else None
    if path is not None and path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return {"scores": _from_json(cached["scores"]), "thresholds": cached["thresholds"],
                    "timing": cached["timing"]}
    recipe = get_recipe(name)
    same_model = (repr(sorted(recipe.model.items())), recipe.learning_rate, seed, epochs)
    if trained_models is not None and same_model in trained_models:
        fitted = trained_models[same_model]
        trained = choose_on_validation(name, fitted.model, data, target_recall, recipe.tta(),
                                       fitted.history, fitted.timing)
    else:
        trained = fit_recipe(name, data, seed, epochs=epochs, target_recall=target_recall)
        if trained_models is not None:
            trained_models[same_model] = trained
    out = {"scores": evaluator.model_scores(trained, data, recipe.tta()),
           "thresholds": trained.thresholds, "timing": trained.timing}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key, "scores": _to_json(out["scores"]),
                                    "thresholds": out["thresholds"], "timing": out["timing"]}))
    return out


def compare(names, data, seeds, epochs: int = 15, target_recall: float = 0.98, cache_dir=None,
            progress: bool = True) -> list[dict]:
    """Every recipe of ``names`` trained with every seed of ``seeds`` on the
    same patient split: one comparison row per training (``seed`` = the seed)
    and one for the mean of each recipe's seeds' predictions (``seed`` =
    ``"mean"``), all on the validation instruments."""
    from ..evaluation import instruments as evaluator

    seeds = list(seeds)
    labels = data.labels("validation")
    rows, trained_models = [], {}
    for name in names:
        runs = []
        for seed in seeds:
            run = scored_training(name, data, seed, epochs, target_recall, cache_dir,
                                  trained_models)
            runs.append(run)
            ins = evaluator.instruments_from_scores(data, run["scores"], run["thresholds"])
            rows.append({"recipe": name, "seed": str(seed),
                         **evaluator.comparison_row(f"{name} seed {seed}", data.task, ins,
                                                    timing=run["timing"])})
            if progress:
                r = rows[-1]
                print(f"{name}, seed {seed}: validation ROC AUC {r['val_auc']:.3f}, threshold "
                      f"{r['threshold']:.3f}, counter-framed AUC {r['cf_auc']:.3f}", flush=True)
        mean = evaluator.average_scores([r["scores"] for r in runs])
        thresholds = data.task.thresholds(labels, mean["validation"], target_recall)
        ins = evaluator.instruments_from_scores(data, mean, thresholds)
        rows.append({"recipe": name, "seed": "mean",
                     **evaluator.comparison_row(f"{name}, mean of {len(seeds)} seeds", data.task,
                                                ins)})
    return rows


SHIFT_FIGURES = ("cf_specificity", "stress_counter_exposed_specificity",
                 "stress_zoom_in_1.2_specificity")


def spread_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per recipe, over its single-seed rows of :func:`compare`: the range
    (max - min) of the threshold, validation specificity and counter-framed
    ROC AUC, and the mean of the instruments."""
    single = table[table["seed"] != "mean"]
    groups = single.groupby("recipe", sort=False)
    out = pd.DataFrame({f"{k}_range": groups[k].max() - groups[k].min()
                        for k in ("threshold", "val_specificity", "cf_auc")})
    for k in ("val_auc", "val_specificity", "cf_auc", *SHIFT_FIGURES, "stress_worst_specificity"):
        if k in single:
            out[f"{k}_mean"] = groups[k].mean()
    return out


def choose(table: pd.DataFrame, auc_margin: float = 0.002) -> str:
    """The recipe kept, on validation instruments only: among recipes whose
    mean-of-seeds model keeps the validation ROC AUC within ``auc_margin`` of
    the best, the highest mean of the three shift specificities
    (:data:`SHIFT_FIGURES`: counter-framed normal images, counter-exposed
    validation images, validation images zoomed in 1.2x, each at the
    validation threshold); ties go to the smallest spread of validation
    specificity over seeds."""
    means = table[table["seed"] == "mean"].set_index("recipe")
    eligible = means[means["val_auc"] >= means["val_auc"].max() - auc_margin]
    shift = eligible[list(SHIFT_FIGURES)].mean(axis=1).round(4)
    spread = spread_table(table)["val_specificity_range"].reindex(shift.index)
    order = sorted(shift.index, key=lambda r: (-shift[r], spread[r]))
    return order[0]
