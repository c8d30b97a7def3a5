"""The loader on the real shared data, and every bad-input case on tiny folders."""

from pathlib import Path

import pytest

from pneumo_helpers.data import load_image_table
from pneumo_helpers.data.table import main as check_data_main
from pneumo_helpers.data.table import parse_filename
from pneumo_helpers.errors import DataError

from .conftest import write_image

# Counts from ../shared/data/README.md
EXPECTED = {("train", "NORMAL"): 1107, ("train", "PNEUMONIA"): 3484,
            ("val", "NORMAL"): 8, ("val", "PNEUMONIA"): 8,
            ("test", "NORMAL"): 234, ("test", "PNEUMONIA"): 391}


def test_counts_match_shared_readme(table):
    counts = table.groupby(["split", "class_name"]).size().to_dict()
    assert counts == EXPECTED
    assert set(table["label"]) == {0, 1}
    assert (table["label"] == (table["class_name"] == "PNEUMONIA")).all()


def test_types_and_patients_on_real_names(table):
    pneu = table[table["label"] == 1]
    assert set(pneu["type"]) == {"bacteria", "virus"}
    assert (table.loc[table["label"] == 0, "type"] == "normal").all()
    assert pneu["patient"].str.fullmatch(r"person\d+").all()
    normal = table[table["label"] == 0]
    assert normal["patient"].str.fullmatch(r"(NORMAL\d-)?IM-\d+").all()
    # several images per patient exist, which is why splits go by patient
    assert table.groupby("patient").size().max() > 1
    # the README: train and test hold different patients
    train_p = set(table.loc[table["split"] == "train", "patient"])
    test_p = set(table.loc[table["split"] == "test", "patient"])
    assert not train_p & test_p


@pytest.mark.parametrize("name,cls,expected", [
    ("person1_virus_6.jpeg", "PNEUMONIA", ("virus", "person1")),
    ("person1438_bacteria_3721.jpeg", "PNEUMONIA", ("bacteria", "person1438")),
    ("person1_virus_12_2.jpeg", "PNEUMONIA", ("virus", "person1")),
    ("IM-0115-0001.jpeg", "NORMAL", ("normal", "IM-0115")),
    ("IM-0117-0001-0002.jpeg", "NORMAL", ("normal", "IM-0117")),
    ("NORMAL2-IM-0381-0001.jpeg", "NORMAL", ("normal", "NORMAL2-IM-0381")),
    ("scan7.png", "PNEUMONIA", ("unknown", None)),
    ("scan7.png", "NORMAL", ("normal", None)),
])
def test_parse_filename(name, cls, expected):
    assert parse_filename(name, cls) == expected


def test_tiny_folder_loads(tiny_data):
    t = load_image_table(tiny_data)
    assert len(t) == 18
    assert set(t["channels"]) == {1, 3}
    assert set(t["type"]) == {"normal", "bacteria", "virus"}


def snapshot(root: Path):
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in root.rglob("*"))


def test_data_folder_is_only_read(tiny_data):
    from pneumo_helpers.data.pipeline import load_arrays
    before = snapshot(tiny_data)
    load_arrays(load_image_table(tiny_data), image_size=16)
    assert snapshot(tiny_data) == before


def test_hidden_and_system_files_are_skipped(tiny_data):
    folder = tiny_data / "train" / "NORMAL"
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "._IM-0000-0001.jpeg").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork
    (tiny_data / ".DS_Store").write_bytes(b"x")
    (tiny_data / "__MACOSX").mkdir()
    assert len(load_image_table(tiny_data)) == 18


def test_png_is_accepted(tiny_data):
    write_image(tiny_data / "train" / "NORMAL" / "IM-0999-0001.png", fmt="PNG")
    t = load_image_table(tiny_data)
    assert t["path"].str.endswith(".png").sum() == 1


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_missing_data_folder(tmp_path):
    with pytest.raises(DataError) as err:
        load_image_table(tmp_path / "nowhere")
    msg = one_line(err)
    assert "nowhere" in msg and "chest-xray-pneumonia" in msg


@pytest.mark.parametrize("missing", ["val", "test/PNEUMONIA", "train/NORMAL"])
def test_missing_split_or_class_folder(tiny_data, missing):
    import shutil
    shutil.rmtree(tiny_data / missing)
    with pytest.raises(DataError) as err:
        load_image_table(tiny_data)
    msg = one_line(err)
    assert str(tiny_data / missing) in msg or str(tiny_data / missing.split("/")[0]) in msg
    assert "{NORMAL,PNEUMONIA}" in msg


def test_empty_class_folder(tiny_data):
    folder = tiny_data / "test" / "NORMAL"
    for p in folder.iterdir():
        p.unlink()
    (folder / ".DS_Store").write_bytes(b"x")  # hidden files do not count as images
    with pytest.raises(DataError, match="no images in") as err:
        load_image_table(tiny_data)
    assert str(folder) in one_line(err)


def _cmyk(path):
    # PIL reads it; TensorFlow's decoder, which the pipeline uses, cannot
    import numpy as np
    from PIL import Image
    Image.fromarray(np.zeros((30, 40, 4), "uint8"), "CMYK").save(path, "JPEG")


def _huge(path):
    from PIL import Image
    Image.new("L", (8000, 7000)).save(path, "PNG")


def _truncated(path):
    write_image(path, size=(200, 200))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_header(path):
    write_image(path, size=(200, 200))
    data = bytearray(path.read_bytes())
    data[200:600] = b"\xff" * 400
    path.write_bytes(bytes(data[:-2]))


@pytest.mark.parametrize("make_bad,words", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_text("these are not the pixels you are looking for"), "not an image"),
    (_truncated, "TensorFlow cannot decode this JPEG"),
    (_corrupt_header, "not an image"),
    (lambda p: write_image(p, fmt="GIF", mode="L"), "GIF image"),
    (lambda p: write_image(p, fmt="BMP", mode="RGB"), "BMP image"),
    (lambda p: _cmyk(p), "CMYK"),
    (lambda p: _huge(p), "absurdly large image (8000 x 7000 pixels)"),
])
def test_bad_image_files(tiny_data, make_bad, words):
    bad = tiny_data / "train" / "PNEUMONIA" / "person99_virus_1.jpeg"
    make_bad(bad)
    with pytest.raises(DataError) as err:
        load_image_table(tiny_data)
    msg = one_line(err)
    assert str(bad) in msg and words in msg


def test_unexpected_file_type(tiny_data):
    stray = tiny_data / "val" / "NORMAL" / "notes.txt"
    stray.write_text("hello")
    with pytest.raises(DataError, match="unexpected file") as err:
        load_image_table(tiny_data)
    assert str(stray) in one_line(err)


def test_check_data_command(tiny_data, tmp_path, capsys):
    assert check_data_main([str(tiny_data)]) == 0
    assert "18 images" in capsys.readouterr().out
    assert check_data_main([str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data folder not found") and "\n" not in err


def test_data_error_renders_as_one_line_in_jupyter():
    lines = DataError("missing folder: x").__class__("missing folder: x")._render_traceback_()
    assert lines == ["DataError: missing folder: x"]


def test_every_accepted_file_decodes_in_the_pipeline(tiny_data):
    # the rule: what the check accepts, the training pipeline decodes
    from pneumo_helpers.data.pipeline import make_dataset
    write_image(tiny_data / "train" / "NORMAL" / "IM-0500-0001.png", mode="RGB", fmt="PNG")
    table = load_image_table(tiny_data)
    assert sum(len(y) for _, y in make_dataset(table, 16, 4)) == len(table)


def test_broken_link_and_link_loop(tiny_data):
    folder = tiny_data / "train" / "NORMAL"
    (folder / "IM-0100-0001.jpeg").symlink_to(tiny_data / "nowhere.jpeg")
    with pytest.raises(DataError, match="broken symbolic link") as err:
        load_image_table(tiny_data)
    assert "IM-0100-0001.jpeg" in one_line(err)
    (folder / "IM-0100-0001.jpeg").unlink()
    (folder / "loop_a").symlink_to(folder / "loop_b")
    (folder / "loop_b").symlink_to(folder / "loop_a")
    with pytest.raises(DataError, match="cannot follow") as err:
        load_image_table(tiny_data)
    assert "loop_" in one_line(err)


def test_linked_images_and_folders_are_read(tiny_data, tmp_path):
    # a data folder reached through a link, with a linked image inside, is fine
    outside = tmp_path / "elsewhere.jpeg"
    write_image(outside)
    (tiny_data / "train" / "NORMAL" / "IM-0200-0001.jpeg").symlink_to(outside)
    link = tmp_path / "link_to_data"
    link.symlink_to(tiny_data)
    assert len(load_image_table(link)) == 19


def test_unreadable_folder_and_file(tiny_data, monkeypatch):
    # chmod does not stop root (CI runs as root), so the refusal is simulated
    folder = tiny_data / "test" / "PNEUMONIA"
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(DataError, match="permission denied") as err:
        load_image_table(tiny_data)
    assert str(folder) in one_line(err)
    monkeypatch.undo()

    image = tiny_data / "val" / "NORMAL" / "IM-0001-0001.jpeg"
    import PIL.Image
    real_open = PIL.Image.open

    def refuse(fp, *args, **kwargs):
        if str(fp) == str(image):
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", refuse)
    with pytest.raises(DataError, match="permission denied") as err:
        load_image_table(tiny_data)
    assert str(image) in one_line(err)


def test_file_name_the_pipeline_cannot_encode(tiny_data):
    import os
    folder = bytes(tiny_data / "train" / "NORMAL")
    with open(os.path.join(folder, b"IM-0300-\xff\xfe.jpeg"), "wb") as f:
        f.write((tiny_data / "train" / "NORMAL" / "IM-0000-0001.jpeg").read_bytes())
    with pytest.raises(DataError, match="not valid UTF-8") as err:
        load_image_table(tiny_data)
    assert "rename" in one_line(err)


def test_skipped_images_are_reported(tiny_data):
    import warnings as w

    from pneumo_helpers.errors import DataWarning
    write_image(tiny_data / "train" / "IM-0400-0001.jpeg")  # directly in train/
    (tiny_data / "train" / "NORMAL" / "extra").mkdir()
    write_image(tiny_data / "train" / "NORMAL" / "extra" / "IM-0401-0001.jpeg")
    (tiny_data / "test" / "COVID").mkdir()
    for i in range(2):
        write_image(tiny_data / "test" / "COVID" / f"covid{i}.jpeg")
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        table = load_image_table(tiny_data)
    notes = table.attrs["notes"]
    assert len(table) == 18 and len(notes) == 3
    assert notes[0].startswith("skipped 1 image(s) directly in") and "IM-0400-0001" in notes[0]
    assert "skipped 1 image(s) in sub-folders of" in notes[1] and "extra" in notes[1]
    assert notes[2].startswith("skipped 2 image(s) in folders of") and "COVID" in notes[2]
    assert [str(c.message) for c in caught if c.category is DataWarning] == notes


def test_names_without_a_patient_are_reported(tiny_data, capsys):
    write_image(tiny_data / "train" / "PNEUMONIA" / "scan_0001.jpeg")
    with pytest.warns(UserWarning, match="1 file name"):
        table = load_image_table(tiny_data)
    row = table[table["path"].str.endswith("scan_0001.jpeg")].iloc[0]
    assert row["patient"] == "scan_0001" and row["type"] == "unknown"
    assert check_data_main([str(tiny_data)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("note: 1 file name(s) follow no patient pattern")
    assert "its own patient" in err


def test_split_without_a_class_in_validation_is_an_error(tiny_data):
    from pneumo_helpers.data import prepare_data
    # one normal patient in train/: training keeps 1 normal image, validation none
    folder = tiny_data / "train" / "NORMAL"
    for p in sorted(folder.iterdir())[1:]:
        p.unlink()
    with pytest.raises(DataError, match="too few images in train: 1 normal.*lower val_fraction") as err:
        prepare_data(tiny_data)
    one_line(err)


def test_too_few_validation_images_name_the_parameters(data_dir):
    from pneumo_helpers.data import prepare_data
    with pytest.raises(DataError, match=r"too few images in validation: \d normal.*"
                       r"val_fraction 0.001.*raise val_fraction or raise max_train_images") as err:
        prepare_data(data_dir, val_fraction=0.001, max_train_images=40)
    assert "max_train_images 40" in str(err.value)
    one_line(err)


def test_byte_identical_images_are_reported(tiny_data):
    import shutil
    # a copy inside train (kept, noted) and a copy of a train image in test (a leak)
    src = tiny_data / "train" / "PNEUMONIA" / "person1_bacteria_1.jpeg"
    shutil.copyfile(src, tiny_data / "train" / "PNEUMONIA" / "person1_bacteria_9.jpeg")
    shutil.copyfile(src, tiny_data / "test" / "PNEUMONIA" / "person7_bacteria_7.jpeg")
    with pytest.warns(UserWarning) as caught:
        table = load_image_table(tiny_data)
    notes = table.attrs["notes"]
    assert any(n.startswith("2 images are byte-identical copies of another (1 group") for n in notes)
    assert any("cross" in n and "leak" in n and "person7_bacteria_7" in n for n in notes)
    assert {str(w.message) for w in caught} >= set(notes)


@pytest.mark.parametrize("spelling", ["{d}/train/out", "{d}/train/../out/", "{d}//x/", "link"])
def test_output_inside_data_folder_refused_however_spelled(tiny_data, tmp_path, spelling,
                                                           monkeypatch):
    from pneumo_helpers.use.runfolder import check_output_dir
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(tiny_data)
    out = spelling.format(d=tiny_data)
    with pytest.raises(ValueError, match="inside the data folder"):
        check_output_dir(out, tiny_data)
    relative = os_relpath(tiny_data, tmp_path)
    with pytest.raises(ValueError, match="inside the data folder"):
        check_output_dir(out, relative + "/")


def os_relpath(path, start):
    import os
    return os.path.relpath(path, start)


def test_tilde_means_home(tmp_path, monkeypatch, tiny_data):
    from pneumo_helpers.use.runfolder import check_output_dir
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = check_output_dir("~/reports", tiny_data)
    assert out == (tmp_path / "home" / "reports").resolve() and out.is_dir()
    monkeypatch.setenv("HOME", str(tiny_data))  # a home inside the data folder is refused too
    with pytest.raises(ValueError, match="inside the data folder"):
        check_output_dir("~/x", tiny_data)


def test_data_folder_read_through_gfile(tiny_data):
    # any path tf.io.gfile reads (here TensorFlow's in-memory file system; gs://
    # and others where the installed TensorFlow supports them) works as data_dir
    import tensorflow as tf

    from pneumo_helpers.data.pipeline import make_dataset
    root = "ram://pneumo_test/chest_xray"
    for p in tiny_data.rglob("*.jpeg"):
        target = f"{root}/{p.relative_to(tiny_data).as_posix()}"
        tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
        tf.io.gfile.GFile(target, "wb").write(p.read_bytes())
    table = load_image_table(root + "/")
    local = load_image_table(tiny_data)
    assert len(table) == len(local) == 18
    assert table["path"].str.startswith(root).all()
    assert sorted(table["patient"]) == sorted(local["patient"])
    assert (table[["width", "height", "channels"]].to_numpy()
            == local[["width", "height", "channels"]].to_numpy()).all()
    batches = list(make_dataset(table, 16, 6))
    assert sum(len(y) for _, y in batches) == 18
    with pytest.raises(DataError, match="data folder not found"):
        load_image_table("ram://pneumo_test/nowhere")


def test_make_results_refuses_an_output_inside_the_data_folder(tiny_data):
    # the Makefile checks OUT_DIR before papermill or mkdir can write anything
    import shutil
    import subprocess

    from .conftest import ROOT
    if not (ROOT / ".venv" / ".installed").exists() or shutil.which("make") is None:
        pytest.skip("needs the project's .venv (make test creates it) and make")
    before = snapshot(tiny_data)
    out = subprocess.run(["make", "-s", "results", f"DATA_DIR={tiny_data}",
                          f"OUT_DIR={tiny_data}/train/reports"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "inside the data folder" in out.stderr
    assert snapshot(tiny_data) == before  # nothing written, not even the folder
