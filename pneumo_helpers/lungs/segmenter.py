"""The lung-field model: a small U-Net that maps a chest X-ray to the
probability, per pixel, that it lies in the lung fields.

It ships with the package as ``lung_fields.keras`` (next to this module),
so that ``make results`` and ``pneumo predict`` need nothing but the Kaggle
data; ``make segmenter`` (:func:`main`) trains it again from the adult
lung-mask set and the pediatric training images (see ``lungs.training``).
Input: ``(128, 128, 1)`` images in [0, 1], any exposure curve (each image is
histogram-equalised inside the model); output: the lung probability map,
``(128, 128, 1)``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import keras
from keras import layers

from ..modeling.layers import HistogramEqualization

IMAGE_SIZE = 128  # input and output
SEGMENTER_FILE = Path(__file__).with_name("lung_fields.keras")


def _conv_block(x, filters: int, separable: bool, name: str, momentum: float = 0.9):
    for k in range(2):
        conv = layers.SeparableConv2D if (separable and x.shape[-1] >= 8) else layers.Conv2D
        x = conv(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{k}")(x)
        x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn{k}")(x)
        x = layers.ReLU(name=f"{name}_relu{k}")(x)
    return x


def build_unet(image_size: int = IMAGE_SIZE, internal_size: int = 64,
               filters: tuple[int, ...] = (16, 32, 64, 128, 256), separable: bool = True,
               bn_momentum: float = 0.9, name: str = "lung_fields") -> keras.Model:
    """A small U-Net lung-field segmenter.

    Inside the model: per-image histogram equalisation (the classifier's
    ``HistogramEqualization``), average-pooling to ``internal_size`` (64 px:
    fast, and ample for a crop box), ``len(filters)`` levels of two
    (separable, if ``separable``) 3x3 convolutions with batch norm and ReLU,
    a 1x1 convolution, bilinear upsampling back to ``image_size`` and a
    sigmoid. Batch-norm momentum 0.9 (Keras' 0.99 lags behind fast-changing
    weights in short runs)."""
    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = HistogramEqualization(name="equalize")(inputs)
    factor = image_size // internal_size
    if factor > 1:
        x = layers.AveragePooling2D(factor, name="downsample")(x)
    skips = []
    for level, f in enumerate(filters[:-1]):
        x = _conv_block(x, f, separable, f"enc{level}", bn_momentum)
        skips.append(x)
        x = layers.MaxPooling2D(name=f"pool{level}")(x)
    x = _conv_block(x, filters[-1], separable, "bottleneck", bn_momentum)
    for level in reversed(range(len(filters) - 1)):
        x = layers.UpSampling2D(name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, filters[level], separable, f"dec{level}", bn_momentum)
    x = layers.Conv2D(1, 1, name="logits")(x)
    if factor > 1:
        x = layers.UpSampling2D(factor, interpolation="bilinear", name="upsample")(x)
    outputs = layers.Activation("sigmoid", dtype="float32", name="lung_probability")(x)
    return keras.Model(inputs, outputs, name=name)


@functools.lru_cache(maxsize=2)
def load_segmenter(path=None) -> keras.Model:
    """The lung-field model (default: the one shipped with the package),
    loaded in safe mode, frozen."""
    from ..errors import ModelFileError

    path = Path(path) if path is not None else SEGMENTER_FILE
    if not path.is_file():
        raise ModelFileError(f"lung-field model not found: {path} (make segmenter trains it)")
    model = keras.models.load_model(path, safe_mode=True, compile=False)
    model.trainable = False
    return model


def training_record(path=None) -> dict:
    """How the lung-field model was trained (written by ``lungs.training``
    beside the model file): data, stages, held-out images and their Dice."""
    import json

    path = Path(path) if path is not None else SEGMENTER_FILE
    return json.loads(path.with_suffix(".json").read_text())
