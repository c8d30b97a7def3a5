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
    """The image table split into subsets, for one task, and what is derived
    from it once and kept (``cache``): the tf.data pipelines (one per subset,
    built on first use) and the stress test's exposure bank."""

    table: pd.DataFrame
    task: Task
    image_size: int
    batch_size: int
    seed: int
    cache: dict = field(default_factory=dict, repr=False)

    def subset(self, name: str) -> pd.DataFrame:
        return self.table[self.table["subset"] == name]

    def dataset(self, name: str, shuffle_seed: int | None = None):
        """``(image, label)`` batches of subset ``name``, decoded once and kept
        in memory. ``train`` is shuffled each epoch, in an order that depends
        on ``shuffle_seed`` (default: the split's seed) alone: each call gives
        a new pipeline, so a training does not depend on those before it. The
        other subsets keep table order."""
        from .pipeline import batched, decoded

        key = ("decoded", name)
        if key not in self.cache:
            self.cache[key] = decoded(self.subset(name), self.image_size, self.task.label_column)
        if name == "train":
            seed = self.seed if shuffle_seed is None else shuffle_seed
            return batched(self.cache[key], self.batch_size, seed, len(self.subset(name)))
        if ("batched", name) not in self.cache:
            self.cache[("batched", name)] = batched(self.cache[key], self.batch_size)
        return self.cache[("batched", name)]

    def labels(self, name: str) -> np.ndarray:
        return self.subset(name)[self.task.label_column].to_numpy()

    def patients(self, name: str) -> np.ndarray:
        return self.subset(name)["patient"].to_numpy()

    def counts(self) -> dict:
        """Images per subset and class of the task."""
        return self.task.counts(self.table)


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
        labels = set(table.loc[table["subset"] == subset, task.label_column])
        missing = [name for i, name in enumerate(task.class_names) if i not in labels]
        if missing:
            raise DataError(f"the patient split leaves no {' or '.join(missing)} images in "
                            f"{subset} (data_dir {data_dir}, val_fraction {val_fraction}); "
                            "each class needs images from at least two patients in train/")
    return SplitData(table, task, image_size, batch_size, seed)
