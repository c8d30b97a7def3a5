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


JPEG_RATIOS = (8, 4, 2)  # the reduced sizes libjpeg decodes to directly


def _decode(data: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode to one uint8 channel. A JPEG whose shorter side is at least
    ``ratio`` times ``image_size`` is decoded at 1/``ratio`` of its size
    (libjpeg's scaled decoding; ``make bench`` measures its gain on Kaggle's
    1000-2000 px originals); the resize that follows gives nearly the same
    image as a full decode would."""
    def full():
        return tf.io.decode_image(data, channels=1, expand_animations=False, dtype=tf.uint8)

    def jpeg():
        shape = tf.io.extract_jpeg_shape(data)
        short = tf.minimum(shape[0], shape[1])
        branches = [lambda r=r: tf.io.decode_jpeg(data, channels=1, ratio=r)
                    for r in (*JPEG_RATIOS, 1)]
        index = tf.reduce_sum(tf.cast(short < tf.constant(JPEG_RATIOS) * image_size, tf.int32))
        return tf.switch_case(index, branches)

    image = tf.cond(tf.io.is_jpeg(data), jpeg, full)
    image.set_shape((None, None, 1))
    return image


def decode_image(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Read one file and return a ``(image_size, image_size, 1)`` float32 in [0, 1]."""
    image = _decode(tf.io.read_file(path), image_size)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    image = tf.clip_by_value(image / 255.0, 0.0, 1.0)
    image.set_shape((image_size, image_size, 1))
    return image


def decoded(table: pd.DataFrame, image_size: int = 128, label_column: str | None = "label",
            cache: bool = True) -> tf.data.Dataset:
    """Images (and labels) one by one: decoded in parallel, resized, scaled,
    and cached in memory after the first pass (``cache``).

    ``label_column`` names the table column used as target (``None`` for
    images alone). Augmentation lives in the models (training only)."""
    if len(table) == 0:
        raise ValueError("no images to decode: the table is empty")
    paths = tf.data.Dataset.from_tensor_slices(table["path"].astype(str).to_numpy())
    images = paths.map(lambda p: decode_image(p, image_size), num_parallel_calls=AUTOTUNE)
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
