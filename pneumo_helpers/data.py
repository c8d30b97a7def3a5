"""Find the chest X-rays on disk and describe them in one tidy table.

The expected layout is Kaggle's "Chest X-Ray Images (Pneumonia)" download::

    <data_dir>/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg

Every image becomes one row of a :class:`pandas.DataFrame` with its path,
split, label (0 normal, 1 pneumonia), pneumonia type (normal / bacteria /
virus) and patient id, all read from the folder and file names. Bad input
raises :class:`DataError` with one line naming the path and what was
expected. The data folder is only ever read.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from .info import CLASS_FOLDERS, DATA_HELP, EXPECTED_LAYOUT, SPLITS

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
IGNORED_NAMES = {"thumbs.db", "desktop.ini"}

_NORMAL_PATIENT = re.compile(r"^((?:NORMAL\d*-)?IM-\d+)", re.IGNORECASE)
_PNEUMONIA_NAME = re.compile(r"^(person\d+)_(bacteria|virus)", re.IGNORECASE)


class DataError(ValueError):
    """Input data is missing or malformed. The message is one line."""

    def _render_traceback_(self):  # IPython/Jupyter: show one line, no traceback
        return [f"DataError: {self}"]


def is_hidden_or_system(path: Path) -> bool:
    """Files the Kaggle zip carries beside the images (``.DS_Store``, ``Thumbs.db``...)."""
    name = path.name
    return name.startswith(".") or name.startswith("__") or name.lower() in IGNORED_NAMES


def parse_filename(name: str, class_name: str) -> tuple[str, str]:
    """Return ``(pneumonia_type, patient_id)`` from an image's file name.

    >>> parse_filename("person1_virus_6.jpeg", "PNEUMONIA")
    ('virus', 'person1')
    >>> parse_filename("NORMAL2-IM-0381-0001.jpeg", "NORMAL")
    ('normal', 'NORMAL2-IM-0381')

    Names that follow neither pattern keep their stem as patient id (each
    image its own patient); a pneumonia image without ``bacteria`` or
    ``virus`` in its name has type ``"unknown"``.
    """
    stem = Path(name).stem
    if class_name == "NORMAL":
        match = _NORMAL_PATIENT.match(stem)
        return "normal", match.group(1) if match else stem
    match = _PNEUMONIA_NAME.match(stem)
    if match:
        return match.group(2).lower(), match.group(1)
    low = stem.lower()
    kind = "bacteria" if "bacteria" in low else "virus" if "virus" in low else "unknown"
    return kind, stem


def _check_image(path: Path) -> tuple[int, int, int]:
    """Decode an image fully; return (width, height, channels) or raise DataError."""
    from PIL import Image, UnidentifiedImageError

    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes), expected a JPEG or PNG image")
    try:
        with Image.open(path) as im:
            fmt = im.format
            if fmt not in ("JPEG", "PNG"):
                raise DataError(f"{path}: {fmt} image, expected a JPEG or PNG image")
            im.load()  # raises on truncated or corrupt data
            return im.width, im.height, len(im.getbands())
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file, expected a JPEG or PNG image") from None
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{path}: unreadable image ({err}), expected a complete JPEG or PNG image"
        ) from None


def load_image_table(
    data_dir: str | Path,
    splits: tuple[str, ...] = SPLITS,
    check_images: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Scan ``data_dir`` and return one row per image.

    Columns: ``path`` (str), ``split``, ``class_name``, ``label`` (0 normal,
    1 pneumonia), ``type`` (normal / bacteria / virus), ``patient``, and, when
    ``check_images`` is true, ``width``, ``height``, ``channels`` from a full
    decode of every image (which is how corrupt files are caught early, with
    their path, rather than deep inside a training run).
    """
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise DataError(f"data folder not found: {root} ({DATA_HELP})")
    if not root.is_dir():
        raise DataError(f"data folder is not a folder: {root} (expected {EXPECTED_LAYOUT})")
    rows = []
    for split in splits:
        for label, class_name in enumerate(CLASS_FOLDERS):
            folder = root / split / class_name
            if not folder.is_dir():
                raise DataError(
                    f"missing folder: {folder} (expected {EXPECTED_LAYOUT})"
                )
            files = sorted(p for p in folder.iterdir() if not is_hidden_or_system(p))
            images = []
            for p in files:
                if p.is_dir():
                    continue
                if p.suffix.lower() not in IMAGE_SUFFIXES:
                    raise DataError(
                        f"{p}: unexpected file, expected only .jpeg/.jpg/.png images in {folder}"
                    )
                images.append(p)
            if not images:
                raise DataError(f"no images in {folder} (expected *.jpeg files)")
            for p in images:
                kind, patient = parse_filename(p.name, class_name)
                rows.append(
                    dict(path=str(p), split=split, class_name=class_name, label=label,
                         type=kind, patient=patient)
                )
    table = pd.DataFrame(rows)
    if check_images:
        paths = table["path"].map(Path)
        if progress:
            from tqdm.auto import tqdm

            paths = tqdm(paths, desc="checking images", unit="img")
        sizes = [_check_image(p) for p in paths]
        table[["width", "height", "channels"]] = pd.DataFrame(sizes, index=table.index)
    return table


def main(argv: list[str] | None = None) -> int:
    """``pneumo-check-data DATA_DIR``: check a data folder, print counts or one error line."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: pneumo-check-data DATA_DIR", file=sys.stderr)
        return 2
    try:
        table = load_image_table(argv[0])
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts = table.groupby(["split", "class_name"]).size().unstack(fill_value=0)
    print(f"{argv[0]}: {len(table)} images, all readable\n{counts.to_string()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
