"""The one image reader, used by ``check-data``, training and ``pneumo predict``
(as ``torchxrayvision.utils.load_image`` is one): which files are images, what
their headers must say before any pixel is decoded, DICOM, and decoding.

Every image, JPEG, PNG or DICOM, one or three channels, any size, comes out as
an ``(image_size, image_size, 1)`` float32 array in [0, 1]: one grayscale
channel, resized without keeping the aspect ratio (as the Kaggle images
already were). Whatever is wrong with a file is one :class:`DataError` line
naming it.

Checks, in order: the header (format, size, colour space, frames) is read
first, and an image is refused *before* its pixels are decoded when it claims
more than :data:`MAX_PIXELS` pixels (a small compressed file can claim
gigapixels); then the pixels are decoded with the decoder training uses.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .paths import GfilePath

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
DICOM_SUFFIXES = (".dcm", ".dicom")
SUFFIXES = IMAGE_SUFFIXES + DICOM_SUFFIXES
MAX_PIXELS = 50_000_000  # far above any chest X-ray (about 3000 x 3000 at most)
MIN_SIDE = 64  # pixels: anything smaller is not a chest X-ray to score
JPEG_RATIOS = (8, 4, 2)  # the reduced sizes libjpeg decodes to directly
EXPECTED = "expected a complete grayscale or RGB JPEG or PNG image, or a DICOM file"
DICOM_EXTRA = "pip install 'pneumo-helpers[dicom]'"
COMPRESSED_DICOM_EXTRA = "pip install 'pneumo-helpers[dicom-compressed]'"
_GRAY = np.array([0.2989, 0.5870, 0.1140])  # ITU-R 601, as tf.image.rgb_to_grayscale


@dataclass(frozen=True)
class Header:
    """What a file says about itself before its pixels are decoded."""

    format: str  # "JPEG", "PNG" or "DICOM"
    width: int
    height: int
    channels: int
    frames: int = 1
    dicom: dict | None = None  # PatientID, StudyInstanceUID, ViewPosition, Modality...


def is_dicom(path) -> bool:
    return Path(str(path)).suffix.lower() in DICOM_SUFFIXES


def _size(path) -> int:
    return path.size() if isinstance(path, GfilePath) else Path(path).stat().st_size


def _check_pixels(path, width: int, height: int, frames: int = 1, min_side: int = 0) -> None:
    if width * height * frames > MAX_PIXELS:
        what = f"{width} x {height} pixels" + (f" x {frames} frames" if frames > 1 else "")
        raise DataError(f"{path}: absurdly large image ({what}), refused before decoding; "
                        f"{EXPECTED} of at most {MAX_PIXELS // 1_000_000} megapixels")
    if min(width, height) < min_side:
        raise DataError(f"{path}: too small to be a chest X-ray ({width} x {height} pixels; "
                        f"at least {min_side} a side)")


def read_header(path, min_side: int = 0) -> Header:
    """The header of an image file, checked: a JPEG or PNG that TensorFlow
    can decode (not CMYK), or a single-frame DICOM image, of at most
    :data:`MAX_PIXELS` pixels and at least ``min_side`` a side. No pixel is
    decoded. One DataError line otherwise."""
    try:
        if _size(path) == 0:
            raise DataError(f"{path}: empty file (0 bytes), {EXPECTED}")
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except PermissionError:
        raise DataError(f"cannot read {path} (permission denied)") from None
    if is_dicom(path):
        return _dicom_header(path, min_side)
    from PIL import Image, UnidentifiedImageError

    try:
        source = io.BytesIO(path.read_bytes()) if isinstance(path, GfilePath) else path
        with Image.open(source) as im:
            fmt, (width, height), mode = im.format, im.size, im.mode
            channels = len(im.getbands())
    except PermissionError:
        raise DataError(f"cannot read {path} (permission denied)") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file, {EXPECTED}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: unreadable image ({_one_line(err)}), {EXPECTED}") from None
    if fmt not in ("JPEG", "PNG"):
        raise DataError(f"{path}: {fmt} image, {EXPECTED}")
    _check_pixels(path, width, height, 1, min_side)
    if mode == "CMYK":
        raise DataError(f"{path}: JPEG in the CMYK colour space, which TensorFlow "
                        "cannot decode; convert it to grayscale or RGB")
    return Header(fmt, width, height, channels)


def check_image(path, min_side: int = 0) -> Header:
    """:func:`read_header`, then one full decode with the decoder training
    uses, so that a file that passes never stops a run later."""
    header = read_header(path, min_side)
    if header.format == "DICOM":
        read_dicom(path)
        return header
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(str(path)), channels=1, expand_animations=False)
    except tf.errors.OpError as err:
        raise DataError(f"{path}: TensorFlow cannot decode this {header.format} "
                        f"({_tf_reason(err)}), {EXPECTED}") from None
    return header


# -------------------------------------------------------------------- DICOM

def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise DataError(f"reading DICOM needs pydicom: {DICOM_EXTRA}") from None
    return pydicom


DICOM_FIELDS = ("PatientID", "StudyInstanceUID", "ViewPosition", "Modality")


def _dicom_header(path, min_side: int = 0) -> Header:
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as err:  # pydicom raises several kinds for non-DICOM input
        raise DataError(f"{path}: not a readable DICOM file ({type(err).__name__})") from None
    if "Rows" not in ds or "Columns" not in ds:
        raise DataError(f"{path}: DICOM file without an image (no pixel data)")
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    width, height = int(ds.Columns), int(ds.Rows)
    _check_pixels(path, width, height, frames, min_side)
    if frames > 1:
        raise DataError(f"{path}: multi-frame DICOM ({frames} frames), expected one X-ray image")
    fields = {k: str(getattr(ds, k, "") or "") for k in DICOM_FIELDS}
    return Header("DICOM", width, height, int(getattr(ds, "SamplesPerPixel", 1) or 1), frames,
                  fields)


def read_dicom(path) -> np.ndarray:
    """The pixels of a single-image DICOM file as a 2-D float32 array in [0, 1]:
    the modality rescale (slope, intercept) and the VOI window applied,
    MONOCHROME1 inverted so that bone is bright, PALETTE COLOR through its
    lookup table and RGB / YBR turned to gray. Compressed transfer syntaxes
    are decoded when a decoder is installed (``[dicom-compressed]``), else one
    line names the syntax and the extra to install."""
    pydicom = _pydicom()
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    _dicom_header(path)  # sizes checked before the pixels are read
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as err:
        raise DataError(f"{path}: not a readable DICOM file ({type(err).__name__})") from None
    if "PixelData" not in ds:
        raise DataError(f"{path}: DICOM file without an image (no pixel data)")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        pixels = ds.pixel_array
    except Exception as err:  # no decoder for the syntax, truncated data, ...
        if syntax is not None and syntax.is_compressed:
            raise DataError(f"{path}: DICOM compressed as {syntax.name}, which no installed "
                            f"decoder reads: {COMPRESSED_DICOM_EXTRA}") from None
        raise DataError(f"{path}: DICOM pixel data unreadable ({_one_line(err)})") from None
    photometric = str(getattr(ds, "PhotometricInterpretation", "")).upper()
    if photometric == "PALETTE COLOR":
        try:
            pixels = apply_color_lut(pixels, ds)
        except Exception:
            raise DataError(f"{path}: PALETTE COLOR DICOM without a usable lookup table") \
                from None
    if pixels.ndim == 3 and pixels.shape[-1] == 3:  # RGB (pydicom turns YBR into RGB)
        pixels = pixels.astype("float64") @ _GRAY
    elif pixels.ndim != 2:
        raise DataError(f"{path}: DICOM pixels of shape {pixels.shape}, expected one image")
    else:
        pixels = apply_voi_lut(apply_modality_lut(pixels, ds), ds)
    pixels = np.asarray(pixels, dtype="float64")
    if photometric == "MONOCHROME1":
        pixels = pixels.max() + pixels.min() - pixels
    low, high = pixels.min(), pixels.max()
    out = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    return out.astype("float32")


# ---------------------------------------------------------------- decoding

def decode_jpeg_or_png(data, image_size: int):
    """Decode to one uint8 channel (0-255). A JPEG whose shorter side is at least
    ``ratio`` times ``image_size`` is decoded at 1/``ratio`` of its size
    (libjpeg's scaled decoding; ``make bench`` measures its gain on Kaggle's
    1000-2000 px originals); the resize that follows gives nearly the same
    image as a full decode would."""
    import tensorflow as tf

    def full():
        return tf.io.decode_image(data, channels=1, expand_animations=False, dtype=tf.uint8)

    def jpeg():
        shape = tf.io.extract_jpeg_shape(data)
        short = tf.minimum(shape[0], shape[1])
        branches = [lambda r=r: tf.io.decode_jpeg(data, channels=1, ratio=r)
                    for r in (*JPEG_RATIOS, 1)]
        index = tf.reduce_sum(tf.cast(short < tf.constant(JPEG_RATIOS) * image_size, tf.int32))
        return tf.switch_case(index, branches)

    image = tf.cond(tf.io.is_jpeg(data), jpeg, full)
    image.set_shape((None, None, 1))
    return image


def _dicom_pixels(path: bytes) -> np.ndarray:
    return read_dicom(path.decode("utf-8"))[..., None] * np.float32(255)


def decode(path, image_size: int):
    """TensorFlow op: one file (a string tensor, any format above) as an
    ``(image_size, image_size, 1)`` float32 tensor in [0, 1]. Used by the
    tf.data pipelines of training and scoring alike."""
    import tensorflow as tf

    def dicom():
        image = tf.numpy_function(_dicom_pixels, [path], tf.float32, stateful=False)
        image.set_shape((None, None, 1))
        return image

    suffix = tf.strings.lower(tf.strings.regex_replace(path, r"^.*(\.[^./]*)$", r"\1"))
    is_dcm = tf.reduce_any(tf.equal(suffix, tf.constant(DICOM_SUFFIXES)))
    image = tf.cond(is_dcm, dicom, lambda: tf.cast(
        decode_jpeg_or_png(tf.io.read_file(path), image_size), tf.float32))
    image = tf.image.resize(image, (image_size, image_size), antialias=True)  # 0-255
    image = tf.clip_by_value(image / 255.0, 0.0, 1.0)
    image.set_shape((image_size, image_size, 1))
    return image


def load_image(path, image_size: int, min_side: int = 0) -> np.ndarray:
    """One image as the model takes it, ``(image_size, image_size, 1)`` in
    [0, 1], its header checked first; one DataError line otherwise."""
    import tensorflow as tf

    path = Path(path) if not isinstance(path, GfilePath) else path
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"{path}: not a JPEG, PNG or DICOM file "
                        f"({path.suffix or 'no suffix'})")
    if not path.exists():
        raise DataError(f"{path}: not found")
    header = read_header(path, min_side)
    try:
        if header.format == "DICOM":
            image = tf.image.resize(read_dicom(path)[..., None], (image_size, image_size),
                                    antialias=True)
            return np.clip(image.numpy(), 0, 1)
        return decode(tf.constant(str(path)), image_size).numpy()
    except tf.errors.OpError as err:
        raise DataError(f"{path}: TensorFlow cannot decode this {header.format} "
                        f"({_tf_reason(err)})") from None


def _tf_reason(err) -> str:
    """TensorFlow's message without its graph internals (``{{function_node ...}}``)."""
    text = str(getattr(err, "message", err)).split("[Op:")[0]
    text = text.split("{{")[0] if "{{" in text and not text.startswith("{{") else text
    lines = [ln.strip() for ln in text.replace("}}", "\n").splitlines()
             if ln.strip() and "function_node" not in ln]
    return (lines[0] if lines else type(err).__name__).rstrip(".")


def _one_line(err) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
