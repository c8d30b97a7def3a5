"""Papermill runs of final_notebook.ipynb on a small copy of the real data:
the metrics document, the result at the top, clean outputs, and test labels
that change no choice."""

import json
import math
import shutil

import pytest

from .conftest import ROOT

METRIC_KEYS = {"roc_auc", "pr_auc", "threshold", "recall", "specificity", "precision", "f1",
               "accuracy", "confusion"}
TINY = dict(image_size=32, epochs=1, n_seeds=2, seed=1)


def copy_small(src, dst, n_train=70, n_test=20, swap_test=False):
    """A Kaggle-layout folder with the first ``n_train`` / ``n_test`` images of
    each class of ``src`` (and all of ``val``); ``swap_test`` puts each test
    image in the other class's folder: the test labels permuted."""
    for split, n in (("train", n_train), ("val", None), ("test", n_test)):
        for cls, other in (("NORMAL", "PNEUMONIA"), ("PNEUMONIA", "NORMAL")):
            target = dst / split / (other if swap_test and split == "test" else cls)
            target.mkdir(parents=True, exist_ok=True)
            for f in sorted((src / split / cls).iterdir())[:n]:
                shutil.copyfile(f, target / f.name)
    return dst


@pytest.fixture(scope="module")
def small_data(data_dir, tmp_path_factory):
    return copy_small(data_dir, tmp_path_factory.mktemp("small") / "chest_xray")


def run(data_dir, out, **params):
    import papermill as pm

    executed = out.parent / f"{out.name}.ipynb"
    pm.execute_notebook(
        str(ROOT / "final_notebook.ipynb"), str(executed), cwd=str(ROOT),
        parameters=dict(data_dir=str(data_dir), output_dir=str(out), **{**TINY, **params}),
        progress_bar=False)
    return json.loads((out / "metrics.json").read_text()), json.loads(executed.read_text())


@pytest.fixture(scope="module")
def binary_run(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "binary"
    return (*run(small_data, out), out)


@pytest.mark.slow
def test_final_notebook_metrics_document(binary_run):
    doc, _, _ = binary_run
    assert {"params", "task", "data", "validation", "counter_framed", "stress", "sanity",
            "seeds", "test", "timing", "package_version", "environment", "date"} <= set(doc)
    assert doc["params"]["image_size"] == 32 and doc["task"] == "binary"
    # the run says which packages and CPU it ran on: those this test imports
    import keras
    import numpy
    import tensorflow
    env = doc["environment"]
    assert env["packages"]["tensorflow"] == tensorflow.__version__
    assert env["packages"]["keras"] == keras.__version__
    assert env["packages"]["numpy"] == numpy.__version__
    assert env["cores"] >= 1 and env["cpu"]
    for block in ("validation", "test"):
        assert METRIC_KEYS <= set(doc[block]["binary"])
    # the confusion matrix adds up to the test images of each class
    t, n = doc["test"]["binary"], doc["data"]["test"]
    c = t["confusion"]
    assert c["tn"] + c["fp"] == n["normal"] == 20 and c["fn"] + c["tp"] == n["pneumonia"] == 20
    assert math.isclose(t["recall"], c["tp"] / (c["tp"] + c["fn"]))
    assert math.isclose(t["specificity"], c["tn"] / (c["tn"] + c["fp"]))
    # the threshold is chosen on validation and applied unchanged to test
    assert t["threshold"] == doc["validation"]["binary"]["threshold"]
    for k in ("roc_auc", "recall", "specificity"):
        lo, hi = t["ci95"][k]
        assert 0 <= lo <= t[k] <= hi <= 1
    cf = doc["counter_framed"]
    assert cf["n_normal"] > 0 and cf["n_pneumonia"] > 0 and METRIC_KEYS <= set(cf["binary"])
    assert "zoom_out_0.65" in doc["stress"]
    s = doc["sanity"]["confusion"]
    assert s["tn"] + s["fp"] == 8 and s["fn"] + s["tp"] == 8  # Kaggle's 16 val images
    seeds = doc["seeds"]
    from pneumo_helpers.modeling.recipes import DEFAULT_RECIPE
    assert doc["params"]["recipe"] == DEFAULT_RECIPE
    assert [r["model"] for r in seeds["per_seed"]] == [f"{DEFAULT_RECIPE} seed {s}" for s in (1, 2)]
    thresholds = [r["threshold"] for r in seeds["per_seed"]]
    assert seeds["spread"]["threshold"]["range"] == pytest.approx(max(thresholds)
                                                                  - min(thresholds))
    assert doc["timing"]["train_seconds"] > 0


@pytest.mark.slow
def test_final_notebook_outputs(binary_run):
    doc, nb, out = binary_run
    for name in ("model.keras", "training_curves.png", "confusion_matrix.png", "roc_pr.png",
                 "score_histograms.png", "stress_test.png", "grad_cam.png", "metrics.json",
                 "MODEL_CARD.md", "pneumo-run.json"):
        assert (out / name).stat().st_size > 0, name
    # the notebook opens with its result, written from its own numbers
    first = next(c for c in nb["cells"] if c["cell_type"] == "code"
                 and "result_text" in "".join(c["source"]))
    text = "".join(first["outputs"][0]["data"]["text/markdown"])
    assert f"ROC AUC {doc['test']['binary']['roc_auc']:.3f}" in text
    assert "image/png" in first["outputs"][1]["data"]  # the confusion matrix
    # no TensorFlow start-up noise, no machine paths as reprs
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            shown = "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
            assert "cuda" not in shown.lower() and "absl" not in shown, shown[:200]
            assert "PosixPath(" not in shown


@pytest.mark.slow
def test_model_card_and_model_file_agree_with_metrics(binary_run):
    from pneumo_helpers.use import modelfile

    doc, _, out = binary_run
    card = (out / "MODEL_CARD.md").read_text()
    test, val = doc["test"]["binary"], doc["validation"]["binary"]
    assert "Not a medical device" in card
    row = next(line for line in card.splitlines() if line.startswith("| test"))
    for k in ("roc_auc", "recall", "specificity"):
        lo, hi = test["ci95"][k]
        assert f"{test[k]:.3f} (95% CI {lo:.3f}-{hi:.3f})" in row
    assert f"threshold ({val['threshold']:.3f})" in card
    from pneumo_helpers.metrics import per_hundred
    assert per_hundred(test) in card
    assert "the mean of 2 networks trained with seeds 1-2" in card
    for figure in ("confusion_matrix.png", "roc_pr.png", "score_histograms.png"):
        assert f"]({figure})" in card and (out / figure).is_file()  # linked, beside the card
    assert "**PPV / NPV**" in card and "**specificity**" in card
    env = doc["environment"]
    assert f"TensorFlow {env['packages']['tensorflow']}, Keras {env['packages']['keras']}" in card
    info = modelfile.read_info(out / "model.keras")
    assert info["thresholds"]["pneumonia"] == val["threshold"]
    assert info["test"]["roc_auc"] == test["roc_auc"] and info["image_size"] == 32
    assert info["data"] == doc["data"]


@pytest.mark.slow
def test_html_report_holds_the_result_and_the_figures(binary_run):
    from pneumo_helpers.cli import main

    doc, _, out = binary_run
    html = out / "report.html"
    assert main(["report", str(out.parent / f"{out.name}.ipynb"), str(html)]) == 0
    text = html.read_text()
    assert text.count("data:image/png;base64,") >= 5  # figures embedded, no side files
    assert f"ROC AUC {doc['test']['binary']['roc_auc']:.3f}" in text  # the result summary
    assert "seed_rows" not in text  # no code unless asked
    assert "<title>pneumo: binary.ipynb</title>" in text
    # the page it wrote may be replaced by the same command, with the code shown
    assert main(["report", str(out.parent / f"{out.name}.ipynb"), str(html), "--code"]) == 0
    assert "seed_rows" in html.read_text()


def test_cli_errors_are_one_line(tmp_path, capsys):
    from pneumo_helpers.cli import main

    assert main(["report", str(tmp_path / "missing.ipynb"), str(tmp_path / "r.html")]) == 1
    assert main(["check-output", str(tmp_path / "data" / "out"), str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_test_labels_change_no_choice(binary_run, data_dir, tmp_path):
    """Permuting the test labels changes no threshold, no validation figure and
    no seed's figures: test/ takes no part in any choice."""
    doc, _, _ = binary_run
    swapped = copy_small(data_dir, tmp_path / "swapped" / "chest_xray", swap_test=True)
    again, _ = run(swapped, tmp_path / "out")
    for key in ("validation", "counter_framed", "stress", "sanity", "seeds"):
        assert again[key] == doc[key], key
    assert again["data"]["test"] == doc["data"]["test"]  # 20 and 20 either way
    # the same scores against flipped labels: the test ROC AUC turns into 1 - AUC
    assert again["test"]["binary"]["roc_auc"] == pytest.approx(1 - doc["test"]["binary"]["roc_auc"])


@pytest.mark.slow
def test_final_notebook_ternary(small_data, tmp_path):
    doc, _ = run(small_data, tmp_path / "ternary", task="ternary", n_seeds=1)
    assert doc["task"] == "ternary" and "seeds" in doc
    n = doc["data"]["test"]
    for block in ("validation", "test"):
        assert {"binary", "three_class", "bacterial_vs_viral"} <= set(doc[block])
    t = doc["test"]
    assert sum(map(sum, t["three_class"]["confusion"])) == sum(n.values())
    c = t["binary"]["confusion"]
    assert c["tn"] + c["fp"] == n["normal"] and c["fn"] + c["tp"] == n["bacteria"] + n["virus"]
    assert set(t["bacterial_vs_viral"]["ci95"]) == {"roc_auc", "sensitivity", "specificity"}
    assert t["bacterial_vs_viral"]["threshold"] == doc["validation"]["bacterial_vs_viral"][
        "threshold"]
    assert {"accuracy", "bv_auc"} <= set(doc["stress"]["blur"])


# every parameter's check is tried in tests/test_parameters.py; here, that the notebook
# runs those checks before it creates the output folder or reads the data
@pytest.mark.parametrize("name, value, words", [
    ("epochs", 0, "parameter epochs = 0: expected a whole number from 1"),
])
def test_bad_parameters_stop_before_any_work(data_dir, tmp_path, name, value, words):
    import papermill as pm
    out = tmp_path / "reports"
    with pytest.raises(pm.PapermillExecutionError, match=words):
        pm.execute_notebook(str(ROOT / "final_notebook.ipynb"), str(tmp_path / "o.ipynb"),
                            cwd=str(ROOT), parameters={"data_dir": str(data_dir),
                                                       "output_dir": str(out), name: value},
                            progress_bar=False)
    assert not out.exists()  # checked before the output folder is created


def test_output_inside_data_folder_is_refused(tiny_data):
    from pneumo_helpers.use.runfolder import check_output_dir
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
                 "n_seeds", "target_recall", "max_train_images", "task", "recipe"):
        assert f"\n{name} = " in "\n" + src, name
    assert 'data_dir = "data/chest_xray"' in src and 'output_dir = "reports"' in src
    assert "target_recall = 0.98" in src and "max_train_images = 0" in src


@pytest.mark.slow
def test_make_results_publishes_the_whole_run(small_data, tmp_path):
    """pneumo results: the notebook runs into a staging folder (papermill's own
    copy of the notebook is not mistaken for someone else's file) and the
    executed notebook, its report and the run's files land together."""
    from pneumo_helpers.use.report import is_html_report
    from pneumo_helpers.use.results import make_results
    from pneumo_helpers.use.runfolder import MANIFEST

    out = tmp_path / "reports"
    make_results(small_data, out, parameters=TINY, progress=False)
    names = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert {"final_notebook.ipynb", "report.html", "model.keras", "metrics.json",
            "MODEL_CARD.md", MANIFEST} <= names
    assert not any(p.name.startswith(".staging") for p in out.iterdir())
    assert {"final_notebook.ipynb", "report.html"} <= set(
        json.loads((out / MANIFEST).read_text())["files"])
    assert is_html_report(out / "report.html")
