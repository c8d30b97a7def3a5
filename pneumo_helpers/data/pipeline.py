"""tf.data input pipelines built from the image table.

Every image comes out of :func:`images.decode` (the one reader) as an
``(image_size, image_size, 1)`` float32 tensor in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from .images import decode

AUTOTUNE = tf.data.AUTOTUNE


def decoded(table: pd.DataFrame, image_size: int = 128, label_column: str | None = "label",
            cache: bool = True) -> tf.data.Dataset:
    """Images (and labels) one by one: decoded in parallel, resized, scaled,
    and cached in memory after the first pass (``cache``).

    ``label_column`` names the table column used as target (``None`` for
    images alone). Augmentation lives in the models (training only)."""
    if len(table) == 0:
        raise ValueError("no images to decode: the table is empty")
    paths = tf.data.Dataset.from_tensor_slices(table["path"].astype(str).to_numpy())
    images = paths.map(lambda p: decode(p, image_size), num_parallel_calls=AUTOTUNE)
    if label_column is not None:
        labels = tf.data.Dataset.from_tensor_slices(
            table[label_column].to_numpy().astype(np.int32))
        images = tf.data.Dataset.zip((images, labels))
    return images.cache() if cache else images


def batched(ds: tf.data.Dataset, batch_size: int, shuffle_seed: int | None = None,
            n: int | None = None) -> tf.data.Dataset:
    """Batches of ``ds``, shuffled anew each epoch when ``shuffle_seed`` is
    given (a new pipeline each call: the order of a training depends on its
    seed alone, not on what was iterated before in the process)."""
    if shuffle_seed is not None:
        n = n or int(ds.cardinality())
        ds = ds.shuffle(n, seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def make_dataset(
    table: pd.DataFrame,
    image_size: int = 128,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 42,
    label_column: str | None = "label",
    cache: bool = True,
) -> tf.data.Dataset:
    """Decode, resize, scale, cache, (shuffle with ``seed``), batch and prefetch."""
    return batched(decoded(table, image_size, label_column, cache), batch_size,
                   seed if shuffle else None, len(table))


def load_arrays(table: pd.DataFrame, image_size: int = 128,
                label_column: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """All images and labels of ``table`` as numpy arrays (for small subsets,
    plots, baselines and stress tests)."""
    ds = make_dataset(table, image_size, batch_size=256, label_column=label_column, cache=False)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)
