"""Inputs normalised by anatomy: each image taken to the box of its lung
fields (with a margin), so that a small child framed wide and an older child
filling the frame reach the classifier at the same scale.

The crop is a frozen Keras model (:func:`crop_model`) that sits inside every
saved model whose recipe asks for it, so training, validation, test and
``pneumo predict`` apply exactly the same steps, and Keras' safe mode loads
it (every layer is registered under ``pneumo>``):

1. the decoded image (``decode_size``, larger than the classifier's input so
   that the crop keeps its detail) is resized to the segmenter's input and
   segmented (``lungs.segmenter``);
2. :class:`LungBox` turns the lung probability map into a box: the rows and
   columns that hold lung, mirrored about the body's midline when one lung is
   missing (a white, consolidated lung), widened by a margin; a map with
   almost no lung gives :data:`FALLBACK_BOX`;
3. :class:`CropToBox` cuts the box out of the decoded image and resizes it to
   the classifier's input (``"crop_mask"``: with everything outside the
   slightly widened lung fields set to black).
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf
from keras import layers

SEGMENTER_SIZE = 128  # the segmenter's input and output
MARGIN = 0.08  # of the box's width and height, on each side
MIN_LUNG_SHARE = 0.02  # less lung than this in the map: no box from it
MIN_PIXELS = 2  # a row or column holds lung when it has at least this many lung pixels,
MIN_PROFILE = 0.05  # and at least this share of the fullest row or column (stray specks do not)
ONE_LUNG_RATIO = 0.25  # one side under this share of the other: one lung was missed
#: the box used when the map holds no lungs (the median box of training children)
FALLBACK_BOX = (0.12, 0.10, 0.88, 0.80)  # x0, y0, x1, y1


def decode_size(image_size: int) -> int:
    """The size images are decoded at for a crop to ``image_size``: 1.75x
    (224 for 128, the size the Kaggle training images are stored at)."""
    return int(round(1.75 * image_size / 8) * 8)


def body_midline(images):
    """The body's horizontal midline, as a fraction of the width, per image
    (the columns of ``modeling.layers.body_columns``; 0.5 when none is found)."""
    from ..modeling.layers import body_columns

    w = int(images.shape[2])
    first, last = body_columns(images)
    mid = tf.cast(first + last + 1, images.dtype) / (2.0 * w)
    return tf.where(last >= first, mid, 0.5)


def _extent(present):
    """First and one-past-last index where ``present`` (n, s) is true, as fractions."""
    s = tf.shape(present)[1]
    any_ = tf.reduce_any(present, axis=1)
    first = tf.argmax(tf.cast(present, tf.int32), axis=1, output_type=tf.int32)
    last = s - tf.argmax(tf.cast(present[:, ::-1], tf.int32), axis=1, output_type=tf.int32)
    size = tf.cast(s, tf.float32)
    return (tf.where(any_, tf.cast(first, tf.float32) / size, 0.0),
            tf.where(any_, tf.cast(last, tf.float32) / size, 1.0))


def _holds_lung(profile):
    """Which rows (or columns) of a lung-pixel count profile ``(n, s)`` hold lung."""
    fullest = tf.reduce_max(profile, axis=1, keepdims=True)
    return profile >= tf.maximum(float(MIN_PIXELS), MIN_PROFILE * fullest)


def lung_boxes(probability, images, margin: float = MARGIN):
    """Boxes ``(n, 4)`` as ``(y0, x0, y1, x1)`` fractions (the order of
    ``tf.image.crop_and_resize``) from lung probability maps ``(n, s, s, 1)``
    and the images they were computed from (for the body's midline), and
    whether each box came from the map (not the fallback). See the module's
    description for the rule."""
    lung = tf.cast(probability[..., 0] > 0.5, tf.float32)
    s = tf.cast(tf.shape(lung)[2], tf.float32)
    x0, x1 = _extent(_holds_lung(tf.reduce_sum(lung, axis=1)))
    y0, y1 = _extent(_holds_lung(tf.reduce_sum(lung, axis=2)))
    # one lung missing: the box of the lung found, mirrored about the body's midline
    mid = tf.cast(body_midline(images), tf.float32)
    columns = (tf.range(tf.shape(lung)[2], dtype=tf.float32) + 0.5) / s
    left = tf.reduce_sum(lung * tf.cast(columns < mid[:, None], tf.float32)[:, None, :],
                         axis=(1, 2))
    right = tf.reduce_sum(lung, axis=(1, 2)) - left
    one_lung = tf.minimum(left, right) < ONE_LUNG_RATIO * tf.maximum(left, right)
    x0, x1 = (tf.where(one_lung, tf.minimum(x0, 2 * mid - x1), x0),
              tf.where(one_lung, tf.maximum(x1, 2 * mid - x0), x1))
    found = tf.reduce_mean(lung, axis=(1, 2)) >= MIN_LUNG_SHARE
    fx0, fy0, fx1, fy1 = FALLBACK_BOX
    x0, x1 = tf.where(found, x0, fx0), tf.where(found, x1, fx1)
    y0, y1 = tf.where(found, y0, fy0), tf.where(found, y1, fy1)
    mw, mh = margin * (x1 - x0), margin * (y1 - y0)
    boxes = tf.stack([tf.maximum(y0 - mh, 0.0), tf.maximum(x0 - mw, 0.0),
                      tf.minimum(y1 + mh, 1.0), tf.minimum(x1 + mw, 1.0)], axis=1)
    return boxes, found


@keras.saving.register_keras_serializable(package="pneumo")
class LungBox(layers.Layer):
    """``[probability, image] -> boxes (n, 4)``: :func:`lung_boxes`."""

    def __init__(self, margin: float = MARGIN, **kwargs):
        super().__init__(**kwargs)
        self.margin = float(margin)

    def call(self, inputs):
        probability, images = inputs
        return lung_boxes(probability, images, self.margin)[0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 4)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


def _inside(boxes, h, w):
    """``(n, h, w, 1)``: 1 inside each ``(y0, x0, y1, x1)`` box, 0 outside."""
    y = (tf.cast(tf.range(h), tf.float32) + 0.5) / tf.cast(h, tf.float32)
    x = (tf.cast(tf.range(w), tf.float32) + 0.5) / tf.cast(w, tf.float32)
    rows = (y[None, :] >= boxes[:, :1]) & (y[None, :] <= boxes[:, 2:3])
    cols = (x[None, :] >= boxes[:, 1:2]) & (x[None, :] <= boxes[:, 3:4])
    return tf.cast(rows[:, :, None, None] & cols[:, None, :, None], tf.float32)


@keras.saving.register_keras_serializable(package="pneumo")
class CropToBox(layers.Layer):
    """``[image, boxes(, probability)] -> crop``: each image's box cut out and
    resized to ``size`` x ``size`` (bilinear). With ``mask_outside`` and a
    lung probability map, pixels outside the lung fields (dilated by
    ``dilate`` of the size) are set to black first."""

    def __init__(self, size: int = 128, mask_outside: bool = False, dilate: float = 0.04,
                 **kwargs):
        super().__init__(**kwargs)
        self.size, self.mask_outside, self.dilate = int(size), bool(mask_outside), float(dilate)

    def call(self, inputs):
        images, boxes = inputs[0], inputs[1]
        if self.mask_outside:
            probability = inputs[2]
            k = max(1, int(round(self.dilate * int(probability.shape[1]))) * 2 + 1)
            lung = tf.nn.max_pool2d(tf.cast(probability > 0.5, images.dtype), k, 1, "SAME")
            lung = tf.image.resize(lung, tf.shape(images)[1:3], method="bilinear")
            lung = lung * _inside(boxes, tf.shape(images)[1], tf.shape(images)[2])
            images = images * lung
        index = tf.range(tf.shape(images)[0])
        return tf.image.crop_and_resize(images, boxes, index, (self.size, self.size))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.size, self.size, input_shape[0][-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "mask_outside": self.mask_outside,
                "dilate": self.dilate}


def _segmented(input_size: int):
    """The decoded image, the lung probability map and the box, wired once."""
    from .segmenter import load_segmenter

    image = keras.Input((input_size, input_size, 1), name="image")
    small = layers.Resizing(SEGMENTER_SIZE, SEGMENTER_SIZE, interpolation="bilinear",
                            antialias=True, name="to_segmenter")(image)
    probability = load_segmenter()(small)
    return image, probability, LungBox(name="lung_box")([probability, small])


@functools.lru_cache(maxsize=8)
def fields_model(input_size: int) -> keras.Model:
    """``image (input_size) -> [lung probability (SEGMENTER_SIZE), boxes]``:
    the segmenter and the box, as one frozen model (the instruments use it)."""
    image, probability, boxes = _segmented(input_size)
    return keras.Model(image, [probability, boxes], name="lung_fields_and_box")


@functools.lru_cache(maxsize=8)
def crop_model(input_size: int, image_size: int, mode: str = "crop") -> keras.Model:
    """The frozen preprocessing of a lung recipe: ``image (input_size) -> crop
    (image_size)``. ``mode``: ``"crop"`` (the lung-field box) or
    ``"crop_mask"`` (the same box, black outside the lung fields)."""
    if mode not in ("crop", "crop_mask"):
        raise ValueError(f"lungs must be 'crop' or 'crop_mask', got {mode!r}")
    image, probability, boxes = _segmented(input_size)
    parts = [image, boxes] + ([probability] if mode == "crop_mask" else [])
    crop = CropToBox(image_size, mask_outside=mode == "crop_mask", name="crop")(parts)
    model = keras.Model(image, crop, name="preprocess")
    model.cache_key = f"lungs_{mode}_{input_size}_to_{image_size}"
    return model
