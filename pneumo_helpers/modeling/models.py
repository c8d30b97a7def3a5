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
import numpy as np
import tensorflow as tf
from keras import layers

from ..tasks import get_task
from .augment import (MeanOverViews, RandomLocalContrast, RandomReframe, RandomSharpness,
                      StackViews)
from .layers import (BodyCrop, HistogramEqualization, PerImageStandardization,
                     StructureNormalization)


def augmentation(strength: str = "strong", seed: int = 42,
                 zoom: tuple[float, float] = (0.7, 1.3), shift: float = 0.15,
                 local_contrast: tuple[float, float] | None = None) -> keras.Sequential:
    """Random reframing, gamma and sharpness, the same for both classes (see
    ``augment``); active in training only.

    ``"strong"``: zoom log-uniform in ``zoom`` (0.7x to 1.3x), aspect ratio 0.85
    to 1.18, shift up to ``shift`` (15%), rotation up to 6 degrees, gamma 0.7 to 1.4, then
    sharpness from blurred to sharpened (X-ray machines and periods differ in
    exposure and sharpness as well as framing), and with ``local_contrast``
    (a factor range, e.g. ``(0.7, 1.4)``) structure contrast scaled about the
    local mean (``augment.local_contrast``); ``"none"``: the identity.
    """
    if strength not in ("strong", "none"):
        raise ValueError(f"augment must be 'strong' or 'none', got {strength!r}")
    if strength == "none":
        return keras.Sequential([layers.Identity()], name="augmentation")
    return keras.Sequential([
        RandomReframe(zoom=zoom, shift=shift, rotation=6.0, gamma=(0.7, 1.4),
                      aspect=(0.85, 1.18), seed=seed, dtype="float32"),
        RandomSharpness((0.1, 0.9), value_range=(0, 1), seed=seed + 1, dtype="float32"),
    ] + ([RandomLocalContrast(local_contrast, seed=seed + 2, dtype="float32")]
         if local_contrast else []), name="augmentation")


def baseline(image_size: int = 128, pixels: int = 32, task="binary", seed: int | None = None,
             name: str = "baseline_logreg") -> keras.Model:
    """Logistic regression on downsized pixels: what any CNN must beat. (The
    border-only model, which sees framing alone, is ``framing.fit_border_model``.)"""
    inputs = keras.Input((image_size, image_size, 1))
    x = layers.Flatten()(layers.Resizing(pixels, pixels)(inputs))
    return keras.Model(inputs, get_task(task).head(x), name=name)


def original_cnn(image_size: int = 224, task="binary", seed: int | None = None,
                 name: str = "original_cnn") -> keras.Model:
    """The original student project's final CNN, layer for layer (binary task only)."""
    if not get_task(task).is_binary:
        raise ValueError("the original CNN has one sigmoid output: binary task only")
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
        name=name,
    )


def robust_cnn(
    image_size: int = 128,
    filters: tuple[int, ...] = (16, 32, 64, 128),
    convs_per_block: int = 1,
    stem_stride: int = 2,
    body_crop: bool = False,
    equalize: bool = False,
    normalize_structure: bool = False,
    augment: str = "strong",
    zoom: tuple[float, float] = (0.7, 1.3),
    shift: float = 0.15,
    local_contrast: tuple[float, float] | None = None,
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
    whatever its exposure curve), ``normalize_structure``
    (:class:`StructureNormalization`, one level of structure), the random ``augment``\ ation (training
    only; zoom range ``zoom``, shifts up to ``shift``, structure contrast in
    ``local_contrast``), ``standardize`` (per-image zero mean, unit
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
    if normalize_structure:
        x = StructureNormalization(name="structure", dtype="float32")(x)
    x = augmentation(augment, seed=seed, zoom=zoom, shift=shift, local_contrast=local_contrast)(x)
    if standardize:
        x = PerImageStandardization(dtype="float32")(x)
    for i, f in enumerate(filters):
        for j in range(convs_per_block):
            x = layers.Conv2D(f, 3, strides=stem_stride if i == j == 0 else 1, padding="same",
                              use_bias=not batch_norm, kernel_regularizer=reg,
                              name=f"conv{i + 1}_{j + 1}")(x)
            if batch_norm:
                # under a tf.distribute strategy, statistics shared across replicas, so
                # that every worker ends with the same moving mean and variance
                x = layers.BatchNormalization(synchronized=tf.distribute.has_strategy())(x)
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = {"avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D,
         "flatten": layers.Flatten}[pooling]()(x)
    x = layers.Dropout(dropout, seed=seed)(x)
    return keras.Model(inputs, get_task(task).head(x), name=name)


def inference_model(networks: list[keras.Model], views=(), preprocess: keras.Model | None = None,
                    name: str = "pneumo", each_network: bool = False) -> keras.Model:
    """The model as it is used: ``preprocess`` (e.g. the crop to the lung
    fields; frozen, the same in training and use), the test-time ``views``
    stacked into the batch (:class:`augment.StackViews`), the mean of the
    ``networks``' outputs (one per training seed), and the mean over views.
    One forward pass scores an image on every view with every network.

    ``each_network``: the networks' outputs side by side instead of their
    mean (``(n, len(networks) * outputs)``, see :func:`split_networks`), to
    score the seeds of a recipe separately in one pass."""
    source = preprocess if preprocess is not None else networks[0]
    inputs = keras.Input(source.input_shape[1:], name="image")
    x = preprocess(inputs) if preprocess is not None else inputs
    if views:
        x = StackViews(views, name="views")(x)
    outs = [n(x) for n in networks]
    if len(outs) == 1:
        y = outs[0]
    elif each_network:
        y = layers.Concatenate(axis=-1, name="each_network")(outs)
    else:
        y = layers.Average(name="mean_of_networks")(outs)
    if views:
        y = MeanOverViews(1 + len(views), name="mean_over_views")(y)
    return keras.Model(inputs, y, name=name)


def split_networks(scores, n_networks: int) -> list[np.ndarray]:
    """The scores of an ``each_network`` :func:`inference_model`, ``(n,
    n_networks * k)``, as one array per network: ``(n,)`` for one sigmoid
    output, ``(n, k)`` for a softmax (as ``training.predict_scores``)."""
    scores = np.asarray(scores)
    if scores.ndim == 1:
        scores = scores[:, None]
    k, rest = divmod(scores.shape[-1], n_networks)
    if rest or not k:
        raise ValueError(f"{scores.shape[-1]} outputs do not split into {n_networks} networks")
    parts = scores.reshape(len(scores), n_networks, k)
    return [parts[:, i, 0] if k == 1 else parts[:, i] for i in range(n_networks)]


def networks_of(model: keras.Model) -> list[keras.Model]:
    """The trained networks inside an :func:`inference_model` (one per seed),
    or the model itself when it is a bare network. Models saved by version
    0.2.0 (a ``mean_of_members`` average) are read the same way."""
    names = {layer.name for layer in model.layers}
    if not names & {"image", "mean_of_members"}:
        return [model]
    return [layer for layer in model.layers if isinstance(layer, keras.Model)
            and layer.name not in ("augmentation", "preprocess")]


def preprocess_of(model: keras.Model) -> keras.Model | None:
    """The frozen preprocessing model inside an :func:`inference_model`, if any."""
    found = [layer for layer in model.layers if layer.name == "preprocess"]
    return found[0] if found else None


def views_of(model: keras.Model) -> tuple:
    """The test-time views inside an :func:`inference_model` (empty when none)."""
    found = [layer for layer in model.layers if isinstance(layer, StackViews)]
    return found[0].frames if found else ()


BUILDERS = {"robust_cnn": robust_cnn, "baseline": baseline, "original_cnn": original_cnn}
