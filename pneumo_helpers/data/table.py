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
import re
import sys
import warnings
from pathlib import Path

import pandas as pd

from ..errors import DataError, DataWarning
from ..info import CLASS_FOLDERS, DATA_HELP, EXPECTED_LAYOUT, SPLITS
from .images import SUFFIXES, check_image
from .paths import GfilePath, is_hidden_or_system, resolve

_NORMAL_PATIENT = re.compile(r"^((?:NORMAL\d*-)?IM-\d+)", re.IGNORECASE)
_PNEUMONIA_NAME = re.compile(r"^(person\d+)_(bacteria|virus)", re.IGNORECASE)


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
        if p.suffix.lower() in SUFFIXES and not is_hidden_or_system(p) and p.is_file():
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
            if kind == "file" and entry.suffix.lower() in SUFFIXES:
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
                if p.suffix.lower() not in SUFFIXES:
                    raise DataError(f"{p}: unexpected file, expected only "
                                    f"{'/'.join(SUFFIXES)} images in {folder}")
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


def duplicate_groups(paths) -> list[list[str]]:
    """Groups of byte-identical files among ``paths`` (local files: sizes
    first, then a hash of the files that share a size)."""
    import hashlib
    import os
    from collections import defaultdict

    by_size = defaultdict(list)
    for p in paths:
        by_size[os.stat(p).st_size].append(p)
    by_hash = defaultdict(list)
    for same in by_size.values():
        if len(same) > 1:
            for p in same:
                with open(p, "rb") as f:
                    by_hash[hashlib.blake2b(f.read(), digest_size=16).digest()].append(p)
    return sorted(sorted(g) for g in by_hash.values() if len(g) > 1)


def duplicate_notes(table: pd.DataFrame, root=None) -> list[str]:
    """A note on the byte-identical images of ``table``, and a louder one on
    copies that cross splits or patients (the same image on both sides of a
    split is a leak)."""
    groups = duplicate_groups(list(table["path"]))
    if not groups:
        return []
    at = table.set_index("path")
    crossing = [g for g in groups
                if at.loc[g, "split"].nunique() > 1 or at.loc[g, "patient"].nunique() > 1]
    copies = sum(len(g) - 1 for g in groups)

    def name(path: str) -> str:  # below the data folder, as the user knows it
        return str(Path(path).relative_to(root)) if root is not None else path

    notes = [f"{copies} image{'s are' if copies != 1 else ' is a'} byte-identical "
             f"cop{'ies' if copies != 1 else 'y'} of another ({len(groups)} group"
             f"{'s' if len(groups) != 1 else ''}, e.g. {name(groups[0][0])} = {name(groups[0][1])}); "
             "they are kept (and count once per copy in training and evaluation)"]
    if crossing:
        g = crossing[0]
        notes.append(f"{len(crossing)} group{'s' if len(crossing) != 1 else ''} of identical "
                     f"images cross{'es' if len(crossing) == 1 else ''} splits or patients, "
                     f"e.g. {name(g[0])} = {name(g[1])}: the same image on both sides of a split is a leak")
    return notes


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
        headers = [check_image(p) for p in paths]
        table[["width", "height", "channels"]] = pd.DataFrame(
            [(h.width, h.height, h.channels) for h in headers], index=table.index)
        if not isinstance(root, GfilePath):
            notes += duplicate_notes(table, root)
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
