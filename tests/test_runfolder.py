"""The run folder: checked before any work, one run at a time, results moved
into place only once written, and nothing replaced that no earlier run wrote."""

import json

import pytest

from pneumo_helpers.errors import ParameterError
from pneumo_helpers.use.outputs import PROJECT_ROOT
from pneumo_helpers.use.runfolder import MANIFEST, RunFolder, check_output_dir


def tiny_model():
    import keras
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


def doc():
    """The smallest metrics document the model card can be written from."""
    m = {"roc_auc": 0.9, "recall": 0.95, "specificity": 0.8, "threshold": 0.3}
    return {"params": {"recipe": "r", "n_seeds": 1, "seed": 1, "image_size": 32,
                       "target_recall": 0.95}, "task": "binary",
            "data": {"test": {"normal": 10, "pneumonia": 10}},
            "validation": {"binary": m}, "test": {"binary": m}}


def save(run):
    return run.save(doc(), tiny_model(), {"format": "pneumo-model"}, figures={})


def test_results_appear_together_and_replace_only_earlier_results(tmp_path, capsys):
    out, data = tmp_path / "out", tmp_path / "data"
    data.mkdir()
    run = RunFolder(out, data)
    assert save(run) == ["MODEL_CARD.md", "metrics.json", "model.keras"]
    assert json.loads((out / MANIFEST).read_text())["files"] == save(run)  # listed
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]
    del run
    # a second run replaces what the first wrote, and names what it leaves
    (out / "notes.txt").write_text("the user's own")
    capsys.readouterr()
    again = RunFolder(out, data)
    assert "results of an earlier run" in capsys.readouterr().out
    save(again)
    assert "left as they were: notes.txt" in capsys.readouterr().out
    assert (out / "notes.txt").read_text() == "the user's own"


def test_a_file_no_earlier_run_wrote_is_never_replaced(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.keras").write_text("the user's own model")
    with pytest.raises(ParameterError, match="holds model.keras, which no earlier run wrote"):
        RunFolder(tmp_path / "out", tmp_path / "data")
    assert (tmp_path / "out" / "model.keras").read_text() == "the user's own model"


def test_two_runs_into_one_folder_at_once(tmp_path):
    first = RunFolder(tmp_path / "out", tmp_path / "data")
    with pytest.raises(ParameterError, match="in use by another run") as err:
        RunFolder(tmp_path / "out", tmp_path / "data")
    assert "\n" not in str(err.value)
    del first  # the lock goes with the run


def test_an_output_dir_that_cannot_be_a_folder(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ParameterError, match="cannot be written") as err:
        check_output_dir(tmp_path / "a_file" / "out", tmp_path / "data")
    assert "\n" not in str(err.value)
    with pytest.raises(ParameterError, match="exists and is not a folder"):
        check_output_dir(tmp_path / "a_file", tmp_path / "data")


@pytest.mark.parametrize("spelling", [".", "./", "notebooks/..", "pneumo_helpers", "tests"])
def test_the_project_itself_is_no_output_dir(spelling, tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    with pytest.raises(ParameterError, match="of the project itself"):
        check_output_dir(spelling, tmp_path / "data")


def test_the_set_up_table_names_the_folder_results_land_in(tmp_path):
    """pneumo results runs the notebook into OUT_DIR/.staging-run-<pid>; the
    report's set-up table names OUT_DIR (and the staging folder it was
    written in), and any other output_dir as given."""
    from pneumo_helpers.parameters import parameter_table
    from pneumo_helpers.use.results import STAGING, published_dir

    staging = tmp_path / "reports" / f"{STAGING}1234"
    assert published_dir(staging) == tmp_path / "reports"
    for other in (tmp_path / "reports", tmp_path / f"{STAGING}x", tmp_path / ".staging-1234"):
        assert published_dir(other) is None
    shown = parameter_table({"output_dir": str(staging), "seed": 42})["value"]
    assert shown["output_dir"].startswith(f"{tmp_path / 'reports'} (written in {STAGING}1234")
    assert shown["seed"] == "42"
    assert parameter_table({"output_dir": "reports"})["value"]["output_dir"] == "reports"
