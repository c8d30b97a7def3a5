"""A stress test: the same images zoomed out, zoomed in, shifted, blurred, and
with contrast and gamma changed.

NORMAL and PNEUMONIA training images differ in framing, so a model can
separate them by framing alone and a holdout from the same distribution
will not show it. Re-framing the holdout does: a model that looks at the
lungs keeps its ROC AUC and its operating point across these views. The
intensity views (blur, contrast, gamma) probe the same for exposure and
sharpness, which differ between X-ray machines and periods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from .augment import view
from .metrics import binary_metrics

# name -> arguments of augment.view: zoom < 1 zooms out (black border), shifts
# are fractions of the width / height (positive: right / down); blur is a
# Gaussian sigma in pixels, contrast a factor about the mean, gamma a power.
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


def stress_test(predict_fn, images: np.ndarray, labels: np.ndarray, threshold: float,
                views: dict = VIEWS, batch_size: int = 256) -> pd.DataFrame:
    """Metrics of ``predict_fn`` (image batch -> scores) on each view, at a
    fixed ``threshold`` chosen beforehand on validation data."""
    rows = []
    for name, kwargs in views.items():
        scores = np.concatenate([
            np.asarray(predict_fn(np.asarray(view(images[i:i + batch_size], **kwargs))))
            .reshape(-1)
            for i in range(0, len(images), batch_size)])
        m = binary_metrics(labels, scores, threshold)
        rows.append({"view": name, "roc_auc": m["roc_auc"], "recall": m["recall"],
                     "specificity": m["specificity"], "mean_score_normal":
                     float(scores[labels == 0].mean()),
                     "mean_score_pneumonia": float(scores[labels == 1].mean())})
    return pd.DataFrame(rows).set_index("view")
