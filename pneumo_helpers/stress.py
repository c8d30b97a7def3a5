"""A framing stress test: the same images zoomed out, zoomed in and shifted.

NORMAL and PNEUMONIA training images differ in framing, so a model can
separate them by framing alone and a holdout from the same distribution
will not show it. Re-framing the holdout does: a model that looks at the
lungs keeps its ROC AUC and its operating point across these views.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from .augment import reframe
from .metrics import binary_metrics

# name -> (zoom, shift_x, shift_y); zoom < 1 zooms out (black border),
# shifts are fractions of the width / height (positive: right / down).
VIEWS = {
    "original": (1.0, 0.0, 0.0),
    "zoom_out_0.8": (0.8, 0.0, 0.0),
    "zoom_out_0.65": (0.65, 0.0, 0.0),
    "zoom_in_1.2": (1.2, 0.0, 0.0),
    "shift_left": (1.0, -0.1, 0.0),
    "shift_right": (1.0, 0.1, 0.0),
    "shift_up": (1.0, 0.0, -0.1),
    "zoom_out_shift": (0.8, 0.08, 0.05),
}


def stress_test(predict_fn, images: np.ndarray, labels: np.ndarray, threshold: float,
                views: dict = VIEWS, batch_size: int = 256) -> pd.DataFrame:
    """Metrics of ``predict_fn`` (image batch -> scores) on each view, at a
    fixed ``threshold`` chosen beforehand on validation data."""
    rows = []
    for name, (zoom, sx, sy) in views.items():
        scores = np.concatenate([
            np.asarray(predict_fn(np.asarray(reframe(images[i:i + batch_size], zoom, sx, sy))))
            .reshape(-1)
            for i in range(0, len(images), batch_size)])
        m = binary_metrics(labels, scores, threshold)
        rows.append({"view": name, "roc_auc": m["roc_auc"], "recall": m["recall"],
                     "specificity": m["specificity"], "mean_score_normal":
                     float(scores[labels == 0].mean()),
                     "mean_score_pneumonia": float(scores[labels == 1].mean())})
    return pd.DataFrame(rows).set_index("view")
