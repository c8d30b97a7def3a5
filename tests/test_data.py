"""The loader on the real shared data, and every bad-input case on tiny folders."""

from pathlib import Path

import pytest

from pneumo_helpers import DataError, load_image_table
from pneumo_helpers.data import main as check_data_main, parse_filename

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
    ("scan7.png", "PNEUMONIA", ("unknown", "scan7")),
    ("scan7.png", "NORMAL", ("normal", "scan7")),
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
    from pneumo_helpers.pipeline import load_arrays
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
    (_truncated, "unreadable image"),
    (_corrupt_header, "not an image"),
    (lambda p: write_image(p, fmt="GIF", mode="L"), "GIF image"),
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
