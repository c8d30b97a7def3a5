"""The run folder: where a run writes (never inside the data folder), what it
wrote, and what was there before."""

from __future__ import annotations

from pathlib import Path

from ..data.paths import resolve


def check_output_dir(output_dir, data_dir, create: bool = True) -> Path:
    """The resolved output folder, created when ``create``; refused when it is
    the data folder or inside it (the data folder is only read)."""
    out, data = resolve(output_dir), resolve(data_dir)
    if out == data or data in out.parents:
        raise ValueError(f"output_dir {out} is inside the data folder {data}; "
                         "choose a folder outside it (the data folder is only read)")
    if create:
        out.mkdir(parents=True, exist_ok=True)
    return out


def files_in(folder) -> dict:
    """``{name: modification time}`` of the files directly in ``folder``."""
    folder = Path(folder)
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} \
        if folder.is_dir() else {}


def save_run(out, doc: dict, model, info: dict, figures: dict) -> list[str]:
    """Write into ``out`` the model with its metadata ``info`` (see
    ``modelfile``), the figures, ``metrics.json`` and ``MODEL_CARD.md``;
    return the names written."""
    from ..evaluation.plots import save
    from .modelfile import save as save_model
    from .report import model_card, write_json

    out = Path(out)
    written = [save_model(model, out / "model.keras", info).name]
    for name, fig in figures.items():
        written.append(save(fig, out, name).name)
    written.append(write_json(doc, out / "metrics.json").name)
    (out / "MODEL_CARD.md").write_text(model_card(doc))
    written.append("MODEL_CARD.md")
    return written


def print_written(out, written: list[str], previous: dict) -> None:
    """Say what this run wrote, and which files were there from an earlier run."""
    print(f"wrote to {out}: {', '.join(sorted(written))}")
    older = sorted(set(previous) - set(written))
    if older:
        print(f"also in {out} from an earlier run (left as they were): {', '.join(older)}")


def say_earlier_files(out, previous: dict) -> None:
    """Say so when the output folder holds files from an earlier run."""
    if previous:
        names = sorted(previous)
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        print(f"{out} already holds {len(names)} file(s) from an earlier run ({shown}); "
              "this run replaces the ones it writes and leaves the others")
