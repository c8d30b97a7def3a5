"""Model builders: a baseline, the original project's CNN, and robust CNNs.

Every builder returns an uncompiled ``keras.Model`` taking
``(image_size, image_size, 1)`` images in [0, 1] and ending in the task's head
(``tasks``): a pneumonia probability (sigmoid) for ``task="binary"``, softmax
probabilities over normal / bacteria / virus for ``task="ternary"``.
Augmentation lives inside the model as Keras preprocessing layers, active
only in training.
"""

from __future__ import annotations

import keras
from keras import layers

from ..tasks import get_task
from .augment import RandomReframe
from .layers import BodyCrop, HistogramEqualization, PerImageStandardization


def augmentation(strength: str = "strong", seed: int = 42,
                 zoom: tuple[float, float] = (0.7, 1.3)) -> keras.Sequential:
    """Random reframing, gamma and sharpness, the same for both classes (see
    ``augment``); active in training only.

    ``"strong"``: zoom log-uniform in ``zoom`` (0.7x to 1.3x), aspect ratio 0.85
    to 1.18, shift up to 15%, rotation up to 6 degrees, gamma 0.7 to 1.4, then
    sharpness from blurred to sharpened (X-ray machines and periods differ in
    exposure and sharpness as well as framing); ``"none"``: the identity.
    """
    if strength not in ("strong", "none"):
        raise ValueError(f"augment must be 'strong' or 'none', got {strength!r}")
    if strength == "none":
        return keras.Sequential([layers.Identity()], name="augmentation")
    return keras.Sequential([
        RandomReframe(zoom=zoom, shift=0.15, rotation=6.0, gamma=(0.7, 1.4),
                      aspect=(0.85, 1.18), seed=seed, dtype="float32"),
        layers.RandomSharpness((0.1, 0.9), value_range=(0, 1), seed=seed + 1, dtype="float32"),
    ], name="augmentation")


def baseline(image_size: int = 128, pixels: int = 32, task="binary") -> keras.Model:
    """Logistic regression on downsized pixels: what any CNN must beat. (The
    border-only model, which sees framing alone, is ``framing.fit_border_model``.)"""
    inputs = keras.Input((image_size, image_size, 1))
    x = layers.Flatten()(layers.Resizing(pixels, pixels)(inputs))
    return keras.Model(inputs, get_task(task).head(x), name="baseline_logreg")


def original_cnn(image_size: int = 224) -> keras.Model:
    """The original student project's final CNN, layer for layer."""
    return keras.Sequential(
        [
            keras.Input((image_size, image_size, 1)),
            layers.Conv2D(32, 3, activation="tanh"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 4, activation="relu"),
            layers.MaxPooling2D(2, padding="same"),
            layers.LeakyReLU(),
            layers.MaxPooling2D(2, padding="same"),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(64, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="original_cnn",
    )


def robust_cnn(
    image_size: int = 128,
    filters: tuple[int, ...] = (16, 32, 64, 128),
    convs_per_block: int = 1,
    stem_stride: int = 2,
    body_crop: bool = False,
    equalize: bool = False,
    augment: str = "strong",
    zoom: tuple[float, float] = (0.7, 1.3),
    standardize: bool = True,
    batch_norm: bool = True,
    pooling: str = "avg",
    dropout: float = 0.3,
    l2: float = 1e-4,
    task="binary",
    seed: int = 42,
    name: str = "robust_cnn",
) -> keras.Model:
    """A small VGG-style CNN; each option is a step of chapter 04's table or a
    row of chapter 07's.

    In order: ``body_crop`` (:class:`BodyCrop`, a canonical horizontal
    framing), ``equalize`` (:class:`HistogramEqualization`, the same image
    whatever its exposure curve), the random ``augment``\ ation (training
    only; zoom range ``zoom``), ``standardize`` (per-image zero mean, unit
    variance), then per entry of ``filters`` a block of ``convs_per_block``
    3x3 convolutions (``batch_norm``, ReLU) and max pooling, the very first
    convolution strided by ``stem_stride`` (2 quarters the cost of the network
    for a small loss of detail), global
    ``pooling`` (``"avg"``, ``"max"``, or ``"flatten"`` for a dense head),
    dropout, and the task's head.
    """
    if pooling not in ("avg", "max", "flatten"):
        raise ValueError(f"pooling must be 'avg', 'max' or 'flatten', got {pooling!r}")
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input((image_size, image_size, 1))
    # preprocessing stays in float32 under mixed precision; the convolutions follow the policy
    x = BodyCrop(name="body_crop", dtype="float32")(inputs) if body_crop else inputs
    x = HistogramEqualization(name="equalize", dtype="float32")(x) if equalize else x
    x = augmentation(augment, seed=seed, zoom=zoom)(x)
    if standardize:
        x = PerImageStandardization(dtype="float32")(x)
    for i, f in enumerate(filters):
        for j in range(convs_per_block):
            x = layers.Conv2D(f, 3, strides=stem_stride if i == j == 0 else 1, padding="same",
                              use_bias=not batch_norm, kernel_regularizer=reg,
                              name=f"conv{i + 1}_{j + 1}")(x)
            if batch_norm:
                x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = {"avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D,
         "flatten": layers.Flatten}[pooling]()(x)
    x = layers.Dropout(dropout, seed=seed)(x)
    return keras.Model(inputs, get_task(task).head(x), name=name)


def average_model(members: list[keras.Model], name: str = "ensemble") -> keras.Model:
    """One Keras model whose output is the mean of ``members``' outputs (a
    single ``.keras`` file holds them all)."""
    if len(members) == 1:
        return members[0]
    inputs = keras.Input(members[0].input_shape[1:])
    outputs = keras.layers.Average(name="mean_of_members")([m(inputs) for m in members])
    return keras.Model(inputs, outputs, name=name)


def member_models(model: keras.Model) -> list[keras.Model]:
    """The members of an :func:`average_model` (or the model itself)."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)
              and layer.name != "augmentation"]
    if "mean_of_members" in [layer.name for layer in model.layers] and nested:
        return nested
    return [model]


def load_model(path) -> keras.Model:
    """Load a ``.keras`` file saved by these notebooks (importing this module
    registers the custom layers Keras needs to rebuild it)."""
    return keras.models.load_model(path)
