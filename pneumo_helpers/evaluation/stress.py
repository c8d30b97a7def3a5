"""A stress test: the same images zoomed out, zoomed in, shifted, blurred,
with contrast and gamma changed, and **counter-exposed**, scored at the
threshold chosen beforehand.

NORMAL and PNEUMONIA training images differ in framing, so a model can
separate them by framing alone and a holdout from the same distribution
will not show it. Re-framing validation images does: a model that looks at
the lungs keeps its ROC AUC and its operating point across these views. The
intensity views (blur, contrast, gamma) probe the same for exposure and
sharpness, which differ between X-ray machines and periods. The
counter-exposed view gives every image the intensity distribution (the
exposure and processing curve) of a training image of the *other* class: a
model that tells the classes apart by exposure, as it can in this data,
loses its specificity there. Models are selected on the stress test of
**validation** images; test is scored once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from keras import ops

from ..modeling.augment import gaussian_blur, local_contrast, reframe
from ..modeling.layers import cumulative_rank

# name -> arguments of :func:`transform`: zoom < 1 zooms out (black border),
# shifts are fractions of the width / height (positive: right / down); blur is
# a Gaussian sigma in pixels, contrast a factor about the mean, gamma a power,
# structure a factor of the contrast about the local mean (ribs, vessels and lung
# texture 20% fainter, as in the originals of Kaggle's val normals).
VIEWS = {
    "original": {},
    "zoom_out_0.8": dict(zoom=0.8),
    "zoom_out_0.65": dict(zoom=0.65),
    "zoom_in_1.2": dict(zoom=1.2),
    "shift_left": dict(shift_x=-0.1),
    "shift_right": dict(shift_x=0.1),
    "shift_up": dict(shift_y=-0.1),
    "zoom_out_shift": dict(zoom=0.8, shift_x=0.08, shift_y=0.05),
    "blur": dict(blur=1.0),
    "low_contrast": dict(contrast=0.7),
    "gamma_0.7": dict(gamma=0.7),
    "gamma_1.4": dict(gamma=1.4),
    "faint_structure": dict(structure=0.8),
}
#: The views that change framing and scale (zoom, shift): measured blind, the
#: only instruments that tracked the official test split's specificity.
GEOMETRIC = ("zoom_out_0.8", "zoom_out_0.65", "zoom_in_1.2", "shift_left", "shift_right",
             "shift_up", "zoom_out_shift")


def transform(images, zoom: float = 1.0, shift_x: float = 0.0, shift_y: float = 0.0,
              blur: float = 0.0, contrast: float = 1.0, gamma: float = 1.0,
              structure: float = 1.0):
    """One deterministic change of a batch of ``(n, h, w, 1)`` images in [0, 1]:
    reframed, blurred (sigma in pixels), contrast scaled about each image's
    mean, gamma-corrected, and structure contrast scaled about the local mean
    (``modeling.augment.local_contrast``); the result in [0, 1]."""
    x = ops.convert_to_tensor(images, dtype="float32")
    if (zoom, shift_x, shift_y) != (1.0, 0.0, 0.0):
        x = reframe(x, zoom, shift_x, shift_y)
    x = gaussian_blur(x, blur)
    if contrast != 1.0:
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        x = mean + contrast * (x - mean)
    if gamma != 1.0:
        x = ops.power(ops.clip(x, 1e-6, 1.0), gamma)
    if structure != 1.0:
        x = local_contrast(x, structure)
    return ops.clip(x, 0.0, 1.0)


EXPOSURE_LEVELS = 256  # quantiles kept per reference image


def exposure_bank(table: pd.DataFrame, image_size: int, per_class: int = 64,
                  seed: int = 0) -> np.ndarray:
    """Intensity quantile curves, ``(2, per_class, EXPOSURE_LEVELS)``, of
    ``per_class`` images of each class (row 0 normal, row 1 pneumonia) drawn
    from ``table`` (the training subset: never validation or test)."""
    from ..data.pipeline import make_dataset

    levels = np.linspace(0, 1, EXPOSURE_LEVELS)
    bank = []
    for pneumonia in (False, True):
        part = table[(table["label"] > 0) == pneumonia]
        part = part.sample(min(per_class, len(part)), random_state=seed)
        ds = make_dataset(part, image_size, batch_size=64, label_column=None, cache=False)
        curves = [np.quantile(x.reshape(len(x), -1), levels, axis=1).T
                  for x in (b.numpy() for b in ds)]
        bank.append(np.concatenate(curves))
    n = min(len(b) for b in bank)
    return np.stack([b[:n] for b in bank]).astype("float32")


def counter_exposed(bank: np.ndarray):
    """A view ``(images, labels) -> images``: each image's intensities mapped,
    rank for rank, onto the quantile curve of a training image of the other
    class (normal images get a pneumonia image's exposure and vice versa).
    Which reference image is a fixed function of the image itself, so the
    view is deterministic."""
    import tensorflow as tf

    other = tf.constant(bank[::-1])  # label 0 (normal) -> pneumonia curves, label 1 -> normal
    k = int(bank.shape[1])

    def view(x, y):
        n = tf.shape(x)[0]
        flat = tf.reshape(x, (n, -1))
        rank, _ = cumulative_rank(flat, EXPOSURE_LEVELS)
        pick = tf.cast(tf.math.floormod(tf.cast(tf.reduce_sum(flat, axis=1) * 1000, tf.int64), k),
                       tf.int32)
        side = tf.cast(tf.minimum(tf.cast(y, tf.int32), 1), tf.int32)
        curve = tf.gather_nd(other, tf.stack([side, pick], axis=1))
        level = tf.clip_by_value(tf.cast(rank * (EXPOSURE_LEVELS - 1) + 0.5, tf.int32), 0,
                                 EXPOSURE_LEVELS - 1)
        return tf.reshape(tf.gather(curve, level, batch_dims=1), tf.shape(x))

    return view


def view_images(dataset, view):
    """``dataset`` (batches of ``(image, label)``) with ``view`` applied batch
    by batch: keyword arguments of :func:`transform`, or a callable
    ``(images, labels) -> images``."""
    if callable(view):
        return dataset.map(lambda x, y, v=view: (v(x, y), y))
    return dataset.map(lambda x, y, kw=view: (transform(x, **kw), y))


def view_scores(model, dataset, views: dict = VIEWS, prepare=None, cache: dict | None = None) -> dict:
    """The model's scores on each view of ``dataset`` (batches of ``(image,
    label)``, decoded and transformed batch by batch): ``{view: scores}``.

    With ``prepare`` (a frozen model that ``model`` expects first, e.g. the
    crop to the lung fields), each view is prepared once and kept in
    ``cache`` (keyed by view and preparation), so that several models sharing
    the preparation (the seeds of a recipe) segment each image once; the
    result is what the whole model gives."""
    import tensorflow as tf

    from ..modeling.training import predict_scores

    out = {}
    for name, view in views.items():
        changed = view_images(dataset, view)
        if prepare is None:
            out[name] = predict_scores(model, changed)
            continue
        key = (name, getattr(prepare, "cache_key", prepare.name))
        if cache is None or key not in cache:
            prepared = prepare.predict(changed.map(lambda x, y: x), verbose=0)
            if cache is not None:
                cache[key] = prepared
        else:
            prepared = cache[key]
        out[name] = predict_scores(model, tf.data.Dataset.from_tensor_slices(prepared).batch(64))
    return out


def stress_table(scores: dict, labels, task, thresholds: dict) -> pd.DataFrame:
    """From :func:`view_scores`: the task's key figures on each view (ROC AUC,
    recall and specificity at the fixed pneumonia threshold; for the ternary
    task also 3-class accuracy and bacterial-vs-viral AUC) and the mean
    pneumonia score of normal and of pneumonia images."""
    from ..metrics import pneumonia_score

    labels = np.asarray(labels)
    rows = {}
    for name, s in scores.items():
        p = pneumonia_score(s)
        rows[name] = {**task.key_figures(task.metrics(labels, s, thresholds)),
                      "mean_score_normal": float(p[labels == 0].mean()),
                      "mean_score_pneumonia": float(p[labels > 0].mean())}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("view")
