"""The one image reader, used by ``check-data``, training and ``pneumo predict``
(as ``torchxrayvision.utils.load_image`` is one): which files are images, what
their headers must say before any pixel is decoded, DICOM, and decoding.

Every image, JPEG, PNG or DICOM, one or three channels, any size, comes out as
an ``(image_size, image_size, 1)`` float32 array in [0, 1]: one grayscale
channel, resized without keeping the aspect ratio (as the Kaggle images
already were). Whatever is wrong with a file is one :class:`DataError` line
naming it, whatever raised it (PIL, pydicom, zlib, TensorFlow).

Checks, in order: the header (format, size, colour space, frames) is read
first, and an image is refused *before* its pixels are decoded when it claims
more than :data:`MAX_PIXELS` pixels (a small compressed file can claim
gigapixels). This holds everywhere: :func:`read_header` in Python, and
:func:`decode` (the TensorFlow op of the training and scoring pipelines) reads
the size a JPEG's or PNG's header claims inside the graph before decoding it.
A DICOM's rows x columns x frames are checked from its header, the frame of a
compressed DICOM from its own codestream header, and a deflated DICOM is never
inflated past what its image needs. Then the pixels are decoded with the
decoder training uses.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
import zlib
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
MIN_CONTRAST = 2 / 255  # max - min of a decoded image below this: constant, not an X-ray
#: what a DICOM data set may hold besides its pixels (the elements before and
#: after them), once inflated; its pixels may take what rows x columns x frames
#: x samples x bytes say, no more
MAX_DICOM_EXTRA_BYTES = 16_000_000
JPEG_RATIOS = (8, 4, 2)  # the reduced sizes libjpeg decodes to directly
EXPECTED = "expected a complete grayscale or RGB JPEG or PNG image, or a DICOM file"
DICOM_EXTRA = "pip install 'pneumo-helpers[dicom]'"
COMPRESSED_DICOM_EXTRA = "pip install 'pneumo-helpers[dicom-compressed]'"
_GRAY = np.array([0.2989, 0.5870, 0.1140])  # ITU-R 601, as tf.image.rgb_to_grayscale
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (C4, C8 and CC are not frames), JPEG-LS' F7 too
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}
_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL",
                "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_PARTIAL_422", "YBR_ICT", "YBR_RCT")


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
    return _path(path).suffix.lower() in DICOM_SUFFIXES


def _path(path):
    """``path`` as a ``Path`` (a ``bytes`` name through ``os.fsdecode``, so a
    name that is not valid UTF-8 keeps its bytes) or a :class:`GfilePath`."""
    if isinstance(path, GfilePath):
        return path
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return Path(path)


def tf_path(path):
    """The file name TensorFlow is given: the bytes of a local name (which
    need not be UTF-8), or the URL of a gfile path."""
    return str(path) if isinstance(path, GfilePath) else os.fsencode(str(path))


def _size(path) -> int:
    return path.size() if isinstance(path, GfilePath) else Path(path).stat().st_size


def _open(path):
    if isinstance(path, GfilePath):
        return path.open("rb")
    return open(path, "rb")


@contextlib.contextmanager
def _one_line(path, what: str = "unreadable image", fmt: str = "image"):
    """Whatever is raised inside becomes one DataError line naming ``path``."""
    try:
        yield
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path}: too large to decode in the memory left") from None
    except Exception as err:  # noqa: BLE001  PIL, pydicom, numpy, zlib... raise many kinds
        known = _file_error(path, err)
        if known is not None:
            raise known from None
        if type(err).__module__.startswith("tensorflow"):
            reason = tf_reason(err)
            if reason.startswith(f"{path}: "):  # one of decode's own checks
                raise DataError(reason) from None
            raise DataError(f"{path}: TensorFlow cannot decode this {fmt} ({reason})") from None
        raise DataError(f"{path}: {what} ({type(err).__name__}: {_first_line(err)})") from None


def _file_error(path, err: Exception) -> DataError | None:
    """The one line for a file that is not there, not readable or a folder."""
    if isinstance(err, FileNotFoundError):
        return DataError(f"{path}: not found")
    if isinstance(err, PermissionError):
        return DataError(f"cannot read {path} (permission denied)")
    if isinstance(err, IsADirectoryError):
        return DataError(f"{path}: a folder, not an image file")
    return None


def _check_pixels(path, width: int, height: int, frames: int = 1, min_side: int = 0) -> None:
    if width * height * frames > MAX_PIXELS:
        what = f"{width} x {height} pixels" + (f" x {frames} frames" if frames > 1 else "")
        raise DataError(f"{path}: absurdly large image ({what}), refused before decoding; "
                        f"{EXPECTED} of at most {MAX_PIXELS // 1_000_000} megapixels")
    if min(width, height) < min_side:
        raise DataError(f"{path}: too small to be a chest X-ray ({width} x {height} pixels; "
                        f"at least {min_side} a side)")


def _check_file(path) -> None:
    """Not found, a folder, unreadable or empty: one line."""
    try:
        if not isinstance(path, GfilePath) and Path(path).is_dir():
            raise DataError(f"{path}: a folder, not an image file")
        if _size(path) == 0:
            raise DataError(f"{path}: empty file (0 bytes), {EXPECTED}")
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001  gfile's NotFoundError and the like
        known = _file_error(path, err)
        if known is not None:
            raise known from None
        if "not found" in str(err).lower() or "no such file" in str(err).lower():
            raise DataError(f"{path}: not found") from None
        raise DataError(f"cannot read {path} ({_first_line(err)})") from None


def claimed_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` that the header of a JPEG (or JPEG-LS), PNG or JPEG
    2000 codestream claims, read from its first bytes without decoding; None
    when the header is not found there."""
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
                i += 2
                continue
            if marker in (0xD9, 0xDA):  # end of image, or the scan before any frame
                return None
            if marker in _SOF:
                if i + 9 > len(data):
                    return None
                return int.from_bytes(data[i + 7:i + 9], "big"), \
                    int.from_bytes(data[i + 5:i + 7], "big")
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
        return None
    if data[:4] == b"\xff\x4f\xff\x51" and len(data) >= 28:  # J2K codestream: SOC, SIZ
        x, y, x0, y0 = (int.from_bytes(data[k:k + 4], "big") for k in (8, 12, 16, 20))
        return x - x0, y - y0
    if data[4:8] == b"jP  ":  # JP2 file: the codestream is in its jp2c box
        at = data.find(b"jp2c")
        return claimed_size(data[at + 4:]) if at > 0 else None
    return None


def read_header(path, min_side: int = 0) -> Header:
    """The header of an image file, checked: a JPEG or PNG that TensorFlow
    can decode (not CMYK), or a single-frame DICOM image, of at most
    :data:`MAX_PIXELS` pixels and at least ``min_side`` a side. No pixel is
    decoded. One DataError line otherwise."""
    path = _path(path)
    _check_file(path)
    if is_dicom(path):
        with _one_line(path, "not a readable DICOM file"):
            return _dicom_header(path, min_side)
    from PIL import Image, UnidentifiedImageError

    with _one_line(path):
        try:
            source = io.BytesIO(path.read_bytes()) if isinstance(path, GfilePath) else path
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(source) as im:  # reads the header only
                    fmt, (width, height), mode = im.format, im.size, im.mode
                    channels = len(im.getbands())
        except UnidentifiedImageError:
            raise DataError(f"{path}: not an image file, {EXPECTED}") from None
        except Image.DecompressionBombError:  # more pixels than PIL opens at all
            with _open(path) as f:
                size = claimed_size(f.read(1 << 20))
            if size is not None:
                _check_pixels(path, *size)
            raise DataError(f"{path}: absurdly large image, refused before decoding; "
                            f"{EXPECTED} of at most {MAX_PIXELS // 1_000_000} megapixels") \
                from None
        except (OSError, SyntaxError, ValueError) as err:
            if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
                raise
            raise DataError(f"{path}: unreadable image ({_first_line(err)}), {EXPECTED}") \
                from None
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
    path = _path(path)
    header = read_header(path, min_side)
    if header.format == "DICOM":
        read_dicom(path)
        return header
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(tf_path(path)), channels=1,
                           expand_animations=False)
    except tf.errors.OpError as err:
        raise DataError(f"{path}: TensorFlow cannot decode this {header.format} "
                        f"({tf_reason(err)}), {EXPECTED}") from None
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{path}: unreadable image ({type(err).__name__}: "
                        f"{_first_line(err)})") from None
    return header


# -------------------------------------------------------------------- DICOM

def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise DataError(f"reading DICOM needs pydicom: {DICOM_EXTRA}") from None
    return pydicom


DICOM_FIELDS = ("PatientID", "StudyInstanceUID", "ViewPosition", "Modality")
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float and Double Float


def _inflate(f, limit: int) -> tuple[bytes, bool]:
    """The raw deflate stream from ``f`` inflated, never past ``limit`` bytes:
    ``(data, complete)``, ``complete`` false when it would inflate further."""
    inflater, out = zlib.decompressobj(-zlib.MAX_WBITS), bytearray()
    while not inflater.eof:
        chunk = f.read(1 << 20)
        if not chunk:
            break
        while chunk and not inflater.eof:
            out += inflater.decompress(chunk, limit + 1 - len(out))  # never 0: unbounded
            if len(out) > limit:
                return bytes(out[:limit]), False
            chunk = inflater.unconsumed_tail
    if not inflater.eof:
        raise DataError("truncated deflated data set")
    return bytes(out), True


def _dicom_dataset(path, pixel_bytes: int | None = None):
    """The data set of a DICOM file: its header alone (stop before the pixels)
    when ``pixel_bytes`` is None, else all of it, which may then hold
    ``pixel_bytes`` of pixels and :data:`MAX_DICOM_EXTRA_BYTES` more. A
    deflated data set is inflated here, never past that (pydicom would
    inflate all of it at once, and a small file can inflate to gigabytes);
    a plain one larger than that is refused unread."""
    pydicom = _pydicom()
    from pydicom.dataset import FileDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    header_only = pixel_bytes is None
    limit = MAX_DICOM_EXTRA_BYTES + (pixel_bytes or 0)
    with _open(path) as f:
        try:
            preamble = read_preamble(f, False)
            meta = _read_file_meta_info(f)
        except Exception as err:  # noqa: BLE001  pydicom raises several kinds
            raise DataError(f"{path}: not a readable DICOM file ({type(err).__name__})") \
                from None
        if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
            if not header_only and _size(path) > limit:
                raise DataError(f"{path}: DICOM file of {_size(path):,} bytes, far more than "
                                f"its image needs ({pixel_bytes:,} bytes); refused unread")
            f.seek(0)
            try:
                return pydicom.dcmread(f, stop_before_pixels=header_only,
                                       defer_size="1 MB" if header_only else None)
            except DataError:
                raise
            except Exception as err:  # noqa: BLE001
                raise DataError(f"{path}: not a readable DICOM file ({type(err).__name__}: "
                                f"{_first_line(err)})") from None
        try:
            body, complete = _inflate(f, limit)
        except (zlib.error, DataError) as err:
            raise DataError(f"{path}: DICOM deflated data set unreadable "
                            f"({_first_line(err)})") from None
    if not complete and not header_only:
        raise DataError(f"{path}: its deflated DICOM data set inflates beyond {limit:,} bytes, "
                        f"far more than its image needs ({pixel_bytes:,} bytes); refused")
    at_pixels = []

    def stop(tag, vr, length):
        if tag in _PIXEL_TAGS:
            at_pixels.append(tag)
            return True
        return False

    try:
        ds = read_dataset(DicomBytesIO(body), False, True, stop_when=stop if header_only else None)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{path}: not a readable DICOM file ({type(err).__name__}: "
                        f"{_first_line(err)})") from None
    if header_only and not complete and not at_pixels:
        raise DataError(f"{path}: DICOM header larger than {limit:,} bytes once inflated; refused")
    return FileDataset(str(path), ds, preamble=preamble, file_meta=meta,
                       is_implicit_VR=False, is_little_endian=True)


def _dicom_header(path, min_side: int = 0, ds=None) -> Header:
    ds = _dicom_dataset(path) if ds is None else ds
    if "Rows" not in ds or "Columns" not in ds:
        raise DataError(f"{path}: DICOM file without an image (no pixel data)")
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    width, height = int(ds.Columns), int(ds.Rows)
    _check_pixels(path, width, height, frames, min_side)
    if frames > 1:
        raise DataError(f"{path}: multi-frame DICOM ({frames} frames), expected one X-ray image")
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if samples not in (1, 3):
        raise DataError(f"{path}: DICOM with {samples} samples per pixel, expected 1 (gray) "
                        "or 3 (colour)")
    fields = {k: str(getattr(ds, k, "") or "") for k in DICOM_FIELDS}
    return Header("DICOM", width, height, samples, frames, fields)


def _check_decoder(path, ds) -> None:
    """A compressed DICOM: a decoder for its transfer syntax is installed,
    and its frame's own header claims the size the DICOM header says."""
    from pydicom.encaps import generate_frames
    from pydicom.pixels import get_decoder

    syntax = ds.file_meta.TransferSyntaxUID
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:  # video, JPEG XL...: no decoder exists for it
        raise DataError(f"{path}: DICOM compressed as {syntax.name}, which pydicom cannot "
                        "decode; export it as an uncompressed DICOM, JPEG or PNG") from None
    if not available:
        raise DataError(f"{path}: DICOM compressed as {syntax.name}, which no installed "
                        f"decoder reads: {COMPRESSED_DICOM_EXTRA}")
    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{path}: DICOM compressed pixel data unreadable "
                        f"({_first_line(err)})") from None
    size = claimed_size(bytes(frame[:1 << 16]))
    if size is not None and size != (int(ds.Columns), int(ds.Rows)):
        _check_pixels(path, *size)
        raise DataError(f"{path}: its compressed image is {size[0]} x {size[1]} pixels, its "
                        f"DICOM header says {int(ds.Columns)} x {int(ds.Rows)}")


def read_dicom(path) -> np.ndarray:
    """The pixels of a single-image DICOM file as a 2-D float32 array in [0, 1]:
    the modality rescale (slope, intercept) and the VOI window applied,
    MONOCHROME1 inverted so that bone is bright, PALETTE COLOR through its
    lookup table and RGB / YBR turned to gray. Compressed transfer syntaxes
    are decoded when a decoder is installed (``[dicom-compressed]``), else one
    line names the syntax and the extra to install."""
    path = _path(path)
    with _one_line(path, "DICOM pixel data unreadable"):
        return _read_dicom(path)


def _read_dicom(path) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    _check_file(path)
    head = _dicom_dataset(path)
    header = _dicom_header(path, 0, head)  # sizes checked before the pixels are read
    bits = int(getattr(head, "BitsAllocated", 16) or 16)
    pixel_bytes = header.width * header.height * header.channels * max(1, -(-bits // 8))
    ds = _dicom_dataset(path, pixel_bytes)
    if not any(tag in ds for tag in _PIXEL_TAGS):
        raise DataError(f"{path}: DICOM file without an image (no pixel data)")
    photometric = str(getattr(ds, "PhotometricInterpretation", "")).strip().upper()
    if photometric not in _PHOTOMETRIC:
        raise DataError(f"{path}: DICOM photometric interpretation {photometric or 'missing'!r}, "
                        f"expected one of {', '.join(_PHOTOMETRIC)}")
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        _check_decoder(path, ds)
    try:
        pixels = ds.pixel_array
    except Exception as err:  # noqa: BLE001  truncated data, a decoder's failure, ...
        raise DataError(f"{path}: DICOM pixel data unreadable ({_first_line(err)})") from None
    if photometric == "PALETTE COLOR":
        try:
            pixels = apply_color_lut(pixels, ds)
        except Exception:  # noqa: BLE001
            raise DataError(f"{path}: PALETTE COLOR DICOM without a usable lookup table") \
                from None
    if pixels.ndim == 3 and pixels.shape[-1] == 3:  # RGB (pydicom turns YBR into RGB)
        pixels = pixels.astype("float64") @ _GRAY
    elif pixels.ndim != 2:
        raise DataError(f"{path}: DICOM pixels of shape {pixels.shape}, expected one image")
    else:
        pixels = _voi(apply_modality_lut(pixels, ds), ds)
    pixels = np.asarray(pixels, dtype="float64")
    if not np.isfinite(pixels).all():
        raise DataError(f"{path}: DICOM pixels that are not finite numbers (NaN or infinite)")
    if photometric == "MONOCHROME1":
        pixels = pixels.max() + pixels.min() - pixels
    low, high = pixels.min(), pixels.max()
    out = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    return out.astype("float32")


def _voi(values, ds):
    """The VOI transform (PS3.3 C.11.2) of modality values: the VOI LUT if
    there is one, else the first window (LINEAR, LINEAR_EXACT or SIGMOID) as
    an increasing map to [0, 1], else the values as they are. pydicom's own
    windowing maps to the range the rescale gives the stored values, which a
    negative RescaleSlope turns upside down (the image came out inverted)."""
    from collections.abc import MutableSequence

    from pydicom.pixels import apply_voi_lut

    if "VOILUTSequence" in ds:
        return apply_voi_lut(values, ds, prefer_lut=True)
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return values

    def first(v):
        return float(v[0] if isinstance(v, (MutableSequence, tuple)) else v)

    center, width = first(ds.WindowCenter), first(ds.WindowWidth)
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    x = np.asarray(values, dtype="float64")
    if function == "SIGMOID" and width > 0:
        return 1 / (1 + np.exp(-4 * (x - center) / width))
    if function == "LINEAR_EXACT" and width > 0:
        return np.clip((x - center) / width + 0.5, 0, 1)
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID") or width < 1:
        return values  # no usable window: the full range, as viewers show it
    if width == 1:
        return (x > center - 0.5).astype("float64")
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0, 1)


# ---------------------------------------------------------------- decoding

def _claimed_pixels(data, path):
    """TensorFlow: an op that fails with one line (naming ``path``) unless
    ``data`` is a JPEG or PNG whose header claims at most :data:`MAX_PIXELS`
    pixels. Only the header is read (``extract_jpeg_shape``; the PNG IHDR)."""
    import tensorflow as tf

    is_jpeg = tf.io.is_jpeg(data)
    is_png = tf.logical_and(tf.strings.length(data) >= 24,
                            tf.equal(tf.strings.substr(data, 0, 8), _PNG_SIGNATURE))
    known = tf.logical_or(is_jpeg, is_png)
    fmt = tf.debugging.Assert(known, [tf.strings.join(
        [path, f": not a JPEG or PNG image, {EXPECTED}"])])

    def png():
        b = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.uint8), tf.int64)
        big = tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64)
        return tf.stack([tf.reduce_sum(b[4:] * big), tf.reduce_sum(b[:4] * big)])

    with tf.control_dependencies([fmt]):
        hw = tf.cond(is_jpeg, lambda: tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64),
                     png)
    text = tf.strings.as_string
    return tf.debugging.Assert(hw[0] * hw[1] <= MAX_PIXELS, [tf.strings.join(
        [path, ": absurdly large image (", text(hw[1]), " x ", text(hw[0]),
         (f" pixels), refused before decoding; {EXPECTED} of at most "
          f"{MAX_PIXELS // 1_000_000} megapixels")])])


def decode_jpeg_or_png(data, image_size: int, path="image"):
    """Decode to one uint8 channel (0-255), after checking in the graph that
    ``data`` is a JPEG or PNG whose header claims at most :data:`MAX_PIXELS`
    pixels (``path`` names it in the error). A JPEG whose shorter side is at
    least ``ratio`` times ``image_size`` is decoded at 1/``ratio`` of its size
    (libjpeg's scaled decoding; ``make bench`` measures its gain on Kaggle's
    1000-2000 px originals); the resize that follows gives nearly the same
    image as a full decode would."""
    import tensorflow as tf

    with tf.control_dependencies([_claimed_pixels(data, path)]):
        data = tf.identity(data)

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


def _dicom_pixels(path) -> np.ndarray:
    if isinstance(path, np.ndarray):  # eager numpy_function hands over an array
        path = path.item()
    return read_dicom(os.fsdecode(path))[..., None] * np.float32(255)


def decode(path, image_size: int):
    """TensorFlow op: one file (a string tensor, any format above) as an
    ``(image_size, image_size, 1)`` float32 tensor in [0, 1]. Used by the
    tf.data pipelines of training and scoring alike. A JPEG or PNG is refused
    before decoding when its header claims more than :data:`MAX_PIXELS`
    pixels; a DICOM goes through :func:`read_dicom` and its checks."""
    import tensorflow as tf

    def dicom():
        image = tf.numpy_function(_dicom_pixels, [path], tf.float32, stateful=False)
        image.set_shape((None, None, 1))
        return image

    # the suffix from the name's last bytes (a regular expression does not
    # match a name that is not valid UTF-8); the name in messages made valid
    padded = tf.strings.lower(tf.strings.join(["      ", path]))
    is_dcm = tf.reduce_any([tf.equal(tf.strings.substr(padded, -len(s), len(s)), s)
                            for s in DICOM_SUFFIXES])
    name = tf.strings.unicode_transcode(path, "UTF-8", "UTF-8", errors="replace")
    image = tf.cond(is_dcm, dicom, lambda: tf.cast(
        decode_jpeg_or_png(tf.io.read_file(path), image_size, name), tf.float32))
    image = tf.image.resize(image, (image_size, image_size), antialias=True)  # 0-255
    image = tf.clip_by_value(image / 255.0, 0.0, 1.0)
    image.set_shape((image_size, image_size, 1))
    return image


def load_image(path, image_size: int, min_side: int = 0) -> np.ndarray:
    """One image as the model takes it, ``(image_size, image_size, 1)`` in
    [0, 1], its header checked first; one DataError line otherwise. With
    ``min_side`` (as scoring calls it), an image smaller than that a side, or
    without contrast (max - min below :data:`MIN_CONTRAST` once decoded), is
    refused too: it is not a chest X-ray."""
    path = _path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"{path}: not a JPEG, PNG or DICOM file "
                        f"({path.suffix or 'no suffix'})")
    header = read_header(path, min_side)
    with _one_line(path, f"cannot decode this {header.format}", header.format):
        import tensorflow as tf

        if header.format == "DICOM":
            image = tf.image.resize(read_dicom(path)[..., None], (image_size, image_size),
                                    antialias=True)
            image = np.clip(image.numpy(), 0, 1)
        else:
            image = decode(tf.constant(tf_path(path)), image_size).numpy()
    if min_side > 0 and float(image.max() - image.min()) < MIN_CONTRAST:
        raise DataError(f"{path}: an image without contrast (every pixel about "
                        f"{float(image.mean()) * 255:.0f}/255), not a chest X-ray")
    return image


_ASSERTION = re.compile(r"(?:Summarized data: b'|assertion failed: \[)(.*?)(?:'|\])\s*(?:\n|$)",
                        re.DOTALL)
_PY_ERROR = re.compile(r"\b(?:DataError|[A-Za-z]*Error): (.*?)\n\s*Traceback", re.DOTALL)
_DATASET = re.compile(r"^.*?Iterator::[\w:]+: ", re.DOTALL)


def tf_reason(err) -> str:
    """TensorFlow's message without its graph internals (``{{function_node ...}}``,
    ``[Op:...]``, tf.data's iterator names, a py_function's traceback): the
    payload of a failed check of :func:`decode`, the message of a Python
    exception raised inside, or TensorFlow's own first line."""
    text = str(getattr(err, "message", err))
    found = _ASSERTION.search(text)
    if found:
        return found.group(1).replace('\\"', '"').strip()
    found = _PY_ERROR.search(text)
    if found:
        return _DATASET.sub("", found.group(1)).strip().splitlines()[0].rstrip(".")
    text = _DATASET.sub("", text.split("[Op:")[0])
    text = text.split("{{")[0] if "{{" in text and not text.startswith("{{") else text
    lines = [ln.strip() for ln in text.replace("}}", "\n").splitlines()
             if ln.strip() and "function_node" not in ln and not ln.strip().startswith("[[")]
    return (lines[0] if lines else type(err).__name__).rstrip(".")


def _first_line(err) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
