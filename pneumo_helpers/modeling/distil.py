"""A fast model for big folders: one network distilled from a mean-of-seeds
model and its test-time views (issue 17, item 4).

The teacher scores every training image as it is used (its crop to the lung
fields, its views, the mean of its seeds); the student, one network of the
teacher's recipe without test-time views, is trained on the same training
images (the recipe's random augmentation on) against those scores instead
of the labels (binary cross-entropy on soft targets; no class weights: the
teacher's scores already carry its balanced classes), early stopping on
validation ROC AUC against the true labels, and gets its own operating point
on validation. It is kept only if its validation instruments hold within
:data:`TOLERANCE` of the teacher's (``benchmarks/distil.py`` measures it).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

#: how far below the teacher a kept student's validation instruments may be
TOLERANCE = 0.005


def student_recipe(recipe):
    """The teacher's recipe as one network without test-time views."""
    return replace(recipe, name=f"{recipe.name}_distilled", views=(), balance=False,
                   description=f"one network distilled from {recipe.name} (its seeds and "
                               "test-time views), no test-time views")


def teacher_scores(teacher_model, data, decode_size: int, batch_size: int = 32) -> np.ndarray:
    """The teacher's pneumonia probability for every training image, in the
    table's order (``teacher_model``: a Keras model taking decoded images, such
    as ``TrainedModel.model`` or a loaded model file's ``model``)."""
    from ..data.pipeline import batched

    # data.images keeps the table's order (data.dataset shuffles "train")
    images = batched(data.images("train", decode_size).map(lambda x, y: x), batch_size)
    return np.asarray(teacher_model.predict(images, verbose=0))[:, 0]


def distil(teacher_model, recipe, data, seed: int = 42, epochs: int = 15,
           target_recall: float = 0.98, soft=None, verbose=0):
    """Train the student of ``teacher_model`` (of ``recipe``, on ``data``'s
    split; binary task only) with seed ``seed``; a ``TrainedModel`` with its
    operating points chosen on validation and ``timing`` of its training.
    ``soft``: the teacher's training scores if already computed."""
    import tensorflow as tf

    from .training import compile_model, cosine_schedule, fit, operating_points, set_seed

    if not data.task.is_binary:
        raise ValueError("distillation is built for the binary task (one pneumonia score)")
    student = student_recipe(recipe)
    size = student.network_size(data)
    if soft is None:
        soft = teacher_scores(teacher_model, data, student.decode_size(data))
    soft = np.asarray(soft, "float32")
    n = len(soft)
    if n != len(data.labels("train")):
        raise ValueError(f"{n} teacher scores for {len(data.labels('train'))} training images")
    set_seed(seed)
    network = student.build(data.image_size, data.task, seed)
    lr = student.learning_rate
    if student.schedule:
        lr = cosine_schedule(lr, epochs, math.ceil(n / data.batch_size))
    compile_model(network, data.task, lr, student.optimizer)
    crops = data.images("train", student.decode_size(data), student.preprocess(size))
    pairs = tf.data.Dataset.zip((crops.map(lambda x, y: x),
                                 tf.data.Dataset.from_tensor_slices(soft[:, None])))
    train_ds = pairs.shuffle(n, seed=seed, reshuffle_each_iteration=True) \
        .batch(data.batch_size).prefetch(tf.data.AUTOTUNE)
    history, timing = fit(network, train_ds, student.prepared(data, "validation"), epochs, n,
                          monitor=student.monitor or data.task.monitor,
                          patience=student.patience, verbose=verbose)
    return operating_points(f"{student.name} seed {seed}", student, [network], data,
                            target_recall, history=history, timing=timing, seeds=(seed,))


#: the validation figures compared with the teacher's (higher is better for each)
COMPARED = ("val_auc", "val_specificity", "geo_worst_specificity", "sm_specificity",
            "stress_markers_specificity", "saliency_normal", "saliency_pneumonia")


def holds(student_row: dict, teacher_row: dict, tolerance: float = TOLERANCE) -> dict:
    """Per figure of :data:`COMPARED` present in both rows: the student's
    value minus the teacher's, and ``kept``: none below ``-tolerance``."""
    gaps = {k: float(student_row[k]) - float(teacher_row[k]) for k in COMPARED
            if k in student_row and k in teacher_row
            and np.isfinite(float(student_row[k])) and np.isfinite(float(teacher_row[k]))}
    return {"gaps": gaps, "kept": bool(gaps) and all(g >= -tolerance for g in gaps.values())}
