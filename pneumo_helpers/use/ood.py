"""Not an X-ray, not scored: the out-of-distribution check every image passes
before its score is trusted.

Every image is measured by the same compiled functions (:class:`Measurer`),
for training, validation and new images alike, and refused
(``status`` ``out_of_distribution`` in ``pneumo predict``'s CSV, the reason in
``reason``) when any of these fails (:func:`refusals`):

- **intensity**: an X-ray is grey (colour, for JPEG and PNG files), smooth
  (pixel-to-pixel roughness; noise is rough), has contrast and is not mostly
  pure black or white; the limits lie well beyond the range of the training
  images (:func:`reference`), so that exposure that differs from the
  training site's is reported (``use.site``), not refused;
- **lung fields**: the lung-field model (``lungs.segmenter``, shipped with
  the package) finds lung fields (``lungs.fields.postprocess`` /
  ``plausibility``: lung share of the image at least 2%). Its other
  plausibility failures (one lung much smaller than the other, fewer than two
  lungs, an off-centre box) do **not** refuse an image: in the training and
  validation images of the seed-42 split, all 21 such failures (of 4,591
  images) were pneumonia (a white, consolidated lung), so refusing them would
  refuse the sickest children;
- **network features** (when the model file carries a :func:`reference`):
  the Mahalanobis distance of the image's pooled features (the output of
  the first seed's network's global pooling, on the image as the network
  sees it; references of version 1 averaged every seed's network, which
  cost three passes for each of the image's turned and inverted copies
  instead of one, and are still read that way) from the training images'
  features (mean and Ledoit-Wolf shrinkage covariance, fitted on training patients), refused
  beyond the 99.5th percentile of the distances of the validation images,
  as they are and zoomed, shifted, blurred and exposed as another site might
  (:data:`TOLERATED_VIEWS`: at the plain validation percentile, a quarter of
  the validation X-rays zoomed out to 0.8 were refused in development; a
  site whose images differ that way is reported by ``use.site``, not
  refused); and the
  same distance of the image turned upside down (rotated 180 degrees, or
  flipped top to bottom) and of its negative: an image that is closer to the
  training images turned round or inverted than as it is, by more than
  99.9% of the validation X-rays are, is upside down or a negative. Model
  files without a reference (written before it) skip these checks with a
  note.

:func:`reference` computes what the checks and the shift summary
(``use.site``) need from a ``TrainedModel`` and its ``SplitData``, as a small
JSON-serialisable dict that the model file carries
(``modelfile.model_info(..., reference=...)``): the features' mean and
whitening matrix, the thresholds, the quantiles of every figure of the
training images, the validation scores' histogram, the figures of the
validation stress views, and the measured error of the site-prevalence
estimate.
"""

from __future__ import annotations

import base64
import functools

import numpy as np

MEASURE_SIZE = 128  # px: lung fields and intensity figures (the segmenter's input size)
REFERENCE_VERSION = 2
#: the reference versions read, and the networks whose features each one holds
FEATURE_NETWORKS = {1: "mean", 2: "first"}
#: quantiles kept of every figure of the training images
QUANTILES = (0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975,
             0.99, 0.995, 0.999, 1.0)
FEATURE_QUANTILE = 0.995  # of the validation images' distances: the feature threshold
MARGIN_QUANTILE = 0.999  # of the validation images' gains: the upside-down and negative margins
#: validation stress views whose images still count as chest X-rays for the feature
#: threshold: framed or exposed as another site might (``evaluation.stress.VIEWS``); the
#: strongest zoom-out (a black border round two fifths of the image) is left out
TOLERATED_VIEWS = ("zoom_out_0.8", "zoom_in_1.2", "shift_left", "shift_right", "shift_up",
                   "blur", "low_contrast", "gamma_0.7", "gamma_1.4")
#: the figures of each image compared with the training distribution (``use.site``)
STATISTICS = ("lung_box_area", "mean_intensity", "contrast", "roughness", "saturated",
              "distance")
COLOUR_LIMIT = 0.03  # mean channel difference (0-1): X-rays are grey (training images: 0)
MIN_LUNG_AREA = 0.02  # lung share of the image below this: no lung fields (fields.PLAUSIBLE)
MIN_MARGIN = 1.0  # the least distance an upside-down or inverted view must gain to refuse
SATURATED_LIMIT = 0.75  # share of pure black or white pixels (a zoomed-out X-ray: up to 0.6)
#: the image variants whose distance is compared with the image's own
VARIANTS = ("rotated", "flipped", "inverted")
SIGNIFICANT = 5  # digits kept of the reference's numbers


def _round(x, digits: int = SIGNIFICANT):
    """Numbers (nested lists) rounded to ``digits`` significant digits, as Python floats."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        v = float(a)
        return float(f"{v:.{digits}g}") if np.isfinite(v) else None
    return [_round(v, digits) for v in a]


def _pack(a: np.ndarray) -> str:
    return base64.b64encode(np.asarray(a, "<f4").tobytes()).decode("ascii")


def _unpack(text: str, n: int | None = None) -> np.ndarray:
    a = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), "<f4")
    if n is not None and a.size != n:
        raise ValueError(f"expected {n} numbers, found {a.size}")
    return a.astype("float64")


# ------------------------------------------------------------ measurement

def pooling_layer(network):
    """The network's global pooling layer (the features before its head), or ``None``."""
    import keras

    kinds = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
    found = [layer for layer in network.layers if isinstance(layer, kinds)]
    return found[-1] if found else None


def feature_network(network):
    """``image -> [pooled features, score]``, sharing ``network``'s weights,
    or ``None`` when the network has no global pooling layer."""
    import keras

    pool = pooling_layer(network)
    if pool is None:
        return None
    try:
        return keras.Model(network.inputs, [pool.output, network.outputs[0]],
                           name=f"{network.name}_features")
    except Exception:  # noqa: BLE001  layers that do not form a graph Keras can cut
        pass
    inputs = keras.Input(network.input_shape[1:])
    x, features = inputs, None
    for layer in network.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        x = layer(x)
        if layer is pool:
            features = x
    return keras.Model(inputs, [features, x], name=f"{network.name}_features")


def _crop_and_fields(pre):
    """``image -> [crop, lung probability]``: the crop model ``pre`` (``lungs.crop``)
    with its segmenter's map as a second output, or ``None`` when ``pre`` holds
    no segmenter fed by the image resized to its input (``to_segmenter``)."""
    import keras

    from ..lungs.crop import SEGMENTER_SIZE

    if pre is None:
        return None
    try:
        small, box = pre.get_layer("to_segmenter"), pre.get_layer("lung_box")
    except ValueError:
        return None
    probability, boxed = box.input  # LungBox takes [segmenter(small), small]
    if boxed is not small.output or small.input is not pre.inputs[0] or \
            tuple(small.output.shape[1:3]) != (SEGMENTER_SIZE, SEGMENTER_SIZE):
        return None
    return keras.Model(pre.inputs, [pre.outputs[0], probability], name="crop_and_fields")


class Measurer:
    """What scoring and the checks read of a batch of images, each part one
    compiled function: ``scores`` (each seed's network's scores through the
    model's own crop and test-time views, ``per_network``: ``(n, networks,
    outputs)``, and the pooled ``features`` of the plain view: the first
    network's with ``features_of="first"``, the mean over the networks with
    ``"mean"``, as the reference's version says, :data:`FEATURE_NETWORKS`),
    ``features`` alone (plain view, no test-time views),
    ``variants`` (the features of the image rotated 180 degrees, flipped top
    to bottom and inverted, ``variant_features``: ``(3, n, d)``) and
    ``lungs`` (the lung-field box and checks, :func:`lung_checks`, and the
    intensity figures, :func:`intensity`, on the image at
    :data:`MEASURE_SIZE`). ``model``: the inference model
    (``SavedModel.model``, ``TrainedModel.model``)."""

    def __init__(self, model, features_of: str = FEATURE_NETWORKS[REFERENCE_VERSION]):
        import tensorflow as tf

        from ..lungs.crop import SEGMENTER_SIZE, lung_boxes
        from ..lungs.segmenter import load_segmenter
        from ..modeling.augment import MeanOverViews, StackViews
        from ..modeling.models import networks_of, preprocess_of, views_of

        assert SEGMENTER_SIZE == MEASURE_SIZE
        self.size = int(model.input_shape[1])
        networks, pre, views = networks_of(model), preprocess_of(model), views_of(model)
        if features_of not in FEATURE_NETWORKS.values():
            raise ValueError(f"features_of must be one of {sorted(FEATURE_NETWORKS.values())}, "
                             f"got {features_of!r}")
        featured = [feature_network(n) for n in networks]
        self.has_features = all(f is not None for f in featured)
        if features_of == "first":
            featured = featured[:1]
        stack = StackViews(views) if views else None
        fold = MeanOverViews(1 + len(views)) if views else None
        try:
            segmenter = load_segmenter()
        except Exception:  # noqa: BLE001  the lung-field model missing: that check is skipped
            segmenter = None
        self.has_lungs = segmenter is not None

        def prepared(image):
            return pre(image, training=False) if pre is not None else image

        def mean_features(x):
            return tf.reduce_mean(tf.stack([tf.cast(f(x, training=False)[0], tf.float32)
                                            for f in featured]), axis=0)

        def scores(image, x=None):
            x = prepared(image) if x is None else x
            n = tf.shape(x)[0]
            xs = stack(x) if stack is not None else x
            per_network, features = [], []
            for k, net in enumerate(networks):
                if self.has_features and k < len(featured):
                    f, y = featured[k](xs, training=False)
                    features.append(tf.cast(f[:n], tf.float32))
                else:
                    y = net(xs, training=False)
                y = tf.cast(y, tf.float32)
                per_network.append(fold(y) if fold is not None else y)
            out = {"per_network": tf.stack(per_network, axis=1)}
            if features:
                out["features"] = tf.reduce_mean(tf.stack(features), axis=0)
            return out

        def variants(image, x=None):
            x = prepared(image) if x is None else x
            n = tf.shape(x)[0]
            turned = tf.concat([tf.reverse(x, [1, 2]), tf.reverse(x, [1]), 1.0 - x], axis=0)
            return {"variant_features": tf.reshape(mean_features(turned), (3, n, -1))}

        def lungs(check, probability=None):
            out = intensity(check)
            if segmenter is not None:
                if probability is None:
                    probability = segmenter(check, training=False)
                boxes, found = lung_boxes(probability, check, 0.0)
                out.update(probability=probability[..., 0], boxes=boxes, found=found)
            return out

        # one trace for every batch size (a folder's last, short batch retraced the
        # whole model: seconds of a 624-image folder's wall time)
        image_spec = tf.TensorSpec((None, self.size, self.size, 1), tf.float32)
        check_spec = tf.TensorSpec((None, MEASURE_SIZE, MEASURE_SIZE, 1), tf.float32)

        def compiled(f, *specs):
            return tf.function(f, input_signature=specs or (image_spec,), autograph=False)

        self._parts = {"scores": compiled(lambda image: scores(image)),
                       "lungs": compiled(lambda check: lungs(check), check_spec)}
        if self.has_features:
            self._parts["features"] = compiled(lambda image: {"features": mean_features(
                prepared(image))})
            self._parts["variants"] = compiled(lambda image: variants(image))
        # the model's own crop segments the image resized to the segmenter's input, which
        # is what the lung check segments: one segmenter pass serves both
        crop_and_fields = _crop_and_fields(pre) if segmenter is not None and \
            self.size >= MEASURE_SIZE else None

        def joined(first, with_variants, with_lungs):  # the crop once for every part
            def f(image, check):
                if with_lungs:
                    x, probability = crop_and_fields(image, training=False)
                else:
                    x = prepared(image)
                out = scores(image, x) if first == "scores" else \
                    {"features": mean_features(x)}
                if with_lungs:
                    out.update(lungs(check, probability))
                return {**out, **variants(image, x)} if with_variants else out
            return compiled(f, image_spec, check_spec) if with_lungs else \
                compiled(lambda image: f(image, None))

        if self.has_features:
            self._parts["scores+variants"] = joined("scores", True, False)
        if crop_and_fields is not None:
            self._parts["scores+lungs"] = joined("scores", False, True)
            if self.has_features:
                for first in ("scores", "features"):
                    self._parts[f"{first}+variants+lungs"] = joined(first, True, True)
                self._parts["features+lungs"] = joined("features", False, True)

    def features(self, image) -> np.ndarray:
        """The pooled features of the plain view of a batch (mean over the networks)."""
        import tensorflow as tf

        return self._parts["features"](tf.cast(image, tf.float32))["features"].numpy()

    def decoded(self, paths):
        """``(image, check, index)`` for each file of ``paths`` that decodes
        (with the reader training uses; ``check``: the image at
        :data:`MEASURE_SIZE`), in order; files that fail are left out."""
        import tensorflow as tf

        from ..data.images import decode

        size = self.size
        ds = tf.data.Dataset.from_tensor_slices((list(paths), np.arange(len(paths))))

        def both(p, k):
            image = decode(p, size)
            if size < MEASURE_SIZE:
                check = decode(p, MEASURE_SIZE)
            else:
                check = tf.clip_by_value(tf.image.resize(image, (MEASURE_SIZE, MEASURE_SIZE),
                                                         antialias=True), 0.0, 1.0)
            return image, check, k

        ds = ds.map(both, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.ignore_errors(log_warning=False)

    def __call__(self, image, check, parts=("scores", "lungs", "variants")) -> dict:
        """The measurements of one batch, as numpy arrays: the ``parts`` asked
        (see the class; ``variants`` and ``features`` only when the networks
        have pooled features)."""
        import tensorflow as tf

        image, check = tf.cast(image, tf.float32), tf.cast(check, tf.float32)
        out = {}
        parts = list(parts)
        for joined in ("scores+variants+lungs", "features+variants+lungs", "scores+lungs",
                       "features+lungs", "scores+variants"):
            if set(joined.split("+")) <= set(parts) and joined in self._parts:
                parts = [joined] + [p for p in parts if p not in joined.split("+")]
                break
        for part in parts:
            if part in self._parts:
                inputs = (check,) if part == "lungs" else \
                    (image, check) if part.endswith("+lungs") else (image,)
                out.update({k: v.numpy() for k, v in self._parts[part](*inputs).items()})
        if "probability" in out:
            out.update(lung_checks(out.pop("probability"), out["boxes"], out["found"]))
        return out

    def measure(self, paths, batch_size: int = 64, parts=("features", "lungs"),
                each=None) -> dict:
        """:meth:`__call__` over every file of ``paths``, concatenated, with
        ``index`` (the position in ``paths`` of each image that decoded).
        ``each(image, check, measurements)``, if given, is called per batch."""
        collected = []
        for image, check, k in self.decoded(paths).batch(batch_size).prefetch(2):
            m = self(image, check, parts)
            m["index"] = k.numpy()
            if each is not None:
                each(image, check, m)
            collected.append(m)
        if not collected:
            return {}
        return {k: np.concatenate([p[k] for p in collected], axis=1 if k == "variant_features"
                                  else 0) for k in collected[0]}


def intensity(check) -> dict:
    """Plain figures of ``(n, s, s, 1)`` images in [0, 1]: ``mean_intensity``,
    ``contrast`` (standard deviation), ``saturated`` (share of pixels within
    2/255 of black or white) and ``roughness`` (mean absolute difference of
    neighbouring pixels over the standard deviation: about 0.1 for an X-ray,
    near 1 for noise)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(check, tf.float32)[..., 0]
    mean = tf.reduce_mean(x, axis=(1, 2))
    std = tf.math.reduce_std(x, axis=(1, 2))
    dx = tf.reduce_mean(tf.abs(x[:, :, 1:] - x[:, :, :-1]), axis=(1, 2))
    dy = tf.reduce_mean(tf.abs(x[:, 1:, :] - x[:, :-1, :]), axis=(1, 2))
    saturated = tf.reduce_mean(tf.cast((x <= 2 / 255) | (x >= 253 / 255), tf.float32),
                               axis=(1, 2))
    return {"mean_intensity": mean, "contrast": std, "saturated": saturated,
            "roughness": (dx + dy) / 2 / tf.maximum(std, 1e-3)}


def lung_checks(probability, boxes, found) -> dict:
    """Per image, from the lung-field maps ``(n, s, s)`` and boxes
    ``(n, 4)`` (y0, x0, y1, x1, without margin): ``lung_box_area`` (the
    box's share of the image; NaN when no lung was found), ``lung_share``
    (lung share after ``fields.postprocess``) and ``lung_reasons``
    (``fields.plausibility``'s reasons joined by ``+``; empty when plausible)."""
    from ..lungs.fields import plausibility, postprocess

    boxes = np.asarray(boxes, dtype=float)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    shares, reasons = [], []
    for prob in probability:
        mask = postprocess(prob)
        shares.append(float(mask.mean()))
        reasons.append("+".join(plausibility(mask)["reasons"]))
    return {"lung_box_area": np.where(found, area, np.nan).astype("float32"),
            "lung_share": np.asarray(shares, "float32"),
            "lung_reasons": np.asarray(reasons, dtype=object)}


def colourfulness(path) -> float:
    """The mean difference between the colour channels of a JPEG or PNG file
    (0-1; 0 for a grey image), read at reduced size; 0 for DICOM and for
    files PIL cannot read (the reader reports those)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
                return 0.0
            im.draft("RGB", (256, 256))
            im = im.convert("RGB")
            im.thumbnail((256, 256))
            a = np.asarray(im, dtype="float32") / 255
    except Exception:  # noqa: BLE001  not ours to report
        return 0.0
    return float((np.abs(a[..., 0] - a[..., 1]) + np.abs(a[..., 1] - a[..., 2])
                  + np.abs(a[..., 0] - a[..., 2])).mean() / 3)


# ------------------------------------------------------------ the reference

def whitening(features: np.ndarray):
    """The training features' mean, the lower-triangular ``L`` with
    ``precision = L @ L.T`` of their Ledoit-Wolf covariance (so that the
    Mahalanobis distance is ``||(x - mean) @ L||``) and the shrinkage."""
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(np.asarray(features, dtype="float64"))
    precision = (lw.precision_ + lw.precision_.T) / 2
    return lw.location_, np.linalg.cholesky(precision), float(lw.shrinkage_)


def _features(reference: dict):
    """``(mean, L)`` of a reference (unpacked once per reference)."""
    f = reference["features"]
    return _unpacked(f["mean"], f["whitening"], int(f["dim"]))


@functools.lru_cache(maxsize=8)
def _unpacked(mean: str, whitening: str, d: int):
    L = np.zeros((d, d))
    L[np.tril_indices(d)] = _unpack(whitening, d * (d + 1) // 2)
    return _unpack(mean, d), L


def distances(features, reference: dict) -> np.ndarray:
    """The Mahalanobis distance of each row of ``features`` (``(n, d)``, or
    ``(k, n, d)``) from the training images' features."""
    mean, L = _features(reference)
    features = np.asarray(features, dtype="float64")
    if features.shape[-1] != len(mean):
        raise ValueError(f"features of {features.shape[-1]} dimensions, the reference has "
                         f"{len(mean)}")
    return np.linalg.norm((features - mean) @ L, axis=-1)


def _quantiles(values) -> list:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return _round(np.quantile(v, QUANTILES)) if len(v) else [None] * len(QUANTILES)


def _view_figures(views: dict, check, boxes, labels):
    """Medians per stress view of the framing and exposure figures, for one
    batch of validation images: lung box area from the boxes (moved by the
    view's zoom and shift, exactly), intensity figures from the transformed
    images."""
    from ..evaluation.stress import transform

    out = {}
    y0, x0, y1, x1 = (np.asarray(boxes, dtype=float).T if len(boxes) else np.zeros((4, 0)))
    for name, view in views.items():
        if callable(view):
            changed = view(check, labels)
            area = (y1 - y0) * (x1 - x0)
        else:
            changed = transform(check, **view)
            z, sx, sy = view.get("zoom", 1.0), view.get("shift_x", 0.0), view.get("shift_y", 0.0)

            def moved(a, b, shift):
                a, b = 0.5 + (a - 0.5) * z + shift, 0.5 + (b - 0.5) * z + shift
                return np.clip(b, 0, 1) - np.clip(a, 0, 1)

            area = moved(y0, y1, sy) * moved(x0, x1, sx)
        figures = {k: np.asarray(v) for k, v in intensity(changed).items()}
        figures["lung_box_area"] = area
        out[name] = figures
    return out


def reference(trained, data, batch_size: int = 64, max_images: int | None = None,
              n_boot: int = 200, progress: bool = False) -> dict:
    """What the out-of-distribution checks and the shift summary need, from
    ``trained`` (a ``TrainedModel``) and ``data`` (its ``SplitData``), as a
    JSON-serialisable dict (about 50 kB for 128 features):

    - ``features``: the training images' (training patients only) feature
      mean and whitening matrix; the distance ``threshold``: the
      :data:`FEATURE_QUANTILE` quantile of the distances of the validation
      images, as they are and under the :data:`TOLERATED_VIEWS` (so that a
      real X-ray framed or exposed as another site might is not refused; the
      plain validation quantile is ``threshold_plain``, and each view's share
      beyond the threshold is ``view_refusals``); the margins of the
      upside-down and negative checks (the :data:`MARGIN_QUANTILE` quantile
      of what turning or inverting gains the validation images);
    - ``training``: the quantiles (``quantile_levels``) of every figure of
      :data:`STATISTICS` on the training images (the distance's on
      validation: training distances are in-sample), ``validation`` the same
      on validation images; ``limits``: those of the intensity checks;
    - ``lungs``: the lung-field check's failures per subset and class;
    - ``scores``: the validation scores' histogram per class and quantiles;
    - ``views``: the median lung box area, mean intensity and contrast of the
      validation images under each stress view (for ``use.site``);
    - ``prevalence``: the measured error of the site-prevalence estimate
      (``site.check_prevalence_estimate`` on validation patients).

    ``max_images``: at most this many images per subset, ``n_boot``: resamples
    per prevalence of the prevalence check (fewer for tests)."""
    import time

    from ..evaluation.stress import VIEWS, counter_exposed, exposure_bank, transform
    from ..metrics import pneumonia_score
    from .site import PREVALENCES, check_prevalence_estimate

    start = time.perf_counter()
    measurer = Measurer(trained.model, FEATURE_NETWORKS[REFERENCE_VERSION])
    if not measurer.has_features:
        raise ValueError(f"{trained.name}: its networks have no global pooling layer: no "
                         "feature reference")
    tables = {}
    for subset in ("train", "validation"):
        t = data.subset(subset)
        if max_images and len(t) > max_images:
            t = t.sample(max_images, random_state=data.seed).sort_index()
        tables[subset] = t
    bank = exposure_bank(tables["train"], MEASURE_SIZE, seed=data.seed)
    views = {**VIEWS, "counter_exposed": counter_exposed(bank)}
    view_parts, tolerated = [], {v: [] for v in TOLERATED_VIEWS}
    val_labels = tables["validation"]["label"].to_numpy() > 0

    def each(image, check, m):
        view_parts.append(_view_figures(views, check, m["boxes"], val_labels[m["index"]]))
        for name in TOLERATED_VIEWS:
            tolerated[name].append(measurer.features(transform(image, **VIEWS[name])))

    measured = {}
    for subset, t in tables.items():
        if progress:
            print(f"measuring {len(t)} {subset} images", flush=True)
        on_validation = subset == "validation"
        measured[subset] = measurer.measure(
            list(t["path"].astype(str)), batch_size,
            ("features", "lungs", "variants") if on_validation else ("features", "lungs"),
            each if on_validation else None)
        if len(measured[subset].get("index", ())) != len(t):
            raise ValueError(f"{len(t) - len(measured[subset].get('index', ()))} {subset} "
                             "images could not be decoded")
    train, val = measured["train"], measured["validation"]
    mean, L, shrinkage = whitening(train["features"])
    ref = {"version": REFERENCE_VERSION, "measure_size": MEASURE_SIZE,
           "features": {"dim": int(len(mean)), "mean": _pack(mean),
                        "whitening": _pack(L[np.tril_indices(len(mean))]),
                        "shrinkage": _round(shrinkage), "n_train": int(len(train["features"])),
                        "pooling": "global pooling of the first seed's network on the plain "
                                   "view"}}
    d_train, d_val = distances(train["features"], ref), distances(val["features"], ref)
    d_views = {name: distances(np.concatenate(parts), ref) for name, parts in tolerated.items()}
    threshold = float(np.quantile(np.concatenate([d_val, *d_views.values()]), FEATURE_QUANTILE))
    d_variants = distances(val["variant_features"], ref)  # (3, n)
    gain_turned = d_val - np.minimum(d_variants[0], d_variants[1])
    gain_inverted = d_val - d_variants[2]
    ref["features"].update(
        threshold=_round(threshold), quantile=FEATURE_QUANTILE,
        threshold_plain=_round(np.quantile(d_val, FEATURE_QUANTILE)),
        tolerated_views=list(TOLERATED_VIEWS), n_validation=int(len(d_val)),
        view_refusals={name: _round(np.mean(d > threshold), 3) for name, d in d_views.items()},
        turned_margin=_round(max(MIN_MARGIN, float(np.quantile(gain_turned, MARGIN_QUANTILE)))),
        inverted_margin=_round(max(MIN_MARGIN, float(np.quantile(gain_inverted,
                                                                  MARGIN_QUANTILE)))),
        margin_quantile=MARGIN_QUANTILE)
    train["distance"], val["distance"] = d_train, d_val
    ref["quantile_levels"] = list(QUANTILES)
    ref["training"] = {k: _quantiles(train[k]) for k in STATISTICS if k != "distance"}
    ref["training"]["distance"] = _quantiles(d_val)  # out of sample: validation's
    ref["training_in_sample_distance"] = _quantiles(d_train)
    ref["validation"] = {k: _quantiles(val[k]) for k in STATISTICS}
    ref["limits"] = {
        "colour": COLOUR_LIMIT,
        "roughness": _round(2 * np.nanmax(train["roughness"])),
        "saturated": _round(max(SATURATED_LIMIT, 1.5 * float(np.nanmax(train["saturated"])))),
        "contrast": _round(0.5 * float(np.nanmin(train["contrast"]))),
        "lung_share": MIN_LUNG_AREA}
    lungs = {}
    for subset, t in tables.items():
        labels = t["label"].to_numpy() > 0
        reasons = np.asarray(measured[subset]["lung_reasons"])
        share = measured[subset]["lung_share"]
        lungs[subset] = {name: {"images": int(part.sum()),
                                "implausible": int((reasons[part] != "").sum()),
                                "no_lung_fields": int((share[part] < MIN_LUNG_AREA).sum())}
                         for name, part in (("normal", ~labels), ("pneumonia", labels))}
    ref["lungs"] = lungs
    scores = pneumonia_score(trained.val_scores)
    labels = data.labels("validation") > 0
    edges = np.linspace(0, 1, 21)
    ref["scores"] = {"edges": _round(edges),
                     "normal": np.histogram(scores[~labels], edges)[0].tolist(),
                     "pneumonia": np.histogram(scores[labels], edges)[0].tolist(),
                     "quantiles": _quantiles(scores)}
    merged = {name: {k: np.concatenate([p[name][k] for p in view_parts])
                     for k in view_parts[0][name]} for name in views}
    ref["views"] = {name: {k: _round(np.nanmedian(v)) for k, v in figures.items()
                           if k in ("lung_box_area", "mean_intensity", "contrast")}
                    for name, figures in merged.items()}
    check = check_prevalence_estimate(scores, labels, PREVALENCES,
                                      patients=data.patients("validation"), n_boot=n_boot,
                                      train_prior=0.5, seed=data.seed)
    ref["prevalence"] = {k: check[k] for k in ("summary", "rows", "verdict")}
    ref["seconds"] = round(time.perf_counter() - start, 1)
    return ref


def check_reference(ref) -> None:
    """A reference read from a model file has what :func:`refusals` and
    ``use.site`` read, of the right kinds; ValueError otherwise."""
    if not isinstance(ref, dict):
        raise ValueError("not a JSON object")
    if ref.get("version") not in FEATURE_NETWORKS or isinstance(ref.get("version"), bool):
        raise ValueError(f"reference version {ref.get('version')!r}, this pneumo_helpers reads "
                         f"{' and '.join(map(str, FEATURE_NETWORKS))}")
    f = ref.get("features")
    if not isinstance(f, dict) or type(f.get("dim")) is not int or not 1 <= f["dim"] <= 4096:
        raise ValueError("no feature dimension")
    d = f["dim"]
    try:
        _unpack(f["mean"], d), _unpack(f["whitening"], d * (d + 1) // 2)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"feature mean or whitening matrix unreadable ({err})") from None
    for key in ("threshold", "turned_margin", "inverted_margin", "quantile"):
        if not isinstance(f.get(key), (int, float)) or isinstance(f.get(key), bool):
            raise ValueError(f"features.{key} is not a number")
    for block in ("training", "limits"):
        if not isinstance(ref.get(block), dict):
            raise ValueError(f"no {block}")
    for k, v in ref["training"].items():
        if not (isinstance(v, list) and len(v) == len(ref.get("quantile_levels", ()))):
            raise ValueError(f"training.{k} is not a list of quantiles")


# --------------------------------------------------------------- the checks

def refusals(m: dict, reference: dict | None, colour=None) -> list[list[str]]:
    """Why each image of a batch's measurements ``m`` (:class:`Measurer`) is
    out of distribution: a list of reasons per image, empty for an image
    that passes. ``colour``: :func:`colourfulness` per image (or ``None``).
    Without a ``reference``, the limits of the intensity checks fall back to
    fixed ones and the feature checks are skipped."""
    n = len(m["mean_intensity"])
    limits = (reference or {}).get("limits") or {"colour": COLOUR_LIMIT, "roughness": 0.4,
                                                 "saturated": SATURATED_LIMIT,
                                                 "contrast": 0.035, "lung_share": MIN_LUNG_AREA}
    out = [[] for _ in range(n)]
    for i in range(n):
        reasons = out[i]
        if colour is not None and colour[i] > limits["colour"]:
            reasons.append(f"a colour image (channels differ by {colour[i]:.2f} on average; "
                           "an X-ray is grey)")
        if m["roughness"][i] > limits["roughness"]:
            reasons.append(f"noise-like texture (roughness {m['roughness'][i]:.2f}; training "
                           f"X-rays at most {limits['roughness'] / 2:.2f})")
        if m["saturated"][i] > limits["saturated"]:
            reasons.append(f"{m['saturated'][i]:.0%} of its pixels pure black or white "
                           f"(more than {limits['saturated']:.0%})")
        if m["contrast"][i] < limits["contrast"]:
            reasons.append(f"almost no contrast (standard deviation {m['contrast'][i]:.3f})")
        if "lung_share" in m and m["lung_share"][i] < limits["lung_share"]:
            reasons.append(f"no lung fields found ({m['lung_share'][i]:.1%} of the image looks "
                           "like lung)")
    if reference is None or "features" not in m:
        return out
    f = reference["features"]
    d = distances(m["features"], reference)
    variants = distances(m["variant_features"], reference) if "variant_features" in m else None
    for i in range(n):
        if variants is not None:
            turned = min(variants[0][i], variants[1][i])
            gain_t, gain_i = d[i] - turned, d[i] - variants[2][i]
            # only said of an image that looks like a chest X-ray once turned or inverted
            if gain_i > f["inverted_margin"] and gain_i >= gain_t and \
                    variants[2][i] <= f["threshold"]:
                out[i].append(f"looks like a negative (its network features are closer to the "
                              f"training X-rays' with its grey levels inverted: distance "
                              f"{variants[2][i]:.1f} against {d[i]:.1f})")
            elif gain_t > f["turned_margin"] and turned <= f["threshold"]:
                out[i].append(f"looks upside down (its network features are closer to the "
                              f"training X-rays' turned round: distance {turned:.1f} against "
                              f"{d[i]:.1f})")
        if d[i] > f["threshold"]:
            out[i].append(f"network features unlike the training X-rays' (distance "
                          f"{d[i]:.1f}; {f['quantile']:.1%} of validation X-rays, framed and "
                          f"exposed in several ways, within {f['threshold']:.1f})")
    return out
