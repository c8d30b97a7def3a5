"""Choosing among recipes, on validation patients only: every recipe trained
with every seed, each training and the mean of each recipe's seeds as a row
of instruments (:func:`compare`, with a cache so a rerun resumes), the spread
over seeds (:func:`seed_spread`), and the rule that keeps one (:func:`choose`).
The final notebook reads its one recipe's seeds with :func:`seed_rows`, the
code chapters 07 and 08 use for every recipe.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .instruments import average_scores, comparison_row

#: figures whose spread over seeds is reported
SPREAD_FIGURES = ("threshold", "val_auc", "val_specificity", "cf_auc", "cf_specificity",
                  "geo_worst_specificity", "stress_worst_specificity", "sm_auc",
                  "sm_specificity", "stress_markers_specificity", "saliency_normal",
                  "saliency_pneumonia", "sanity_specificity", "val_accuracy", "val_bv_auc")


def seed_rows(name: str, runs: list[dict], evaluator, target_recall: float = 0.98,
              progress: bool = False) -> tuple[list[dict], dict]:
    """The rows of one recipe's trainings and of the mean of their scores.

    ``runs``: one dict per training seed, ``{"seed", "scores"
    (Evaluator.scores), "thresholds", "timing"}``. Returns the rows (one per
    seed, ``seed`` = the seed, then ``seed`` = ``"mean"``) and the mean
    model's instruments, its operating points chosen on the mean of the
    validation scores."""
    rows = []
    for run in runs:
        ins = evaluator.instruments(run["scores"], run["thresholds"])
        rows.append({"recipe": name, "seed": str(run["seed"]),
                     **comparison_row(f"{name} seed {run['seed']}", evaluator.task, ins,
                                      timing=run.get("timing"))})
        if progress:
            r = rows[-1]
            print(f"{name}, seed {run['seed']}: validation ROC AUC {r['val_auc']:.3f}, "
                  f"threshold {r['threshold']:.3f}, worst geometric view specificity "
                  f"{r.get('geo_worst_specificity', float('nan')):.3f}", flush=True)
    mean = average_scores([r["scores"] for r in runs])
    instruments = evaluator.instruments(mean, evaluator.operating_points(mean["plain"],
                                                                         target_recall))
    label = f"{name}, mean of {len(runs)} seeds" if len(runs) > 1 else f"{name} seed {runs[0]['seed']}"
    rows.append({"recipe": name, "seed": "mean",
                 **comparison_row(label, evaluator.task, instruments)})
    return rows, instruments


def seed_spread(rows) -> pd.DataFrame:
    """Over rows of single trainings (one per seed): the ``min``, ``max``,
    ``mean`` and ``range`` (max - min) of each of :data:`SPREAD_FIGURES`
    present, one row per figure. A recipe whose threshold or specificity
    wanders with the seed is not finished."""
    table = pd.DataFrame(rows)
    stats = {}
    for k in SPREAD_FIGURES:
        if k in table and table[k].notna().any():
            v = table[k].astype(float)
            stats[k] = {"min": v.min(), "max": v.max(), "mean": v.mean(),
                        "range": v.max() - v.min()}
    return pd.DataFrame.from_dict(stats, orient="index")


def spread_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`seed_spread` per recipe of a :func:`compare` table: one row per
    recipe, columns ``<figure>_range`` and ``<figure>_mean``."""
    single = table[table["seed"] != "mean"]
    out = {}
    for recipe, rows in single.groupby("recipe", sort=False):
        s = seed_spread(rows)
        out[recipe] = {**{f"{k}_range": s.loc[k, "range"] for k in s.index},
                       **{f"{k}_mean": s.loc[k, "mean"] for k in s.index}}
    return pd.DataFrame.from_dict(out, orient="index")


# ------------------------------------------------------------------ the cache

def _cache_key(recipe, data, seed, epochs, target_recall) -> dict:
    from .. import __version__

    return {"package_version": __version__, "recipe": repr(recipe), "seed": seed,
            "epochs": epochs, "target_recall": target_recall,
            "image_size": data.image_size, "batch_size": data.batch_size, "split_seed": data.seed,
            "task": data.task.name, "n_train": len(data.subset("train")),
            "n_validation": len(data.subset("validation"))}


def _to_json(scores: dict) -> dict:
    return {k: (_to_json(v) if isinstance(v, dict) else np.asarray(v).tolist())
            for k, v in scores.items()}


def _from_json(scores: dict) -> dict:
    return {k: (_from_json(v) if isinstance(v, dict) else np.asarray(v))
            for k, v in scores.items()}


def scored_training(recipe, data, seed: int, evaluator, epochs: int = 15,
                    target_recall: float = 0.98, cache_dir=None,
                    trained_networks: dict | None = None) -> dict:
    """Train ``recipe`` with ``seed`` and score it on every instrument of
    ``evaluator``: ``{"seed", "scores", "thresholds", "timing"}``. With
    ``cache_dir``, the result (scores and figures, not the model) is kept in
    ``<cache_dir>/<recipe>/seed<seed>.json`` and reused when the recipe, seed,
    data and parameters match. ``trained_networks`` (a dict) keeps the fitted
    networks of this session, so that recipes differing only in their
    test-time views share one training."""
    from dataclasses import replace

    from ..modeling.recipes import fit_recipe, get_recipe
    from ..modeling.training import operating_points

    recipe = get_recipe(recipe)
    key = _cache_key(recipe, data, seed, epochs, target_recall)
    path = Path(cache_dir) / recipe.name / f"seed{seed}.json" if cache_dir else None
    if path is not None and path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            scores = _from_json(cached["scores"])
            if "saliency" in scores and "lung_area" not in scores:  # kept before it was measured
                scores["lung_area"] = evaluator.lung_area(recipe, recipe.network_size(data))
            return {"seed": seed, "scores": scores, "thresholds": cached["thresholds"],
                    "timing": cached["timing"]}
    same_network = repr(replace(recipe, name="", description="", views=())), seed, epochs
    if trained_networks is not None and same_network in trained_networks:
        fitted = trained_networks[same_network]
        trained = operating_points(f"{recipe.name} seed {seed}", recipe, fitted.networks, data,
                                   target_recall, history=fitted.history,
                                   timing=fitted.timing, seeds=(seed,))
    else:
        trained = fit_recipe(recipe, data, seed, epochs=epochs, target_recall=target_recall)
        if trained_networks is not None:
            trained_networks[same_network] = trained
    out = {"seed": seed, "scores": evaluator.scores(trained), "thresholds": trained.thresholds,
           "timing": trained.timing}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key, "scores": _to_json(out["scores"]),
                                    "thresholds": out["thresholds"], "timing": out["timing"]}))
    return out


def compare(names, data, seeds, evaluator=None, epochs: int = 15, target_recall: float = 0.98,
            cache_dir=None, progress: bool = True) -> list[dict]:
    """Every recipe of ``names`` trained with every seed of ``seeds`` on the
    same patient split, each as rows of :func:`seed_rows` (validation
    instruments only)."""
    from .instruments import Evaluator

    evaluator = evaluator or Evaluator(data, "validation")
    rows, trained_networks = [], {}
    for name in names:
        runs = [scored_training(name, data, seed, evaluator, epochs, target_recall, cache_dir,
                                trained_networks) for seed in seeds]
        rows += seed_rows(getattr(name, "name", name), runs, evaluator, target_recall,
                          progress)[0]
    return rows


# ------------------------------------------------------------------ the rule

SALIENCY_FLOOR = 0.6  # share of Grad-CAM inside the lungs, on both classes
MAX_SPEC_SPREAD = 0.05  # validation specificity range over seeds
AUC_MARGIN = 0.02  # validation ROC AUC below the best that a recipe may give up


def rule_table(table: pd.DataFrame, auc_margin: float = AUC_MARGIN) -> pd.DataFrame:
    """The figures :func:`choose` reads, one row per recipe (its mean-of-seeds
    row, and the spread of its single seeds): validation ROC AUC, the worst
    geometric stress view's specificity, the scale-matched subset's
    specificity, the saliency share inside the lungs (the lower of the two
    classes), the spread of validation specificity over seeds; ``eligible``
    and ``shift`` (the lower of the two shift specificities)."""
    means = table[table["seed"] == "mean"].set_index("recipe")
    spread = spread_table(table)
    out = pd.DataFrame({
        "val_auc": means["val_auc"],
        "geo_worst_specificity": means["geo_worst_specificity"],
        "sm_specificity": means["sm_specificity"],
        "saliency": means[["saliency_normal", "saliency_pneumonia"]].min(axis=1),
        "spec_spread": spread["val_specificity_range"].reindex(means.index).fillna(0.0)})
    out["shift"] = out[["geo_worst_specificity", "sm_specificity"]].min(axis=1)
    out["eligible"] = ((out["val_auc"] >= out["val_auc"].max() - auc_margin)
                       & (out["spec_spread"] <= MAX_SPEC_SPREAD))
    out["lungs_decide"] = out["saliency"] >= SALIENCY_FLOOR
    return out


def choose(table: pd.DataFrame, auc_margin: float = AUC_MARGIN) -> str:
    """The recipe kept, on validation instruments only (chapter 08).

    Among recipes whose mean-of-seeds model keeps the validation ROC AUC
    within ``auc_margin`` of the best and whose validation specificity
    varies by at most :data:`MAX_SPEC_SPREAD` over seeds, and, when any does,
    whose Grad-CAM puts at least :data:`SALIENCY_FLOOR` of its mass inside
    the lungs on both classes: the highest *shift* specificity, the lower of
    the worst geometric stress view's and the scale-matched subset's; ties go
    to the smaller spread over seeds.

    Why: measured blind, the geometric stress views were the validation
    figures that tracked the official test split, and the scale-matched
    subset asks the same question of real children (healthy ones whose lungs
    fill the frame); validation ROC AUC (0.98 and above for every recipe
    tried) did not track it (blind it stayed at 0.973 for three rounds
    whatever validation said), so a recipe may give up ``auc_margin`` of it;
    taking the lower of the two keeps a recipe that holds
    under both. The saliency share is a gate, not a score: it says whether
    the lungs decide, not how well. The counter-framed subset and the
    counter-exposed view, which read near perfect for recipes that failed
    blind, are not used."""
    rules = rule_table(table, auc_margin)
    pool = rules[rules["eligible"]]
    if pool.empty:
        pool = rules
    if pool["lungs_decide"].any():
        pool = pool[pool["lungs_decide"]]
    order = sorted(pool.index, key=lambda r: (-round(pool.loc[r, "shift"], 4),
                                              pool.loc[r, "spec_spread"]))
    return order[0]
