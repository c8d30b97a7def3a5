"""Reframing: zoom, shift and rotate X-rays, at random (training), on purpose
(the stress test) or for test-time augmentation. One affine resampling per
image, black where uncovered.

Training images of the two classes differ in framing (NORMAL ones share one
framing, PNEUMONIA ones vary), so a CNN can learn the frame instead of the
lungs. Random reframing of every training image breaks that shortcut; the
same geometry, applied deterministically to a holdout, tests whether it did.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops


def affine_matrix(zoom, shift_x, shift_y, angle, width: int, height: int, aspect=1.0):
    """Rows ``[a0, a1, a2, b0, b1, b2, 0, 0]`` for ``ops.image.affine_transform``:
    the output pixel (x, y) samples the input at ``A (x - c - d) + c``, with
    ``A`` the inverse of zooming by ``zoom`` (``zoom * aspect`` horizontally,
    ``zoom / aspect`` vertically) and rotating by ``angle`` (radians) about
    the centre ``c``, and ``d`` the shift in fractions of width/height.
    Arguments may be scalars or 1-D tensors (one value per image)."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    zx, zy = zoom * aspect, zoom / aspect
    cos, sin = ops.cos(angle), ops.sin(angle)
    a0, a1, b0, b1 = cos / zx, sin / zx, -sin / zy, cos / zy
    px, py = cx + shift_x * width, cy + shift_y * height
    a2 = cx - (a0 * px + a1 * py)
    b2 = cy - (b0 * px + b1 * py)
    zero = ops.zeros_like(a0)
    return ops.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=-1)


def reframe(images, zoom: float = 1.0, shift_x: float = 0.0, shift_y: float = 0.0,
            angle: float = 0.0):
    """Zoom about the centre (``zoom < 1`` zooms out, leaving a black border),
    shift (fractions of the size; positive: right / down) and rotate a batch
    of ``(n, h, w, c)`` images, all by the same amounts."""
    images = ops.convert_to_tensor(images, dtype="float32")
    n, h, w = ops.shape(images)[0], int(images.shape[1]), int(images.shape[2])
    one = ops.ones((n,), dtype="float32")
    matrix = affine_matrix(zoom * one, shift_x * one, shift_y * one, angle * one, w, h)
    return ops.image.affine_transform(images, matrix, interpolation="bilinear",
                                      fill_mode="constant", fill_value=0.0)


@keras.saving.register_keras_serializable(package="pneumo")
class RandomReframe(layers.Layer):
    """Random zoom (log-uniform in ``zoom``), aspect ratio (log-uniform in
    ``aspect``: originals of many shapes are squashed to squares), shift (up to
    ``shift`` of the size), rotation (up to ``rotation`` degrees) and gamma
    (``gamma`` range) per image, in training only. Expects images in [0, 1]."""

    def __init__(self, zoom=(0.7, 1.3), shift=0.15, rotation=6.0, gamma=(0.7, 1.4),
                 aspect=(1.0, 1.0), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.zoom, self.shift, self.rotation, self.gamma = tuple(zoom), shift, rotation, tuple(gamma)
        self.aspect = tuple(aspect)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        n, h, w = ops.shape(images)[0], int(images.shape[1]), int(images.shape[2])

        def uniform(lo, hi):
            return keras.random.uniform((n,), lo, hi, seed=self.generator)

        zoom = ops.exp(uniform(math.log(self.zoom[0]), math.log(self.zoom[1])))
        aspect = ops.exp(uniform(math.log(self.aspect[0]), math.log(self.aspect[1])))
        matrix = affine_matrix(zoom, uniform(-self.shift, self.shift),
                               uniform(-self.shift, self.shift),
                               uniform(-1, 1) * math.radians(self.rotation), w, h, aspect)
        out = ops.image.affine_transform(images, matrix, interpolation="bilinear",
                                         fill_mode="constant", fill_value=0.0)
        gamma = ops.exp(uniform(math.log(self.gamma[0]), math.log(self.gamma[1])))
        return ops.power(ops.clip(out, 1e-6, 1.0), ops.reshape(gamma, (-1, 1, 1, 1)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "zoom": self.zoom, "shift": self.shift,
                "rotation": self.rotation, "gamma": self.gamma, "aspect": self.aspect,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="pneumo")
class RandomSharpness(layers.RandomSharpness):
    """``keras.layers.RandomSharpness`` (the same draws, the same numbers to
    float32 rounding), with its 3x3 smoothing summed from nine shifted copies
    of the image instead of a depthwise convolution: several times faster on
    the CPU, where it was a fifth of a training step. The nine products are
    added in the order of TensorFlow's reference convolution, bit-identical on
    CPUs where oneDNN's depthwise convolution keeps that order; where it does
    not (AVX-512 kernels that sum in another order), pixels differ by a float32
    ulp or two (at most 1.8e-7 in [0, 1], on 10% of the pixels, seen on an AMD
    EPYC)."""

    def transform_images(self, images, transformation=None, training=True):
        if not training or self.data_format != "channels_last":
            return super().transform_images(images, transformation, training)
        images = ops.cast(images, self.compute_dtype)
        factor = ops.reshape(ops.cast(transformation["factor"] * 2, self.compute_dtype),
                             (-1, 1, 1, 1))
        h, w = int(images.shape[1]), int(images.shape[2])
        padded = ops.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
        a, b = 1.0 / 13.0, 5.0 / 13.0
        smoothed = None
        for i in range(3):
            for j in range(3):
                term = (b if i == j == 1 else a) * padded[:, i:i + h, j:j + w, :]
                smoothed = term if smoothed is None else smoothed + term
        images = images + (1.0 - factor) * (smoothed - images)
        return ops.clip(images, self.value_range[0], self.value_range[1])


def gaussian_blur(images, sigma: float):
    """Blur a batch of ``(n, h, w, 1)`` images with a Gaussian of ``sigma`` pixels."""
    if sigma <= 0:
        return images
    radius = max(1, int(round(3 * sigma)))
    t = ops.arange(-radius, radius + 1, dtype="float32")
    k = ops.exp(-0.5 * (t / sigma) ** 2)
    k = k / ops.sum(k)
    pad = ops.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="reflect")
    out = ops.depthwise_conv(pad, ops.reshape(k, (-1, 1, 1, 1)), padding="valid")
    return ops.depthwise_conv(out, ops.reshape(k, (1, -1, 1, 1)), padding="valid")


LOCAL_SCALE = 8  # the local mean: the image at 1/8 of its size, smoothed back up


def local_contrast(images, factor, scale: int = LOCAL_SCALE):
    """Structure contrast of ``(n, h, w, 1)`` images in [0, 1] scaled by
    ``factor`` (a number or one per image) about their local mean (the image
    brought to 1/``scale`` of its size, antialiased, and back): ribs, vessels
    and lung texture fainter (``factor < 1``) or stronger, the broad
    distribution of brightness kept. X-ray machines and their processing
    differ in it (edge enhancement), and in the training data healthy lungs
    show more of it than the originals of Kaggle's ``val`` split do."""
    x = ops.convert_to_tensor(images, dtype="float32")
    h, w = int(x.shape[1]), int(x.shape[2])
    low = ops.image.resize(x, (max(1, h // scale), max(1, w // scale)), interpolation="bilinear",
                           antialias=True)
    low = ops.image.resize(low, (h, w), interpolation="bilinear")
    factor = ops.reshape(ops.cast(factor, "float32"), (-1, 1, 1, 1))
    return ops.clip(low + factor * (x - low), 0.0, 1.0)


@keras.saving.register_keras_serializable(package="pneumo")
class RandomLocalContrast(layers.Layer):
    """:func:`local_contrast` with a factor log-uniform in ``factor`` per
    image, in training only (both classes alike)."""

    def __init__(self, factor=(0.7, 1.4), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.factor, self.seed = tuple(factor), seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        lo, hi = math.log(self.factor[0]), math.log(self.factor[1])
        factor = ops.exp(keras.random.uniform((ops.shape(images)[0],), lo, hi,
                                              seed=self.generator))
        return local_contrast(images, factor)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


# (zoom, shift_x, shift_y) of each test-time view
TTA_FRAMES = ((0.9, 0.0, 0.0), (1.1, 0.0, 0.0), (1.0, -0.05, 0.0), (1.0, 0.05, 0.0))


@keras.saving.register_keras_serializable(package="pneumo")
class StackViews(layers.Layer):
    """Test-time views inside the model: a batch of ``n`` images becomes
    ``n * (1 + len(frames))`` images, the plain batch followed by the batch
    reframed by each of ``frames`` (zoom, shift_x, shift_y), so that one
    forward pass scores every view. :class:`MeanOverViews` folds them back."""

    def __init__(self, frames=TTA_FRAMES, **kwargs):
        super().__init__(**kwargs)
        self.frames = tuple(tuple(float(v) for v in f) for f in frames)

    def call(self, images):
        return ops.concatenate([images] + [reframe(images, *f) for f in self.frames], axis=0)

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "frames": [list(f) for f in self.frames]}


@keras.saving.register_keras_serializable(package="pneumo")
class MeanOverViews(layers.Layer):
    """The mean over the ``n_views`` stacked blocks of a batch (see :class:`StackViews`)."""

    def __init__(self, n_views: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.n_views = int(n_views)

    def call(self, scores):
        shape = ops.shape(scores)
        blocks = ops.reshape(scores, (self.n_views, shape[0] // self.n_views, *scores.shape[1:]))
        return ops.mean(blocks, axis=0)

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "n_views": self.n_views}
