"""A papermill run of final_notebook.ipynb on a tiny configuration."""

import json
import math

import pytest

from .conftest import ROOT

METRIC_KEYS = {"roc_auc", "pr_auc", "threshold", "recall", "specificity", "precision", "f1",
               "accuracy", "confusion"}


def run_tiny(data_dir, out, **params):
    import papermill as pm

    pm.execute_notebook(
        str(ROOT / "final_notebook.ipynb"), str(out.parent / f"{out.name}.ipynb"), cwd=str(ROOT),
        parameters=dict(data_dir=str(data_dir), output_dir=str(out), image_size=32, epochs=1,
                        max_train_images=200, seed=1, **params), progress_bar=False)
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_final_notebook_tiny_run(data_dir, tmp_path):
    out = tmp_path / "reports"
    doc = run_tiny(data_dir, out)
    assert {"params", "data", "validation", "test", "timing", "stress_test"} <= set(doc)
    assert doc["params"]["image_size"] == 32 and doc["params"]["max_train_images"] == 200
    for block in ("validation", "test"):
        assert METRIC_KEYS <= set(doc[block])
        assert set(doc[block]["confusion"]) == {"tn", "fp", "fn", "tp"}
    # the confusion matrix adds up to the test images of each class
    c, n = doc["test"]["confusion"], doc["data"]["test"]
    assert c["tn"] + c["fp"] == n["NORMAL"] and c["fn"] + c["tp"] == n["PNEUMONIA"]
    assert math.isclose(doc["test"]["recall"], c["tp"] / (c["tp"] + c["fn"]))
    assert math.isclose(doc["test"]["specificity"], c["tn"] / (c["tn"] + c["fp"]))
    assert doc["test"]["threshold"] == doc["validation"]["threshold"]
    for k in ("roc_auc", "recall", "specificity"):
        lo, hi = doc["test"]["ci95"][k]
        assert 0 <= lo <= doc["test"][k] <= hi <= 1
    assert doc["data"]["train"]["NORMAL"] == doc["data"]["train"]["PNEUMONIA"] == 100
    t = doc["timing"]
    assert t["train_seconds"] > 0 and t["train_images_per_second"] > 0
    assert t["predict_images_per_second"] > 0
    for name in ("model.keras", "training_curves.png", "confusion_matrix.png", "roc_pr.png",
                 "stress_test.png", "grad_cam.png"):
        assert (out / name).stat().st_size > 0, name
    s = doc["sanity"]["confusion"]
    assert s["tn"] + s["fp"] == 8 and s["fn"] + s["tp"] == 8  # Kaggle's 16 val images


@pytest.mark.slow
def test_final_notebook_ternary_tiny_run(data_dir, tmp_path):
    out = tmp_path / "ternary"
    doc = run_tiny(data_dir, out, task="ternary")
    assert doc["params"]["task"] == "ternary"
    n = doc["data"]["test"]
    for block in ("validation", "test"):
        m = doc[block]
        assert {"accuracy", "macro_roc_auc", "per_class", "confusion", "bacterial_vs_viral",
                "binary"} <= set(m)
        assert METRIC_KEYS <= set(m["binary"])
        assert 0 <= m["macro_roc_auc"] <= 1
    t = doc["test"]
    assert sum(map(sum, t["confusion"])) == n["normal"] + n["bacteria"] + n["virus"]
    c = t["binary"]["confusion"]
    assert c["tn"] + c["fp"] == n["normal"] and c["fn"] + c["tp"] == n["bacteria"] + n["virus"]
    assert set(t["binary"]["ci95"]) == {"roc_auc", "recall", "specificity"}
    assert {"roc_auc", "sensitivity", "specificity"} <= set(t["bacterial_vs_viral"])
    assert (out / "confusion_matrix_3class.png").stat().st_size > 0
    assert (out / "model.keras").stat().st_size > 0


def test_final_notebook_rejects_unknown_task(data_dir, tmp_path):
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError, match="task must be 'binary' or 'ternary'"):
        pm.execute_notebook(str(ROOT / "final_notebook.ipynb"), str(tmp_path / "o.ipynb"),
                            cwd=str(ROOT), parameters=dict(data_dir=str(data_dir), task="both",
                                                           output_dir=str(tmp_path / "r")),
                            progress_bar=False)


def test_final_notebook_refuses_output_inside_data(tiny_data):
    from pneumo_helpers.workflow import check_output_dir
    with pytest.raises(ValueError, match="inside the data folder"):
        check_output_dir(tiny_data / "train" / "reports", tiny_data)
    assert not (tiny_data / "train" / "reports").exists()


def test_final_notebook_parameters_cell():
    import nbformat
    nb = nbformat.read(ROOT / "final_notebook.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    src = tagged[0].source
    for name in ("data_dir", "output_dir", "image_size", "epochs", "batch_size", "seed",
                 "target_recall", "max_train_images", "task"):
        assert f"\n{name} = " in "\n" + src, name
    assert 'data_dir = "data/chest_xray"' in src and 'output_dir = "reports"' in src
    assert "target_recall = 0.98" in src and "max_train_images = 0" in src
