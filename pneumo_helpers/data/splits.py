"""Patient-level splits, and the split image table with its tf.data pipelines.

Every image of a patient lands on the same side. Subsets: ``train`` and
``validation`` (Kaggle's ``train`` folder, divided by patient), ``sanity``
(Kaggle's 16-image ``val`` folder) and ``test``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError
from ..info import SUBSET_OF_SPLIT
from ..tasks import Task, get_task
from .table import load_image_table


def patient_split(table: pd.DataFrame, val_fraction: float = 0.15, seed: int = 42,
                  stratify: str = "label") -> pd.DataFrame:
    """Carve a validation subset out of the ``train`` split, by patient.

    Returns a copy of ``table`` with a ``subset`` column:

    - ``train`` / ``validation``: the ``train`` split, divided by patient,
      stratified by ``stratify`` (patients are drawn class by class until the
      class has ``val_fraction`` of its images in validation), seeded;
    - ``sanity``: Kaggle's 16-image ``val`` split, too small to select models
      on, kept only as a sanity check;
    - ``test``: the ``test`` split, for the single final report.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    out = table.copy()
    out["subset"] = out["split"].map(SUBSET_OF_SPLIT)
    train = out[out["split"] == "train"]
    rng = np.random.default_rng(seed)
    for _, group in train.groupby(stratify, sort=True):
        per_patient = group.groupby("patient", sort=True).size()
        order = rng.permutation(per_patient.index.to_numpy())
        cumulative = per_patient.loc[order].cumsum().to_numpy()
        target = val_fraction * len(group)
        # the smallest prefix of shuffled patients that reaches the target
        n_val = int(np.searchsorted(cumulative, target) + 1)
        val_patients = set(order[: min(n_val, len(order) - 1)])
        chosen = group.index[group["patient"].isin(val_patients)]
        out.loc[chosen, "subset"] = "validation"
    return out


def balanced_subset(table: pd.DataFrame, max_images: int, seed: int = 42,
                    by: str = "label") -> pd.DataFrame:
    """Sample at most ``max_images`` rows, as many from each class as it has
    up to an equal share (0 = keep all). For quick runs and tests."""
    if not max_images or max_images >= len(table):
        return table
    groups = list(table.groupby(by, sort=True))
    share = max_images // len(groups)
    parts = [g.sample(n=min(share, len(g)), random_state=seed) for _, g in groups]
    return pd.concat(parts).sort_index()


@dataclass
class SplitData:
    """The image table split into subsets, for one task, and the tf.data
    pipelines of its subsets, each decoded once on first use and kept
    (``_cache``, written by this class alone)."""

    table: pd.DataFrame
    task: Task
    image_size: int
    batch_size: int
    seed: int
    _cache: dict = field(default_factory=dict, repr=False)

    def subset(self, name: str) -> pd.DataFrame:
        return self.table[self.table["subset"] == name]

    def images(self, name: str, image_size: int | None = None, prepare=None):
        """Decoded ``(image, label)`` pairs of subset ``name`` at ``image_size``,
        then, if given, through ``prepare`` (a frozen Keras model applied in
        batches, e.g. the crop to the lung fields); kept in memory."""
        from .pipeline import batched, decoded

        image_size = image_size or self.image_size
        key = (name, image_size, None if prepare is None else getattr(prepare, "cache_key",
                                                                        prepare.name))
        if key not in self._cache:
            images = decoded(self.subset(name), image_size, self.task.label_column)
            if prepare is not None:
                import tensorflow as tf

                x = prepare.predict(batched(images.map(lambda i, y: i), 64), verbose=0)
                images = tf.data.Dataset.from_tensor_slices((x, self.labels(name).astype("int32")))
            self._cache[key] = images
        return self._cache[key]

    def dataset(self, name: str, image_size: int | None = None, prepare=None,
                shuffle_seed: int | None = None):
        """``(image, label)`` batches of subset ``name`` (decoded at
        ``image_size``, default the split's, and prepared by ``prepare``, see
        :meth:`images`). ``train`` is shuffled each epoch, in an order that
        depends on ``shuffle_seed`` (default: the split's seed) alone: each
        call gives a new pipeline, so a training does not depend on those
        before it. The other subsets keep table order."""
        from .pipeline import batched

        images = self.images(name, image_size, prepare)
        if name == "train":
            seed = self.seed if shuffle_seed is None else shuffle_seed
            return batched(images, self.batch_size, seed, len(self.subset(name)))
        return batched(images, self.batch_size)

    def memo(self, key, compute):
        """``compute()``, computed once per ``key`` and kept with the split
        (e.g. the lung boxes of the training images); the caller never writes
        into the split itself."""
        key = ("memo", key)
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def labels(self, name: str) -> np.ndarray:
        return self.subset(name)[self.task.label_column].to_numpy()

    def patients(self, name: str) -> np.ndarray:
        return self.subset(name)["patient"].to_numpy()

    def counts(self) -> dict:
        """Images per subset and class of the task: ``{subset: {class: n}}``."""
        return self.task.counts(self.table)

    def count_table(self) -> pd.DataFrame:
        """:meth:`counts` as a table: subsets (rows, in reading order) by class."""
        counts = pd.DataFrame(self.counts()).T
        order = [s for s in ("train", "validation", "test", "sanity") if s in counts.index]
        return counts.loc[order, list(self.task.class_names)]


MIN_IMAGES_PER_CLASS = 5  # normal and pneumonia, in training and validation: fewer choose no threshold


def prepare_data(data_dir, task: str | Task = "binary", image_size: int = 128,
                 batch_size: int = 32, seed: int = 42, max_train_images: int = 0,
                 val_fraction: float = 0.15, progress: bool = False) -> SplitData:
    """Load and check every image, split ``train`` by patient (stratified by
    the binary label, so that patients with bacterial and viral images stay
    whole), add the task's label column, and optionally keep a class-balanced
    sample of at most ``max_train_images`` training images (and proportionally
    fewer validation and test images) for quick runs."""
    task = get_task(task)
    table = patient_split(load_image_table(data_dir, progress=progress), val_fraction, seed)
    if max_train_images:
        n_train = max(1, int((table["subset"] == "train").sum()))
        parts = []
        for name, part in table.groupby("subset", sort=False):
            share = max_train_images if name == "train" else max(
                20, int(max_train_images * len(part) / n_train))
            parts.append(part if name == "sanity" else balanced_subset(part, share, seed))
        table = pd.concat(parts).sort_index()
    table = task.prepare_table(table)
    for subset in ("train", "validation"):
        part = table[table["subset"] == subset]
        binary, counts = part["label"].value_counts(), part[task.label_column].value_counts()
        few = {name: int(binary.get(i, 0)) for i, name in enumerate(("normal", "pneumonia"))
               if binary.get(i, 0) < MIN_IMAGES_PER_CLASS}
        few.update({name: 0 for i, name in enumerate(task.class_names) if i not in counts})
        if few:
            which = ", ".join(f"{n} {name}" for name, n in few.items())
            sample = f", max_train_images {max_train_images}" if max_train_images else ""
            raise DataError(
                f"the patient split leaves too few images in {subset}: {which} (at least "
                f"{MIN_IMAGES_PER_CLASS} normal and pneumonia images, and one of each class; data_dir {data_dir}, val_fraction "
                f"{val_fraction}{sample}): "
                + ("raise val_fraction" if subset == "validation" else "lower val_fraction")
                + (" or raise max_train_images" if max_train_images else "")
                + ", or give train/ more patients of each class")
    return SplitData(table, task, image_size, batch_size, seed)
