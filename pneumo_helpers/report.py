"""What a run leaves behind: the output folder, ``metrics.json``, the result
summary in words, and the self-contained HTML report.

The data folder is only ever read; every output goes to the output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .data import resolve
from .metrics import in_words, per_hundred


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


def _jsonable(value):
    if isinstance(value, pd.DataFrame):
        return {k: _jsonable(v) for k, v in value.round(4).to_dict(orient="index").items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def metrics_document(params: dict, data, instruments: dict, test: dict | None = None,
                     timing: dict | None = None, seeds: dict | None = None) -> dict:
    """Everything ``metrics.json`` holds, the same layout for both tasks:
    ``params``, ``task``, ``data`` (images per subset and class), the
    validation instruments (``validation``, ``counter_framed``, ``stress``,
    ``sanity``), ``seeds`` (figures of each training seed and their spread,
    when several were trained), ``test`` (with patient-bootstrap intervals)
    and ``timing``. Every metrics block has a ``binary`` part (pneumonia vs
    normal); the ternary task adds ``three_class`` and ``bacterial_vs_viral``."""
    doc = {"params": params, "task": data.task.name, "data": data.counts()}
    doc.update({k: v for k, v in instruments.items()})
    if seeds is not None:
        doc["seeds"] = seeds
    if test is not None:
        doc["test"] = test["metrics"]
    if timing:
        doc["timing"] = timing
    return _jsonable(doc)


def write_json(doc: dict, path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2))
    return path


def summary_markdown(doc: dict) -> str:
    """The result of a run in a few sentences, from its own ``metrics.json``
    document: what the test figures are, what they do not show, and where
    the operating point stands under the validation instruments."""
    test, val = doc["test"]["binary"], doc["validation"]["binary"]
    ci = test.get("ci95", {})

    def interval(k):
        return f" (95% CI {ci[k][0]:.3f}-{ci[k][1]:.3f})" if k in ci else ""

    n = doc["data"]
    lines = [
        f"**Result** ({doc['task']} task, image size {doc['params'].get('image_size')}, "
        f"{sum(n['train'].values())} training and {sum(n['validation'].values())} validation "
        f"images, seed {doc['params'].get('seed')}).",
        "",
        f"- **Test** (`test/`, {sum(n['test'].values())} images, scored once, at the threshold "
        f"{val['threshold']:.3f} chosen on validation for recall "
        f"{doc['params'].get('target_recall')}): ROC AUC {test['roc_auc']:.3f}"
        f"{interval('roc_auc')}, recall {test['recall']:.3f}{interval('recall')}, "
        f"specificity {test['specificity']:.3f}{interval('specificity')}: "
        f"{in_words(test).split(' (')[0]}; {per_hundred(test)}.",
    ]
    if "three_class" in doc["test"]:
        tc, bv = doc["test"]["three_class"], doc["test"]["bacterial_vs_viral"]
        lines.append(f"- **Three classes** on test: accuracy {tc['accuracy']:.3f}, bacterial vs "
                     f"viral ROC AUC {bv['roc_auc']:.3f}.")
    cf = doc.get("counter_framed", {}).get("binary")
    if cf:
        lines.append(
            f"- **Counter-framed validation** ({doc['counter_framed']['n_normal']} normal images "
            f"framed like pneumonia, {doc['counter_framed']['n_pneumonia']} pneumonia images "
            f"framed like normal): ROC AUC {cf['roc_auc']:.3f} against {val['roc_auc']:.3f} on "
            f"all of validation; specificity {cf['specificity']:.3f} at the same threshold.")
    stress = doc.get("stress")
    if stress:
        worst = min(stress, key=lambda v: stress[v]["specificity"])
        lines.append(f"- **Stress test** of validation images: the worst view for specificity is "
                     f"`{worst}` ({stress[worst]['specificity']:.3f}; ROC AUC "
                     f"{stress[worst]['auc']:.3f}).")
    seeds = doc.get("seeds")
    if seeds:
        s = seeds["spread"]
        lines.append(f"- **Seeds** ({len(seeds['per_seed'])} trainings): validation threshold "
                     f"{s['threshold']['min']:.3f}-{s['threshold']['max']:.3f}, specificity "
                     f"{s['val_specificity']['min']:.3f}-{s['val_specificity']['max']:.3f}, "
                     f"counter-framed ROC AUC {s['cf_auc']['min']:.3f}-{s['cf_auc']['max']:.3f}.")
    lines += [
        "",
        "What this does not show: `test/` here is a holdout of patients from the official train "
        "split, drawn like the training images, so it flatters every model. Images framed or "
        "exposed otherwise (the official test split, other hospitals) score healthy children "
        "higher; the counter-framed and stress figures above are the honest guide to that.",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------- parameters

class ParameterError(ValueError):
    """A notebook parameter is out of range. The message is one line naming it."""

    def _render_traceback_(self):  # IPython/Jupyter: one line, no traceback
        return [f"ParameterError: {self}"]


def _choice(*allowed):
    def check(v):
        return v in allowed, "one of " + ", ".join(map(repr, allowed))
    return check


def _integer(lo, hi=None):
    def check(v):
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
        return ok, f"a whole number from {lo}" + (f" to {hi}" if hi is not None else " up")
    return check


def _number(lo, hi, lo_open=True, hi_open=False):
    def check(v):
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool)
              and (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi))
        return ok, f"a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    return check


def _text():
    def check(v):
        return isinstance(v, str) and v.strip() != "", "a non-empty path"
    return check


def _recipes():
    from .recipes import RECIPES
    return _choice(*RECIPES)


FINAL_PARAMETERS = {
    "data_dir": _text,
    "output_dir": _text,
    "task": lambda: _choice("binary", "ternary"),
    "recipe": _recipes,
    "image_size": lambda: _integer(32, 1024),  # four 2x poolings after a strided stem
    "epochs": lambda: _integer(1),
    "batch_size": lambda: _integer(1),
    "learning_rate": lambda: _number(0, 1),
    "seed": lambda: _integer(0),
    "n_seeds": lambda: _integer(1, 20),
    "target_recall": lambda: _number(0, 1),
    "max_train_images": lambda: _integer(0),
    "val_fraction": lambda: _number(0, 1, hi_open=True),
}


def check_parameters(namespace: dict, spec: dict = FINAL_PARAMETERS) -> dict:
    """The parameters named in ``spec``, taken from ``namespace`` (a notebook's
    ``globals()``), each checked against its allowed values; the first bad one
    raises :class:`ParameterError` naming it and what is allowed."""
    params = {}
    for name, make_check in spec.items():
        if name not in namespace:
            raise ParameterError(f"parameter {name} is missing")
        value = namespace[name]
        ok, allowed = make_check()(value)
        if not ok:
            raise ParameterError(f"parameter {name} = {value!r}: expected {allowed}")
        params[name] = value
    return params


def parameter_table(params: dict) -> pd.DataFrame:
    return pd.Series({k: str(v) for k, v in params.items()}, name="value").to_frame()


def count_table(data) -> pd.DataFrame:
    """Images per subset (rows, in reading order) and class (columns)."""
    counts = pd.DataFrame(data.counts()).T
    order = [s for s in ("train", "validation", "test", "sanity") if s in counts.index]
    return counts.loc[order, list(data.task.class_names)]


# ---------------------------------------------------------------- outputs

def files_in(folder) -> dict:
    """``{name: modification time}`` of the files directly in ``folder``."""
    folder = Path(folder)
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} \
        if folder.is_dir() else {}


def save_run(out, doc: dict, model, figures: dict) -> list[str]:
    """Write the model, the figures and ``metrics.json`` into ``out``; return
    the names written."""
    from .plots import save

    out = Path(out)
    written = []
    model.save(out / "model.keras")
    written.append("model.keras")
    for name, fig in figures.items():
        written.append(save(fig, out, name).name)
    write_json(doc, out / "metrics.json")
    written.append("metrics.json")
    return written


def print_written(out, written: list[str], previous: dict) -> None:
    """Say what this run wrote, and which files were there from an earlier run."""
    print(f"wrote to {out}: {', '.join(sorted(written))}")
    older = sorted(set(previous) - set(written))
    if older:
        print(f"also in {out} from an earlier run (left as they were): {', '.join(older)}")


def load_images(table: pd.DataFrame, image_size: int) -> np.ndarray:
    """The images of a few rows of an image table, as one array (for figures)."""
    from .pipeline import load_arrays

    return load_arrays(table, image_size, label_column="label")[0]


def say_earlier_files(out, previous: dict) -> None:
    """Say so when the output folder holds files from an earlier run."""
    if previous:
        names = sorted(previous)
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        print(f"{out} already holds {len(names)} file(s) from an earlier run ({shown}); "
              "this run replaces the ones it writes and leaves the others")
