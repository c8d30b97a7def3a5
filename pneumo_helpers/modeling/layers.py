"""Preprocessing layers that live inside every saved model, the same in
training and in use (Keras safe mode loads them: each is registered under
``pneumo>``): per-image standardisation, histogram equalisation, one level of
structure, and a horizontal crop to the body."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="pneumo")
class PerImageStandardization(layers.Layer):
    """Scale each image to zero mean and unit variance (removes exposure and
    contrast differences between machines and sites)."""

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = ops.std(x, axis=(1, 2, 3), keepdims=True)
        return (x - mean) / ops.maximum(std, 1e-3)


def _bins_and_cdf(flat, bins: int):
    """For ``(n, pixels)`` intensities in [0, 1]: each pixel's bin as an index
    into the flattened ``(n * bins,)`` table of per-image cumulative
    histograms, and that table as ``(n, bins)`` (one flat bincount: several
    times faster on the CPU than a bincount per row)."""
    import tensorflow as tf

    n = tf.shape(flat)[0]
    idx = tf.clip_by_value(tf.cast(flat * (bins - 1) + 0.5, tf.int32), 0, bins - 1)
    idx = idx + bins * tf.range(n)[:, None]
    counts = tf.math.bincount(tf.reshape(idx, [-1]), minlength=n * bins, maxlength=n * bins,
                              dtype=flat.dtype)
    counts = tf.reshape(counts, (n, bins))
    return idx, tf.cumsum(counts, axis=1) / tf.reduce_sum(counts, axis=1, keepdims=True)


def cumulative_rank(flat, bins: int = 256):
    """For ``(n, pixels)`` intensities in [0, 1]: each pixel's rank in its own
    image (the share of the image's pixels in its intensity bin or darker),
    and the share in the darkest bin, ``(n, 1)``; from the image's cumulative
    histogram over ``bins`` bins."""
    import tensorflow as tf

    idx, cdf = _bins_and_cdf(flat, bins)
    return tf.gather(tf.reshape(cdf, [-1]), idx), cdf[:, :1]


@keras.saving.register_keras_serializable(package="pneumo")
class HistogramEqualization(layers.Layer):
    """Map each image's intensities through its own cumulative histogram
    (``bins`` bins), so every image uses the whole [0, 1] range evenly
    whatever its exposure, contrast or processing curve: any increasing
    change of intensities gives the same output (black stays black).
    Expects images in [0, 1]."""

    def __init__(self, bins: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.bins = bins

    def call(self, x):
        import tensorflow as tf

        shape = tf.shape(x)
        idx, cdf = _bins_and_cdf(tf.reshape(x, (shape[0], -1)), self.bins)
        low = cdf[:, :1]  # the darkest bin goes to 0
        table = tf.clip_by_value((cdf - low) / tf.maximum(1.0 - low, 1e-6), 0.0, 1.0)
        # the mapping computed on the bins, then looked up per pixel: the same numbers
        return tf.reshape(tf.gather(tf.reshape(table, [-1]), idx), shape)

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}


STRUCTURE_LEVEL = 0.08  # about the structure of an equalised crop (``anatomy.structure``)


@keras.saving.register_keras_serializable(package="pneumo")
class StructureNormalization(layers.Layer):
    """Bring each image's structure (its mean distance from its local mean:
    ribs, vessels, texture; ``evaluation.anatomy.structure``) to one
    ``level``, the local mean kept: an X-ray whose processing shows the lungs'
    structure faintly and one that shows it strongly reach the network alike,
    so that only where structure is faint within an image (an opacity), not
    how faint it is overall, can tell the classes apart. Expects [0, 1]."""

    def __init__(self, level: float = STRUCTURE_LEVEL, **kwargs):
        super().__init__(**kwargs)
        self.level = float(level)

    def call(self, x):
        from .augment import local_contrast

        low = local_contrast(x, 0.0)
        detail = x - low
        level = ops.mean(ops.abs(detail), axis=(1, 2, 3), keepdims=True)
        return ops.clip(low + detail * (self.level / ops.maximum(level, 1e-3)), 0.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "level": self.level}


def body_columns(x, threshold: float = 0.25):
    """The first and last column (indices) of the body in each image of
    ``(n, h, w, 1)``: where the column profile (the mean of each column over
    the central 60% of rows, lightly smoothed) rises above ``threshold`` of
    its range; ``first > last`` when no column does."""
    import tensorflow as tf

    h, w = int(x.shape[1]), int(x.shape[2])
    profile = tf.reduce_mean(x[:, int(0.2 * h):int(0.8 * h), :, 0], axis=1)
    profile = tf.nn.conv1d(profile[..., None], tf.ones((5, 1, 1), x.dtype) / 5.0, 1,
                           "SAME")[..., 0]
    low = tf.reduce_min(profile, axis=1, keepdims=True)
    high = tf.reduce_max(profile, axis=1, keepdims=True)
    body = profile > low + threshold * (high - low)
    columns = tf.range(w)[None, :]
    return (tf.reduce_min(tf.where(body, columns, w), axis=1),
            tf.reduce_max(tf.where(body, columns, -1), axis=1))


@keras.saving.register_keras_serializable(package="pneumo")
class BodyCrop(layers.Layer):
    """Crop each image horizontally to the body and stretch it back to full
    width: a canonical framing, whatever margin of dark background the X-ray
    was taken or stored with.

    The body is where the column profile (the mean of each pixel column over
    the central 60% of rows, lightly smoothed) rises above ``threshold`` of
    its range, widened by ``margin`` (a fraction of the width) on each side.
    Crops narrower than ``min_width`` are not trusted: the image is kept
    whole. The same in training and in use."""

    def __init__(self, threshold: float = 0.25, margin: float = 0.02, min_width: float = 0.3,
                 **kwargs):
        super().__init__(**kwargs)
        self.threshold, self.margin, self.min_width = threshold, margin, min_width

    def call(self, x):
        import tensorflow as tf

        h, w = int(x.shape[1]), int(x.shape[2])
        first, last = body_columns(x, self.threshold)
        left = tf.maximum(tf.cast(first, x.dtype) / w - self.margin, 0.0)
        right = tf.minimum(tf.cast(last + 1, x.dtype) / w + self.margin, 1.0)
        trusted = right - left >= self.min_width
        left, right = tf.where(trusted, left, 0.0), tf.where(trusted, right, 1.0)
        zero = tf.zeros_like(left)
        boxes = tf.stack([zero, left, zero + 1.0, right], axis=1)
        return tf.image.crop_and_resize(x, boxes, tf.range(tf.shape(x)[0]), (h, w))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "margin": self.margin,
                "min_width": self.min_width}
