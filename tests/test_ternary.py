"""Ternary task: type labels from real file names, patients kept whole, the
metrics against a hand-counted case, and a papermill run of notebook 06."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from pneumo_helpers import load_image_table, patient_split
from pneumo_helpers import ternary as TN

from .conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "06_ternary.ipynb"

# six images: truth 0 0 1 1 2 2, most probable class 0 1 1 2 2 1
Y = np.array([0, 0, 1, 1, 2, 2])
P = np.array([[0.8, 0.1, 0.1],
              [0.3, 0.6, 0.1],
              [0.1, 0.7, 0.2],
              [0.2, 0.3, 0.5],
              [0.1, 0.2, 0.7],
              [0.1, 0.6, 0.3]])


@pytest.fixture(scope="module")
def real_table(data_dir):
    return load_image_table(data_dir, check_images=False)


def test_type_labels_from_real_file_names(real_table):
    t = TN.add_type_labels(real_table)
    assert len(t) == len(real_table)  # every real pneumonia file names its type
    by_name = t.set_index(t["path"].map(lambda p: p.rsplit("/", 1)[-1]))
    assert by_name.loc["person1000_bacteria_2931.jpeg", ["type_label", "patient"]].tolist() == [
        1, "person1000"]
    assert by_name.loc["person1000_virus_1681.jpeg", ["type_label", "patient"]].tolist() == [
        2, "person1000"]
    assert by_name.loc["IM-0115-0001.jpeg", "type_label"] == 0
    train = t[t.split == "train"]
    assert train.type_label.value_counts().sort_index().tolist() == [1107, 2274, 1210]
    assert (t.type_label == 0).eq(t.label == 0).all()


def test_patients_with_both_types_stay_on_one_side(real_table):
    t = TN.add_type_labels(patient_split(real_table, 0.15, seed=42))
    train = t[t.split == "train"]
    mixed = train.groupby("patient").type.nunique()
    assert (mixed > 1).sum() > 500  # many personNNN have bacterial and viral images
    sides = train.groupby("patient").subset.nunique()
    assert (sides == 1).all()
    val = t[t.subset == "validation"]
    assert set(val.type_label) == {0, 1, 2}


def test_unknown_type_dropped_with_a_note(capsys):
    t = pd.DataFrame({"path": ["a/IM-1-1.jpeg", "a/person1_bacteria_1.jpeg", "a/person2_x.jpeg"],
                      "type": ["normal", "bacteria", "unknown"], "label": [0, 1, 1]})
    with pytest.warns(UserWarning, match="dropped 1 pneumonia image"):
        out = TN.add_type_labels(t)
    assert out.type_label.tolist() == [0, 1]
    assert "person2_x.jpeg" in capsys.readouterr().out


def test_ternary_metrics_by_hand():
    m = TN.ternary_metrics(Y, P, binary_threshold=0.5, bv_threshold=0.5)
    assert m["confusion"] == [[1, 1, 0], [0, 1, 1], [0, 1, 1]]
    assert m["labels"] == ["normal", "bacteria", "virus"]
    assert m["accuracy"] == 0.5 and m["macro_recall"] == 0.5
    pc = m["per_class"]
    assert [pc[n]["recall"] for n in TN.TYPE_LABELS] == [0.5, 0.5, 0.5]
    assert [pc[n]["precision"] for n in TN.TYPE_LABELS] == pytest.approx([1, 1 / 3, 1 / 2])
    # one-vs-rest AUCs: pairs ranked right 8/8, 6/8, 7/8
    assert [pc[n]["roc_auc"] for n in TN.TYPE_LABELS] == pytest.approx([1, 0.75, 0.875])
    assert m["macro_roc_auc"] == pytest.approx(0.875)
    # bacterial vs viral on the four pneumonia cases: viral scores 2/9, 5/8, 7/9, 3/9
    bv = m["bacterial_vs_viral"]
    assert bv["roc_auc"] == pytest.approx(0.75)
    assert (bv["sensitivity"], bv["specificity"], bv["accuracy"]) == (0.5, 0.5, 0.5)
    assert (bv["n_bacteria"], bv["n_virus"]) == (2, 2)
    # pneumonia vs normal from p(bacteria) + p(virus): 0.2 0.7 | 0.9 0.8 0.9 0.9
    b = m["binary"]
    assert b["roc_auc"] == 1.0 and b["confusion"] == {"tn": 1, "fp": 1, "fn": 0, "tp": 4}
    t = TN.choose_thresholds(Y, P, target_recall=1.0)
    assert t["binary"] == pytest.approx(0.8)
    assert t["bacterial_vs_viral"] == pytest.approx(7 / 9)


def test_ternary_metrics_need_three_classes():
    with pytest.raises(ValueError, match="missing: virus"):
        TN.ternary_metrics(Y[:4], P[:4])
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        TN.ternary_metrics(Y, P[:, :2])


@pytest.mark.slow
def test_ternary_notebook_tiny_run(data_dir, tmp_path):
    import papermill as pm

    out = tmp_path / "ternary"
    pm.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "out.ipynb"), cwd=str(NOTEBOOK.parent),
        parameters=dict(data_dir=str(data_dir), output_dir=str(out), image_size=32, epochs=1,
                        max_train_images=120, seed=1),
        kernel_name="python3", progress_bar=False)
    doc = json.loads((out / "metrics.json").read_text())
    assert {"params", "data", "validation", "test", "timing", "stress_test"} <= set(doc)
    assert doc["params"]["task"] == "ternary" and doc["params"]["image_size"] == 32
    binary_keys = {"roc_auc", "pr_auc", "threshold", "recall", "specificity", "precision", "f1",
                   "accuracy", "confusion"}
    for block in ("validation", "test"):
        m = doc[block]
        assert {"accuracy", "macro_roc_auc", "per_class", "confusion",
                "bacterial_vs_viral", "binary"} <= set(m)
        assert binary_keys <= set(m["binary"])
        assert set(m["per_class"]) == {"normal", "bacteria", "virus"}
    test, n = doc["test"], doc["data"]["test"]
    assert [sum(row) for row in test["confusion"]] == [n["normal"], n["bacteria"], n["virus"]]
    c = test["binary"]["confusion"]
    assert c["tn"] + c["fp"] == n["normal"] and c["tp"] + c["fn"] == n["bacteria"] + n["virus"]
    assert test["binary"]["threshold"] == doc["validation"]["binary"]["threshold"]
    assert math.isclose(test["bacterial_vs_viral"]["threshold"],
                        doc["validation"]["bacterial_vs_viral"]["threshold"])
    for k in ("roc_auc", "recall", "specificity"):
        lo, hi = test["binary"]["ci95"][k]
        assert 0 <= lo <= test["binary"][k] <= hi <= 1
    assert doc["timing"]["train_seconds"] > 0
    assert (out / "confusion_matrix_3x3.png").stat().st_size > 0
