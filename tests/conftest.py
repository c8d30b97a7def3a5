import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def shared_data_dir() -> Path | None:
    for candidate in (os.environ.get("DATA_DIR"), ROOT / "data" / "chest_xray",
                      ROOT.parent / "shared" / "data" / "chest_xray"):
        if candidate and (Path(candidate) / "train").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = shared_data_dir()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs the chest X-rays: set DATA_DIR or put ../shared beside the project")
        pytest.skip("no chest X-ray data found (set DATA_DIR=...)")
    return found


@pytest.fixture(scope="session")
def table(data_dir):
    from pneumo_helpers.data import load_image_table
    return load_image_table(data_dir)


def write_image(path: Path, size=(40, 30), mode="L", fmt="JPEG", seed=0):
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, fmt)


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """A valid Kaggle-layout folder: 3 splits x 2 classes, small mixed images."""
    root = tmp_path / "chest_xray"
    for k, split in enumerate(("train", "val", "test")):
        for c, cls in enumerate(("NORMAL", "PNEUMONIA")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                name = (f"IM-{i:04d}-0001.jpeg" if cls == "NORMAL"
                        else f"person{i}_{'bacteria' if i % 2 else 'virus'}_{i}.jpeg")
                write_image(folder / name, size=(40 + 10 * i, 30), mode="L" if i else "RGB",
                            seed=i + 10 * k + 100 * c)  # no two files alike
    return root


SHARED_WEIGHTS = ROOT.parent / "shared" / "keras" / "models"


@pytest.fixture
def keras_home_with_shared_weights(tmp_path, monkeypatch) -> Path:
    """A KERAS_HOME whose ``models/`` holds copies of the shared ImageNet weight
    files (../shared/keras/models), so ``weights="imagenet"`` loads without a
    download. Keras reads KERAS_HOME at import; ``pneumo_helpers.transfer``
    follows its current value, and papermill kernels inherit it."""
    import shutil

    files = sorted(SHARED_WEIGHTS.glob("*.h5")) if SHARED_WEIGHTS.is_dir() else []
    if not files:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the shared Keras weight files in {SHARED_WEIGHTS}")
        pytest.skip(f"no Keras weight files in {SHARED_WEIGHTS}")
    home = tmp_path / "keras_home"
    (home / "models").mkdir(parents=True)
    for f in files:
        shutil.copyfile(f, home / "models" / f.name)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def rewrite_metadata(path, info: dict) -> None:
    """Replace pneumo.json inside the .keras archive ``path`` with ``info``."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist() if n != "pneumo.json"}
    with zipfile.ZipFile(path, "w") as z:
        for n, b in entries.items():
            z.writestr(n, b)
        z.writestr("pneumo.json", json.dumps(info))
