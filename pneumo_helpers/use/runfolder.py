"""The run folder: where a run of the final notebook writes.

- It is checked before the data is loaded: outside the data folder, not the
  project's own folder, a folder that can be written (one line otherwise).
- One run at a time: a second run into the same folder refuses with one line
  (a lock held while the run lives; it goes with the process, so a killed run
  leaves no stale lock).
- Nothing is replaced until the run has finished: files are written into a
  staging folder inside it and moved into place at the end, so an
  interrupted or failed run leaves the earlier results as they were.
- ``pneumo-run.json`` lists what the run wrote; a later run replaces those
  files and refuses to replace any other file of the same name.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

from ..errors import ParameterError

MANIFEST = "pneumo-run.json"
LOCK = ".pneumo-run.lock"
OUTPUT_NAMES = ("model.keras", "metrics.json", "MODEL_CARD.md", "final_notebook.ipynb",
                "report.html")


def check_output_dir(output_dir, data_dir, create: bool = True) -> Path:
    """The resolved output folder, created when ``create``; refused (one line)
    when it is inside the data folder, is the project's own folder, or cannot
    be written."""
    from .outputs import check_output_folder

    out = check_output_folder("output_dir", output_dir, data_dir=data_dir)
    if not create:
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".pneumo-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ParameterError(f"output_dir {output_dir} cannot be written "
                             f"({err.strerror or err})") from None
    return out


def earlier_outputs(out: Path) -> set[str]:
    """The files an earlier run listed in ``out``'s manifest."""
    try:
        return set(json.loads((out / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


class RunFolder:
    """The output folder of one run: checked, locked, written through a
    staging folder (see the module's description)."""

    def __init__(self, output_dir, data_dir):
        self.given = output_dir
        self.path = check_output_dir(output_dir, data_dir)
        self._lock = _lock(self.path)
        self.previous = {p.name for p in self.path.iterdir() if p.is_file()
                         and not p.name.startswith(".")}
        ours = earlier_outputs(self.path) | {MANIFEST}
        clash = sorted(n for n in self.previous - ours
                       if n in OUTPUT_NAMES or n.endswith(".png"))
        if clash:
            raise ParameterError(f"output_dir {output_dir} holds {', '.join(clash[:5])}, which "
                                 "no earlier run wrote there; they are left as they are: "
                                 "choose another output_dir")
        if self.previous - {MANIFEST}:
            print(f"{output_dir} holds results of an earlier run; they are replaced only once "
                  "this run has finished")

    def save(self, doc: dict, model, info: dict, figures: dict) -> list[str]:
        """Write the model with its metadata ``info``, the figures,
        ``metrics.json`` and ``MODEL_CARD.md`` into the staging folder, then
        move them into place; say what was written. Returns the names."""
        from ..evaluation.plots import save as save_figure
        from .modelfile import save as save_model
        from .report import model_card, write_json

        staging = self.path / f".staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            save_model(model, staging / "model.keras", info)
            for name, fig in figures.items():
                save_figure(fig, staging, name)
            write_json(doc, staging / "metrics.json")
            (staging / "MODEL_CARD.md").write_text(model_card(doc))
            written = sorted(p.name for p in staging.iterdir())
            self.publish(staging, written)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        print(f"wrote to {self.given}: {', '.join(written)}")
        older = sorted(self.previous - set(written) - {MANIFEST})
        if older:
            print(f"also in {self.given}, from an earlier run and left as they were: "
                  f"{', '.join(older)}")
        return written

    def publish(self, staging: Path, names: list[str]) -> None:
        """Move ``names`` from ``staging`` into the folder and list them in the manifest."""
        listed = earlier_outputs(self.path) | set(names)
        for name in names:
            os.replace(staging / name, self.path / name)
        (self.path / MANIFEST).write_text(json.dumps({"files": sorted(listed)}, indent=1))


def _lock(folder: Path):
    """An exclusive lock on ``folder`` for the life of this process (flock)."""
    import fcntl

    handle = open(folder / LOCK, "a+")  # noqa: SIM115 (held open on purpose)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        handle.close()
        if err.errno in (errno.EAGAIN, errno.EACCES):
            raise ParameterError(f"output_dir {folder} is in use by another run; wait for it "
                                 "to finish or choose another output_dir") from None
        raise
    return handle

