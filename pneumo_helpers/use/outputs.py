"""Where a command may write: never over an input, the model, the data folder
or the project's own files, however the path is spelled (relative, ``~``,
symbolic links), and over an existing file only when it is an output of the
same kind from an earlier run of the same command.

Every command (``pneumo predict --out`` and ``--heatmaps``, ``pneumo report``,
``make results`` and the final notebook's ``output_dir``) checks all its
output paths with :func:`check_outputs` before it does any work.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..data.paths import is_remote, resolve
from ..errors import ParameterError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def project_files(root: Path = PROJECT_ROOT) -> set[Path]:
    """The project's own files (tracked by git, or, without git, every file
    of the project outside the virtual environment and output folders)."""
    if not (root / "pyproject.toml").is_file() or not (root / "pneumo_helpers").is_dir():
        return set()  # installed as a package: no project around it
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True,
                             timeout=10, check=True).stdout
        names = [n for n in out.decode("utf-8", "surrogateescape").split("\0") if n]
        if names:
            return {(root / n).resolve() for n in names}
    except (OSError, subprocess.SubprocessError):
        pass
    skip = {".venv", "reports", "runs", "data", ".git", "build"}
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".")]
        found.update(Path(folder, f).resolve() for f in files)
    return found


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _sources(inputs, model, data_dir):
    sources = [(resolve(i), str(i)) for i in inputs if not is_remote(i)]
    if model is not None:
        sources.append((resolve(model), str(model)))
    data = resolve(data_dir) if data_dir is not None and not is_remote(data_dir) else None
    return sources, data


def _check_place(label, path, out: Path, sources, data, data_dir) -> None:
    """Refuse ``out`` when it is an input or lies inside an input folder or the data folder."""
    for source, given in sources:
        if out == source:
            raise ParameterError(f"{label} {path} is {given}, an input of this command; "
                                 "write outputs elsewhere")
        if source.is_dir() and _inside(out, source):
            raise ParameterError(f"{label} {path} is inside {given}, a folder being read; "
                                 "write outputs elsewhere (nothing is written beside the "
                                 "inputs)")
    if data is not None and _inside(out, data):
        raise ParameterError(f"{label} {path} is inside the data folder {data_dir}; "
                             "choose a place outside it (the data folder is only read)")


def check_outputs(outputs: dict, inputs=(), model=None, data_dir=None,
                  is_ours=None) -> dict:
    """Check every output before any work: ``outputs`` is ``{label: path}``
    (``label`` names the option in the message, e.g. ``"--out"``); ``inputs``
    are the files and folders read, ``model`` the model file, ``data_dir`` a
    folder never written into. An existing file may be replaced only when
    ``is_ours(label, path)`` says it is an output of the same kind from an
    earlier run. Returns ``{label: resolved path}``; one ParameterError line
    otherwise."""
    tracked = project_files()
    sources, data = _sources(inputs, model, data_dir)
    resolved = {}
    for label, path in outputs.items():
        if path is None:
            continue
        out = resolve(path)
        _check_place(label, path, out, sources, data, data_dir)
        if out in tracked:
            raise ParameterError(f"{label} {path} is a file of the project itself; write "
                                 "outputs elsewhere (e.g. reports/)")
        if out.is_dir():
            raise ParameterError(f"{label} {path} is a folder; give a file name")
        if out.exists() and not (is_ours and is_ours(label, out)):
            raise ParameterError(f"{label} {path} exists and is not an output of an earlier "
                                 "run of this command; it is left as it is: choose another name")
        resolved[label] = out
    for (a, pa), (b, pb) in ((x, y) for x in resolved.items() for y in resolved.items()):
        if a < b and pa == pb:
            raise ParameterError(f"{a} and {b} are the same path ({outputs[a]}); give each its own")
    return resolved


def check_output_folder(label: str, folder, inputs=(), model=None, data_dir=None) -> Path:
    """A folder a command writes several files into (``--heatmaps``, a run's
    ``output_dir``): not an input, not inside one or inside the data folder,
    not the project's own folder or one of its tracked folders."""
    out = resolve(folder)
    sources, data = _sources(inputs, model, data_dir)
    _check_place(label, folder, out, sources, data, data_dir)
    tracked_dirs = {p.parent for p in project_files()}
    if out in tracked_dirs or out == PROJECT_ROOT:
        raise ParameterError(f"{label} {folder} is a folder of the project itself; write "
                             "outputs elsewhere (e.g. reports/)")
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{label} {folder} exists and is not a folder")
    return out
