"""Score new chest X-rays with a saved model: image files and folders, JPEG,
PNG and DICOM, one CSV row per image, optional Grad-CAM heat maps.

Scoring is a stream: every file's header is checked first (size limits,
formats, DICOM view and modality; see ``data.images``), then the files are
decoded and resized in parallel by tf.data with the reader training uses,
and scored batch by batch by one compiled function that holds the whole
model: the crop to the lung fields when the recipe has one, the test-time
views stacked into the batch, and every seed's network. A file that fails at
any step is one error row with a one-line reason; the others are still scored.
Nothing is written beside the images.

Every image that decodes is checked before its score is trusted
(``use.ood``): colour, texture, contrast and saturation, the lung-field
model's lung fields, and, when the model file carries a reference of its
training images, the distance of its network features from theirs (and of
the image turned upside down or inverted). An image that fails is
``out_of_distribution``: its score is kept, for the record, but it gets no
decision (nor ``score_at_0.5``, nor a site-prevalence score).

Each row also carries the spread of the seeds' scores (``uncertainty``), the
feature distance (with a reference), the threshold and the model file, and,
for DICOM, the patient, study, view and modality (lateral views and other
modalities are ``out_of_distribution``, not decoded).
"""

from __future__ import annotations

import csv
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.images import MIN_CONTRAST, MIN_SIDE, SUFFIXES, read_header
from ..data.paths import is_hidden_or_system
from ..errors import DataError

DICOM_COLUMNS = ("PatientID", "StudyInstanceUID", "ViewPosition", "Modality")
LATERAL_VIEWS = {"LL", "RL", "LAT", "LATERAL", "LLD", "RLD", "XTABLE"}
RADIOGRAPHY = {"", "CR", "DX", "DR", "RG", "RF", "PX"}  # modalities of projection radiographs
DIGITS = 3  # significant digits of the scores in the CSV
#: the figures of each image kept (in ``_figures``) for the shift summary (``use.site``)
FIGURES = ("lung_box_area", "mean_intensity", "contrast", "roughness", "saturated", "lung_share")


@dataclass(frozen=True)
class Found:
    """A file to score: its ``path`` and its ``name`` relative to the common
    folder of everything given (unique: heat maps are named from it)."""

    path: Path
    name: str


def _as_list(paths) -> list:
    """A single ``str`` or path is one path, not a sequence of characters."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        return [paths]
    return list(paths)


def find_images(paths) -> list[Found]:
    """Image files named in ``paths`` (one path or several), and those below
    named folders (recursively, hidden and system files skipped as in
    training), in order; a file named explicitly is kept whatever it is (it
    is scored or reported)."""
    given = [Path(os.fsdecode(p)) if isinstance(p, bytes) else Path(p) for p in _as_list(paths)]
    found = []
    for p in given:
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in SUFFIXES
                                and not any(is_hidden_or_system(part) for part in
                                            q.relative_to(p).parents if part.name)
                                and not is_hidden_or_system(q) and q.is_file()))
        else:
            found.append(p)
    absolute = [os.path.abspath(q) for q in found]
    roots = [os.path.abspath(p) if p.is_dir() else os.path.dirname(os.path.abspath(p))
             for p in given]
    common = os.path.commonpath(roots) if roots else ""
    return [Found(q, os.path.relpath(a, common)) for q, a in zip(found, absolute)]


def heatmap_name(found: Found) -> str:
    """The heat map of an image: its relative name plus ``.png`` (so that
    ``x.jpeg`` and ``x.png`` in one folder, or two ``same.jpeg`` in two
    folders, never share one)."""
    return found.name + ".png"


# ----------------------------------------------------------------- the model

def scoring_model(saved):
    """``image -> (n, networks, outputs)``: each seed's network's score,
    through the model's own crop and test-time views (one compiled graph)."""
    import keras
    from keras import layers

    from ..modeling.augment import MeanOverViews, StackViews
    from ..modeling.models import views_of

    networks, pre, views = saved.networks, saved.preprocess, views_of(saved.model)
    inputs = keras.Input(saved.model.input_shape[1:], name="image")
    x = pre(inputs) if pre is not None else inputs
    if views:
        x = StackViews(views)(x)
    outs = []
    for n in networks:
        y = n(x)
        if views:
            y = MeanOverViews(1 + len(views))(y)
        outs.append(layers.Reshape((1, y.shape[-1]))(y))
    out = outs[0] if len(outs) == 1 else layers.Concatenate(axis=1)(outs)
    return keras.Model(inputs, out, name="per_network")


def _significant(x: float) -> float:
    return float(f"{x:.{DIGITS}g}")


def _refusal(header) -> str | None:
    """Why a DICOM that reads fine is still not scored, or ``None``."""
    fields = header.dicom or {}
    view = fields.get("ViewPosition", "").strip().upper()
    modality = fields.get("Modality", "").strip().upper()
    if view in LATERAL_VIEWS:
        return f"a lateral view (ViewPosition {view}); the model reads frontal views only"
    if modality not in RADIOGRAPHY:
        return f"modality {modality}, not a projection radiograph"
    return None


def score_images(saved, paths, batch_size: int = 32, progress: bool = False,
                 rescale: bool = False) -> list[dict]:
    """One row per image of ``paths`` (see :func:`find_images`): ``path``,
    ``status`` (``scored``, ``out_of_distribution`` or ``error``), ``reason``
    (why it is not scored), ``pneumonia_score``, ``decision`` at the model's
    threshold (scored images only), the class probabilities for a
    three-class model, ``uncertainty`` (the spread, max - min, of the seeds'
    scores), ``feature_distance`` (when the model file carries a reference),
    ``threshold``, ``model`` and, for DICOM, :data:`DICOM_COLUMNS`.
    With ``rescale``, ``score_at_0.5``: the score mapped piecewise linearly
    so that the threshold sits at 0.5 (torchxrayvision's convention).

    ``error``: the file could not be read, or the reader's own limits refuse
    it (too large, too small, without contrast); ``out_of_distribution``: it
    reads, but is not what the model reads (a lateral view, another
    modality, or it fails the checks of ``use.ood``); its score, when it
    has one, is kept but gets no decision."""
    from numbers import Integral

    from ..parameters import Interval, check

    check("batch_size", batch_size, Interval(Integral, 1, 4096), "argument")
    files = find_images(paths)
    rows, todo = [], []
    for f in files:
        row = {"path": str(f.path), "status": "error", "reason": "", "pneumonia_score": "",
               "decision": "", "uncertainty": "", "threshold": _significant(saved.threshold),
               "model": str(saved.path) if getattr(saved, "path", None) else "",
               "_found": f}
        rows.append(row)
        try:
            if not f.path.exists():
                raise DataError(f"{f.path}: not found")
            if f.path.suffix.lower() not in SUFFIXES:
                raise DataError(f"{f.path}: not a JPEG, PNG or DICOM file "
                                f"({f.path.suffix or 'no suffix'})")
            header = read_header(f.path, MIN_SIDE)
        except DataError as err:
            row["reason"] = _reason(err, f.path)
            continue
        row["_size"] = (header.width, header.height)
        if header.dicom:
            row.update({k: header.dicom.get(k, "") for k in DICOM_COLUMNS})
            refusal = _refusal(header)
            if refusal:
                row.update(status="out_of_distribution", reason=f"refused: {refusal}")
                continue
        row["_colour"] = header.channels >= 3 and not header.dicom
        todo.append(len(rows) - 1)
    bar = _bar(progress, len(files), "scoring")
    bar.update(len(files) - len(todo))
    _stream(saved, rows, todo, batch_size, bar, rescale)
    bar.close()
    return rows


def _reason(err: Exception, path) -> str:
    return str(err).removeprefix(f"{path}: ")


def _bar(progress: bool, total: int, desc: str):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="image", disable=not progress or total < 20)


def _stream(saved, rows, todo, batch_size, bar, rescale) -> None:
    """Decode the files of ``todo`` in parallel, score and check them in batches."""
    from concurrent.futures import ThreadPoolExecutor

    from ..data.images import load_image, tf_path
    from ..metrics import pneumonia_score
    from .ood import colourfulness, distances, refusals

    if not todo:
        return
    size = saved.image_size
    reference = saved.info.get("reference")
    measurer = _measurer(saved)
    parts = ("scores", "lungs", "variants") if reference is not None else ("scores", "lungs")
    names = [tf_path(rows[i]["_found"].path) for i in todo]
    with ThreadPoolExecutor(max_workers=2) as pool:  # colour: JPEG and PNG files in RGB
        colours = list(pool.map(lambda i: colourfulness(rows[i]["_found"].path)
                                if rows[i].pop("_colour", False) else 0.0, todo))
    seen = set()
    for image, check, k in measurer.decoded(names).batch(batch_size).prefetch(2):
        m = measurer(image, check, parts)
        k, pixels = k.numpy(), image.numpy()
        contrast = pixels.max(axis=(1, 2, 3)) - pixels.min(axis=(1, 2, 3))
        why = refusals(m, reference, [colours[int(kk)] for kk in k])
        d = distances(m["features"], reference) if reference is not None and "features" in m \
            else None
        for j, kk in enumerate(k):
            seen.add(int(kk))
            row = rows[todo[int(kk)]]
            if contrast[j] < MIN_CONTRAST:  # the reader's own limit: an error, not a check
                row["reason"] = ("an image without contrast (every pixel about "
                                 f"{float(pixels[j].mean()) * 255:.0f}/255), not a chest X-ray")
                continue
            row["_figures"] = {name: float(m[name][j]) for name in FIGURES if name in m}
            if d is not None:
                row["_figures"]["distance"] = float(d[j])
                row["feature_distance"] = _significant(float(d[j]))
            _fill(row, m["per_network"][j], saved, pneumonia_score, rescale)
            if why[j]:  # the score kept for the record; nothing decided from it
                row.update(status="out_of_distribution", decision="",
                           reason="not like the training X-rays: " + "; ".join(why[j]))
                row.pop("score_at_0.5", None)
        bar.update(len(k))
    for kk in range(len(todo)):  # a file the stream could not decode: its reason, alone
        if kk not in seen:
            row = rows[todo[kk]]
            try:
                load_image(row["_found"].path, size, MIN_SIDE)
                row["reason"] = "could not be decoded"
            except DataError as err:
                row["reason"] = _reason(err, row["_found"].path)
            except Exception as err:  # noqa: BLE001  (one file never stops the run)
                row["reason"] = f"could not be decoded ({type(err).__name__})"
            bar.update(1)


def _measurer(saved):
    """The :class:`ood.Measurer` of a loaded model (built once per model)."""
    from .ood import FEATURE_NETWORKS, REFERENCE_VERSION, Measurer

    if "_measurer" not in saved.__dict__:
        version = (saved.info.get("reference") or {}).get("version", REFERENCE_VERSION)
        saved.__dict__["_measurer"] = Measurer(saved.model, FEATURE_NETWORKS[version])
    return saved.__dict__["_measurer"]


def _fill(row, per_network, saved, pneumonia_score, rescale) -> None:
    probs = per_network.mean(axis=0)
    each = pneumonia_score(per_network) if per_network.shape[-1] > 1 else per_network[:, 0]
    p = float(pneumonia_score(probs[None])[0])
    t = saved.threshold
    row.update(status="scored", pneumonia_score=_significant(p),
               decision="pneumonia" if p >= t else "normal",
               uncertainty=_significant(float(each.max() - each.min())))
    if len(saved.class_names) > 2:
        for name, value in zip(saved.class_names, probs):
            row[f"p_{name}"] = _significant(float(value))
    if rescale:
        row["score_at_0.5"] = _significant(0.5 * p / t if p < t else
                                           0.5 + 0.5 * (p - t) / max(1 - t, 1e-9))


# ------------------------------------------------------------------- outputs

def is_predictions_csv(path) -> bool:
    """Whether ``path`` is a CSV written by :func:`write_csv` (which may be replaced)."""
    try:
        with open(path, "rb") as f:
            return f.readline().startswith(b"path,status,reason,pneumonia_score,")
    except OSError:
        return False


def write_csv(rows: list[dict], path, class_names=()) -> Path:
    """The rows as a CSV (file names written back byte for byte, even when
    they are not valid UTF-8)."""
    columns = ["path", "status", "reason", "pneumonia_score", "decision", "uncertainty"]
    if len(class_names) > 2:
        columns += [f"p_{n}" for n in class_names]
    extra = [c for c in ("feature_distance", "score_at_0.5",
                         "pneumonia_score_at_site_prevalence", "heatmap")
             if any(c in r for r in rows)]
    dicom = [c for c in DICOM_COLUMNS if any(r.get(c) for r in rows)]
    columns += extra + dicom + ["threshold", "model"]
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------ heat maps

HEATMAP_TAG = "pneumo predict heatmap"


def is_heatmap(path) -> bool:
    """Whether ``path`` is a heat map written by :func:`write_heatmaps`."""
    try:
        from PIL import Image
        with Image.open(path) as im:
            return im.info.get("Software") == HEATMAP_TAG
    except Exception:  # noqa: BLE001  (not an image: not ours)
        return False


def heat_maps(saved, images: np.ndarray) -> np.ndarray:
    """Grad-CAM maps on the decoded images (the crop's map put back in its box)."""
    import tensorflow as tf

    from ..evaluation.explain import grad_cam

    pre = saved.preprocess
    if pre is None:
        return grad_cam(saved.networks, images)
    crops, boxes = (t.numpy() for t in _crop_and_box(pre)(tf.constant(images, tf.float32)))
    cams = grad_cam(saved.networks, crops)
    size = images.shape[1]
    out = np.zeros(images.shape[:3], "float32")
    for k, (y0, x0, y1, x1) in enumerate(boxes):  # (y0, x0, y1, x1), with the crop's margin
        r0, c0 = int(round(y0 * size)), int(round(x0 * size))
        r1, c1 = max(r0 + 1, int(round(y1 * size))), max(c0 + 1, int(round(x1 * size)))
        out[k, r0:r1, c0:c1] = _resized(cams[k], c1 - c0, r1 - r0)
    return out


_CROP_AND_BOX: dict = {}


def _crop_and_box(pre):
    """The model's own crop model, giving its lung box as well (one pass of
    the segmenter for both), compiled once."""
    import keras
    import tensorflow as tf

    if _CROP_AND_BOX.get("pre") is not pre:
        both = keras.Model(pre.inputs[0], [pre.outputs[0], pre.get_layer("lung_box").output])
        _CROP_AND_BOX.update(pre=pre, run=tf.function(lambda x: both(x, training=False),
                                                      reduce_retracing=True))
    return _CROP_AND_BOX["run"]


def _resized(cam: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(cam, "float32")).resize(
        (w, h), Image.BILINEAR))


@functools.lru_cache(maxsize=1)
def _drawing():
    """The jet colour table (256 x 3, uint8) and the fonts, made once."""
    from matplotlib import colormaps
    from PIL import ImageFont

    jet = (colormaps["jet"](np.arange(256))[:, :3] * 255).round().astype("uint8")
    return jet, ImageFont.load_default(size=12), ImageFont.load_default(size=9)


BAR_WIDTH, TITLE_HEIGHT = 84, 40  # pixels beside and above the X-ray in a heat map
PNG_COMPRESSION = 1  # zlib level of the heat maps: fast; the files stay lossless


def render_heatmap(image: np.ndarray, cam: np.ndarray, title: str, size=None):
    """One PNG-ready picture: the X-ray at its own aspect ratio (``size`` =
    original width, height; at most 640 px a side) with its Grad-CAM overlay
    (``jet``, 35% opaque), a title strip and a labelled colour bar; drawn
    with PIL and a colour table, no pyplot."""
    from PIL import Image, ImageDraw

    jet, font, small = _drawing()
    w, h = size or image.shape[1::-1]
    scale = min(1.0, 640 / max(w, h))
    w, h = max(64, int(w * scale)), max(64, int(h * scale))
    gray = np.asarray(Image.fromarray(np.uint8(np.clip(image[..., 0], 0, 1) * 255))
                      .resize((w, h)), "uint16")
    heat = np.asarray(Image.fromarray(np.uint8(np.clip(cam, 0, 1) * 255)).resize((w, h)))
    overlay = (65 * gray[..., None] + 35 * jet[heat].astype("uint16") + 50) // 100
    bar_w, top = BAR_WIDTH, TITLE_HEIGHT
    canvas = Image.new("RGB", (w + bar_w, h + top), "white")
    canvas.paste(Image.fromarray(overlay.astype("uint8")), (0, top))
    draw = ImageDraw.Draw(canvas)
    draw.multiline_text((4, 2), title, fill="black", font=font, spacing=2)
    ramp = jet[np.linspace(255, 0, h).round().astype(int)]
    canvas.paste(Image.fromarray(np.repeat(ramp[:, None], 14, axis=1)), (w + 8, top))
    draw.text((w + 26, top), "1", fill="black", font=font)
    draw.text((w + 26, top + h - 14), "0", fill="black", font=font)
    for i, word in enumerate(("Grad-CAM", "raised the", "pneumonia", "score")):
        draw.text((w + 24, top + h // 2 - 28 + 14 * i), word, fill="black", font=small)
    return canvas


def write_heatmaps(saved, rows: list[dict], folder, batch_size: int = 32,
                   progress: bool = False) -> list[Path]:
    """One PNG per scored image, ``folder / heatmap_name(found)`` (sub-folders
    as in the inputs), named in the row's ``heatmap`` column: the X-ray at its
    own aspect ratio, its Grad-CAM overlay, its file name, score and decision.
    Files are decoded in parallel (tf.data, the one reader), the maps of a
    batch come from one compiled gradient pass per network, and the pictures
    are drawn and written by a worker pool while the next batch is computed;
    the bar counts written files. A file that no longer decodes keeps an
    empty ``heatmap``."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    import tensorflow as tf
    from PIL import PngImagePlugin

    from ..data.images import decode, tf_path

    folder = Path(folder)
    scored = [r for r in rows if r["status"] == "scored"]
    bar = _bar(progress, len(scored), "heat maps")
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", HEATMAP_TAG)

    def save(row, image, cam):
        out = folder / heatmap_name(row["_found"])
        out.parent.mkdir(parents=True, exist_ok=True)
        title = (f"{row['_found'].name}\nscore {row['pneumonia_score']}: {row['decision']} "
                 f"(threshold {row['threshold']})")
        render_heatmap(image, cam, title, row.get("_size")).save(
            out, pnginfo=info, compress_level=PNG_COMPRESSION)
        row["heatmap"] = str(out)
        return out

    written, pending = [], deque()
    if scored:
        size = saved.image_size
        names = tf.data.Dataset.from_tensor_slices([tf_path(r["_found"].path) for r in scored])
        keyed = tf.data.Dataset.zip((tf.data.Dataset.range(len(scored)), names))
        images = keyed.map(lambda k, p: (k, decode(p, size)),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        batches = images.ignore_errors().batch(batch_size).prefetch(1)
        with ThreadPoolExecutor(max_workers=2) as pool:
            for k, x in batches:
                x = x.numpy()
                cams = heat_maps(saved, x)
                for kk, image, cam in zip(k.numpy(), x, cams):
                    pending.append(pool.submit(save, scored[int(kk)], image, cam))
                while pending and (pending[0].done() or len(pending) > 2 * batch_size):
                    written.append(pending.popleft().result())
                    bar.update(1)
            while pending:
                written.append(pending.popleft().result())
                bar.update(1)
    bar.close()
    for r in rows:
        r.setdefault("heatmap", "")
    return written
