"""A stress test: the same images zoomed out, zoomed in, shifted, blurred, and
with contrast and gamma changed, scored at the threshold chosen beforehand.

NORMAL and PNEUMONIA training images differ in framing, so a model can
separate them by framing alone and a holdout from the same distribution
will not show it. Re-framing validation images does: a model that looks at
the lungs keeps its ROC AUC and its operating point across these views. The
intensity views (blur, contrast, gamma) probe the same for exposure and
sharpness, which differ between X-ray machines and periods. Models are
selected on the stress test of **validation** images; test is scored once.
"""

from __future__ import annotations

import pandas as pd
from keras import ops

from .augment import gaussian_blur, reframe

# name -> arguments of :func:`transform`: zoom < 1 zooms out (black border),
# shifts are fractions of the width / height (positive: right / down); blur is
# a Gaussian sigma in pixels, contrast a factor about the mean, gamma a power.
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
}


def transform(images, zoom: float = 1.0, shift_x: float = 0.0, shift_y: float = 0.0,
              blur: float = 0.0, contrast: float = 1.0, gamma: float = 1.0):
    """One deterministic change of a batch of ``(n, h, w, 1)`` images in [0, 1]:
    reframed, blurred (sigma in pixels), contrast scaled about each image's
    mean, and gamma-corrected; the result in [0, 1]."""
    x = ops.convert_to_tensor(images, dtype="float32")
    if (zoom, shift_x, shift_y) != (1.0, 0.0, 0.0):
        x = reframe(x, zoom, shift_x, shift_y)
    x = gaussian_blur(x, blur)
    if contrast != 1.0:
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        x = mean + contrast * (x - mean)
    if gamma != 1.0:
        x = ops.power(ops.clip(x, 1e-6, 1.0), gamma)
    return ops.clip(x, 0.0, 1.0)


def stress_table(model, dataset, labels, task, thresholds: dict, tta=None,
                 views: dict = VIEWS) -> pd.DataFrame:
    """The task's key figures (ROC AUC, recall and specificity at the fixed
    pneumonia threshold; for the ternary task also 3-class accuracy and
    bacterial-vs-viral AUC) and the mean pneumonia score of normal and of
    pneumonia images, on each view of ``dataset`` (batches of ``(image,
    label)``, decoded and transformed batch by batch)."""
    import numpy as np

    from .metrics import pneumonia_score
    from .training import predict

    labels = np.asarray(labels)
    rows = {}
    for name, kwargs in views.items():
        changed = dataset.map(lambda x, y, kw=kwargs: (transform(x, **kw), y))
        scores, _ = predict(model, changed, tta)
        p = pneumonia_score(scores)
        rows[name] = {**task.key_figures(task.metrics(labels, scores, thresholds)),
                      "mean_score_normal": float(p[labels == 0].mean()),
                      "mean_score_pneumonia": float(p[labels > 0].mean())}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("view")
