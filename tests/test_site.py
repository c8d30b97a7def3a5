"""Scoring at a new site: the out-of-distribution check (real X-rays pass;
upside-down and inverted X-rays, photographs, drawings, noise, constant and
tiny images do not), the shift summary, the site-prevalence estimate and its
measurement, the report page in a real browser, and DICOM views and
modalities."""

import csv
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageOps

from pneumo_helpers.cli import main, site_prevalence
from pneumo_helpers.use import modelfile, ood, site
from pneumo_helpers.use.scoring import BAR_WIDTH, TITLE_HEIGHT, score_images

from .conftest import rewrite_metadata

SIZE = 32


@pytest.fixture(scope="module")
def split(data_dir):
    from pneumo_helpers.data import prepare_data
    return prepare_data(data_dir, "binary", SIZE, 32, seed=3, max_train_images=200)


@pytest.fixture(scope="module")
def model(split, tmp_path_factory):
    """A tiny equalised CNN (32 px, 200 training images, 2 epochs) with its
    reference of the training images, saved; and one without a reference."""
    from pneumo_helpers.modeling import recipes

    trained = recipes.fit_recipe("equalized", split, seed=3, epochs=2)
    ref = ood.reference(trained, split, n_boot=50)
    doc = {"stress": {"original": {"auc": 0.9, "recall": 0.98, "specificity": 0.8},
                      "zoom_in_1.2": {"auc": 0.88, "recall": 0.99, "specificity": 0.55},
                      "gamma_1.4": {"auc": 0.9, "recall": 0.98, "specificity": 0.7}}}
    folder = tmp_path_factory.mktemp("models")
    path = modelfile.save(trained.model, folder / "model.keras",
                          modelfile.model_info(trained, split, doc, reference=ref))
    old = modelfile.save(trained.model, folder / "old.keras",
                         modelfile.model_info(trained, split))
    return SimpleNamespace(path=path, old=old, trained=trained, reference=ref,
                           saved=modelfile.load(path))


@pytest.fixture(scope="module")
def unseen(split, table):
    """Real X-rays of patients the tiny model's split never saw (train/ folder
    only: test/ is for the final report)."""
    used = set(split.table["patient"])
    rest = table[(table["split"] == "train") & ~table["patient"].isin(used)]
    rest = rest.groupby("patient").head(1)
    picked = [rest[rest["label"] == c].sample(20, random_state=0) for c in (0, 1)]
    return [Path(p) for part in picked for p in part["path"]]


@pytest.fixture(scope="module")
def others(unseen, tmp_path_factory):
    """Upside-down (rotated and flipped) and inverted X-rays, photographs and
    drawings that matplotlib ships, noise, constant and tiny images."""
    import matplotlib
    from matplotlib.cbook import get_sample_data

    root = tmp_path_factory.mktemp("others")
    folders = {k: root / k for k in ("rotated", "flipped", "inverted", "pictures", "noise",
                                     "unreadable")}
    for f in folders.values():
        f.mkdir()
    for p in unseen[::4]:
        im = Image.open(p).convert("L")
        im.rotate(180).save(folders["rotated"] / p.name)
        im.transpose(Image.FLIP_TOP_BOTTOM).save(folders["flipped"] / p.name)
        ImageOps.invert(im).save(folders["inverted"] / p.name)
    mpl = Path(matplotlib.get_data_path())
    shutil.copyfile(get_sample_data("grace_hopper.jpg", asfileobj=False),
                    folders["pictures"] / "grace_hopper.jpg")
    for name in ("logo2.png", "Minduka_Present_Blue_Pack.png"):
        shutil.copyfile(mpl / "sample_data" / name, folders["pictures"] / name)
    for name in ("home_large.png", "matplotlib_large.png", "subplots_large.png"):
        icon = Image.open(mpl / "images" / name).convert("RGBA")
        white = Image.new("RGBA", icon.size, "white")
        white.alpha_composite(icon)
        white.convert("L").resize((288, 288), Image.NEAREST).save(
            folders["pictures"] / f"drawing_{name}")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (256, 256), np.uint8)).save(folders["noise"] / "u.png")
    Image.fromarray(np.clip(rng.normal(128, 40, (300, 300)), 0, 255).astype(np.uint8)).save(
        folders["noise"] / "g.jpeg")
    Image.new("L", (300, 300), 128).save(folders["unreadable"] / "constant.png")
    Image.open(unseen[0]).convert("L").resize((40, 40)).save(folders["unreadable"] / "tiny.png")
    shutil.copyfile(mpl / "images" / "hand.png", folders["unreadable"] / "hand_icon.png")
    return folders


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def by_name(rows):
    return {Path(r["path"]).name: r for r in rows}


# ----------------------------------------------------------- the reference

def test_the_reference_is_small_json_and_travels_in_the_model_file(model, tmp_path):
    ref, info = model.reference, model.saved.info
    text = json.dumps(ref)
    assert len(text) < 200_000  # 128 features: the whitening matrix packed, about 50 kB
    assert ref["features"]["dim"] == 128 and ref["features"]["n_train"] == 200
    assert info["reference"]["features"]["threshold"] == ref["features"]["threshold"]
    assert set(ref["training"]) == set(ood.STATISTICS)
    assert info["stress"]["zoom_in_1.2"]["specificity"] == 0.55  # from doc["stress"]
    assert sum(ref["scores"]["normal"]) + sum(ref["scores"]["pneumonia"]) == 34
    assert ref["prevalence"]["verdict"] in ("helps", "estimate only")
    # the training images' own distances follow the whitening: mean distance near sqrt(dim)
    # at most (shrinkage pulls it below)
    assert 3 < ref["training_in_sample_distance"][8] < 2 * np.sqrt(128)
    # a damaged reference is refused with the file, in one line
    bad = tmp_path / "bad.keras"
    shutil.copyfile(model.path, bad)
    broken = json.loads(zipfile.ZipFile(bad).read("pneumo.json"))
    broken["reference"]["features"]["whitening"] = "AAAA"
    rewrite_metadata(bad, broken)
    with pytest.raises(modelfile.ModelFileError, match="unreadable reference"):
        modelfile.load(bad)


# ------------------------------------------------------------ the checks

def test_real_xrays_pass_and_everything_else_is_refused(model, unseen, others):
    saved = model.saved
    rows = score_images(saved, unseen)
    passed = [r for r in rows if r["status"] == "scored"]
    assert len(passed) >= 0.9 * len(rows)  # real X-rays of unseen patients: nearly all pass
    assert all(r["decision"] in ("normal", "pneumonia") and r["feature_distance"] for r in passed)

    refused = {}
    for kind in ("rotated", "flipped", "inverted", "pictures", "noise"):
        rows = score_images(saved, others[kind], rescale=True)
        refused[kind] = np.mean([r["status"] == "out_of_distribution" for r in rows])
        for r in rows:
            if r["status"] == "out_of_distribution":
                # its score kept for the record, but no decision and nothing decided from it
                assert r["pneumonia_score"] != "" and r["decision"] == ""
                assert "score_at_0.5" not in r
                assert r["reason"].startswith("not like the training X-rays: ")
    assert refused["pictures"] == refused["noise"] == 1.0
    assert refused["inverted"] >= 0.8 and refused["rotated"] >= 0.8 and refused["flipped"] >= 0.8
    rows = by_name(score_images(saved, others["inverted"]))
    assert sum("looks like a negative" in r["reason"] for r in rows.values()) >= 0.8 * len(rows)
    rows = by_name(score_images(saved, others["rotated"]))
    assert sum("looks upside down" in r["reason"] for r in rows.values()) >= 0.6 * len(rows)
    rows = by_name(score_images(saved, others["pictures"]))
    assert "a colour image" in rows["grace_hopper.jpg"]["reason"]
    # constant and tiny images: the reader's own limits, before any model sees them
    rows = by_name(score_images(saved, others["unreadable"]))
    assert {r["status"] for r in rows.values()} == {"error"}
    assert "without contrast" in rows["constant.png"]["reason"]
    assert "too small to be a chest X-ray" in rows["tiny.png"]["reason"]
    assert all(r["pneumonia_score"] == "" for r in rows.values())


def test_an_older_model_file_skips_the_feature_checks_with_a_note(model, unseen, others,
                                                                  tmp_path, capsys):
    out = tmp_path / "p.csv"
    status = main(["predict", str(model.old), str(unseen[0]), str(others["pictures"]),
                   str(others["noise"]), "--out", str(out), "--no-progress"])
    assert status == 1
    rows = by_name(read_rows(out))
    assert "feature_distance" not in rows[unseen[0].name]
    assert rows[unseen[0].name]["status"] == "scored"
    # the intensity and lung-field checks still refuse colour pictures and noise
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "u.png", "g.jpeg"):
        assert rows[name]["status"] == "out_of_distribution", rows[name]
    captured = capsys.readouterr()
    assert "network-feature checks were skipped" in captured.out
    assert all(line.startswith(("refused: ", "error: ")) for line in captured.err.splitlines())


# ----------------------------------------------------------- shift summary

def _fake_model(ref):
    stress = {"zoom_in_1.2": {"auc": 0.95, "recall": 0.99, "specificity": 0.66},
              "zoom_out_0.8": {"auc": 0.96, "recall": 0.97, "specificity": 0.9},
              "gamma_1.4": {"auc": 0.96, "recall": 0.98, "specificity": 0.8}}
    return SimpleNamespace(info={"reference": ref, "stress": stress,
                                 "validation": {"specificity": 0.95, "recall": 0.98}},
                           threshold=0.25)


def _rows(n, **figures):
    rng = np.random.default_rng(0)
    return [{"status": "scored", "_figures": {k: float(v + 0.01 * rng.standard_normal())
                                              for k, v in figures.items()}} for _ in range(n)]


def test_a_folder_unlike_the_training_data_is_named_as_such(model):
    ref = model.reference
    levels, train = ref["quantile_levels"], ref["training"]
    median = {k: float(np.interp(0.5, levels, train[k])) for k in site.FIGURES}
    top = float(np.interp(0.99, levels, train["lung_box_area"]))
    saved = _fake_model(ref)
    # lungs filling the frame more than in 99% of training images: a framing shift, and the
    # zoomed-in view's specificity quoted
    summary = site.shift_summary(_rows(40, **{**median, "lung_box_area": top}), saved)
    assert summary["verdict"] == "shifted"
    assert summary["figures"]["lung_box_area"]["direction"] == "higher"
    assert summary["views"]["lung_box_area"]["view"] == "zoom_in_1.2"
    text = summary["text"]
    assert "framing" in text and "lungs filling more of the frame than in 90% of training" in text
    assert "zoomed-in (1.2x) view" in text and "specificity 0.66" in text
    assert "exposure" not in text.split(":")[0]  # only what moved is named
    # the same images as training: no shift
    summary = site.shift_summary(_rows(40, **median), saved)
    assert summary["verdict"] == "like training"
    assert "resemble the training X-rays" in summary["text"]
    # too few to say
    summary = site.shift_summary(_rows(12, **{**median, "lung_box_area": top}), saved)
    assert summary["verdict"] is None and "too few to say" in summary["text"]
    # a file without a reference cannot compare
    summary = site.shift_summary(_rows(40, **median), SimpleNamespace(info={}, threshold=0.3))
    assert summary["verdict"] is None and "no reference" in summary["text"]


def test_the_summary_of_a_real_folder_is_printed_after_scoring(model, unseen, tmp_path,
                                                               capsys):
    folder = tmp_path / "zoomed"
    folder.mkdir()
    for p in unseen:  # zoomed in 1.4x about the centre: lungs fill the frame
        im = Image.open(p).convert("L")
        w, h = im.size
        im.crop((w // 7, h // 7, w - w // 7, h - h // 7)).save(folder / p.name)
    assert main(["predict", str(model.path), str(folder), "--out", str(tmp_path / "z.csv"),
                 "--no-progress"]) in (0, 1)
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("this folder against the training")]
    assert len(line) == 1 and "unlike the training data in framing" in line[0]
    assert "zoomed-in (1.2x) view" in line[0] and "specificity 0.55" in line[0]


# --------------------------------------------------------- site prevalence

def test_the_prevalence_estimate_is_measured():
    rng = np.random.default_rng(1)
    n = 600
    labels = rng.random(n) < 0.5
    u = rng.random(n)
    calibrated = np.where(labels, np.sqrt(u), 1 - np.sqrt(u))  # P(pneumonia | s) = s at 0.5
    check = site.check_prevalence_estimate(calibrated, labels, (0.2, 0.8), n_boot=40,
                                           sizes=(200,))
    assert [r["prevalence"] for r in check["rows"]] == [0.2, 0.8]
    assert check["summary"]["largest_abs_bias"] < 0.05
    assert check["verdict"] == "helps"  # re-weighting calibrated scores to the prevalence helps
    assert check["summary"]["brier_reweighted"] < check["summary"]["brier_raw"]
    # over-confident scores: the estimate drifts and re-weighting no longer helps everywhere
    skewed = np.clip(calibrated ** 3, 1e-4, 1 - 1e-4)
    worse = site.check_prevalence_estimate(skewed, labels, (0.2, 0.8), n_boot=40,
                                           sizes=(200,))
    assert worse["summary"]["largest_abs_bias"] > check["summary"]["largest_abs_bias"]
    assert "off by up to" in site.measured_error_phrase({"prevalence": worse})


def test_site_prevalence_reweights_only_where_it_was_measured_to_help(model, unseen, capsys):
    saved = model.saved
    rows = score_images(saved, unseen)
    kept = saved.info["reference"]["prevalence"]["verdict"]
    try:
        saved.info["reference"]["prevalence"]["verdict"] = "estimate only"
        line = site_prevalence(rows, saved)
        assert "an estimate from the scores alone" in line and "off by up to" in line
        assert "no re-weighted scores" in line
        assert not any("pneumonia_score_at_site_prevalence" in r for r in rows)
        saved.info["reference"]["prevalence"]["verdict"] = "helps"
        line = site_prevalence(rows, saved)
        assert "pneumonia_score_at_site_prevalence" in line
        assert all("pneumonia_score_at_site_prevalence" in r for r in rows
                   if r["status"] == "scored")
        assert not any("pneumonia_score_at_site_prevalence" in r for r in rows
                       if r["status"] != "scored")
    finally:
        saved.info["reference"]["prevalence"]["verdict"] = kept
    capsys.readouterr()


# -------------------------------------------------------------- the page

def is_page(path) -> bool:
    return site.is_report(path) and path.stat().st_size > 10_000


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_the_report_page_in_a_real_browser(model, unseen, others, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    for p in unseen[:32]:
        shutil.copyfile(p, folder / p.name)
    for p in (others["pictures"] / "grace_hopper.jpg",
              others["pictures"] / "drawing_home_large.png",
              *sorted(others["inverted"].iterdir())[:2]):
        shutil.copyfile(p, folder / f"{p.parent.name}_{p.name}")
    shutil.copyfile(others["unreadable"] / "tiny.png", folder / "tiny.png")
    report = tmp_path / "report"
    args = ["predict", str(model.path), str(folder), "--out", str(tmp_path / "p.csv"),
            "--report", str(report), "--no-progress"]
    assert main(args) == 1
    page = report / site.REPORT_NAME
    text = page.read_text()
    rows = read_rows(tmp_path / "p.csv")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("scored", "out_of_distribution",
                                                               "error")}
    assert counts["error"] == 1 and counts["out_of_distribution"] >= 4
    assert f"<td>{counts['scored']}</td>" in text and f"<td>{counts['error']}</td>" in text
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) >= 2 + 6  # histogram, shift figure, and the heat maps
    assert "http" not in text.replace("http-equiv", "")  # self-contained
    assert "grace_hopper.jpg" in text and "a colour image" in text and "too small" in text
    assert "against the training data" in text
    # the page of an earlier run may be replaced; a user's own file may not, nor a folder
    # being scored hold the page
    assert main(args) == 1 and is_page(page)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / site.REPORT_NAME).write_text("<html>my notes</html>")
    assert main([*args[:-3], "--report", str(mine), "--no-progress"]) == 1
    assert (mine / site.REPORT_NAME).read_text() == "<html>my notes</html>"
    assert main([*args[:-3], "--report", str(folder / "r"), "--no-progress"]) == 1
    assert not (folder / "r").exists()
    # and in a real browser
    browser = chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium for the report page (.ci/run installs it)")
        pytest.skip("no chromium (apt-get install -y chromium)")
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,2000", page.resolve().as_uri()],
        capture_output=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB"), dtype=float)
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels.std() > 20  # not a blank page
    assert (np.abs(pixels[..., 0] - pixels[..., 2]) > 60).mean() > 0.005  # the coloured figures


# ----------------------------------------------------------------- DICOM

def _dicom(path, pixels, **elements):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 12, 11
    ds.PixelRepresentation = 0
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = pixels.astype("uint16").tobytes()
    for k, v in elements.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_views_modalities_and_heat_maps(model, unseen, tmp_path):
    pytest.importorskip("pydicom")
    gray = np.asarray(Image.open(unseen[0]).convert("L").resize((300, 200)), dtype=float)
    pixels = np.round(gray * 4095 / 255)
    folder = tmp_path / "dicom"
    folder.mkdir()
    common = dict(PatientID="P1", StudyInstanceUID="1.2.3.4")
    _dicom(folder / "frontal.dcm", pixels, Modality="DX", ViewPosition="PA", **common)
    _dicom(folder / "lateral.dcm", pixels, Modality="DX", ViewPosition="LL", **common)
    _dicom(folder / "ct.dcm", pixels, Modality="CT", ViewPosition="", **common)
    out, heat = tmp_path / "d.csv", tmp_path / "heat"
    assert main(["predict", str(model.path), str(folder), "--out", str(out), "--heatmaps",
                 str(heat), "--no-progress"]) == 1
    rows = by_name(read_rows(out))
    assert rows["frontal.dcm"]["status"] == "scored"
    for name, words in (("lateral.dcm", "a lateral view (ViewPosition LL)"),
                        ("ct.dcm", "modality CT, not a projection radiograph")):
        assert rows[name]["status"] == "out_of_distribution" and words in rows[name]["reason"]
        assert rows[name]["pneumonia_score"] == "" and rows[name]["heatmap"] == ""
    for r in rows.values():
        assert (r["PatientID"], r["StudyInstanceUID"]) == ("P1", "1.2.3.4")
    assert [rows[n]["ViewPosition"] for n in ("frontal.dcm", "lateral.dcm")] == ["PA", "LL"]
    assert [rows[n]["Modality"] for n in ("frontal.dcm", "ct.dcm")] == ["DX", "CT"]
    with Image.open(rows["frontal.dcm"]["heatmap"]) as im:
        w, h = im.size
    assert (w - BAR_WIDTH) / (h - TITLE_HEIGHT) == pytest.approx(1.5, rel=0.03)  # its 300 x 200


def test_one_segmenter_pass_serves_the_crop_and_the_lung_check(data_dir):
    """A model that crops to the lung fields segments the image resized to the
    segmenter's input, which is what the lung check segments: the measurer
    runs the segmenter once for both, with the same figures to the bit as the
    parts measured one by one (scores, features, variants, lung checks)."""
    from pneumo_helpers.modeling.recipes import get_recipe
    from pneumo_helpers.tasks import get_task

    recipe = get_recipe("lung_crop")
    model = recipe.inference_model([recipe.build(80, get_task("binary"), 0)])
    measurer = ood.Measurer(model)
    assert measurer.size == 144 and "scores+variants+lungs" in measurer._parts
    paths = [str(p) for cls in ("NORMAL", "PNEUMONIA")
             for p in sorted((data_dir / "train" / cls).iterdir())[:4]]
    for image, check, _ in measurer.decoded(paths).batch(8):
        for parts, alone in ((("scores", "lungs", "variants"), ("scores", "variants")),
                             (("features", "lungs"), ("features",))):
            joined = measurer(image, check, parts)
            separate = {}
            for part in alone:
                separate.update({k: v.numpy() for k, v in measurer._parts[part](image).items()})
            separate.update({k: v.numpy() for k, v in measurer._parts["lungs"](check).items()})
            separate.update(ood.lung_checks(separate.pop("probability"), separate["boxes"],
                                            separate["found"]))
            assert set(joined) == set(separate)
            for key, value in joined.items():
                if value.dtype == object:
                    assert list(value) == list(separate[key]), key
                else:
                    np.testing.assert_array_equal(value, separate[key], err_msg=key)
    # a model without the crop keeps the separate passes
    plain = get_recipe("equalized")
    assert "scores+lungs" not in ood.Measurer(plain.inference_model(
        [plain.build(80, get_task("binary"), 0)]))._parts


def test_features_come_from_the_network_the_reference_version_names(data_dir):
    """References of version 2 hold the first seed's network's features (one
    pass per turned or inverted copy), version 1 the mean over the networks:
    the measurer reads them so, for the image and for its copies, and
    scoring picks the source from the model file's reference."""
    from pneumo_helpers.modeling.recipes import get_recipe
    from pneumo_helpers.tasks import get_task
    from pneumo_helpers.use import scoring

    recipe = get_recipe("lung_crop")
    nets = [recipe.build(80, get_task("binary"), s) for s in (0, 1)]
    both, first = recipe.inference_model(nets), recipe.inference_model(nets[:1])
    paths = [str(p) for p in sorted((data_dir / "train" / "NORMAL").iterdir())[:4]]
    parts = ("scores", "lungs", "variants")
    measured = {}
    for name, model, source in (("first", both, "first"), ("mean", both, "mean"),
                                ("alone", first, "mean")):
        m = ood.Measurer(model, source)
        image, check, _ = next(iter(m.decoded(paths).batch(4)))
        measured[name] = m(image, check, parts)
    for key in ("features", "variant_features"):
        np.testing.assert_allclose(measured["first"][key], measured["alone"][key], atol=1e-5)
        assert not np.allclose(measured["mean"][key], measured["alone"][key], atol=1e-3)
    np.testing.assert_array_equal(measured["first"]["per_network"],
                                  measured["mean"]["per_network"])
    assert measured["first"]["per_network"].shape[1] == 2
    with pytest.raises(ValueError, match="features_of"):
        ood.Measurer(both, "all")
    for version, source in ((1, "mean"), (2, "first"), (None, "first")):
        saved = SimpleNamespace(model=both, info={"reference": {"version": version}}
                                if version else {})
        picked = scoring._measurer(saved)
        image, check, _ = next(iter(picked.decoded(paths).batch(4)))
        np.testing.assert_allclose(picked(image, check, ("features",))["features"],
                                   measured[source]["features"], atol=1e-5)
    assert ood.REFERENCE_VERSION == 2
