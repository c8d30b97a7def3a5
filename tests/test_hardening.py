"""Issue 14: the reader and the model loader against hostile or odd files.

Rule 3, size limits before decoding, everywhere: a JPEG, PNG or DICOM that
claims more than MAX_PIXELS is refused from its header (in Python and inside
the TensorFlow pipeline), a deflated or compressed DICOM never inflates past
what its image needs, and images too small or without contrast are not
scored. Rule 4: whatever fails while reading one file is one DataError line
naming it. Rule 5: DICOM read as radiology tools read it (rescale, palette,
RGB / YBR, compressed transfer syntaxes). Rule 6: a model file that cannot be
used, for any reason, is one ModelFileError line naming it, and nothing from
the file runs.

Every bad file is built here, from real X-rays or on the fly, and stays small
on disk: the "gigabytes" are deflate streams of zeros (about 1 MB per GB).
"""

import csv
import io
import json
import math
import os
import shutil
import struct
import tracemalloc
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pneumo_helpers.cli import main
from pneumo_helpers.data import images
from pneumo_helpers.data.images import MIN_SIDE, load_image, read_dicom, read_header
from pneumo_helpers.errors import DataError, ModelFileError
from pneumo_helpers.use import modelfile

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian,
                         JPEG2000Lossless, JPEGBaseline8Bit, MPEG2MPML, RLELossless,
                         generate_uid)

GB = 1 << 30


# --------------------------------------------------------------- helpers

def one_line(err) -> str:
    text = str(err.value) if hasattr(err, "value") else str(err)
    assert "\n" not in text and "{{" not in text and "function_node" not in text \
        and "[Op:" not in text and "Traceback" not in text, text
    return text


def refused(call, *words, error=DataError, name=None):
    """``call()`` raises ``error``: one line naming the file (``name``), holding ``words``."""
    with pytest.raises(error) as err:
        call()
    text = one_line(err)
    if name is not None:
        assert str(name) in text, text
    for w in words:
        assert w in text, text
    return text


def deflate(*parts, block: int = 1 << 22) -> bytes:
    """One raw deflate stream of ``parts``: bytes, or a number of zero bytes,
    built in milliseconds however many: after a full flush the compressor
    starts afresh, so each block of zeros compresses to the same
    self-contained bytes, which are repeated."""
    c, out = zlib.compressobj(9, zlib.DEFLATED, -15), []
    for part in parts:
        if isinstance(part, int):
            k, rest = divmod(part, block)
            if k:
                out.append((c.compress(b"\0" * block) + c.flush(zlib.Z_FULL_FLUSH)) * k)
            part = b"\0" * rest
        out.append(c.compress(part) + c.flush(zlib.Z_FULL_FLUSH))
    out.append(c.flush())
    return b"".join(out)


def raw_zeros(n: int) -> bytes:
    return deflate(n)


def zlib_zeros(n: int) -> bytes:
    """The same as a zlib stream (PNG's IDAT): header, raw deflate, Adler-32
    (which for ``n`` zeros is ``(n mod 65521) << 16 | 1``)."""
    return b"\x78\xda" + raw_zeros(n) + struct.pack(">I", (n % 65521) << 16 | 1)


def crc32_of_zeros(n: int, block: int = 1 << 24) -> int:
    crc, zeros = 0, b"\0" * block
    for _ in range(n // block):
        crc = zlib.crc32(zeros, crc)
    return zlib.crc32(b"\0" * (n % block), crc)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(path, width, height, idat: bytes) -> Path:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
                     + png_chunk(b"IEND", b""))
    return path


def jpeg_claiming(path, source: bytes, width: int, height: int) -> Path:
    """A real JPEG whose start-of-frame header claims ``width`` x ``height``."""
    data, i = bytearray(source), 2
    while data[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def xray(data_dir) -> Path:
    return min((data_dir / "test" / "PNEUMONIA").iterdir())


@pytest.fixture(scope="module")
def gray(xray) -> np.ndarray:
    """The real X-ray as 8-bit gray, 224 x 224."""
    return np.asarray(Image.open(xray).convert("L"))


def dicom(path, pixels, photometric="MONOCHROME2", *, ts=ExplicitVRLittleEndian, bits=None,
          signed=False, compress=None, **elements) -> Path:
    """A one-image DX DICOM file of ``pixels`` (2-D gray, or 3-D colour)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian if compress else ts
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "DX", "hardening"
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
    if pixels.ndim == 3:
        ds.PlanarConfiguration = elements.pop("PlanarConfiguration", 0)
    bits = bits or (8 if pixels.dtype == np.uint8 else 16)
    ds.BitsAllocated, ds.BitsStored = bits, elements.pop("BitsStored", bits)
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, int(signed)
    ds.Rows, ds.Columns = pixels.shape[:2]
    for key, value in elements.items():
        setattr(ds, key, value)
    stored = pixels.astype(f"{'int' if signed else 'uint'}{bits}")
    if pixels.ndim == 3 and ds.PlanarConfiguration == 1:
        stored = stored.transpose(2, 0, 1)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    if compress:
        ds.compress(compress)
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_jpeg(path, jpeg: bytes, rows: int, columns: int, ts=JPEGBaseline8Bit) -> Path:
    """A DICOM holding ``jpeg`` (one encapsulated frame); its header says rows x columns."""
    from pydicom.encaps import encapsulate

    path = dicom(path, np.zeros((rows, columns), np.uint8))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = ts
    ds.PixelData = encapsulate([jpeg])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def gray_jpeg(pixels) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=95)
    return out.getvalue()


def _meta_end(raw: bytes) -> int:
    """Where the data set starts: after the preamble, "DICM" and the file meta group."""
    assert raw[128:132] == b"DICM" and raw[132:134] == b"\x02\x00" and raw[136:138] == b"UL"
    return 132 + 12 + int.from_bytes(raw[140:144], "little")


def deflated_bomb(path, rows, columns, *, pixel_length, pixel_zeros, padding_zeros=0) -> Path:
    """A Deflated Explicit VR Little Endian DICOM, written by hand: its header
    (``rows`` x ``columns`` of 16-bit gray), a Pixel Data element claiming
    ``pixel_length`` bytes, ``pixel_zeros`` zero bytes of it, then (with
    ``padding_zeros``) a Data Set Trailing Padding element of that many zeros;
    deflated, about a thousandth of what it inflates to."""
    ds = pydicom.dcmread(dicom(path, np.zeros((1, 1), np.uint16)))
    del ds.PixelData
    ds.Rows, ds.Columns = rows, columns
    plain, deflated = io.BytesIO(), io.BytesIO()
    ds.save_as(plain, enforce_file_format=True)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(deflated, enforce_file_format=True)
    plain, deflated = plain.getvalue(), deflated.getvalue()
    body = plain[_meta_end(plain):] + b"\xe0\x7f\x10\x00OW\0\0" + struct.pack("<I", pixel_length)
    parts = [body, pixel_zeros]
    if padding_zeros:
        parts += [b"\xfc\xff\xfc\xffOB\0\0" + struct.pack("<I", padding_zeros), padding_zeros]
    path.write_bytes(deflated[:_meta_end(deflated)] + deflate(*parts))
    return path


def peak_memory(call):
    """The peak of Python-allocated memory (bytes) while ``call()`` runs, and what it raised."""
    tracemalloc.start()
    try:
        call()
        raised = None
    except Exception as err:  # noqa: BLE001
        raised = err
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, raised


def read_rows(path):
    with open(path, newline="") as f:
        return {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(f)}


# ------------------------------------------------- rule 3: size limits


def test_png_claiming_20000_squared_is_refused_before_decoding(tmp_path, monkeypatch):
    # a complete, valid 20000 x 20000 PNG (400 megapixels of black) of about 400 KB,
    # and one whose IDAT is a few bytes
    full = png_claiming(tmp_path / "full.png", 20000, 20000, zlib_zeros(20001 * 20000))
    tiny = png_claiming(tmp_path / "tiny.png", 20000, 20000, zlib.compress(b"\0" * 100))
    just_over = png_claiming(tmp_path / "over.png", 7100, 7100, zlib.compress(b"\0" * 100))
    assert full.stat().st_size < 500_000
    # PIL must not decode a pixel, nor warn about a decompression bomb
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("PIL decoded pixels"))
    for f, size in ((full, "20000 x 20000"), (tiny, "20000 x 20000"), (just_over, "7100 x 7100")):
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            refused(lambda: read_header(f), f"absurdly large image ({size} pixels)",
                    "refused before decoding", name=f)
            refused(lambda: images.check_image(f), "absurdly large", name=f)
            refused(lambda: load_image(f, 32, min_side=MIN_SIDE), "absurdly large", name=f)


def test_the_tensorflow_pipeline_checks_the_claimed_size_too(tmp_path, xray):
    """``decode`` (training's and scoring's op) reads the size from the header
    inside the graph, before decoding: a table built with check_images=False
    cannot slip a bomb into training."""
    import tensorflow as tf

    from pneumo_helpers.data.images import tf_reason, decode

    bombs = [png_claiming(tmp_path / "bomb.png", 20000, 20000, zlib_zeros(20001 * 20000)),
             jpeg_claiming(tmp_path / "bomb.jpeg", xray.read_bytes(), 60000, 60000),
             jpeg_claiming(tmp_path / "mid.jpeg", xray.read_bytes(), 10000, 6000)]
    for f in bombs:
        with pytest.raises(tf.errors.InvalidArgumentError) as err:
            decode(tf.constant(str(f)), 32)
        assert tf_reason(err.value).startswith(f"{f}: absurdly large image")
        ds = tf.data.Dataset.from_tensor_slices([str(f)]).map(lambda p: decode(p, 32))
        with pytest.raises(tf.errors.InvalidArgumentError) as err:
            list(ds)
        reason = tf_reason(err.value)
        assert reason.startswith(f"{f}: absurdly large image") and "\n" not in reason
    # what decode_image would also take (GIF, BMP) is refused too: check-data refuses them
    Image.new("L", (50, 50)).save(tmp_path / "x.gif")
    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        decode(tf.constant(str(tmp_path / "x.gif")), 32)
    assert "not a JPEG or PNG image" in tf_reason(err.value)
    # and a real X-ray still decodes
    assert decode(tf.constant(str(xray)), 32).shape == (32, 32, 1)


def test_jpeg_whose_frame_header_claims_a_huge_size(tmp_path, xray):
    source = xray.read_bytes()
    for w, h in ((60000, 60000), (10000, 10000), (10000, 5001)):
        f = jpeg_claiming(tmp_path / f"sof_{w}_{h}.jpeg", source, w, h)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            refused(lambda: load_image(f, 32, min_side=MIN_SIDE),
                    f"absurdly large image ({w} x {h} pixels)", name=f)
    # at the limit it is a header question only: 7000 x 7000 passes the header check
    assert read_header(jpeg_claiming(tmp_path / "ok.jpeg", source, 7000, 7000)).width == 7000


def test_dicom_rows_columns_frames_are_checked_before_the_pixels(tmp_path):
    big = dicom(tmp_path / "big.dcm", np.zeros((1, 1), np.uint16))
    ds = pydicom.dcmread(big)
    ds.Rows, ds.Columns = 8000, 7000  # pixel data far too short: never read
    ds.save_as(big, enforce_file_format=True)
    refused(lambda: read_dicom(big), "absurdly large image (7000 x 8000 pixels)", name=big)
    frames = dicom(tmp_path / "frames.dcm", np.zeros((1, 1), np.uint16))
    ds = pydicom.dcmread(frames)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 3000, 3000, 10
    ds.save_as(frames, enforce_file_format=True)
    refused(lambda: load_image(frames, 32), "3000 x 3000 pixels x 10 frames", name=frames)


def test_deflated_dicom_is_never_inflated_past_what_its_image_needs(tmp_path, gray):
    """pydicom inflates a deflated data set whole (zlib.decompress of all of
    it), even for the header alone: a 1 MB file inflated to 1 GB each time it
    was read. The reader inflates it itself, with a bound."""
    # a good deflated DICOM reads as the plain one
    plain = dicom(tmp_path / "plain.dcm", gray)
    good = dicom(tmp_path / "deflated.dcm", gray, ts=DeflatedExplicitVRLittleEndian)
    assert good.stat().st_size < plain.stat().st_size
    np.testing.assert_array_equal(read_dicom(good), read_dicom(plain))

    # 1: the header claims 30000 x 30000 and pixel data of 1.8 GB (1 GB of it there)
    huge = deflated_bomb(tmp_path / "huge.dcm", 30000, 30000, pixel_length=1_800_000_000,
                         pixel_zeros=GB)
    # 2: an honest 64 x 64 header, its 8 KB of pixels, then 1 GB of trailing padding
    padded = deflated_bomb(tmp_path / "padded.dcm", 64, 64, pixel_length=64 * 64 * 2,
                           pixel_zeros=64 * 64 * 2, padding_zeros=GB)
    assert huge.stat().st_size < 2_000_000 and padded.stat().st_size < 2_000_000
    for f, words in ((huge, "absurdly large image (30000 x 30000 pixels)"),
                     (padded, "inflates beyond")):
        peak, raised = peak_memory(lambda: load_image(f, 32, min_side=MIN_SIDE))
        assert isinstance(raised, DataError), raised
        text = one_line(raised)
        assert str(f) in text and words in text
        assert peak < 100_000_000, f"{peak:,} bytes allocated reading {f.name}"
    # the header alone reads the honest one, from its first megabytes only
    peak, raised = peak_memory(lambda: read_header(padded))
    assert raised is None and peak < 100_000_000
    # and a truncated deflated data set is one line too
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(good.read_bytes()[:-200])
    refused(lambda: read_dicom(cut), name=cut)


def test_plain_dicom_far_larger_than_its_image_is_refused_unread(tmp_path):
    f = dicom(tmp_path / "padded.dcm", np.zeros((64, 64), np.uint16) + 7)
    with open(f, "ab") as out:  # 40 MB of trailing padding, a sparse file
        out.write(b"\xfc\xff\xfc\xffOB\0\0" + struct.pack("<I", 40_000_000))
        out.truncate(f.stat().st_size + 40_000_000)
    refused(lambda: read_dicom(f), "far more than its image needs", name=f)


def test_compressed_dicom_frame_is_checked_against_its_header(tmp_path, gray):
    # the frame's own JPEG header claims a size the DICOM header does not say
    other = dicom_jpeg(tmp_path / "other.dcm", gray_jpeg(gray), 100, 100)
    refused(lambda: read_dicom(other), "its compressed image is 224 x 224 pixels",
            "header says 100 x 100", name=other)
    # a 224 x 224 DICOM whose JPEG frame claims 20000 x 20000: the decoder
    # (Pillow's or pylibjpeg's) would allocate 400 MB before anyone compared
    bomb = jpeg_claiming(tmp_path / "bomb.jpeg", gray_jpeg(gray), 20000, 20000)
    huge = dicom_jpeg(tmp_path / "huge.dcm", bomb.read_bytes(), 224, 224)
    peak, raised = peak_memory(lambda: read_dicom(huge))
    assert isinstance(raised, DataError) and str(huge) in one_line(raised)
    assert "absurdly large image (20000 x 20000 pixels)" in str(raised)
    assert peak < 50_000_000, f"{peak:,} bytes allocated"


def test_too_small_or_without_contrast_is_not_an_xray(tmp_path, gray):
    Image.fromarray(gray[:40, :50]).save(tmp_path / "small.png")
    Image.new("L", (300, 300), 128).save(tmp_path / "gray.png")
    Image.new("L", (300, 300), 0).save(tmp_path / "black.jpeg")
    nearly = np.full((300, 300), 100, np.uint8)
    nearly[::7] = 101  # one gray level of difference
    Image.fromarray(nearly).save(tmp_path / "nearly.png")
    dicom(tmp_path / "flat.dcm", np.full((300, 300), 1000, np.uint16))
    for name, words in (("small.png", "too small to be a chest X-ray (50 x 40 pixels"),
                        ("gray.png", "without contrast"), ("black.jpeg", "without contrast"),
                        ("nearly.png", "without contrast"), ("flat.dcm", "without contrast")):
        f = tmp_path / name
        refused(lambda: load_image(f, 32, min_side=MIN_SIDE), words, name=f)
        assert load_image(f, 32).shape == (32, 32, 1)  # min_side=0: check-data, heat maps
    # a real X-ray has contrast
    Image.fromarray(gray).save(tmp_path / "real.png")
    assert load_image(tmp_path / "real.png", 32, min_side=MIN_SIDE).std() > 0.05


# ---------------------------------------- rule 4: one line, whatever fails


def test_every_failure_reading_one_file_is_one_line(tmp_path, gray, monkeypatch):
    missing = tmp_path / "missing.png"
    for call in (read_header, images.check_image, read_dicom,
                 lambda p: load_image(p, 32, min_side=MIN_SIDE)):
        refused(lambda: call(missing), "not found", name=missing)
        refused(lambda: call(tmp_path / "missing.dcm"), "not found")
    folder = tmp_path / "folder.jpeg"
    folder.mkdir()
    refused(lambda: load_image(folder, 32), "a folder, not an image file", name=folder)
    # TensorFlow's decode error, without its internals
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), np.uint8)).save(
        tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])
    refused(lambda: load_image(tmp_path / "cut.png", 32), "TensorFlow cannot decode this PNG",
            name=tmp_path / "cut.png")
    # a DICOM that is not one, and one whose pixel data is cut short
    (tmp_path / "text.dcm").write_text("not DICOM at all " * 20)
    refused(lambda: load_image(tmp_path / "text.dcm", 32), "not a readable DICOM file")
    short = dicom(tmp_path / "short.dcm", gray)
    short.write_bytes(short.read_bytes()[:-5000])
    refused(lambda: load_image(short, 32), "DICOM pixel data unreadable", name=short)
    # whatever PIL raises on a malformed header (not only OSError)
    real_open = Image.open

    def odd(fp, *args, **kwargs):
        if str(fp).endswith("odd.png"):
            raise struct.error("unpack requires a buffer of 4 bytes")
        return real_open(fp, *args, **kwargs)

    shutil.copyfile(tmp_path / "cut.png", tmp_path / "odd.png")
    monkeypatch.setattr(Image, "open", odd)
    refused(lambda: load_image(tmp_path / "odd.png", 32), "unreadable image", "error: unpack",
            name=tmp_path / "odd.png")


def test_a_dicom_error_in_the_pipeline_reads_as_its_one_line(tmp_path):
    import tensorflow as tf

    from pneumo_helpers.data.images import tf_reason, decode

    (tmp_path / "text.dcm").write_text("not DICOM")
    ds = tf.data.Dataset.from_tensor_slices([str(tmp_path / "text.dcm")]).map(
        lambda p: decode(p, 32))
    with pytest.raises(tf.errors.OpError) as err:
        list(ds)
    assert tf_reason(err.value) == f"{tmp_path / 'text.dcm'}: not a readable DICOM file " \
                                    "(InvalidDicomError)"


def test_file_names_that_are_not_utf8(tmp_path, xray, gray):
    import tensorflow as tf

    from pneumo_helpers.data.images import decode

    folder = os.fsencode(tmp_path)
    name = os.path.join(folder, b"IM-\xff\xfe.jpeg")
    shutil.copyfile(xray, name)
    expected = load_image(xray, 32)
    np.testing.assert_array_equal(load_image(name, 32), expected)  # bytes
    np.testing.assert_array_equal(load_image(os.fsdecode(name), 32), expected)  # surrogateescape
    np.testing.assert_array_equal(load_image(Path(os.fsdecode(name)), 32, MIN_SIDE), expected)
    dcm = os.path.join(folder, b"X-\xe9.dcm")
    shutil.copyfile(dicom(tmp_path / "plain.dcm", gray), dcm)
    np.testing.assert_array_equal(load_image(dcm, 32), load_image(tmp_path / "plain.dcm", 32))
    # the pipeline takes the bytes as they are
    out = list(tf.data.Dataset.from_tensor_slices([name, dcm]).map(lambda p: decode(p, 32)))
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-6)
    refused(lambda: load_image(os.path.join(folder, b"gone-\xff.png"), 32), "not found")


# ---------------------------------------------- rule 5: DICOM as PACS reads it


def test_rescale_slope_and_intercept_are_applied(tmp_path, gray):
    """Rescale tests that would fail if the slope or the intercept were
    ignored: negated stored values with RescaleSlope -1 (ignored, the image
    comes out inverted), and values shifted by -2000 with RescaleIntercept
    +2000 under a VOI window on the modality values (ignored, the window
    falls elsewhere)."""
    pixels = gray.astype(np.int32) * 16  # 12-bit
    window = dict(WindowCenter=1800, WindowWidth=2400)
    plain = read_dicom(dicom(tmp_path / "plain.dcm", pixels, bits=16, BitsStored=12, **window))
    unwindowed = read_dicom(dicom(tmp_path / "unwindowed.dcm", pixels, BitsStored=12))
    assert np.abs(plain - unwindowed).max() > 0.1  # the window matters here
    negated = dicom(tmp_path / "negated.dcm", -pixels, signed=True, RescaleSlope=-1,
                    RescaleIntercept=0, **window)
    shifted = dicom(tmp_path / "shifted.dcm", pixels - 2000, signed=True, RescaleSlope=1,
                    RescaleIntercept=2000, **window)
    np.testing.assert_allclose(read_dicom(negated), plain, atol=1e-6)
    np.testing.assert_allclose(read_dicom(shifted), plain, atol=1e-6)
    # MONOCHROME1: bone dark in the file, bright once read
    mono1 = dicom(tmp_path / "mono1.dcm", 4080 - pixels, "MONOCHROME1", BitsStored=12)
    np.testing.assert_allclose(read_dicom(mono1), unwindowed, atol=1e-6)


def test_palette_rgb_and_ybr_are_read_as_gray(tmp_path, gray):
    from pydicom.pixels import convert_color_space

    plain = read_dicom(dicom(tmp_path / "plain.dcm", gray))
    # a palette that scrambles gray levels: ignoring it gives another image
    order = np.random.default_rng(1).permutation(256)
    lut = np.zeros(256, np.uint16)
    lut[order] = np.arange(256, dtype=np.uint16) * 257
    palette = dict(RedPaletteColorLookupTableDescriptor=[256, 0, 16],
                   GreenPaletteColorLookupTableDescriptor=[256, 0, 16],
                   BluePaletteColorLookupTableDescriptor=[256, 0, 16],
                   RedPaletteColorLookupTableData=lut.tobytes(),
                   GreenPaletteColorLookupTableData=lut.tobytes(),
                   BluePaletteColorLookupTableData=lut.tobytes())
    f = dicom(tmp_path / "palette.dcm", order[gray].astype(np.uint8), "PALETTE COLOR", **palette)
    np.testing.assert_allclose(read_dicom(f), plain, atol=1e-4)
    no_lut = dicom(tmp_path / "no_lut.dcm", gray, "PALETTE COLOR")
    refused(lambda: read_dicom(no_lut), "PALETTE COLOR DICOM without a usable lookup table",
            name=no_lut)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    for planar in (0, 1):
        f = dicom(tmp_path / f"rgb{planar}.dcm", rgb, "RGB", PlanarConfiguration=planar)
        np.testing.assert_allclose(read_dicom(f), plain, atol=1e-4)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    f = dicom(tmp_path / "ybr.dcm", ybr, "YBR_FULL")
    assert np.abs(read_dicom(f) - plain).max() <= 2 / 255
    # a colour space no radiology viewer shows as one X-ray
    cmyk = dicom(tmp_path / "cmyk.dcm", gray, "CMYK")
    refused(lambda: read_dicom(cmyk), "photometric interpretation 'CMYK'", name=cmyk)


def test_rle_lossless_is_decoded_by_pydicom_itself(tmp_path, gray):
    plain = read_dicom(dicom(tmp_path / "plain.dcm", gray))
    rle = dicom(tmp_path / "rle.dcm", gray, compress=RLELossless)
    assert pydicom.dcmread(rle).file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(read_dicom(rle), plain)
    twelve = gray.astype(np.uint16) * 16
    rle12 = dicom(tmp_path / "rle12.dcm", twelve, compress=RLELossless, BitsStored=12)
    np.testing.assert_allclose(read_dicom(rle12), read_dicom(
        dicom(tmp_path / "plain12.dcm", twelve, BitsStored=12)), atol=1e-6)


def _decoder(uid):
    from pydicom.pixels import get_decoder
    return get_decoder(uid)


def test_jpeg_baseline_dicom_with_and_without_a_decoder(tmp_path, gray, monkeypatch):
    f = dicom_jpeg(tmp_path / "jpeg.dcm", gray_jpeg(gray), 224, 224)
    decoder = _decoder(JPEGBaseline8Bit)
    plain = read_dicom(dicom(tmp_path / "plain.dcm", gray))
    plugins = dict(decoder._available)  # Pillow's (a dependency), pylibjpeg's ([dicom-compressed])
    for name, plugin in plugins.items():  # each decoder alone reads it
        monkeypatch.setattr(decoder, "_available", {name: plugin})
        image = read_dicom(f)
        assert image.shape == (224, 224) and np.abs(image - plain).mean() < 0.02, name
    # without any decoder plugin (no pylibjpeg, no Pillow plugin): the syntax and the extra
    monkeypatch.setattr(decoder, "_available", {})
    text = refused(lambda: read_dicom(f), "JPEG Baseline (Process 1)", name=f)
    assert "which no installed decoder reads: pip install 'pneumo-helpers[dicom-compressed]'" \
        in text
    refused(lambda: load_image(f, 32, min_side=MIN_SIDE), "pneumo-helpers[dicom-compressed]")


def test_jpeg_2000_dicom_with_and_without_a_decoder(tmp_path, gray, monkeypatch):
    pytest.importorskip("openjpeg", reason="pylibjpeg-openjpeg encodes JPEG 2000")
    plain = read_dicom(dicom(tmp_path / "plain.dcm", gray))
    f = dicom(tmp_path / "j2k.dcm", gray, compress=JPEG2000Lossless)
    np.testing.assert_array_equal(read_dicom(f), plain)
    monkeypatch.setattr(_decoder(JPEG2000Lossless), "_available", {})
    refused(lambda: read_dicom(f), "JPEG 2000 Image Compression (Lossless Only)",
            "pneumo-helpers[dicom-compressed]", name=f)


def test_a_syntax_no_decoder_exists_for(tmp_path, gray):
    f = dicom_jpeg(tmp_path / "mpeg.dcm", b"\0\0\1\xb3" + b"\0" * 100, 224, 224, ts=MPEG2MPML)
    refused(lambda: read_dicom(f), "MPEG2 Main Profile / Main Level", "pydicom cannot decode",
            name=f)


# --------------------------------- refused images are error rows in predict


@pytest.fixture(scope="module")
def model_file(data_dir, tmp_path_factory):
    """A tiny equalised CNN trained on real X-rays, saved with its metadata."""
    from pneumo_helpers.data import prepare_data
    from pneumo_helpers.modeling import recipes

    data = prepare_data(data_dir, "binary", 32, 32, seed=3, max_train_images=64)
    trained = recipes.fit_recipe(recipes.get_recipe("equalized"), data, seed=3, epochs=1)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    modelfile.save(trained.model, path, modelfile.model_info(trained, data))
    return path


def test_refused_images_are_error_rows_in_predict(model_file, tmp_path, xray, gray, capsys,
                                                  monkeypatch):
    folder = tmp_path / "incoming"
    folder.mkdir()
    shutil.copyfile(xray, folder / "good.jpeg")
    png_claiming(folder / "bomb.png", 20000, 20000, zlib_zeros(20001 * 20000))
    jpeg_claiming(folder / "bomb.jpeg", xray.read_bytes(), 60000, 60000)
    deflated_bomb(folder / "bomb.dcm", 64, 64, pixel_length=8192, pixel_zeros=8192,
                  padding_zeros=GB)
    Image.fromarray(gray[:40, :40]).save(folder / "small.png")
    Image.new("L", (300, 300), 200).save(folder / "blank.png")
    dicom_jpeg(folder / "jpeg.dcm", gray_jpeg(gray), 224, 224)
    monkeypatch.setattr(_decoder(JPEGBaseline8Bit), "_available", {})
    out = tmp_path / "p.csv"
    status = main(["predict", str(model_file), str(folder), str(tmp_path / "nowhere.png"),
                   "--out", str(out), "--no-progress"])
    assert status == 1
    rows = read_rows(out)
    assert rows["good.jpeg"]["status"] == "scored" and rows["good.jpeg"]["pneumonia_score"]
    expected = {"bomb.png": "absurdly large image (20000 x 20000 pixels)",
                "bomb.jpeg": "absurdly large image (60000 x 60000 pixels)",
                "bomb.dcm": "inflates beyond", "small.png": "too small to be a chest X-ray",
                "blank.png": "without contrast", "jpeg.dcm": "pneumo-helpers[dicom-compressed]",
                "nowhere.png": "not found"}
    for name, words in expected.items():
        assert words in rows[name]["reason"], (name, rows[name])
        assert rows[name]["status"] == "error" and rows[name]["pneumonia_score"] == ""
        assert "\n" not in rows[name]["reason"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(expected) and all(line.startswith("error: ") for line in err)


# --------------------------------------------- rule 6: model files


def entries(path) -> dict:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i.filename) for i in z.infolist()}


def write_archive(path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w") as z:  # stored, as Keras writes it
        for name, data in members.items():
            z.writestr(name, data)
    return path


def raw_zip(path, members) -> Path:
    """A zip written by hand: ``members`` are (name, stored bytes, method,
    CRC-32, the uncompressed size the directory claims)."""
    out, central = bytearray(), bytearray()
    for name, data, method, crc, size in members:
        n = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data),
                           size, len(n), 0) + n + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc,
                               len(data), size, len(n), 0, 0, 0, 0, 0, offset) + n
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                                 len(central), len(out), 0)
    path.write_bytes(bytes(out))
    return path


def stored(members: dict):
    return [(n, b, 0, zlib.crc32(b), len(b)) for n, b in members.items()]


def with_entry(model_file, path, name, change) -> Path:
    """A copy of ``model_file`` at ``path`` whose JSON entry ``name`` is
    ``change(parsed)`` (bytes as they are; ``None``: the parsed value, changed in place)."""
    members = entries(model_file)
    parsed = json.loads(members[name])
    changed = change(parsed)
    members[name] = changed if isinstance(changed, bytes) else json.dumps(
        parsed if changed is None else changed).encode()
    return write_archive(path, members)


def with_info(model_file, path, change) -> Path:
    return with_entry(model_file, path, "pneumo.json", change)


def with_config(model_file, path, change) -> Path:
    return with_entry(model_file, path, "config.json", change)


def first_layer(config, class_name=None):
    stack = [config]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if o.get("module") == "keras.layers" and class_name in (None, o.get("class_name")):
                return o
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    raise AssertionError("no Keras layer in the configuration")


def unknown_class(config):
    layer = first_layer(config)
    layer["module"], layer["class_name"], layer["registered_name"] = "os", "system", "system"


def unregistered_pneumo_class(config):
    layer = first_layer(config)
    layer["module"], layer["registered_name"] = "pneumo_helpers.models", "pneumo>Backdoor"


def class_without_module(config):
    layer = first_layer(config)
    del layer["module"]
    layer["class_name"] = "Backdoor"


def unsafe_function(config):
    layer = first_layer(config, "Dense")
    layer["config"]["activation"] = {"module": "keras.config", "class_name": "function",
                                     "config": "enable_unsafe_deserialization",
                                     "registered_name": "function"}


def download_function(config):
    layer = first_layer(config, "Dense")
    layer["config"]["activation"] = {"module": "keras.utils", "class_name": "function",
                                     "config": "get_file", "registered_name": "function"}


CONFIG_CASES = [
    (unknown_class, "names class system from os"),
    (unregistered_pneumo_class, "neither Keras' nor one of pneumo's registered layers"),
    (class_without_module, "names class Backdoor from no module"),
    (unsafe_function, "function enable_unsafe_deserialization from keras.config"),
    (download_function, "function get_file from keras.utils"),
    (lambda c: [c], "config.json is not a JSON object"),
    (lambda c: b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (lambda c: b"{not json", "config.json is not valid JSON"),
]


@pytest.mark.parametrize("change,words", CONFIG_CASES, ids=[
    "unknown_class", "unregistered_pneumo_class", "class_without_module", "unsafe_function",
    "download_function", "not_an_object", "nested_too_deeply", "not_json"])
def test_configurations_that_are_refused_before_keras(model_file, tmp_path, monkeypatch, change,
                                                      words):
    import keras

    bad = with_config(model_file, tmp_path / "bad.keras", change)
    monkeypatch.setattr(keras.models, "load_model",
                        lambda *a, **k: pytest.fail("Keras saw a refused configuration"))
    refused(lambda: modelfile.load(bad), words, error=ModelFileError, name=bad)


INFO_CASES = [
    (lambda i: i.pop("thresholds") and None, "lacks thresholds"),
    (lambda i: {k: v for k, v in i.items() if k not in ("class_names", "task")},
     "lacks task, class_names"),
    (lambda i: i.update(format_version=99), "model file format 99"),
    (lambda i: i.update(format_version="2"), "model file format '2'"),
    (lambda i: i.update(format_version=True), "model file format True"),
    (lambda i: [i], "pneumo.json is not a JSON object (list)"),
    (lambda i: "pneumo-model", "pneumo.json is not a JSON object (str)"),
    (lambda i: b"null", "pneumo.json is not a JSON object (NoneType)"),
    (lambda i: b"{\"format\": ", "pneumo.json is not valid JSON"),
    (lambda i: i["thresholds"].update(pneumonia=float("nan")), "NaN"),
    (lambda i: i["thresholds"].update(pneumonia="high"), "thresholds"),
    (lambda i: i["thresholds"].update(pneumonia=7.5), "thresholds"),
    (lambda i: i.update(image_size="32"), "image_size"),
    (lambda i: i.update(input_size=10 ** 9), "input_size"),
    (lambda i: i.update(class_names="normal,pneumonia"), "class_names"),
    (lambda i: i.update(target_recall=[0.98]), "target_recall"),
    (lambda i: i.update(input_size=64, image_size=64), "takes inputs of shape (32, 32, 1)"),
    (lambda i: i.update(class_names=["normal", "bacteria", "virus"]),
     "outputs of shape (1,), its pneumo.json names 3 classes"),
    (lambda i: i.update(format_version=1, tta_frames=[["zoom"]]), "tta_frames"),
]


@pytest.mark.parametrize("change,words", INFO_CASES, ids=[w[:28] for _, w in INFO_CASES])
def test_metadata_that_is_refused(model_file, tmp_path, change, words):
    bad = with_info(model_file, tmp_path / "bad.keras", change)
    refused(lambda: modelfile.load(bad), words, error=ModelFileError, name=bad)


def test_the_model_file_itself_still_loads(model_file):
    saved = modelfile.load(model_file)
    assert saved.image_size == 32 and saved.class_names == ["normal", "pneumonia"]


def test_corrupted_or_truncated_archives(model_file, tmp_path):
    members = entries(model_file)
    # one byte of the weights flipped: found by the loader's own pass over
    # every entry, before Keras (which reads weights on the fly when its
    # in-memory read fails)
    raw = bytearray(model_file.read_bytes())
    with zipfile.ZipFile(model_file) as z:
        info = z.getinfo("model.weights.h5")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0xFF
    flipped = tmp_path / "flipped.keras"
    flipped.write_bytes(bytes(raw))
    refused(lambda: modelfile.load(flipped), "model.weights.h5 is corrupted", "CRC",
            error=ModelFileError, name=flipped)
    # the same in the metadata
    raw = bytearray(model_file.read_bytes())
    with zipfile.ZipFile(model_file) as z:
        info = z.getinfo("pneumo.json")
    raw[info.header_offset + 30 + len(info.filename) + 10] ^= 0x01
    (tmp_path / "meta.keras").write_bytes(bytes(raw))
    refused(lambda: modelfile.load(tmp_path / "meta.keras"), "pneumo.json is corrupted",
            error=ModelFileError)
    # the file cut short, cut to nothing, not a zip, a folder, nowhere
    cut = tmp_path / "cut.keras"
    cut.write_bytes(model_file.read_bytes()[:-1000])
    refused(lambda: modelfile.load(cut), "not a .keras model file", error=ModelFileError,
            name=cut)
    (tmp_path / "empty.keras").write_bytes(b"")
    refused(lambda: modelfile.load(tmp_path / "empty.keras"), "not a .keras model file",
            error=ModelFileError)
    (tmp_path / "dir.keras").mkdir()
    refused(lambda: modelfile.load(tmp_path / "dir.keras"), "a folder, not a model file",
            error=ModelFileError)
    refused(lambda: modelfile.load(tmp_path / "nowhere.keras"), "model file not found",
            error=ModelFileError)
    # an entry whose directory promises more than its data holds (truncated)
    short = dict(members)
    rows = stored(short)
    rows = [(n, b[:-50] if n == "model.weights.h5" else b, m, c, s) for n, b, m, c, s in rows]
    raw_zip(tmp_path / "short.keras", rows)
    refused(lambda: modelfile.load(tmp_path / "short.keras"), "model.weights.h5",
            error=ModelFileError)
    # an entry twice, an entry that is not Keras'
    twice = stored(members) + [("pneumo.json", members["pneumo.json"], 0,
                                zlib.crc32(members["pneumo.json"]), len(members["pneumo.json"]))]
    raw_zip(tmp_path / "twice.keras", twice)
    refused(lambda: modelfile.load(tmp_path / "twice.keras"), "holds pneumo.json twice",
            error=ModelFileError)
    write_archive(tmp_path / "extra.keras", {**members, "run.py": b"import os"})
    refused(lambda: modelfile.load(tmp_path / "extra.keras"), "unexpected entry 'run.py'",
            error=ModelFileError)


def test_zip_bombs_are_never_inflated_past_the_limits(model_file, tmp_path):
    members = entries(model_file)
    rows = {n: r for n, *r in stored(members)}
    bomb = raw_zeros(GB)  # 1 GB of zeros, about 1 MB deflated
    assert len(bomb) < 2_000_000
    # 1: the directory tells the truth: 1 GB from 1 MB
    honest = [(n, *r) for n, r in rows.items() if n != "model.weights.h5"] + [
        ("model.weights.h5", bomb, 8, crc32_of_zeros(GB), GB)]
    # 2: the directory claims a huge pneumo.json from a few bytes
    claims = [(n, *r) for n, r in rows.items() if n != "pneumo.json"] + [
        ("pneumo.json", raw_zeros(1000), 8, 0, 0xFFFFFFF0)]
    # 3: the directory lies the other way: 2 MB claimed, the stream would give 1 GB
    lies = [(n, *r) for n, r in rows.items() if n != "model.weights.h5"] + [
        ("model.weights.h5", bomb, 8, 0, 2_000_000)]
    # 4: the metadata itself a bomb, claimed honestly
    meta = [(n, *r) for n, r in rows.items() if n != "pneumo.json"] + [
        ("pneumo.json", raw_zeros(50_000_000), 8, crc32_of_zeros(50_000_000), 50_000_000)]
    for name, members_, words in (("honest", honest, "model.weights.h5 claims 1,073,741,824"),
                                  ("claims", claims, "pneumo.json claims 4,294,967,280"),
                                  ("lies", lies, "model.weights.h5 is corrupted"),
                                  ("meta", meta, "pneumo.json claims 50,000,000")):
        f = raw_zip(tmp_path / f"{name}.keras", members_)
        assert f.stat().st_size < 4_000_000
        peak, raised = peak_memory(lambda: modelfile.load(f))
        assert isinstance(raised, ModelFileError), (name, raised)
        text = one_line(raised)
        assert str(f) in text and words in text, text
        assert peak < 50_000_000, f"{name}: {peak:,} bytes allocated"


def test_a_refused_model_is_one_error_line_in_predict(model_file, tmp_path, xray, capsys):
    bad = with_config(model_file, tmp_path / "bad.keras", unknown_class)
    assert main(["predict", str(bad), str(xray), "--out", str(tmp_path / "p.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(bad) in err
    assert not (tmp_path / "p.csv").exists()


def test_safe_mode_stays_on(model_file, tmp_path):
    """A lambda in the model is refused by Keras' safe mode, which a refused
    file cannot switch off."""
    import keras
    from keras.src.saving import serialization_lib

    model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Lambda(lambda x: x * 2),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
    lam = modelfile.save(model, tmp_path / "lambda.keras",
                         json.loads(entries(model_file)["pneumo.json"]))
    with pytest.raises(ModelFileError, match="Lambda"):
        modelfile.load(lam)
    bad = with_config(model_file, tmp_path / "unsafe.keras", unsafe_function)
    with pytest.raises(ModelFileError):
        modelfile.load(bad)
    assert serialization_lib.in_safe_mode() is not False
    with pytest.raises(ModelFileError, match="Lambda"):
        modelfile.load(lam)
    assert math.isfinite(modelfile.load(model_file).threshold)
