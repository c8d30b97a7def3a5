"""Tables and figures for the data-exploration chapter.

Two kinds of input:

- the image table of :func:`pneumo_helpers.load_image_table` (columns
  ``path, split, class_name, label, type, patient, width, height, channels``);
- ``images, labels`` arrays from :func:`pneumo_helpers.pipeline.load_arrays`:
  images ``(n, h, w)`` or ``(n, h, w, 1)`` in [0, 1], labels 0 (NORMAL) or
  1 (PNEUMONIA). Intensities are reported on the 0-255 scale.

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` built
without pyplot, so nothing piles up in pyplot's figure list and a notebook
(with ``%matplotlib inline`` run once) shows each figure once, where the
function's result is displayed.
"""

from __future__ import annotations

from itertools import zip_longest
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..info import CLASS_FOLDERS, SPLITS, TYPES

#: One colour per class and per pneumonia type, shared by every figure.
PALETTE = {"NORMAL": "tab:blue", "PNEUMONIA": "tab:red",
           "normal": "tab:blue", "bacteria": "tab:orange", "virus": "tab:red",
           "unknown": "tab:gray"}
#: Row titles of the sample grid: the folder, and the type for pneumonia.
GRID_TITLES = {"normal": "NORMAL", **{t: f"PNEUMONIA\n{t}" for t in (*TYPES[1:], "unknown")}}


# ---------------------------------------------------------------- helpers

def _categorical(values: pd.Series, order: tuple[str, ...]) -> pd.Categorical:
    """``values`` as an ordered categorical: ``order`` first, then any others."""
    extra = sorted(set(values) - set(order))
    present = [v for v in (*order, *extra) if v in set(values)]
    return pd.Categorical(values, categories=present, ordered=True)


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Split, class and type as categoricals in reading order (train, val, test...)."""
    return table.assign(split=_categorical(table["split"], SPLITS),
                        class_name=_categorical(table["class_name"], CLASS_FOLDERS),
                        type=_categorical(table["type"], (*TYPES, "unknown")))


def _flat(images: np.ndarray) -> np.ndarray:
    """``(n, h, w, 1)`` or ``(n, h, w)`` images as an ``(n, h, w)`` view (no copy)."""
    images = np.asarray(images)
    return images[..., 0] if images.ndim == 4 else images


def _class_names(labels: np.ndarray) -> pd.Categorical:
    """0 / 1 labels as NORMAL / PNEUMONIA."""
    return pd.Categorical.from_codes(np.asarray(labels).astype(int), categories=CLASS_FOLDERS)


def _new_figure(width: float, height: float, **kwargs) -> Figure:
    return Figure(figsize=(width, height), layout="constrained", **kwargs)


# ------------------------------------------------------------- the table

def type_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Images per split (rows) and class x pneumonia type (columns).

    Rows are in split order (train, val, test), columns are
    ``(NORMAL, normal), (PNEUMONIA, bacteria), (PNEUMONIA, virus)``; a
    combination with no image counts 0. All cells sum to ``len(table)``.
    """
    return (_ordered(table).groupby(["split", "class_name", "type"], observed=True).size()
            .unstack(["class_name", "type"], fill_value=0))


def plot_class_balance(table: pd.DataFrame) -> Figure:
    """Bar plots of image counts per split: by class (left), by type (right).

    Every bar carries its count, so the tiny ``val`` split stays readable.
    """
    tidy = type_counts(table).melt(ignore_index=False, value_name="images").reset_index()
    fig = _new_figure(12, 4.2)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, hue, title in zip(axes, ("class_name", "type"), ("per class", "per pneumonia type")):
        data = tidy.groupby(["split", hue], observed=True)["images"].sum().reset_index()
        sns.barplot(data=data, x="split", y="images", hue=hue, palette=PALETTE, ax=ax)
        for bars in ax.containers:
            ax.bar_label(bars, fontsize=9, padding=2)
        ax.set(title=f"Images {title}", xlabel="split", ylabel="images")
        ax.legend(title=None)
        ax.margins(y=0.1)
    return fig


def plot_sample_grid(table: pd.DataFrame, n_per_class: int = 6, seed: int = 0) -> Figure:
    """A grid of X-rays: one row per type (NORMAL, bacteria, virus), ``n_per_class``
    random images in each, titled with their file name."""
    ordered = _ordered(table)
    kinds = list(ordered["type"].cat.categories)
    fig = _new_figure(2.1 * n_per_class, 2.35 * len(kinds))
    axes = fig.subplots(len(kinds), n_per_class, squeeze=False)
    for row, kind in zip(axes, kinds):
        rows = ordered[ordered["type"] == kind]
        picks = rows.sample(n=min(n_per_class, len(rows)), random_state=seed)["path"]
        for ax, path in zip_longest(row, picks):
            if path is None:
                ax.set_axis_off()
                continue
            ax.imshow(_thumbnail(path), cmap="gray", vmin=0, vmax=255)
            ax.set_title(Path(path).name, fontsize=7)
            ax.set(xticks=[], yticks=[])
        row[0].set_ylabel(GRID_TITLES.get(kind, kind), fontsize=11)
    fig.suptitle("Sample chest X-rays per class", fontsize=13)
    return fig


def _thumbnail(path: str, size: int = 256) -> np.ndarray:
    """A grayscale copy of the image at most ``size`` pixels a side, as uint8."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L")
        im.thumbnail((size, size))
        return np.asarray(im)


def size_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per split: images, distinct sizes, width / height range, channels."""
    return (_ordered(table)
            .assign(size=lambda t: t["width"].astype(str) + "x" + t["height"].astype(str))
            .groupby("split", observed=True)
            .agg(images=("path", "size"), distinct_sizes=("size", "nunique"),
                 width_min=("width", "min"), width_max=("width", "max"),
                 height_min=("height", "min"), height_max=("height", "max"),
                 channels=("channels", lambda c: ", ".join(map(str, sorted(set(c)))))))


def plot_size_distribution(table: pd.DataFrame) -> Figure:
    """Stored image sizes per split: width against height (left) and the
    aspect ratio width / height (right)."""
    data = _ordered(table).assign(aspect=lambda t: t["width"] / t["height"])
    fig = _new_figure(12, 4.5)
    left, right = fig.subplots(1, 2)
    sns.scatterplot(data=data, x="width", y="height", hue="split", style="split",
                    s=60, alpha=0.7, ax=left)
    left.set(title="Stored size (pixels)", xlabel="width (px)", ylabel="height (px)",
             xlim=(0, None), ylim=(0, None))
    summary = "\n".join(f"{split}: {row.images} images, {row.distinct_sizes} size(s)"
                        for split, row in size_table(table).iterrows())
    left.text(0.03, 0.97, summary, transform=left.transAxes, va="top", fontsize=9)
    sns.stripplot(data=data, x="split", y="aspect", hue="split", jitter=0.25, alpha=0.5,
                  legend=False, ax=right)
    right.set(title="Aspect ratio (width / height)", xlabel="split", ylabel="width / height")
    return fig


# -------------------------------------------------------- pixel statistics

def image_stats(images: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """One row per image: ``class_name``, ``mean`` intensity and ``contrast``
    (standard deviation of its pixels), both on the 0-255 scale."""
    flat = _flat(images).reshape(len(images), -1)
    return pd.DataFrame({"class_name": _class_names(labels),
                         "mean": flat.mean(axis=1) * 255, "contrast": flat.std(axis=1) * 255})


def plot_intensity(images: np.ndarray, labels: np.ndarray) -> Figure:
    """Distributions of per-image mean intensity and contrast, per class
    (densities, so the larger PNEUMONIA class does not hide NORMAL)."""
    stats = image_stats(images, labels)
    fig = _new_figure(12, 4)
    titles = {"mean": "Per-image mean intensity", "contrast": "Per-image contrast (pixel std)"}
    for ax, (column, title) in zip(fig.subplots(1, 2), titles.items()):
        _class_histogram(stats, column, ax)
        ax.set(title=title, xlabel=f"{column} (0-255)")
    return fig


def _class_histogram(stats: pd.DataFrame, column: str, ax) -> None:
    """Step histograms of ``stats[column]`` per class, each normalised to density 1."""
    sns.histplot(data=stats, x=column, hue="class_name", palette=PALETTE, stat="density",
                 common_norm=False, element="step", bins=40, ax=ax)
    sns.move_legend(ax, "upper right", title=None)


def class_mean_images(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The mean image of each class present, ``(h, w)`` on the 0-255 scale.

    Computed as a matrix product, so large arrays are never copied per class.
    """
    flat = _flat(images)
    names = np.asarray(_class_names(labels))
    rows = flat.reshape(len(flat), -1)
    return {name: ((names == name).astype(rows.dtype) @ rows / (names == name).sum() * 255)
            .reshape(flat.shape[1:]) for name in CLASS_FOLDERS if (names == name).any()}


def border_intensity(images: np.ndarray, labels: np.ndarray, width: int = 20) -> pd.DataFrame:
    """Per class: mean intensity (0-255) of the ``width`` leftmost pixel columns.

    Columns: ``images``, ``border_mean`` and ``border_std`` (over the images'
    left-border means) and, for comparison, ``image_mean`` over whole images.
    A gap in ``border_mean`` with equal ``image_mean`` is a framing difference,
    not a brightness one.
    """
    border = image_stats(_flat(images)[:, :, :width], labels)
    return (border.assign(image=image_stats(images, labels)["mean"])
            .groupby("class_name", observed=True)
            .agg(images=("mean", "size"), border_mean=("mean", "mean"),
                 border_std=("mean", "std"), image_mean=("image", "mean")))


def plot_framing(images: np.ndarray, labels: np.ndarray, width: int = 20) -> Figure:
    """How the classes are framed.

    Top: the mean image of each class and their difference (PNEUMONIA minus
    NORMAL). Bottom: mean column and row intensity profiles per class (the
    ``width`` leftmost columns shaded), and the distribution of the per-image
    left-border intensity.
    """
    means = class_mean_images(images, labels)
    if set(means) != set(CLASS_FOLDERS):
        raise ValueError(f"plot_framing needs images of both classes, got {sorted(means)}")
    fig = _new_figure(13, 8.5)
    axes = fig.subplot_mosaic([[*CLASS_FOLDERS, "difference"], ["columns", "rows", "border"]])
    for name, mean in means.items():
        axes[name].imshow(mean, cmap="gray", vmin=0, vmax=255)
        axes[name].set(title=f"Mean {name} image", xticks=[], yticks=[])
    _plot_difference(fig, axes["difference"], means)
    for name, mean in means.items():
        axes["columns"].plot(mean.mean(axis=0), color=PALETTE[name], label=name)
        axes["rows"].plot(mean.mean(axis=1), color=PALETTE[name], label=name)
    axes["columns"].axvspan(0, width, color="gray", alpha=0.2, label=f"{width} left columns")
    axes["columns"].set(title="Column profile", xlabel="column (left to right)",
                        ylabel="mean intensity (0-255)")
    axes["rows"].set(title="Row profile", xlabel="row (top to bottom)",
                     ylabel="mean intensity (0-255)")
    stats = image_stats(_flat(images)[:, :, :width], labels)
    _class_histogram(stats, "mean", axes["border"])
    axes["border"].set(title=f"Left border ({width} columns) per image",
                       xlabel="mean intensity (0-255)")
    for key in ("columns", "rows"):
        axes[key].legend(fontsize=9)
    return fig


def _plot_difference(fig: Figure, ax, means: dict[str, np.ndarray]) -> None:
    """PNEUMONIA minus NORMAL mean image, red where PNEUMONIA is brighter."""
    diff = means["PNEUMONIA"] - means["NORMAL"]
    limit = max(float(np.abs(diff).max()), 1e-6)
    shown = ax.imshow(diff, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(shown, ax=ax, shrink=0.85, label="intensity difference")
    ax.set(title="PNEUMONIA minus NORMAL", xticks=[], yticks=[])


# ----------------------------------------------------------------- patients

def patients_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per class: patients, images, and how many patients have several images.

    Columns: ``patients``, ``images``, ``images_per_patient`` (mean),
    ``max_images``, ``patients_with_several`` and ``share_of_images`` (the
    fraction of the class's images that belong to such patients), and
    ``patients_with_both_types`` (pneumonia ids with bacterial and viral images).
    """
    per_patient = (_ordered(table).groupby(["class_name", "patient"], observed=True)
                   .agg(images=("path", "size"), types=("type", "nunique"))
                   .assign(several=lambda p: p["images"] > 1,
                           in_several=lambda p: p["images"].where(p["images"] > 1, 0),
                           both_types=lambda p: p["types"] > 1))
    out = per_patient.groupby(level="class_name", observed=True).agg(
        patients=("images", "size"), images=("images", "sum"), max_images=("images", "max"),
        patients_with_several=("several", "sum"), in_several=("in_several", "sum"),
        patients_with_both_types=("both_types", "sum"))
    return out.assign(images_per_patient=(out["images"] / out["patients"]).round(2),
                      share_of_images=(out["in_several"] / out["images"]).round(3))[
        ["patients", "images", "images_per_patient", "max_images", "patients_with_several",
         "share_of_images", "patients_with_both_types"]]
