"""Figures for model results, built on scikit-learn's ``*Display`` classes.

Every function draws on the axes it is given (``ax=None`` makes a new figure,
as ``RocCurveDisplay.plot`` does) and returns them, so figures can be
combined; :func:`save` writes any figure to a folder (the one save function of
the package). Legends sit outside the data and never over an axis label, the
positive class is named (pneumonia), and reference lines carry a label.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from ..tasks import BINARY


def save(fig, folder, name: str, dpi: int = 110) -> Path:
    """Write ``fig`` (a Figure, or axes of one) as ``<folder>/<name>.png``
    (creating the folder) and return the path."""
    fig = getattr(fig, "figure", fig)
    if isinstance(fig, np.ndarray):
        fig = fig.flat[0].figure
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def _axes(ax, figsize):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _legend_right(ax, **kwargs):
    """The legend to the right of the axes, clear of the data and the labels."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False,
              **kwargs)


def training_curves(history: dict, metrics=("loss", "auc", "accuracy"), axes=None):
    """Training and validation curves per epoch, one panel per metric (at most two)."""
    metrics = [m for m in metrics if m in history][:2]
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics) + 1.5, 3.4),
                               squeeze=False, layout="constrained")
        axes = axes[0]
    for ax, m in zip(axes, metrics):
        epochs = np.arange(1, len(history[m]) + 1)
        ax.plot(epochs, history[m], "o-", label="training images")
        if f"val_{m}" in history:
            ax.plot(epochs, history[f"val_{m}"], "o-", label="validation patients")
        ax.set(xlabel="epoch", ylabel=m, title=m)
        ax.grid(alpha=0.3)
    _legend_right(axes[-1])
    return axes


def confusion(y_true, y_pred, labels=BINARY.class_names, title: str = "", ax=None):
    """Confusion matrix with counts (rows: truth, columns: prediction)."""
    ax = _axes(ax, (4.2 + 0.6 * (len(labels) - 2),) * 2)
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=list(range(len(labels))),
                                            display_labels=list(labels), cmap="Blues",
                                            colorbar=False, ax=ax)
    ax.set(title=title, xlabel="predicted", ylabel="true")
    return ax


def roc_pr(y_true, y_score, threshold: float, title: str = "", positive: str = "pneumonia",
           axes=None):
    """ROC and precision-recall curves of ``positive`` against the rest, with
    the chosen operating point marked and the chance levels labelled."""
    y_true = np.asarray(y_true).astype(bool)
    y_score = np.asarray(y_score)
    pred = y_score >= threshold
    recall, fpr = pred[y_true].mean(), pred[~y_true].mean()
    precision = y_true[pred].mean() if pred.any() else 1.0
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
        fig.suptitle(title)
    a, b = axes
    RocCurveDisplay.from_predictions(y_true, y_score, pos_label=True, ax=a, name="model",
                                     plot_chance_level=True)
    a.plot(fpr, recall, "ro", label=f"threshold {threshold:.3f}")
    a.set(xlabel="1 - specificity (healthy children flagged)",
          ylabel=f"recall ({positive} found)", title="ROC")
    PrecisionRecallDisplay.from_predictions(y_true, y_score, pos_label=True, ax=b, name="model",
                                            plot_chance_level=True)
    b.plot(recall, precision, "ro", label=f"threshold {threshold:.3f}")
    b.set(xlabel=f"recall ({positive} found)",
          ylabel=f"precision (flagged that have {positive})", title="precision-recall")
    for ax in (a, b):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
        ax.grid(alpha=0.3)
    return axes


def score_histogram(y_true, y_score, threshold: float, title: str = "",
                    labels=BINARY.class_names, ax=None):
    """Where normal and pneumonia scores fall relative to the threshold
    (counts per class, the threshold a labelled dashed line)."""
    ax = _axes(ax, (7, 3.4))
    bins = np.linspace(0, 1, 41)
    y_true = np.asarray(y_true)
    for label, name in enumerate(labels):
        ax.hist(np.asarray(y_score)[y_true == label], bins=bins, alpha=0.6, label=name)
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="pneumonia score", ylabel="images", title=title)
    _legend_right(ax)
    return ax


def score_histograms(splits: dict, threshold: float, labels=BINARY.class_names):
    """:func:`score_histogram` of several splits side by side (e.g. validation
    and test): ``splits`` is ``{title: (y_true, y_score)}``."""
    fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits) + 1.6, 3.4),
                             sharex=True, layout="constrained", squeeze=False)
    for ax, (title, (y, s)) in zip(axes[0], splits.items()):
        score_histogram(y, s, threshold, title, labels, ax=ax)
        if ax is not axes[0][-1]:
            ax.get_legend().remove()
    return axes[0]


def stress_plot(stress: pd.DataFrame, title: str = "stress test", target: float = 0.95,
                ax=None):
    """ROC AUC, recall and specificity at the fixed threshold, per view; a
    labelled reference line at ``target``."""
    ax = _bars(stress[["auc", "recall", "specificity"]], 30, title,
               "view of the validation images", "figure at the threshold",
               _axes(ax, (0.8 * len(stress) + 3, 3.8)))
    ax.axhline(target, color="grey", ls=":", lw=1, label=f"{target:g}")
    _legend_right(ax)
    return ax


def _bars(table: pd.DataFrame, rot: int, title: str, xlabel: str, ylabel: str, ax):
    """Grouped bars, one group per row, labels tilted and right-aligned, legend aside."""
    table.plot.bar(ax=ax, rot=rot, ylim=(0, 1.05))
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    _legend_right(ax)
    return ax


def _short(column: str) -> str:
    from .instruments import SHORT_NAMES
    return SHORT_NAMES.get(column, column)


def comparison(table: pd.DataFrame, columns=("val_auc", "cf_auc", "val_specificity",
                                             "stress_worst_specificity"),
               title: str = "models compared", ax=None):
    """Grouped bars of a comparison table indexed by model name."""
    cols = [c for c in columns if c in table]
    return _bars(table[cols].rename(columns=_short), 20, title, "", "figure (validation patients)",
                 _axes(ax, (1.4 * len(table) + 4, 3.8)))


def seed_strip(table: pd.DataFrame, columns=("threshold", "val_specificity", "cf_auc",
                                             "cf_specificity", "stress_worst_specificity"),
               by: str = "recipe", title: str = "each training seed, per recipe", axes=None):
    """One panel per figure, one dot per training seed, recipes side by side:
    how far each recipe's operating point wanders with the seed."""
    cols = [c for c in columns if c in table]
    recipes = list(dict.fromkeys(table[by]))
    if axes is None:
        fig, axes = plt.subplots(1, len(cols), figsize=(2.6 * len(cols) + 1,
                                                        0.35 * len(recipes) + 2),
                                 sharey=True, squeeze=False, layout="constrained")
        fig.suptitle(title)
        axes = axes[0]
    for ax, col in zip(axes, cols):
        for i, r in enumerate(recipes):
            v = table.loc[table[by] == r, col].astype(float)
            ax.plot(v, np.full(len(v), i), "o", alpha=0.7, color="tab:blue")
            ax.plot([v.min(), v.max()], [i, i], "-", color="tab:blue", alpha=0.4)
        ax.set(title=_short(col), yticks=range(len(recipes)))
        ax.grid(alpha=0.3)
    axes[0].set_yticklabels(recipes)
    axes[0].invert_yaxis()
    return axes


def lung_fields(images, probability, boxes, titles, ncols: int = 6, axes=None):
    """X-rays with the lung-field model's mask (red contour) and the crop's
    lung box (yellow), a title above each."""
    images = np.asarray(images)
    n = len(images)
    if axes is None:
        nrows = int(np.ceil(n / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.4 * nrows),
                                 squeeze=False, layout="constrained")
        fig.suptitle("lung fields (red) and the crop's lung box (yellow)")
    axes = np.asarray(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, img, prob, box, title in zip(axes, images, probability, boxes, titles):
        s = img.shape[0]
        ax.imshow(img[..., 0] if img.ndim == 3 else img, cmap="gray", vmin=0, vmax=1)
        ax.contour(np.asarray(prob) > 0.5, levels=[0.5], colors="red", linewidths=0.8,
                   extent=(0, s, s, 0))
        x0, y0, x1, y1 = np.asarray(box) * s
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="yellow",
                                   lw=1))
        ax.set_title(title, fontsize=7)
    return axes
