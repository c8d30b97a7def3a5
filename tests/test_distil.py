"""The fast model for big folders (``modeling.distil``): the student learns
the teacher's scores, not the labels; it is one network without test-time
views with its own operating point; the verdict compares figure by figure."""

import numpy as np
import pytest

from pneumo_helpers.modeling import distil
from pneumo_helpers.modeling.recipes import Recipe

TINY = Recipe("tiny", "a tiny CNN with test-time views",
              network=dict(filters=(4, 8), augment="none", equalize=True),
              views=((0.9, 0.0, 0.0), (1.0, 0.05, 0.0)), learning_rate=0.01, patience=10)


@pytest.fixture(scope="module")
def split(data_dir):
    from pneumo_helpers.data import prepare_data
    return prepare_data(data_dir, "binary", 32, 16, seed=3, max_train_images=64)


def test_the_student_learns_the_teachers_scores_not_the_labels(split):
    # a teacher that says 0.3 of every image: a student of the labels would
    # spread its scores towards 0 and 1 by class; a student of the teacher does not
    soft = np.full(len(split.labels("train")), 0.3, "float32")
    student = distil.distil(None, TINY, split, seed=1, epochs=6, soft=soft)
    assert len(student.networks) == 1 and student.recipe.views == ()
    assert student.recipe.name == "tiny_distilled" and not student.recipe.balance
    scores = student.scores(split.dataset("train", 32))
    assert abs(float(np.mean(scores)) - 0.3) < 0.08
    by_class = [scores[split.labels("train") == c].mean() for c in (0, 1)]
    assert abs(by_class[1] - by_class[0]) < 0.15
    # its own operating point, chosen on validation
    assert set(student.thresholds) >= {"pneumonia"} and len(student.val_scores) == len(
        split.labels("validation"))


def test_teacher_scores_are_in_the_tables_order(split):
    """Each training image's own score (the training pipeline shuffles; the
    targets must not)."""
    from pneumo_helpers.data.pipeline import load_arrays
    from pneumo_helpers.modeling.recipes import fit_recipe

    teacher = fit_recipe(TINY, split, seed=2, epochs=3)
    soft = distil.teacher_scores(teacher.model, split, 32)
    images, labels = load_arrays(split.subset("train"), 32)  # the table's order
    np.testing.assert_array_equal(labels, split.labels("train"))
    expected = teacher.model.predict(images, verbose=0)[:, 0]
    assert soft.shape == (len(labels),) and np.ptp(expected) > 1e-3
    np.testing.assert_allclose(soft, expected, atol=1e-5)


def test_the_student_is_for_the_binary_task(data_dir):
    from pneumo_helpers.data import prepare_data

    ternary = prepare_data(data_dir, "ternary", 32, 16, seed=3, max_train_images=48)
    with pytest.raises(ValueError, match="binary task"):
        distil.distil(None, TINY, ternary, soft=np.zeros(len(ternary.labels("train"))))


def test_the_verdict_compares_every_figure():
    teacher = {"val_auc": 0.985, "val_specificity": 0.82, "geo_worst_specificity": 0.80,
               "saliency_normal": float("nan")}
    close = {"val_auc": 0.982, "val_specificity": 0.83, "geo_worst_specificity": 0.797,
             "saliency_normal": 0.4}
    v = distil.holds(close, teacher)
    assert v["kept"] and set(v["gaps"]) == {"val_auc", "val_specificity",
                                            "geo_worst_specificity"}
    assert v["gaps"]["val_specificity"] == pytest.approx(0.01)
    far = {**close, "geo_worst_specificity": 0.79}
    assert not distil.holds(far, teacher)["kept"]
    assert not distil.holds({}, teacher)["kept"]  # nothing compared: nothing kept
