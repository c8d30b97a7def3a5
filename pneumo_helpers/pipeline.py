"""tf.data input pipelines built from the image table.

Every image, JPEG or PNG, one or three channels, any size, comes out as a
``(image_size, image_size, 1)`` float32 tensor in [0, 1] (decoded as
grayscale, resized without keeping the aspect ratio, as the Kaggle images
already were).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def decode_image(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Read one file and return a ``(image_size, image_size, 1)`` float32 in [0, 1]."""
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=1, expand_animations=False, dtype=tf.uint8)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    image = tf.clip_by_value(image / 255.0, 0.0, 1.0)
    image.set_shape((image_size, image_size, 1))
    return image


def make_dataset(
    table: pd.DataFrame,
    image_size: int = 128,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 42,
    label_column: str | None = "label",
    cache: bool = True,
) -> tf.data.Dataset:
    """Decode, resize, scale, cache, (shuffle), batch and prefetch.

    ``label_column`` names the table column used as target (``None`` for
    images alone). Augmentation lives in the models (training only).
    """
    if len(table) == 0:
        raise ValueError("make_dataset got an empty table")
    paths = tf.data.Dataset.from_tensor_slices(table["path"].astype(str).to_numpy())
    images = paths.map(lambda p: decode_image(p, image_size), num_parallel_calls=AUTOTUNE)
    if label_column is not None:
        labels = tf.data.Dataset.from_tensor_slices(
            table[label_column].to_numpy().astype(np.int32))
        ds = tf.data.Dataset.zip((images, labels))
    else:
        ds = images
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(table), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def load_arrays(table: pd.DataFrame, image_size: int = 128,
                label_column: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """All images and labels of ``table`` as numpy arrays (for small subsets,
    plots, baselines and stress tests)."""
    ds = make_dataset(table, image_size, batch_size=256, label_column=label_column, cache=False)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)
