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
from keras import layers, ops

from .augment import RandomReframe
from .tasks import get_task


@keras.saving.register_keras_serializable(package="pneumo")
class PerImageStandardization(layers.Layer):
    """Scale each image to zero mean and unit variance (removes exposure and
    contrast differences between machines and sites)."""

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = ops.std(x, axis=(1, 2, 3), keepdims=True)
        return (x - mean) / ops.maximum(std, 1e-3)


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
        flat = tf.reshape(x, (shape[0], -1))
        idx = tf.clip_by_value(tf.cast(flat * (self.bins - 1) + 0.5, tf.int32), 0, self.bins - 1)
        counts = tf.cast(tf.math.bincount(idx, minlength=self.bins, maxlength=self.bins,
                                          axis=-1), x.dtype)
        cdf = tf.cumsum(counts, axis=1) / tf.reduce_sum(counts, axis=1, keepdims=True)
        low = cdf[:, :1]  # the share of the darkest bin maps to 0
        out = (tf.gather(cdf, idx, batch_dims=1) - low) / tf.maximum(1.0 - low, 1e-6)
        return tf.reshape(tf.clip_by_value(out, 0.0, 1.0), shape)

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}


def _band(h: int, w: int, border: float):
    """Boolean (h, w) mask of the frame ``border`` (a fraction of the size) wide."""
    bh, bw = max(1, round(border * h)), max(1, round(border * w))
    rows = ops.logical_or(ops.arange(h) < bh, ops.arange(h) >= h - bh)
    cols = ops.logical_or(ops.arange(w) < bw, ops.arange(w) >= w - bw)
    return ops.logical_or(rows[:, None], cols[None, :])


@keras.saving.register_keras_serializable(package="pneumo")
class BorderOnly(layers.Layer):
    """Black out the centre of each image and keep a frame ``border`` (a
    fraction of the size) wide: what a model sees of framing alone."""

    def __init__(self, border: float = 0.15, **kwargs):
        super().__init__(**kwargs)
        self.border = border

    def call(self, x):
        keep = _band(int(x.shape[1]), int(x.shape[2]), self.border)
        return x * ops.cast(keep, x.dtype)[None, :, :, None]

    def get_config(self):
        return {**super().get_config(), "border": self.border}


@keras.saving.register_keras_serializable(package="pneumo")
class CentreOnly(layers.Layer):
    """Black out a frame ``border`` wide around each image: the borders and
    corners where framing differs and where laterality markers ("R", "A-P")
    and other text sit, none of which says anything about the lungs."""

    def __init__(self, border: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.border = border

    def call(self, x):
        band = _band(int(x.shape[1]), int(x.shape[2]), self.border)
        return x * ops.cast(ops.logical_not(band), x.dtype)[None, :, :, None]

    def get_config(self):
        return {**super().get_config(), "border": self.border}


def augmentation(strength: str = "strong", seed: int = 42) -> keras.Sequential:
    """Random reframing and gamma, the same for both classes (see ``augment``).

    ``"strong"``: zoom 0.7x to 1.3x, aspect ratio 0.85 to 1.18, shift up to
    15%, rotation up to 6 degrees,
    gamma 0.7 to 1.4, then sharpness from blurred to sharpened (X-ray machines
    and periods differ in exposure and sharpness as well as framing);
    ``"light"``: zoom 0.9x to 1.1x, shift 5%, 2 degrees, gamma 0.9 to 1.1;
    ``"none"``: the identity.
    """
    settings = {
        "strong": dict(zoom=(0.7, 1.3), shift=0.15, rotation=6.0, gamma=(0.7, 1.4),
                       aspect=(0.85, 1.18)),
        "light": dict(zoom=(0.9, 1.1), shift=0.05, rotation=2.0, gamma=(0.9, 1.1)),
        "none": None,
    }[strength]
    if settings is None:
        return keras.Sequential([layers.Identity()], name="augmentation")
    steps = [RandomReframe(**settings, seed=seed)]
    if strength == "strong":
        steps.append(layers.RandomSharpness((0.1, 0.9), value_range=(0, 1), seed=seed + 1))
    return keras.Sequential(steps, name="augmentation")


def baseline(image_size: int = 128, pixels: int = 32, task="binary",
             border_only: float | None = None) -> keras.Model:
    """Logistic regression on downsized pixels: what any CNN must beat.

    With ``border_only`` (e.g. 0.15) it sees only a frame that wide around
    the image, the lungs blacked out: a measure of the framing shortcut."""
    inputs = keras.Input((image_size, image_size, 1))
    x = BorderOnly(border_only)(inputs) if border_only else inputs
    x = layers.Resizing(pixels, pixels)(x)
    x = layers.Flatten()(x)
    name = "border_only_logreg" if border_only else "baseline_logreg"
    return keras.Model(inputs, get_task(task).head(x), name=name)


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
    augment: str = "strong",
    mask_border: float = 0.0,
    equalize: bool = False,
    standardize: bool = True,
    batch_norm: bool = True,
    global_pool: bool = True,
    dropout: float = 0.3,
    l2: float = 1e-4,
    task="binary",
    seed: int = 42,
    name: str = "robust_cnn",
) -> keras.Model:
    """A small VGG-style CNN; each option is one step of notebook 04's table.

    Two options are off by default because they made things worse in full
    runs (see the final notebook's notes): ``equalize`` equalises each image's histogram (in training and in
    use), which evens out exposure and contrast between sources; blocks of
    ``convs_per_block`` 3x3 convolutions (batch norm, ReLU) and max
    pooling, then global average pooling (or flatten), dropout and the head.
    ``stem_stride=2`` (the default) makes the first convolution strided, which quarters the
    cost of the whole network for a small loss of detail.
    """
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input((image_size, image_size, 1))
    x = HistogramEqualization(name="equalize")(inputs) if equalize else inputs
    x = CentreOnly(mask_border)(x) if mask_border else x
    x = augmentation(augment, seed=seed)(x)
    # and again after reframing, so the frame the model sees never moves with the content
    x = CentreOnly(mask_border, name="centre_only_after")(x) if mask_border else x
    if standardize:
        x = PerImageStandardization()(x)
    for i, f in enumerate(filters):
        for j in range(convs_per_block):
            stride = stem_stride if i == j == 0 else 1
            x = layers.Conv2D(f, 3, strides=stride, padding="same", use_bias=not batch_norm,
                              kernel_regularizer=reg, name=f"conv{i + 1}_{j + 1}")(x)
            if batch_norm:
                x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x) if global_pool else layers.Flatten()(x)
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
