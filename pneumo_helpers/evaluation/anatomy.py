"""Instruments grounded in anatomy, on validation patients, for every recipe
(with or without a crop to the lung fields):

- **saliency share**: the share of each image's Grad-CAM mass that lies inside
  its lung fields, for normal and pneumonia images separately (the map of the
  image's own class: where the model finds pneumonia in a pneumonia image,
  and health in a healthy one). A model that reads the lungs puts most of it
  there; one that reads the child's size, the shoulders or a marker does not;
- **scale-matched subset**: the validation normals whose lungs fill the frame
  most (lung box area at or above the normals' 70th percentile) and the
  pneumonias whose lungs fill it least (at or below the pneumonias' 30th
  percentile): in training, small lungs in a wide frame go with "normal", so
  a model that learned scale ranks this subset badly and flags its normals;
- **structure-matched subset**: the validation normals whose lungs show the
  least structure (ribs, vessels, lung texture about the local mean, inside
  the lung box: :func:`structure`; at or below the normals' 30th
  percentile) and the pneumonias whose lungs show the most (at or above the
  pneumonias' 70th percentile): in training, faint structure goes with
  pneumonia (consolidation hides it, and so do some machines' processing),
  and Kaggle's ``val`` normals show as little as training pneumonias do;
- **marker view**: the validation images with laterality letters and text
  ("R", "A-P") pasted outside the lung fields, at the positions and sizes
  where they occur in these images (an "R" at the left edge, as on most
  normal images; an "R" and "A-P" in the top left corner, as on many
  pneumonia images); scored at the same threshold, its specificity should
  stay that of plain validation.
"""

from __future__ import annotations

import functools

import numpy as np

SCALE_QUANTILES = (0.7, 0.3)  # normals at or above, pneumonias at or below
#: (text, x0, y0, height) of each marker, as fractions of the image; measured on
#: training images (the letters are about 5% of the image height)
MARKERS = (("R", 0.02, 0.30, 0.05), ("R", 0.03, 0.02, 0.05), ("A-P", 0.09, 0.015, 0.045))
MARKER_LEVEL = 0.97  # markers are burnt in near white


def scale_matched_mask(labels, box_area, quantiles=SCALE_QUANTILES) -> np.ndarray:
    """Which images form the scale-matched subset (see the module's description)."""
    labels, box_area = np.asarray(labels) > 0, np.asarray(box_area, dtype=float)
    hi = np.quantile(box_area[~labels], quantiles[0])
    lo = np.quantile(box_area[labels], quantiles[1])
    return np.where(labels, box_area <= lo, box_area >= hi)


def structure_matched_mask(labels, structure_, quantiles=SCALE_QUANTILES) -> np.ndarray:
    """Which images form the structure-matched subset (see the module's
    description): the normals with the least structure, the pneumonias with
    the most (:func:`scale_matched_mask` of the structure's negative)."""
    return scale_matched_mask(labels, -np.asarray(structure_, dtype=float), quantiles)


def _as_mask(lungs) -> np.ndarray:
    """A bool lung mask, or a lung probability map thresholded at 0.5."""
    lungs = np.asarray(lungs)
    return lungs if lungs.dtype == bool else lungs > 0.5


def saliency_share(cams: np.ndarray, lungs: np.ndarray) -> np.ndarray:
    """Per image, the share of the Grad-CAM mass ``cams`` ``(n, h, w)`` that
    lies where ``lungs`` ``(n, h, w)`` (bool or a probability > 0.5) is set."""
    lungs = _as_mask(lungs)
    total = cams.reshape(len(cams), -1).sum(axis=1)
    inside = (cams * lungs).reshape(len(cams), -1).sum(axis=1)
    return np.where(total > 0, inside / np.maximum(total, 1e-12), np.nan)


def lung_map_share(lungs: np.ndarray, resolution: int) -> np.ndarray:
    """Per image, the saliency share of a map that is the lungs themselves seen
    at ``resolution`` x ``resolution``, the resolution of the Grad-CAM maps
    (each cell the share of it that ``lungs`` ``(n, h, w)`` cover, resized back
    bilinearly as ``explain.grad_cam`` resizes its maps): what a network that
    reads every part of both lungs alike, and nothing else, would score with
    maps that coarse. It lies between the lung area (an even map: chance) and
    1, and tells how far a saliency share is from the lungs alone."""
    import tensorflow as tf

    lungs = _as_mask(lungs)
    cells = tf.image.resize(lungs[..., None].astype("float32"), (resolution, resolution),
                            method="area")
    maps = tf.image.resize(cells, lungs.shape[1:3]).numpy()[..., 0]
    return saliency_share(maps, lungs)


def lungs_as_the_network_sees_them(recipe, probability, boxes_xy, image_size: int) -> np.ndarray:
    """The lung masks ``(n, image_size, image_size)`` in the space of the
    network's input: the probability maps resized, and, for a recipe that
    crops, cut to the crop's box (with its margin) first."""
    import tensorflow as tf

    prob = tf.constant(probability[..., None], tf.float32)
    if recipe.lungs:
        from ..lungs.crop import MARGIN

        x0, y0, x1, y1 = np.asarray(boxes_xy, dtype="float32").T
        mw, mh = MARGIN * (x1 - x0), MARGIN * (y1 - y0)
        boxes = np.stack([np.maximum(y0 - mh, 0), np.maximum(x0 - mw, 0),
                          np.minimum(y1 + mh, 1), np.minimum(x1 + mw, 1)], axis=1)
        out = tf.image.crop_and_resize(prob, boxes, tf.range(len(boxes)),
                                       (image_size, image_size))
    else:
        out = tf.image.resize(prob, (image_size, image_size))
    return np.asarray(out)[..., 0] > 0.5


@functools.lru_cache(maxsize=4)
def _glyph(text: str, height: int) -> np.ndarray:
    """The letters ``text`` as a float mask about ``height`` pixels high."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=max(6, int(round(height * 1.3))))
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    left, top, right, bottom = font.getbbox(text)
    canvas = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(canvas).text((1 - left, 1 - top), text, fill=255, font=font)
    return np.asarray(canvas, dtype="float32") / 255.0


def marker_stamps(size: int) -> np.ndarray:
    """``(len(MARKERS), size, size)`` masks, one per marker of :data:`MARKERS`."""
    stamps = np.zeros((len(MARKERS), size, size), "float32")
    for k, (text, x0, y0, height) in enumerate(MARKERS):
        glyph = _glyph(text, max(5, int(round(height * size))))
        r, c = int(round(y0 * size)), int(round(x0 * size))
        h, w = min(glyph.shape[0], size - r), min(glyph.shape[1], size - c)
        stamps[k, r:r + h, c:c + w] = glyph[:h, :w]
    return stamps


def marker_view(size: int):
    """A stress view ``(images, labels) -> images`` at ``size``: the markers of
    :data:`MARKERS` burnt in, each only where it does not touch the image's
    lung box (found by the lung-field model, widened by 5%)."""
    import tensorflow as tf

    from ..lungs.crop import SEGMENTER_SIZE, fields_model, lung_boxes

    stamps = tf.constant(marker_stamps(size))
    extents = []
    for k in range(len(MARKERS)):
        rows, cols = np.nonzero(marker_stamps(size)[k])
        extents.append(((cols.min() + 0.0) / size, (rows.min() + 0.0) / size,
                        (cols.max() + 1.0) / size, (rows.max() + 1.0) / size)
                       if len(rows) else (0, 0, 0, 0))
    extents = tf.constant(np.asarray(extents, "float32"))  # (k, 4) x0 y0 x1 y1
    model = fields_model(size)

    def view(x, y):
        probability, _ = model(x, training=False)
        small = tf.image.resize(x, (SEGMENTER_SIZE, SEGMENTER_SIZE), antialias=True)
        boxes, _ = lung_boxes(probability, small, margin=0.05)  # y0 x0 y1 x1
        by0, bx0, by1, bx1 = (boxes[:, None, i] for i in range(4))
        mx0, my0, mx1, my1 = (extents[None, :, i] for i in range(4))
        clear = (mx1 <= bx0) | (mx0 >= bx1) | (my1 <= by0) | (my0 >= by1)  # (n, k)
        alpha = tf.einsum("nk,khw->nhw", tf.cast(clear, tf.float32), stamps)[..., None]
        alpha = tf.clip_by_value(alpha, 0.0, 1.0)
        return x * (1.0 - alpha) + MARKER_LEVEL * alpha

    return view


def structure(images, batch_size: int = 256) -> np.ndarray:
    """Each image's structure as the equalising networks see it: the mean
    absolute difference between the histogram-equalised image and its local
    mean (``modeling.augment.local_contrast`` with factor 0), ribs, vessels
    and lung texture. ``images``: ``(n, h, w, 1)`` in [0, 1], e.g. the crops
    to the lung fields. The stress view ``faint_structure`` lowers it by a
    fifth."""
    from ..modeling.augment import local_contrast
    from ..modeling.layers import HistogramEqualization

    equalize = HistogramEqualization()
    out = []
    for i in range(0, len(images), batch_size):
        x = np.asarray(equalize(np.asarray(images[i:i + batch_size], "float32")))
        out.append(np.abs(x - np.asarray(local_contrast(x, 0.0))).mean(axis=(1, 2, 3)))
    return np.concatenate(out) if out else np.zeros(0)
