"""A saved model that carries what it needs to be used correctly.

``save`` writes a normal Keras ``.keras`` file (a zip archive) of the model
as it is used (``TrainedModel.model``: the crop to the lung fields when the
recipe has one, the test-time views and the mean of the seeds' networks) and
adds one entry, ``pneumo.json``: the input size and preprocessing, the class
names, the operating points chosen on validation and the recall they were
chosen for, the recipe, the data counts, the validation and test figures, the
validation stress table (one row per view), the reference of the training
images that ``pneumo predict`` checks new images against (``use.ood``) and
the package version.

``load`` checks the archive before Keras sees it: every entry's claimed size
(a small file can inflate to gigabytes), each entry read through once in
bounded pieces (its CRC-32: a truncated or corrupted entry is refused), the
metadata (read with a size limit, a JSON object with every key present and of
the right kind), the format version, and every class and function the model
configuration names (only Keras' own layers, activations, losses and metrics
and this package's registered layers); then Keras loads it with safe mode on
(nothing is unpickled, no Python lambda runs), and the model must take and
give what its metadata says. Whatever fails is one :class:`ModelFileError`
line naming the file.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
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
MAX_INPUT_SIZE = 4096  # pixels a side: far above any model of this package


@dataclass
class SavedModel:
    """A loaded model file: the Keras model (input: the decoded image) and its metadata."""

    model: object  # keras.Model
    info: dict
    path: Path | None = None  # the file it was loaded from

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


def model_info(trained, data, doc: dict | None = None, reference: dict | None = None) -> dict:
    """The metadata ``save`` stores for a ``TrainedModel``: what the model
    takes and how its scores are read, and, from a run's ``metrics.json``
    document ``doc``, the data counts, the validation, counter-framed and
    test figures and the validation stress table (``stress``: per view, ROC
    AUC, recall and specificity at the threshold); ``reference``: what
    ``ood.reference(trained, data)`` returns (the training images' features
    and figures, the thresholds of the out-of-distribution checks, the
    validation scores' histogram), without which ``pneumo predict`` skips the
    feature checks and the shift summary."""
    from .. import __version__

    doc = doc or {}
    recipe = trained.recipe
    image_size = int(trained.networks[0].input_shape[1])

    def figures(block):
        b = doc.get(block, {}).get("binary", {})
        return {k: b[k] for k in ("roc_auc", "recall", "specificity", "threshold", "ci95")
                if k in b}

    stress = doc.get("stress") or {}
    if hasattr(stress, "to_dict"):  # a stress table, not yet its metrics.json form
        stress = stress.to_dict(orient="index")
    info = {"format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
            "task": data.task.name, "class_names": list(data.task.class_names),
            "image_size": image_size, "input_size": recipe.decode_size(image_size),
            "preprocessing": PREPROCESSING, "recipe": recipe.name, "lungs": recipe.lungs,
            "tta_frames": [list(f) for f in recipe.views], "seeds": list(trained.seeds),
            "train_prior": 0.5,  # balanced class weights: the model's scores assume even odds
            "thresholds": dict(trained.thresholds),
            "target_recall": trained.target_recall,
            "data": doc.get("data", data.counts()), "validation": figures("validation"),
            "counter_framed": figures("counter_framed"), "test": figures("test"),
            "stress": {str(view): {k: float(row[k]) for k in ("auc", "recall", "specificity")
                                   if k in row and _number(row[k])}
                       for view, row in stress.items()}}
    if reference is not None:
        info["reference"] = json.loads(json.dumps(reference))  # plain JSON, checked below
    return info


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
    """What the archive's directory claims, before anything is inflated."""
    names = archive.namelist()
    for entry in archive.infolist():
        limit = MAX_ENTRY_BYTES.get(entry.filename)
        if limit is None:
            raise ModelFileError(f"{path}: unexpected entry {entry.filename!r} in the archive")
        if names.count(entry.filename) > 1:
            raise ModelFileError(f"{path}: the archive holds {entry.filename} twice; refused")
        if entry.file_size > limit or entry.file_size > MAX_RATIO * max(entry.compress_size, 1) \
                and entry.file_size > 1_000_000:
            raise ModelFileError(f"{path}: its {entry.filename} claims {entry.file_size:,} bytes "
                                 f"({entry.compress_size:,} compressed): refused before reading")
    for name in ("config.json", "model.weights.h5", ENTRY):
        if name not in names:
            if name == ENTRY:
                raise ModelFileError(f"{path}: a Keras file without pneumo's metadata; save "
                                     "models with pneumo_helpers.use.modelfile.save (the final "
                                     "notebook does)")
            raise ModelFileError(f"{path}: not a complete .keras file (no {name})")


def _verify_entries(archive: zipfile.ZipFile, path) -> None:
    """Every entry read through once, in bounded pieces, never inflated past
    its limit (zipfile stops at the size the directory claims, checked
    above): a truncated or corrupted entry (its CRC-32 checked at its end) is
    refused here, before Keras, which would read corrupted weights on the fly
    without noticing."""
    for entry in archive.infolist():
        limit, total = MAX_ENTRY_BYTES[entry.filename], 0
        try:
            with archive.open(entry) as f:
                while piece := f.read(1 << 20):
                    total += len(piece)
                    if total > limit:
                        raise ModelFileError(f"{path}: its {entry.filename} inflates beyond "
                                             f"{limit:,} bytes; refused")
        except ModelFileError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
                NotImplementedError, ValueError) as err:  # bad CRC, truncated, encrypted...
            raise ModelFileError(f"{path}: its {entry.filename} is corrupted or truncated "
                                 f"({_first_line(err)}); refused") from None
        if total != entry.file_size:
            raise ModelFileError(f"{path}: its {entry.filename} is truncated ({total:,} of "
                                 f"{entry.file_size:,} bytes); refused")


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _json(archive: zipfile.ZipFile, name: str, path):
    try:
        return json.loads(_read_entry(archive, name, path), parse_constant=_refuse_constant)
    except RecursionError:
        raise ModelFileError(f"{path}: its {name} is nested too deeply; refused") from None
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise ModelFileError(f"{path}: its {name} is not valid JSON ({_first_line(err)})") \
            from None


def _first_line(err) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def read_info(path) -> dict:
    """The metadata of a model file, checked, or one ModelFileError line."""
    info, _ = _read(path)
    return info


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_info(info, path) -> None:
    """Every key ``load`` and scoring use is there, of the right kind."""
    if not isinstance(info, dict):
        raise ModelFileError(f"{path}: its {ENTRY} is not a JSON object "
                             f"({type(info).__name__}); not a pneumo model file")
    if info.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a pneumo model file")
    version = info.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{path}: model file format {version!r} (written by pneumo_helpers "
            f"{info.get('package_version', '?')}); this pneumo_helpers reads formats "
            f"{', '.join(map(str, READABLE_VERSIONS))}: use the version that wrote it, or retrain")
    missing = [k for k in REQUIRED_KEYS if k not in info]
    if missing:
        raise ModelFileError(f"{path}: its {ENTRY} lacks {', '.join(missing)}")

    def bad(key, expected):
        raise ModelFileError(f"{path}: its {ENTRY} has {key} = {json.dumps(info[key])[:80]}, "
                             f"expected {expected}")

    if not isinstance(info["task"], str):
        bad("task", "a task name")
    names = info["class_names"]
    if not (isinstance(names, list) and len(names) >= 2 and len(set(map(str, names))) == len(names)
            and all(isinstance(n, str) and n for n in names)):
        bad("class_names", "a list of at least two distinct class names")
    for key in ("image_size", "input_size"):
        if key in info and not (type(info[key]) is int and 8 <= info[key] <= MAX_INPUT_SIZE):
            bad(key, f"a whole number of pixels from 8 to {MAX_INPUT_SIZE}")
    thresholds = info["thresholds"]
    if not isinstance(thresholds, dict) or "pneumonia" not in thresholds:
        raise ModelFileError(f"{path}: its {ENTRY} has no pneumonia threshold")
    if not all(_number(t) and 0 <= t <= 1 for t in thresholds.values()):
        bad("thresholds", "numbers from 0 to 1")
    if info["target_recall"] is not None and not (_number(info["target_recall"])
                                                  and 0 <= info["target_recall"] <= 1):
        bad("target_recall", "a number from 0 to 1")
    if "reference" in info:
        from .ood import check_reference

        try:
            check_reference(info["reference"])
        except ValueError as err:
            raise ModelFileError(f"{path}: its {ENTRY} has an unreadable reference of the "
                                 f"training images ({_first_line(err)})") from None
    stress = info.get("stress")
    if stress is not None and not (isinstance(stress, dict) and all(
            isinstance(row, dict) and all(_number(v) for v in row.values())
            for row in stress.values())):
        bad("stress", "a table of views and their figures")
    frames = info.get("tta_frames")
    if frames is not None and not (isinstance(frames, list) and all(
            isinstance(f, list) and len(f) == 3 and all(map(_number, f)) for f in frames)):
        bad("tta_frames", "a list of [zoom, shift_x, shift_y] views")


def _read(path) -> tuple[dict, dict]:
    path = Path(os.fsdecode(path)) if isinstance(path, bytes) else Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: a folder, not a model file")
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        archive = zipfile.ZipFile(path)
    except PermissionError:
        raise ModelFileError(f"cannot read {path} (permission denied)") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise ModelFileError(f"{path}: not a .keras model file (not a zip archive)") from None
    try:
        with archive:
            _check_archive(archive, path)
            _verify_entries(archive, path)
            info = _json(archive, ENTRY, path)
            config = _json(archive, "config.json", path)
    except ModelFileError:
        raise
    except Exception as err:  # noqa: BLE001  anything else the archive raises
        raise ModelFileError(f"{path}: unreadable archive ({type(err).__name__}: "
                             f"{_first_line(err)})") from None
    _check_info(info, path)
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: its config.json is not a JSON object; not a Keras model")
    return info, config


#: class names of Keras' serialization that name no class: a tensor, an array,
#: bytes, ``...``, a slice; ``__lambda__`` (Python code) is refused by safe mode
_SPECIAL = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__",
            "__slice__", "__lambda__"}
#: the Keras modules a function of the configuration may come from
_FUNCTION_MODULES = ("keras.activations", "keras.losses", "keras.metrics", "keras.ops",
                     "keras.src.activations", "keras.src.losses", "keras.src.metrics",
                     "keras.src.ops")


def _classes(config) -> set[tuple]:
    """Every (module, class_name, registered_name) the configuration names
    (``module`` "" when the entry names none; for a function, its name)."""
    found, stack = set(), [config]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if "class_name" in o and str(o["class_name"]) not in _SPECIAL:
                name = str(o["class_name"])
                if name == "function":
                    name = f"function {o.get('config')}"
                found.add((str(o.get("module") or ""), name, str(o.get("registered_name"))))
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return found


#: Keras layers that run arbitrary code or load other files (CVE-2026-1462: TFSMLayer)
_REFUSED_KERAS_CLASSES = {"Lambda", "TFSMLayer"}


def _check_classes(config: dict, path) -> None:
    """Every class and function the configuration names is Keras' own, or one of
    pneumo's registered layers, before Keras imports or builds anything."""
    import keras

    for module, name, registered in sorted(_classes(config)):
        keras_module = module == "keras" or module.startswith("keras.")
        if name.startswith("function "):
            if keras_module and any(module == m or module.startswith(m + ".")
                                    for m in _FUNCTION_MODULES):
                continue
            fn = name.removeprefix("function ")
            if module.startswith("pneumo_helpers") and fn.startswith("pneumo>") and \
                    keras.saving.get_registered_object(fn) is not None:
                continue
            raise ModelFileError(f"{path}: the model names the {name} from {module or '?'}, "
                                 "which is neither a Keras activation, loss or metric nor one "
                                 "of pneumo's registered functions; refused")
        if keras_module and name in _REFUSED_KERAS_CLASSES:
            raise ModelFileError(f"{path}: the model holds a Keras {name} layer, which runs code "
                                 "or loads files of its own (no model of pneumo has one); refused")
        if keras_module:
            continue
        ours = module.startswith("pneumo_helpers") and registered.startswith("pneumo>")
        if ours and keras.saving.get_registered_object(registered) is not None:
            continue
        raise ModelFileError(f"{path}: the model names class {name} from {module or 'no module'}, "
                             "which is neither Keras' nor one of pneumo's registered layers; "
                             "refused")


def _check_model(model, info: dict, path) -> None:
    """The loaded model takes what its metadata says and gives one score per class."""
    size = int(info.get("input_size", info["image_size"]))
    n = len(info["class_names"])
    try:
        inputs, outputs = tuple(model.input_shape), tuple(model.output_shape)
    except Exception:  # noqa: BLE001  several inputs or outputs
        raise ModelFileError(f"{path}: the model has several inputs or outputs, expected one "
                             "image in and one score out") from None
    if inputs[1:] != (size, size, 1):
        raise ModelFileError(f"{path}: the model takes inputs of shape {inputs[1:]}, its "
                             f"{ENTRY} says ({size}, {size}, 1)")
    if outputs[1:] != ((1,) if n == 2 else (n,)):
        raise ModelFileError(f"{path}: the model gives outputs of shape {outputs[1:]}, its "
                             f"{ENTRY} names {n} classes")


def load(path) -> SavedModel:
    """Load a model written by :func:`save` (format 1 or 2), after the checks
    above, with Keras safe mode on. A format-1 model (0.2.0: test-time views
    applied outside the model) gets its views wrapped around it, so that it
    scores as it did."""
    import keras

    from ..lungs import crop  # noqa: F401  (registers the lung crop's layers)
    from ..modeling import augment, layers, models  # noqa: F401  (registers pneumo's layers)

    path = Path(os.fsdecode(path)) if isinstance(path, bytes) else Path(path)
    info, config = _read(path)
    _check_classes(config, path)
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # noqa: BLE001  Keras raises many kinds for bad configurations
        text = str(err).strip().splitlines()
        first = text[0] if text else type(err).__name__
        raise ModelFileError(f"{path}: Keras cannot load it ({first[:200]})") from None
    try:
        if info["format_version"] == 1 and info.get("tta_frames"):
            model = models.inference_model(models.networks_of(model),
                                           [tuple(f) for f in info["tta_frames"]],
                                           name=model.name)
    except Exception as err:  # noqa: BLE001
        raise ModelFileError(f"{path}: its test-time views cannot be applied "
                             f"({_first_line(err)})") from None
    _check_model(model, info, path)
    return SavedModel(model, info, Path(path))
