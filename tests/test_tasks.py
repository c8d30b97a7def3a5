"""One description per task: labels from real file names, counts, heads, and
patients kept whole for the ternary task."""

import numpy as np
import pandas as pd
import pytest

from pneumo_helpers.data import load_image_table, patient_split
from pneumo_helpers.tasks import BINARY, TERNARY


@pytest.fixture(scope="module")
def real_table(data_dir):
    return load_image_table(data_dir, check_images=False)


def test_type_labels_from_real_file_names(real_table):
    t = TERNARY.prepare_table(real_table)
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
    assert BINARY.prepare_table(real_table) is real_table


def test_patients_with_both_types_stay_on_one_side(real_table):
    t = TERNARY.prepare_table(patient_split(real_table, 0.15, seed=42))
    train = t[t.split == "train"]
    mixed = train.groupby("patient").type.nunique()
    assert (mixed > 1).sum() > 500  # many personNNN have bacterial and viral images
    assert (train.groupby("patient").subset.nunique() == 1).all()
    assert set(t[t.subset == "validation"].type_label) == {0, 1, 2}


def test_unknown_type_dropped_with_a_note(capsys):
    t = pd.DataFrame({"path": ["a/IM-1-1.jpeg", "a/person1_bacteria_1.jpeg", "a/person2_x.jpeg"],
                      "type": ["normal", "bacteria", "unknown"], "label": [0, 1, 1]})
    with pytest.warns(UserWarning, match="dropped 1 pneumonia image"):
        out = TERNARY.prepare_table(t)
    assert out.type_label.tolist() == [0, 1]
    assert "person2_x.jpeg" in capsys.readouterr().out


def test_counts_per_subset_and_class():
    t = pd.DataFrame({"subset": ["train", "train", "train", "test"], "label": [0, 1, 1, 0],
                      "type_label": [0, 1, 2, 0]})
    assert BINARY.counts(t) == {"train": {"normal": 1, "pneumonia": 2},
                                "test": {"normal": 1, "pneumonia": 0}}
    assert TERNARY.counts(t)["train"] == {"normal": 1, "bacteria": 1, "virus": 1}


def test_heads_and_losses():
    import keras
    x = keras.Input((4,))
    assert BINARY.head(x).shape[-1] == 1 and BINARY.loss() == "binary_crossentropy"
    assert TERNARY.head(x).shape[-1] == 3
    assert TERNARY.loss() == "sparse_categorical_crossentropy"
    assert (BINARY.monitor, TERNARY.monitor) == ("val_auc", "val_loss")
    assert np.allclose(TERNARY.thresholds([0, 1, 2, 0], np.eye(3)[[0, 1, 2, 1]] * 0.9 + 0.1 / 3,
                                          1.0)["pneumonia"], 0.9 + 0.2 / 3)
