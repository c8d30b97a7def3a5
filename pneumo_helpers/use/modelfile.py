"""A saved model that carries what it needs to be used correctly.

``save`` writes a normal Keras ``.keras`` file (a zip archive) and adds one
entry, ``pneumo.json``: the input size and preprocessing, the class names,
the operating points chosen on validation and the recall they were chosen
for, the test-time views, the data counts, the validation and test figures,
and the package version. ``load`` reads it back with Keras' safe mode on
(nothing is unpickled, no Python lambda is run) and refuses, in one line, a
file that is not one of ours or was written by an incompatible version.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras

from ..errors import ModelFileError

FORMAT = "pneumo-model"
FORMAT_VERSION = 1  # bumped when the contract (inputs, preprocessing, metadata) changes
ENTRY = "pneumo.json"
PREPROCESSING = ("decoded as one grayscale channel, resized to image_size x image_size without "
                 "keeping the aspect ratio, scaled to [0, 1]; the model equalises, standardises "
                 "and augments (training only) inside itself")


@dataclass
class SavedModel:
    model: keras.Model
    info: dict

    @property
    def image_size(self) -> int:
        return int(self.info["image_size"])

    @property
    def threshold(self) -> float:
        return float(self.info["thresholds"]["pneumonia"])

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def tta_frames(self) -> list:
        return [tuple(f) for f in self.info.get("tta_frames", [])]


def model_info(data, recipe, thresholds: dict, target_recall: float,
               doc: dict | None = None) -> dict:
    """The metadata ``save`` stores: what the model takes and how its scores
    are read, and, from a run's ``metrics.json`` document ``doc``, the data
    counts and the validation, counter-framed and test figures."""
    from .. import __version__

    doc = doc or {}

    def figures(block):
        b = doc.get(block, {}).get("binary", {})
        return {k: b[k] for k in ("roc_auc", "recall", "specificity", "threshold", "ci95")
                if k in b}

    return {"format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
            "task": data.task.name, "class_names": list(data.task.class_names),
            "image_size": data.image_size, "preprocessing": PREPROCESSING,
            "tta_frames": [list(f) for f in recipe.tta_frames], "recipe": recipe.name,
            "train_prior": 0.5,  # balanced class weights: the model's scores assume even odds
            "thresholds": dict(thresholds), "target_recall": target_recall,
            "data": doc.get("data", data.counts()), "validation": figures("validation"),
            "counter_framed": figures("counter_framed"), "test": figures("test")}


def save(model: keras.Model, path, info: dict) -> Path:
    """Write ``model`` as a ``.keras`` file holding ``info`` (see :func:`model_info`)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: a model file must end in .keras")
    model.save(path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(ENTRY, json.dumps(info, indent=2))
    return path


def read_info(path) -> dict:
    """The metadata of a model file, or one ModelFileError line."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            if ENTRY not in archive.namelist():
                raise ModelFileError(f"{path}: a Keras file without pneumo's metadata; save "
                                     "models with pneumo_helpers.modelfile.save (the final "
                                     "notebook does)")
            info = json.loads(archive.read(ENTRY))
    except zipfile.BadZipFile:
        raise ModelFileError(f"{path}: not a .keras model file (not a zip archive)") from None
    except json.JSONDecodeError:
        raise ModelFileError(f"{path}: its {ENTRY} is not valid JSON") from None
    if info.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a pneumo model file")
    version = info.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format {version} (written by pneumo_helpers "
            f"{info.get('package_version', '?')}), this is pneumo_helpers with format "
            f"{FORMAT_VERSION}; use the version that wrote it, or retrain")
    return info


def load(path) -> SavedModel:
    """Load a model written by :func:`save`, Keras safe mode on."""
    info = read_info(path)
    from ..modeling import models  # noqa: F401  (registers the custom layers)

    try:
        model = keras.models.load_model(path, safe_mode=True)
    except ValueError as err:
        first = str(err).strip().splitlines()[0]
        raise ModelFileError(f"{path}: refused by Keras' safe mode ({first})") from None
    return SavedModel(model, info)
