"""Using a saved model: the model file and its metadata, `pneumo predict` on
real X-rays, bad files, DICOM input and heat maps."""

import csv
import json
import shutil
import zipfile

import numpy as np
import pytest

from pneumo_helpers.cli import main
from pneumo_helpers.data import prepare_data
from pneumo_helpers.modeling import recipes
from pneumo_helpers.use import modelfile

from .conftest import rewrite_metadata


@pytest.fixture(scope="module")
def small_model(data_dir, tmp_path_factory):
    """A tiny equalised CNN trained on real X-rays, saved with its metadata."""
    data = prepare_data(data_dir, "binary", 32, 32, seed=3, max_train_images=160)
    recipe = recipes.get_recipe("equalized")
    trained = recipes.fit_recipe(recipe, data, seed=3, epochs=1)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    modelfile.save(trained.model, path, modelfile.model_info(trained, data))
    return path, trained, data


@pytest.fixture
def images(data_dir, tmp_path):
    """Six real X-rays (three of each class) in a folder of their own."""
    folder = tmp_path / "xrays"
    (folder / "sub").mkdir(parents=True)
    for cls, n in (("NORMAL", 3), ("PNEUMONIA", 3)):
        for i, f in enumerate(sorted((data_dir / "test" / cls).iterdir())[:n]):
            shutil.copyfile(f, folder / ("sub" if i == 0 else ".") / f.name)
    (folder / ".DS_Store").write_bytes(b"x")
    return folder


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_model_file_carries_what_it_needs(small_model):
    path, trained, data = small_model
    saved = modelfile.load(path)
    info = saved.info
    assert info["image_size"] == 32 and info["class_names"] == ["normal", "pneumonia"]
    assert saved.threshold == trained.thresholds["pneumonia"] and info["target_recall"] == 0.98
    assert info["tta_frames"] == [list(f) for f in trained.recipe.views] and info["recipe"] == "equalized"
    assert info["data"]["train"] == {"normal": 80, "pneumonia": 80}
    assert "grayscale" in info["preprocessing"]
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(saved.model.predict(x, verbose=0),
                               trained.model.predict(x, verbose=0), rtol=1e-5)


COLUMNS = ["path", "status", "reason", "pneumonia_score", "decision", "uncertainty",
           "threshold", "model"]


def test_predict_real_xrays(small_model, images, tmp_path, capsys):
    path, trained, _ = small_model
    before = sorted(p.relative_to(images) for p in images.rglob("*"))
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(path), str(images), "--out", str(out), "--no-progress"]) == 0
    rows = read_rows(out)
    assert list(rows[0]) == COLUMNS
    assert len(rows) == 6 and all(r["status"] == "scored" and not r["reason"] for r in rows)
    assert sum("/sub/" in r["path"] for r in rows) == 2  # folders searched recursively
    t = trained.thresholds["pneumonia"]
    for r in rows:
        p = float(r["pneumonia_score"])
        assert 0 <= p <= 1 and r["decision"] == ("pneumonia" if p >= t else "normal")
        assert len(r["pneumonia_score"].lstrip("0.").replace(".", "")) <= 3  # 3 digits
        assert float(r["threshold"]) == pytest.approx(t, rel=1e-2) and r["model"] == str(path)
        assert r["uncertainty"] == "0.0"  # one network: no spread
    # the same image scored twice gives the same number
    first = rows[0]["path"]
    again = tmp_path / "again.csv"
    assert main(["predict", str(path), first, first, "--out", str(again), "--no-progress"]) == 0
    twice = read_rows(again)
    assert twice[0]["pneumonia_score"] == twice[1]["pneumonia_score"] == rows[0]["pneumonia_score"]
    assert sorted(p.relative_to(images) for p in images.rglob("*")) == before  # nothing new
    # the earlier CSV of this command may be replaced; any other file may not
    assert main(["predict", str(path), first, "--out", str(again), "--no-progress"]) == 0
    (tmp_path / "notes.csv").write_text("the user's own notes")
    capsys.readouterr()
    assert main(["predict", str(path), first, "--out", str(tmp_path / "notes.csv")]) == 1
    assert "not an output of an earlier run" in capsys.readouterr().err
    assert (tmp_path / "notes.csv").read_text() == "the user's own notes"


def test_the_saved_views_and_every_batch_are_scored(small_model, data_dir):
    """Scores over several batches equal the model's own, views included, and
    differ from the networks' scores without the views."""
    from pneumo_helpers.data.images import load_image
    from pneumo_helpers.use.scoring import score_images

    path, trained, _ = small_model
    saved = modelfile.load(path)
    files = sorted((data_dir / "test" / "NORMAL").iterdir())[:7]
    rows = score_images(saved, files, batch_size=3)  # three batches, the last one short
    x = np.stack([load_image(f, 32) for f in files])
    with_views = saved.model.predict(x, verbose=0)[:, 0]
    plain = saved.networks[0].predict(x, verbose=0)[:, 0]
    got = np.array([r["pneumonia_score"] for r in rows], dtype=float)
    np.testing.assert_allclose(got, with_views, rtol=5e-3, atol=5e-4)
    assert np.abs(with_views - plain).max() > 1e-4  # the views change the scores
    # a single str is one path, not its characters
    assert len(score_images(saved, str(files[0]))) == 1


def test_a_three_class_model_is_scored(data_dir, tmp_path):
    data = prepare_data(data_dir, "ternary", 32, 32, seed=3, max_train_images=150)
    trained = recipes.fit_recipe("equalized_no_augment", data, seed=3, epochs=1)
    model = tmp_path / "ternary.keras"
    modelfile.save(trained.model, model, modelfile.model_info(trained, data))
    out = tmp_path / "t.csv"
    files = sorted((data_dir / "test" / "PNEUMONIA").iterdir())[:2]
    assert main(["predict", str(model), *map(str, files), "--out", str(out),
                 "--no-progress"]) == 0
    for r in read_rows(out):
        probs = [float(r[f"p_{c}"]) for c in ("normal", "bacteria", "virus")]
        assert sum(probs) == pytest.approx(1, abs=3e-3)
        assert float(r["pneumonia_score"]) == pytest.approx(probs[1] + probs[2], abs=3e-3)


def test_predict_goes_on_after_a_corrupt_file(small_model, images, tmp_path, capsys):
    path, _, _ = small_model
    (images / "broken.jpeg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (images / "notes.txt").write_text("not scored: not an image suffix inside a folder")
    out = tmp_path / "p.csv"
    status = main(["predict", str(path), str(images), str(images / "notes.txt"),
                   str(tmp_path / "missing.png"), "--out", str(out), "--no-progress"])
    assert status == 1  # not every image was scored
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in read_rows(out)}
    assert len(rows) == 9
    assert rows["broken.jpeg"]["reason"].startswith("unreadable image (")  # the header check
    assert "not a JPEG, PNG or DICOM file" in rows["notes.txt"]["reason"]
    assert rows["missing.png"]["reason"] == "not found"
    assert sum(r["status"] == "scored" for r in rows.values()) == 6
    assert {r["status"] for r in rows.values()} == {"scored", "error"}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)


def test_a_path_that_does_not_exist(small_model, images, tmp_path, capsys, monkeypatch):
    """Named alone, one clear line and nothing written; beside real images, a row
    that says "not found" (not "not a JPEG ..." for a name without a suffix)."""
    path, _, _ = small_model
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(path), str(tmp_path / "nonexistent")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: no such file or folder: {tmp_path / 'nonexistent'}\n"
    assert not (tmp_path / "predictions.csv").exists()
    out = tmp_path / "p.csv"
    assert main(["predict", str(path), str(images), str(tmp_path / "nonexistent"), "--out",
                 str(out), "--no-progress"]) == 1
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in read_rows(out)}
    assert rows["nonexistent"]["reason"] == "not found" and rows["nonexistent"]["status"] == "error"


@pytest.mark.parametrize("target", ["an input image", "the model", "a project file"])
def test_outputs_never_replace_inputs_the_model_or_the_project(small_model, images, target,
                                                               capsys, monkeypatch):
    from pneumo_helpers.use.outputs import PROJECT_ROOT

    path, _, _ = small_model
    image = next(images.glob("*.jpeg"))
    monkeypatch.chdir(images.parent)
    spelled = {"an input image": f"xrays/../xrays/{image.name}", "the model": str(path),
               "a project file": str(PROJECT_ROOT / "README.md")}[target]
    before = {p: p.read_bytes() for p in (image, path, PROJECT_ROOT / "README.md")}
    # a heat map that would land on an explicitly named input image is refused too
    named = images / "heat" / f"{image.name}.png"
    named.parent.mkdir()
    shutil.copyfile(image, named)
    assert main(["predict", str(path), str(image), "--out", spelled]) == 1
    assert main(["predict", str(path), str(image), "--heatmaps", str(image)]) == 1
    assert main(["predict", str(path), str(image), str(named), "--heatmaps",
                 str(images / "heat")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(e.startswith("error: ") for e in err)
    assert all(p.read_bytes() == b for p, b in before.items())
    assert named.read_bytes() == image.read_bytes()


def test_outputs_never_beside_the_images(small_model, images, capsys):
    path, _, _ = small_model
    assert main(["predict", str(path), str(images), "--out", str(images / "p.csv")]) == 1
    assert "inside" in capsys.readouterr().err and not (images / "p.csv").exists()


def _dicom(path, pixels, photometric, slope=1.0, intercept=0.0, frames=None, with_pixels=True):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "DX", "test"
    if with_pixels:
        ds.PhotometricInterpretation = photometric
        ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 12, 11
        ds.PixelRepresentation = 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        if frames:
            ds.NumberOfFrames = frames
            pixels = np.stack([pixels] * frames)
        ds.Rows, ds.Columns = pixels.shape[-2:]
        ds.PixelData = pixels.astype("uint16").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_input(small_model, data_dir, tmp_path, capsys):
    from PIL import Image

    path, _, _ = small_model
    xray = sorted((data_dir / "test" / "PNEUMONIA").iterdir())[0]
    gray = np.asarray(Image.open(xray).convert("L"), dtype="float64")
    pixels = np.round(gray * 4095 / 255)  # 12-bit, bone bright
    folder = tmp_path / "dicom"
    folder.mkdir()
    _dicom(folder / "mono2.dcm", pixels, "MONOCHROME2")
    _dicom(folder / "mono1.dcm", 4095 - pixels, "MONOCHROME1")  # bone dark: inverted on reading
    _dicom(folder / "rescaled.dcm", pixels / 2, "MONOCHROME2", slope=2.0, intercept=-100.0)
    out = tmp_path / "d.csv"
    assert main(["predict", str(path), str(folder), str(xray), "--out", str(out),
                 "--no-progress"]) == 0
    rows = {r["path"].rsplit("/", 1)[-1]: float(r["pneumonia_score"]) for r in read_rows(out)}
    # MONOCHROME1 and MONOCHROME2 of the same pixels, and a rescaled copy, score alike
    assert rows["mono1.dcm"] == pytest.approx(rows["mono2.dcm"], abs=1e-4)
    assert rows["rescaled.dcm"] == pytest.approx(rows["mono2.dcm"], abs=0.02)
    # and like the JPEG they came from
    assert rows["mono2.dcm"] == pytest.approx(rows[xray.name], abs=0.05)

    _dicom(folder / "frames.dcm", pixels, "MONOCHROME2", frames=2)
    _dicom(folder / "report.dcm", pixels, "MONOCHROME2", with_pixels=False)
    capsys.readouterr()
    assert main(["predict", str(path), str(folder), "--out", str(out), "--no-progress"]) == 1
    rows = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in read_rows(out)}
    assert rows["frames.dcm"] == "multi-frame DICOM (2 frames), expected one X-ray image"
    assert rows["report.dcm"] == "DICOM file without an image (no pixel data)"


def test_heatmaps_are_linked_to_their_rows(small_model, images, data_dir, tmp_path):
    from PIL import Image

    from pneumo_helpers.use.scoring import BAR_WIDTH, HEATMAP_TAG, TITLE_HEIGHT

    path, _, _ = small_model
    # two same.jpeg in two folders and a third file that a naive "_2" suffix would hit
    src = sorted((data_dir / "test" / "NORMAL").iterdir())
    for folder, name, f in (("a", "same.jpeg", src[0]), ("b", "same.jpeg", src[1]),
                            ("a", "same_2.jpeg", src[2]), ("a", "same.png", src[3])):
        (images / folder).mkdir(exist_ok=True)
        Image.open(f).save(images / folder / name)
    heat, out = tmp_path / "heat", tmp_path / "p.csv"
    assert main(["predict", str(path), str(images), "--out", str(out), "--heatmaps", str(heat),
                 "--no-progress"]) == 0
    rows = read_rows(out)
    maps = [r["heatmap"] for r in rows]
    assert len(rows) == 10 and len(set(maps)) == 10 and all(maps)
    assert str(heat / "a" / "same.jpeg.png") in maps and str(heat / "b" / "same.jpeg.png") in maps
    assert str(heat / "a" / "same.png.png") in maps
    for r in rows:
        with Image.open(r["heatmap"]) as im:
            assert im.info.get("Software") == HEATMAP_TAG
            picture = np.asarray(im.convert("RGB"))
        assert picture.std() > 10  # a picture, not a blank page
    # the overlay keeps the image's own aspect ratio
    wide = tmp_path / "wide"
    wide.mkdir()
    Image.open(src[0]).resize((300, 150)).save(wide / "wide.png")
    assert main(["predict", str(path), str(wide), "--out", str(tmp_path / "w.csv"),
                 "--heatmaps", str(tmp_path / "wheat"), "--no-progress"]) == 0
    with Image.open(tmp_path / "wheat" / "wide.png.png") as im:
        w, h = im.size
    assert (w - BAR_WIDTH) / (h - TITLE_HEIGHT) == pytest.approx(2.0, rel=0.03)  # bar, title aside
    # an earlier heat map of this command may be replaced; a user's picture may not
    assert main(["predict", str(path), str(wide), "--out", str(tmp_path / "w.csv"),
                 "--heatmaps", str(tmp_path / "wheat"), "--no-progress"]) == 0
    Image.new("RGB", (8, 8)).save(tmp_path / "wheat" / "wide.png.png")
    assert main(["predict", str(path), str(wide), "--out", str(tmp_path / "w.csv"),
                 "--heatmaps", str(tmp_path / "wheat"), "--no-progress"]) == 1


def test_site_prevalence(small_model, data_dir, tmp_path, capsys):
    path, _, _ = small_model
    out = tmp_path / "p.csv"
    few = sorted((data_dir / "test" / "NORMAL").iterdir())[:5]
    assert main(["predict", str(path), *map(str, few), "--out", str(out), "--site-prevalence",
                 "--no-progress"]) == 0
    assert "needs at least 30 scored images" in capsys.readouterr().err
    assert "pneumonia_score_at_site_prevalence" not in read_rows(out)[0]
    many = [f for c in ("NORMAL", "PNEUMONIA") for f in sorted((data_dir / "test" / c).iterdir())[:20]]
    assert main(["predict", str(path), *map(str, many), "--out", str(out), "--site-prevalence",
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    import re
    prior, lo, hi = map(float, re.search(r"images: ([\d.]+) \(95% interval ([\d.]+)-([\d.]+)",
                                         err).groups())
    assert 0 <= lo <= prior <= hi <= 1
    # a model file without a measurement of the estimate: said so, and no re-weighted scores
    # (tests/test_site.py: the re-weighted scores when the model file's measurement found
    # that re-weighting helps)
    assert "an estimate from the scores alone" in err and "not measured" in err
    assert "pneumonia_score_at_site_prevalence" not in read_rows(out)[0]


def test_model_files_that_are_refused(small_model, tmp_path, capsys):
    import keras

    path, _, _ = small_model
    plain = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]).save(plain)
    with pytest.raises(modelfile.ModelFileError, match="without pneumo's metadata"):
        modelfile.load(plain)

    newer = tmp_path / "newer.keras"
    shutil.copyfile(path, newer)
    info = json.loads(zipfile.ZipFile(newer).read("pneumo.json"))
    info["format_version"] = modelfile.FORMAT_VERSION + 1
    rewrite_metadata(newer, info)
    with pytest.raises(modelfile.ModelFileError, match="model file format 3"):
        modelfile.load(newer)

    # a model with a Python lambda: Keras' safe mode refuses to run it
    lam = tmp_path / "lambda.keras"
    model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Lambda(lambda x: x * 2),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
    modelfile.save(model, lam, json.loads(zipfile.ZipFile(path).read("pneumo.json")))
    with pytest.raises(modelfile.ModelFileError, match="holds a Keras Lambda layer") as err:
        modelfile.load(lam)
    assert "\n" not in str(err.value)

    (tmp_path / "junk.keras").write_text("not a zip")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "junk.keras"), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a .keras model file" in err and err.count("\n") == 1


def test_predict_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    for option in ("--out", "--heatmaps", "--batch-size", "--site-prevalence", "--no-progress",
                   "PATH", "DICOM"):
        assert option in text


def test_python_dash_m_works_too():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "pneumo_helpers", "predict", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--heatmaps" in out.stdout
