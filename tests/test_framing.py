"""The border-only model and the counter-framed validation subset: built from
the train patients only, and picking what it says it picks."""

import numpy as np
import pytest

from pneumo_helpers.data import prepare_data
from pneumo_helpers.evaluation import framing


def test_border_mask_is_a_frame():
    m = framing.border_mask(20, 0.15)
    assert m[:3].all() and m[-3:].all() and m[:, :3].all() and m[:, -3:].all()
    assert not m[3:-3, 3:-3].any()


def test_counter_framed_mask_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 2])
    frame = np.array([0.1, 0.4, 0.9, 0.3, 0.8, 0.5])
    # normal framed pneumonia-like (>= 0.4), pneumonia (bacterial or viral) framed normal-like
    assert framing.counter_framed_mask(labels, frame).tolist() == [False, True, True, True,
                                                                   False, True]
    assert framing.counter_framed_mask(labels, frame, 0.95, 0.1).tolist() == [False] * 6


@pytest.fixture(scope="module")
def data(data_dir):
    return prepare_data(data_dir, image_size=32, seed=42)


def test_border_model_sees_train_patients_only(data):
    model = framing.fit_border_model(data.table)
    # change everything outside train: labels flipped, rows dropped
    other = data.table.copy()
    outside = other["subset"] != "train"
    other.loc[outside, "label"] = 1 - other.loc[outside, "label"]
    again = framing.fit_border_model(other.drop(index=other.index[outside][::2]))
    np.testing.assert_array_equal(model[-1].coef_, again[-1].coef_)
    # and it reads framing: NORMAL and PNEUMONIA training images score apart
    train = data.subset("train")
    p = framing.border_scores(model, train)
    y = train["label"].to_numpy()
    assert p[y == 0].mean() < 0.4 < 0.6 < p[y == 1].mean()


def test_border_model_needs_both_classes_in_train(data):
    only_pneumonia = data.table[(data.table["label"] == 1) | (data.table["subset"] != "train")]
    with pytest.raises(ValueError, match="NORMAL and PNEUMONIA images in 'train'"):
        framing.fit_border_model(only_pneumonia)


def test_counter_framed_validation_subset(data):
    from pneumo_helpers.evaluation.instruments import Evaluator

    ev = Evaluator(data, "validation")
    frame, mask, labels = ev.frame_scores, ev.counter_framed, ev.labels
    assert "frame_score" not in data.table  # the evaluator keeps its inputs to itself
    # the border model of the evaluator is the one fitted on train patients
    np.testing.assert_allclose(frame, framing.border_scores(framing.fit_border_model(
        data.subset("train")), data.subset("validation")))
    normals, pneumonias = mask & (labels == 0), mask & (labels == 1)
    # enough images on both sides to read an AUC and a specificity from
    assert normals.sum() >= 30 and pneumonias.sum() >= 30
    # the picked normals are framed like pneumonia, the picked pneumonias like normal
    assert frame[normals].min() >= framing.NORMAL_MIN
    assert frame[pneumonias].max() <= framing.PNEUMONIA_MAX
    assert frame[(labels == 0) & ~mask].max() < framing.NORMAL_MIN
