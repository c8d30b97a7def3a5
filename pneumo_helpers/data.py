"""Find the chest X-rays on disk and describe them in one tidy table.

The expected layout is Kaggle's "Chest X-Ray Images (Pneumonia)" download::

    <data_dir>/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg

Every image becomes one row of a :class:`pandas.DataFrame` with its path,
split, label (0 normal, 1 pneumonia), pneumonia type (normal / bacteria /
virus) and patient id, all read from the folder and file names. Rules:

- anything wrong with the folder or a file raises :class:`DataError` with one
  line naming the path and what was expected;
- an image is accepted only if the pipeline's own decoder (TensorFlow's) can
  decode it, so no accepted file stops a training run later;
- what is skipped (hidden and system files, images in unexpected places) and
  file names that give no patient id are reported as notes
  (``table.attrs["notes"]``, and :class:`DataWarning`), never silently;
- the data folder is only ever read.
"""

from __future__ import annotations

import errno
import io
import re
import sys
import warnings
from pathlib import Path

import pandas as pd

from .info import CLASS_FOLDERS, DATA_HELP, EXPECTED_LAYOUT, SPLITS

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
IGNORED_NAMES = {"thumbs.db", "desktop.ini"}
MAX_PIXELS = 50_000_000  # far above any chest X-ray (about 3000 x 3000 at most)

_NORMAL_PATIENT = re.compile(r"^((?:NORMAL\d*-)?IM-\d+)", re.IGNORECASE)
_PNEUMONIA_NAME = re.compile(r"^(person\d+)_(bacteria|virus)", re.IGNORECASE)


class DataError(ValueError):
    """Input data is missing or malformed. The message is one line."""

    def _render_traceback_(self):  # IPython/Jupyter: show one line, no traceback
        return [f"DataError: {self}"]


class DataWarning(UserWarning):
    """Something in the data folder was skipped or read in a weaker way."""


def is_remote(path) -> bool:
    """A path with a scheme (``gs://``, ``s3://``, ``ram://`` ...), read
    through ``tf.io.gfile``."""
    return "://" in str(path)


class GfilePath:
    """The few ``pathlib.Path`` operations the scan uses, on any path
    ``tf.io.gfile`` reads (cloud object storage where the installed TensorFlow
    supports it). Object stores have no links and no permissions per folder."""

    def __init__(self, path: str):
        self.path = str(path).rstrip("/")

    def __truediv__(self, name) -> "GfilePath":
        return GfilePath(f"{self.path}/{name}")

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"GfilePath({self.path!r})"

    def __eq__(self, other) -> bool:
        return str(self) == str(other)

    def __lt__(self, other) -> bool:
        return str(self) < str(other)

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    def _gfile(self):
        import tensorflow as tf
        return tf.io.gfile

    def exists(self) -> bool:
        return self._gfile().exists(self.path)

    def is_dir(self) -> bool:
        return self._gfile().isdir(self.path)

    def is_file(self) -> bool:
        return self.exists() and not self.is_dir()

    def is_symlink(self) -> bool:
        return False

    def iterdir(self):
        return (self / name.rstrip("/") for name in self._gfile().listdir(self.path))

    def rglob(self, pattern: str = "*"):
        for folder, dirs, files in self._gfile().walk(self.path):
            for name in [*dirs, *files]:
                yield GfilePath(f"{str(folder).rstrip('/')}/{name.rstrip('/')}")

    def read_bytes(self) -> bytes:
        with self._gfile().GFile(self.path, "rb") as f:
            return f.read()

    def size(self) -> int:
        return self._gfile().stat(self.path).length


def resolve(path):
    """A path resolved once, the same way everywhere: ``~`` expanded, made
    absolute, symbolic links and ``..`` resolved, trailing slashes dropped. A
    path with a scheme (``gs://...``) is kept as given, as a :class:`GfilePath`."""
    if is_remote(path):
        return GfilePath(path)
    return Path(str(path)).expanduser().resolve()


def is_hidden_or_system(path: Path) -> bool:
    """Files the Kaggle zip carries beside the images (``.DS_Store``, ``Thumbs.db``...)."""
    name = path.name
    return name.startswith(".") or name.startswith("__") or name.lower() in IGNORED_NAMES


def parse_filename(name: str, class_name: str) -> tuple[str, str | None]:
    """Return ``(pneumonia_type, patient_id)`` from an image's file name.

    >>> parse_filename("person1_virus_6.jpeg", "PNEUMONIA")
    ('virus', 'person1')
    >>> parse_filename("NORMAL2-IM-0381-0001.jpeg", "NORMAL")
    ('normal', 'NORMAL2-IM-0381')

    Names that follow neither pattern give ``None`` as patient (the caller
    then treats the image as its own patient); a pneumonia image without
    ``bacteria`` or ``virus`` in its name has type ``"unknown"``.
    """
    stem = Path(name).stem
    if class_name == "NORMAL":
        match = _NORMAL_PATIENT.match(stem)
        return "normal", match.group(1) if match else None
    match = _PNEUMONIA_NAME.match(stem)
    if match:
        return match.group(2).lower(), match.group(1)
    low = stem.lower()
    kind = "bacteria" if "bacteria" in low else "virus" if "virus" in low else "unknown"
    return kind, None


# ------------------------------------------------------------------ folders

def _entries(folder: Path) -> list[Path]:
    """The entries of a folder, sorted, or one DataError line."""
    try:
        return sorted(folder.iterdir())
    except PermissionError:
        raise DataError(f"cannot read folder {folder} (permission denied)") from None
    except OSError as err:
        raise DataError(f"cannot read folder {folder} ({err.strerror or err})") from None


def _kind(path: Path) -> str:
    """``"dir"``, ``"file"``, or one DataError line for a link that leads nowhere."""
    try:
        if path.is_dir():
            return "dir"
        if path.is_file():
            return "file"
    except OSError as err:  # e.g. a loop of symbolic links
        raise DataError(f"{path}: cannot follow ({err.strerror or err})") from None
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except (RuntimeError, OSError) as err:  # RuntimeError: a loop, in Python 3.11
            if isinstance(err, RuntimeError) or getattr(err, "errno", None) == errno.ELOOP:
                raise DataError(f"{path}: cannot follow (a loop of symbolic links)") from None
        raise DataError(f"{path}: broken symbolic link (it points to {path.readlink()}, "
                        "which does not exist)")
    raise DataError(f"{path}: neither a file nor a folder")


def _check_name(path: Path) -> None:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{path!s}: file name is not valid UTF-8, which TensorFlow cannot open; "
                        "rename the file") from None


def _images_below(folder: Path) -> list[Path]:
    """Image files anywhere below ``folder`` (for the skipped-images notes)."""
    found = []
    for p in folder.rglob("*"):
        if p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden_or_system(p) and p.is_file():
            found.append(p)
    return found


def _note(notes: list[str], count: int, what: str, example: Path) -> None:
    if count:
        notes.append(f"skipped {count} image(s) {what}, e.g. {example}")


def scan(root: Path, splits=SPLITS) -> tuple[list[dict], list[str]]:
    """The rows of the image table (no decoding) and the notes on what was skipped."""
    rows, notes = [], []
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(f"missing folder: {split_dir} (expected {EXPECTED_LAYOUT})")
        loose, others = [], []
        for entry in _entries(split_dir):
            if is_hidden_or_system(entry):
                continue
            kind = _kind(entry)
            if kind == "file" and entry.suffix.lower() in IMAGE_SUFFIXES:
                loose.append(entry)
            elif kind == "dir" and entry.name not in CLASS_FOLDERS:
                others.extend(_images_below(entry))
        _note(notes, len(loose), f"directly in {split_dir} (not in a class folder)",
              loose[0] if loose else None)
        _note(notes, len(others), f"in folders of {split_dir} other than "
              f"{' and '.join(CLASS_FOLDERS)}", others[0] if others else None)
        for label, class_name in enumerate(CLASS_FOLDERS):
            folder = split_dir / class_name
            if not folder.is_dir():
                raise DataError(f"missing folder: {folder} (expected {EXPECTED_LAYOUT})")
            images, nested = [], []
            for p in _entries(folder):
                if is_hidden_or_system(p):
                    continue
                if _kind(p) == "dir":
                    nested.extend(_images_below(p))
                    continue
                if p.suffix.lower() not in IMAGE_SUFFIXES:
                    raise DataError(
                        f"{p}: unexpected file, expected only .jpeg/.jpg/.png images in {folder}")
                _check_name(p)
                images.append(p)
            _note(notes, len(nested), f"in sub-folders of {folder}", nested[0] if nested else None)
            if not images:
                raise DataError(f"no images in {folder} (expected *.jpeg files)")
            for p in images:
                kind, patient = parse_filename(p.name, class_name)
                rows.append(dict(path=str(p), split=split, class_name=class_name, label=label,
                                 type=kind, patient=patient))
    unnamed = [r for r in rows if r["patient"] is None]
    if unnamed:
        notes.append(
            f"{len(unnamed)} file name(s) follow no patient pattern (personNNN_bacteria_..., "
            f"personNNN_virus_..., IM-NNNN-..., NORMAL2-IM-NNNN-...), e.g. {unnamed[0]['path']}: "
            "the patient split treats each such image as its own patient")
        for r in unnamed:
            r["patient"] = Path(r["path"]).stem
    return rows, notes


# ------------------------------------------------------------------- images

def check_image(path: Path) -> tuple[int, int, int]:
    """``(width, height, channels)`` of an image that the pipeline's decoder
    (TensorFlow's ``decode_image``, one channel) decodes without error; the
    header is read first (format, size, colour space), the pixels are decoded
    once. Otherwise one DataError line naming the file."""
    import tensorflow as tf
    from PIL import Image, UnidentifiedImageError

    expected = "expected a complete grayscale or RGB JPEG or PNG image"
    try:
        remote = isinstance(path, GfilePath)
        if (path.size() if remote else path.stat().st_size) == 0:
            raise DataError(f"{path}: empty file (0 bytes), {expected}")
        source = io.BytesIO(path.read_bytes()) if remote else path
        with Image.open(source) as im:
            fmt, (width, height), mode = im.format, im.size, im.mode
            if fmt not in ("JPEG", "PNG"):
                raise DataError(f"{path}: {fmt} image, {expected}")
            if width * height > MAX_PIXELS:
                raise DataError(f"{path}: absurdly large image ({width} x {height} pixels), "
                                f"{expected} of at most {MAX_PIXELS // 1_000_000} megapixels")
            if mode == "CMYK":
                raise DataError(f"{path}: JPEG in the CMYK colour space, which TensorFlow "
                                "cannot decode; convert it to grayscale or RGB")
            channels = len(im.getbands())
    except DataError:
        raise
    except PermissionError:
        raise DataError(f"cannot read {path} (permission denied)") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file, {expected}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: unreadable image ({err}), {expected}") from None
    try:
        tf.io.decode_image(tf.io.read_file(str(path)), channels=1, expand_animations=False)
    except tf.errors.OpError as err:
        reason = str(err.message).split("[Op:")[0].strip().rstrip(".")
        raise DataError(f"{path}: TensorFlow cannot decode this {fmt} ({reason}), "
                        f"{expected}") from None
    return width, height, channels


def load_image_table(data_dir: str | Path, splits: tuple[str, ...] = SPLITS,
                     check_images: bool = True, progress: bool = False) -> pd.DataFrame:
    """Scan ``data_dir`` and return one row per image.

    Columns: ``path`` (str), ``split``, ``class_name``, ``label`` (0 normal,
    1 pneumonia), ``type`` (normal / bacteria / virus), ``patient``, and, when
    ``check_images`` is true, ``width``, ``height``, ``channels`` from a full
    decode of every image (which is how bad files are caught early, with their
    path, rather than deep inside a training run). ``table.attrs["notes"]``
    lists what was skipped; each note is also issued as a :class:`DataWarning`.
    """
    root = resolve(data_dir)
    if not root.exists():
        raise DataError(f"data folder not found: {root} ({DATA_HELP})")
    if not root.is_dir():
        raise DataError(f"data folder is not a folder: {root} (expected {EXPECTED_LAYOUT})")
    rows, notes = scan(root, splits)
    table = pd.DataFrame(rows)
    if check_images:
        paths = table["path"].map(GfilePath if isinstance(root, GfilePath) else Path)
        if progress:
            from tqdm.auto import tqdm

            paths = tqdm(paths, desc="checking images", unit="img")
        sizes = [check_image(p) for p in paths]
        table[["width", "height", "channels"]] = pd.DataFrame(sizes, index=table.index)
    table.attrs["notes"] = notes
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=2)
    return table


def main(argv: list[str] | None = None) -> int:
    """``pneumo check-data DATA_DIR``: check a data folder, print counts and
    notes, or one ``error:`` line."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: pneumo check-data DATA_DIR", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            table = load_image_table(argv[0], progress=sys.stderr.isatty())
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for note in table.attrs["notes"]:
        print(f"note: {note}", file=sys.stderr)
    counts = table.groupby(["split", "class_name"]).size().unstack(fill_value=0)
    print(f"{argv[0]}: {len(table)} images, all readable\n{counts.to_string()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
