"""Figures for model results, built on scikit-learn's ``*Display`` classes.

Each function returns a matplotlib Figure (legends outside the data);
``save`` writes it to a folder.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
)

from ..tasks import BINARY


def save(fig, folder, name: str) -> Path:
    """Write ``fig`` as ``<folder>/<name>.png`` and return the path."""
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _legend_outside(ax, **kwargs):
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False,
              **kwargs)


def training_curves(history: dict, metrics=("loss", "auc", "accuracy")) -> plt.Figure:
    """Training and validation curves per epoch, one panel per metric."""
    metrics = [m for m in metrics if m in history][:2]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics) + 1.5, 3.4),
                             squeeze=False)
    for ax, m in zip(axes[0], metrics):
        epochs = np.arange(1, len(history[m]) + 1)
        ax.plot(epochs, history[m], "o-", label="train")
        if f"val_{m}" in history:
            ax.plot(epochs, history[f"val_{m}"], "o-", label="validation")
        ax.set(xlabel="epoch", title=m)
        ax.grid(alpha=0.3)
    _legend_outside(axes[0][-1])
    fig.tight_layout()
    return fig


def confusion(y_true, y_pred, labels=BINARY.class_names, title: str = "") -> plt.Figure:
    """Confusion matrix with counts (rows: truth, columns: prediction)."""
    fig, ax = plt.subplots(figsize=(4.2 + 0.6 * (len(labels) - 2),) * 2)
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=list(range(len(labels))),
                                            display_labels=list(labels), cmap="Blues",
                                            colorbar=False, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def roc_pr(y_true, y_score, threshold: float, title: str = "") -> plt.Figure:
    """ROC and precision-recall curves, with the chosen operating point marked."""
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    pred = y_score >= threshold
    recall = pred[y_true == 1].mean()
    fpr = pred[y_true == 0].mean()
    precision = y_true[pred].mean() if pred.any() else 1.0
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    RocCurveDisplay.from_predictions(y_true, y_score, ax=a, name="model", plot_chance_level=True)
    a.plot(fpr, recall, "ro", label=f"threshold {threshold:.3f}")
    a.set(xlabel="1 - specificity", ylabel="recall (sensitivity)", title="ROC")
    PrecisionRecallDisplay.from_predictions(y_true, y_score, ax=b, name="model",
                                            plot_chance_level=True)
    b.plot(recall, precision, "ro", label=f"threshold {threshold:.3f}")
    b.set(title="precision-recall")
    for ax in (a, b):
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.45), ncol=2, frameon=False)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def score_histogram(y_true, y_score, threshold: float, title: str = "",
                    labels=BINARY.class_names) -> plt.Figure:
    """Where normal and pneumonia scores fall relative to the threshold."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    bins = np.linspace(0, 1, 41)
    y_true = np.asarray(y_true)
    for label, name in enumerate(labels):
        ax.hist(np.asarray(y_score)[y_true == label], bins=bins, alpha=0.6, label=name)
    ax.axvline(threshold, color="k", ls="--", label="threshold")
    ax.set(xlabel="pneumonia score", ylabel="images", title=title)
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def stress_plot(stress: pd.DataFrame, title: str = "stress test") -> plt.Figure:
    """ROC AUC, recall and specificity at the fixed threshold, per view."""
    fig, ax = plt.subplots(figsize=(0.8 * len(stress) + 3, 3.8))
    stress[["auc", "recall", "specificity"]].plot.bar(ax=ax, rot=30, ylim=(0, 1.05))
    ax.axhline(0.95, color="grey", ls=":", lw=1)
    ax.set(title=title, xlabel="")
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def _short(column: str) -> str:
    from .instruments import SHORT_NAMES
    return SHORT_NAMES.get(column, column)


def comparison(table: pd.DataFrame, columns=("val_auc", "cf_auc", "val_specificity",
                                             "stress_worst_specificity"),
               title: str = "models compared") -> plt.Figure:
    """Grouped bars of a comparison table indexed by model name."""
    cols = [c for c in columns if c in table]
    fig, ax = plt.subplots(figsize=(1.4 * len(table) + 4, 3.8))
    table[cols].rename(columns=_short).plot.bar(ax=ax, rot=20, ylim=(0, 1.05))
    ax.set(title=title, xlabel="")
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def seed_strip(table: pd.DataFrame, columns=("threshold", "val_specificity", "cf_auc",
                                             "cf_specificity", "stress_worst_specificity"),
               by: str = "recipe", title: str = "each training seed, per recipe") -> plt.Figure:
    """One panel per figure, one dot per training seed, recipes side by side:
    how far each recipe's operating point wanders with the seed."""
    cols = [c for c in columns if c in table]
    recipes = list(dict.fromkeys(table[by]))
    fig, axes = plt.subplots(1, len(cols), figsize=(2.6 * len(cols) + 1, 0.35 * len(recipes) + 2),
                             sharey=True, squeeze=False)
    for ax, col in zip(axes[0], cols):
        for i, r in enumerate(recipes):
            v = table.loc[table[by] == r, col].astype(float)
            ax.plot(v, np.full(len(v), i), "o", alpha=0.7, color="tab:blue")
            ax.plot([v.min(), v.max()], [i, i], "-", color="tab:blue", alpha=0.4)
        ax.set(title=_short(col), yticks=range(len(recipes)))
        ax.grid(alpha=0.3)
    axes[0][0].set_yticklabels(recipes)
    axes[0][0].invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    return fig
