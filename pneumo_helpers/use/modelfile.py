"""A saved model that carries what it needs to be used correctly.

``save`` writes a normal Keras ``.keras`` file (a zip archive) of the model
as it is used (``TrainedModel.model``: the crop to the lung fields when the
recipe has one, the test-time views and the mean of the seeds' networks) and
adds one entry, ``pneumo.json``: the input size and preprocessing, the class
names, the operating points chosen on validation and the recall they were
chosen for, the recipe, the data counts, the validation and test figures, and
the package version.

``load`` checks the archive before Keras sees it: every entry's size (a small
file can inflate to gigabytes), the metadata (read with a size limit, every
key present), the format version, and every class the model configuration
names (only Keras' own and this package's registered layers); then Keras
loads it with safe mode on (nothing is unpickled, no Python lambda runs).
Whatever fails is one :class:`ModelFileError` line naming the file.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelFileError

FORMAT = "pneumo-model"
FORMAT_VERSION = 2  # 2: test-time views (and the lung crop) inside the model
READABLE_VERSIONS = (1, 2)  # 1: pneumo_helpers 0.2.0, views applied outside the model
ENTRY = "pneumo.json"
PREPROCESSING = ("decoded as one grayscale channel, resized to input_size x input_size without "
                 "keeping the aspect ratio, scaled to [0, 1]; the model crops to the lung fields "
                 "(when its recipe says so), equalises, standardises and augments (training "
                 "only) inside itself")
REQUIRED_KEYS = ("format", "format_version", "task", "class_names", "image_size", "thresholds",
                 "target_recall")
#: the largest each archive entry may inflate to, in bytes
MAX_ENTRY_BYTES = {ENTRY: 1_000_000, "config.json": 20_000_000, "metadata.json": 100_000,
                   "model.weights.h5": 2_000_000_000}
MAX_RATIO = 200  # uncompressed / compressed size of one entry: more is a zip bomb


@dataclass
class SavedModel:
    """A loaded model file: the Keras model (input: the decoded image) and its metadata."""

    model: object  # keras.Model
    info: dict

    @property
    def image_size(self) -> int:
        """The size images are decoded at (the model's input)."""
        return int(self.info.get("input_size", self.info["image_size"]))

    @property
    def threshold(self) -> float:
        return float(self.info["thresholds"]["pneumonia"])

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def networks(self) -> list:
        from ..modeling.models import networks_of
        return networks_of(self.model)

    @property
    def preprocess(self):
        from ..modeling.models import preprocess_of
        return preprocess_of(self.model)


def model_info(trained, data, doc: dict | None = None) -> dict:
    """The metadata ``save`` stores for a ``TrainedModel``: what the model
    takes and how its scores are read, and, from a run's ``metrics.json``
    document ``doc``, the data counts and the validation, counter-framed and
    test figures."""
    from .. import __version__

    doc = doc or {}
    recipe = trained.recipe
    image_size = int(trained.networks[0].input_shape[1])

    def figures(block):
        b = doc.get(block, {}).get("binary", {})
        return {k: b[k] for k in ("roc_auc", "recall", "specificity", "threshold", "ci95")
                if k in b}

    return {"format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
            "task": data.task.name, "class_names": list(data.task.class_names),
            "image_size": image_size, "input_size": recipe.decode_size(image_size),
            "preprocessing": PREPROCESSING, "recipe": recipe.name, "lungs": recipe.lungs,
            "tta_frames": [list(f) for f in recipe.views], "seeds": list(trained.seeds),
            "train_prior": 0.5,  # balanced class weights: the model's scores assume even odds
            "thresholds": dict(trained.thresholds),
            "target_recall": trained.target_recall,
            "data": doc.get("data", data.counts()), "validation": figures("validation"),
            "counter_framed": figures("counter_framed"), "test": figures("test")}


def save(model, path, info: dict) -> Path:
    """Write ``model`` (a Keras model) as a ``.keras`` file holding ``info``
    (see :func:`model_info`)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: a model file must end in .keras")
    model.save(path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(ENTRY, json.dumps(info, indent=2))
    return path


def _read_entry(archive: zipfile.ZipFile, name: str, path) -> bytes:
    """One archive entry, never inflated past its limit."""
    limit = MAX_ENTRY_BYTES[name]
    with archive.open(name) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ModelFileError(f"{path}: its {name} inflates beyond {limit:,} bytes; refused")
    return data


def _check_archive(archive: zipfile.ZipFile, path) -> None:
    for entry in archive.infolist():
        limit = MAX_ENTRY_BYTES.get(entry.filename)
        if limit is None:
            raise ModelFileError(f"{path}: unexpected entry {entry.filename!r} in the archive")
        if entry.file_size > limit or entry.file_size > MAX_RATIO * max(entry.compress_size, 1) \
                and entry.file_size > 1_000_000:
            raise ModelFileError(f"{path}: its {entry.filename} claims {entry.file_size:,} bytes "
                                 f"({entry.compress_size:,} compressed): refused before reading")
    for name in ("config.json", "model.weights.h5", ENTRY):
        if name not in archive.namelist():
            if name == ENTRY:
                raise ModelFileError(f"{path}: a Keras file without pneumo's metadata; save "
                                     "models with pneumo_helpers.use.modelfile.save (the final "
                                     "notebook does)")
            raise ModelFileError(f"{path}: not a complete .keras file (no {name})")


def read_info(path) -> dict:
    """The metadata of a model file, checked, or one ModelFileError line."""
    info, _ = _read(path)
    return info


def _read(path) -> tuple[dict, dict]:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            _check_archive(archive, path)
            info = json.loads(_read_entry(archive, ENTRY, path))
            config = json.loads(_read_entry(archive, "config.json", path))
    except zipfile.BadZipFile:
        raise ModelFileError(f"{path}: not a .keras model file (not a zip archive)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelFileError(f"{path}: its metadata or configuration is not valid JSON") from None
    except (OSError, EOFError, RuntimeError, NotImplementedError) as err:  # corrupt entries
        raise ModelFileError(f"{path}: unreadable archive ({type(err).__name__})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a pneumo model file")
    version = info.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{path}: model file format {version!r} (written by pneumo_helpers "
            f"{info.get('package_version', '?')}); this pneumo_helpers reads formats "
            f"{', '.join(map(str, READABLE_VERSIONS))}: use the version that wrote it, or retrain")
    missing = [k for k in REQUIRED_KEYS if k not in info]
    if missing:
        raise ModelFileError(f"{path}: its {ENTRY} lacks {', '.join(missing)}")
    if not isinstance(info["thresholds"], dict) or "pneumonia" not in info["thresholds"]:
        raise ModelFileError(f"{path}: its {ENTRY} has no pneumonia threshold")
    return info, config


def _classes(config) -> set[tuple]:
    """Every (module, class_name, registered_name) the configuration names."""
    found, stack = set(), [config]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if "class_name" in o and "module" in o:
                found.add((str(o.get("module")), str(o["class_name"]),
                           str(o.get("registered_name"))))
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return found


def _check_classes(config: dict, path) -> None:
    import keras

    for module, name, registered in _classes(config):
        if module == "keras" or module.startswith("keras."):
            continue
        ours = module.startswith("pneumo_helpers") and registered.startswith("pneumo>")
        if ours and keras.saving.get_registered_object(registered) is not None:
            continue
        raise ModelFileError(f"{path}: the model names class {name} from {module}, which is "
                             "neither Keras' nor one of pneumo's registered layers; refused")


def load(path) -> SavedModel:
    """Load a model written by :func:`save` (format 1 or 2), after the checks
    above, with Keras safe mode on. A format-1 model (0.2.0: test-time views
    applied outside the model) gets its views wrapped around it, so that it
    scores as it did."""
    import keras

    from ..modeling import augment, layers, models  # noqa: F401  (registers pneumo's layers)

    info, config = _read(path)
    _check_classes(config, path)
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises many kinds for bad configurations and weights
        text = str(err).strip().splitlines()
        first = text[0] if text else type(err).__name__
        raise ModelFileError(f"{path}: Keras cannot load it ({first[:200]})") from None
    if info["format_version"] == 1 and info.get("tta_frames"):
        model = models.inference_model(models.networks_of(model),
                                       [tuple(f) for f in info["tta_frames"]], name=model.name)
    return SavedModel(model, info)
