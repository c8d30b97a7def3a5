"""Patient-level splits: every image of a patient lands on the same side."""

from __future__ import annotations

import numpy as np
import pandas as pd

SUBSETS = ("train", "validation", "sanity", "test")


def patient_split(
    table: pd.DataFrame,
    val_fraction: float = 0.15,
    seed: int = 42,
    stratify: str = "label",
) -> pd.DataFrame:
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
    out["subset"] = out["split"].map({"train": "train", "val": "sanity", "test": "test"})
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
