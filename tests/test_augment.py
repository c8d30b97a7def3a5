"""Reframing geometry (stress test) and the random augmentation layer."""

import numpy as np
import pytest

from pneumo_helpers.evaluation.stress import stress_table, view_scores
from pneumo_helpers.modeling.augment import RandomReframe, RandomSharpness, reframe


def half_image(n=2, size=20):
    x = np.zeros((n, size, size, 1), "float32")
    x[:, :, : size // 2] = 1.0
    return x


def test_identity_and_shift():
    x = half_image()
    np.testing.assert_allclose(np.asarray(reframe(x)), x, atol=1e-6)
    shifted = np.asarray(reframe(x, shift_x=0.1))  # 2 pixels right: black enters on the left
    assert (shifted[:, :, :2] == 0).all() and (shifted[:, :, 2:12] == 1).all()


def test_zoom_out_leaves_black_border_and_zoom_in_fills():
    x = np.ones((1, 20, 20, 1), "float32")
    out = np.asarray(reframe(x, zoom=0.5))
    assert out[0, 0].max() == 0 and out[0, 10, 10, 0] == 1
    assert np.asarray(reframe(x, zoom=1.5)).min() == 1


def test_random_reframe_only_in_training():
    x = np.random.default_rng(0).random((4, 32, 32, 1)).astype("float32")
    layer = RandomReframe(seed=3)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    out = np.asarray(layer(x, training=True))
    assert out.shape == x.shape and not np.allclose(out, x)
    assert 0 <= out.min() and out.max() <= 1


def test_random_sharpness_is_keras_numbers():
    """The faster sharpness layer gives keras.layers.RandomSharpness' numbers,
    draw for draw (same seed), in training, to float32 rounding (bit-identical
    on some CPUs; the convolution's summing order is the CPU kernel's), and
    the image outside it."""
    import keras

    rng = np.random.default_rng(0)
    ours = RandomSharpness((0.1, 0.9), value_range=(0, 1), seed=5)
    theirs = keras.layers.RandomSharpness((0.1, 0.9), value_range=(0, 1), seed=5)
    for shape in [(6, 40, 40, 1), (2, 17, 31, 1)]:
        x = rng.random(shape).astype("float32")
        out = np.asarray(ours(x, training=True))
        np.testing.assert_allclose(out, np.asarray(theirs(x, training=True)), rtol=0,
                                   atol=1e-6)
        assert not np.allclose(out, x)
        outside = np.asarray(ours(x, training=False))  # (a call draws, in training or not)
        np.testing.assert_array_equal(outside, np.asarray(theirs(x, training=False)))
        np.testing.assert_array_equal(outside, x)

def test_stress_test_catches_a_framing_shortcut():
    # a "model" that scores by left-border brightness: perfect on original
    # framing, fooled once the image is shifted or zoomed out
    import keras
    import tensorflow as tf

    from pneumo_helpers.tasks import BINARY

    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(20), np.ones(20)].astype(int)
    x = rng.random((40, 20, 20, 1)).astype("float32") * 0.5
    x[y == 1, :, :2] += 0.5
    inputs = keras.Input((20, 20, 1))
    border = keras.layers.Lambda(lambda b: keras.ops.mean(b[:, :, :2], axis=(1, 2)))(inputs)
    model = keras.Model(inputs, border)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    table = stress_table(view_scores(model, ds), y, BINARY, {"pneumonia": 0.4})
    assert table.loc["original", "auc"] == 1.0
    assert table.loc["shift_right", "auc"] < 0.8
    assert table.loc["zoom_out_0.65", "auc"] < 0.8
    assert set(table.columns) == {"auc", "recall", "specificity", "mean_score_normal",
                                  "mean_score_pneumonia"}


def test_transform_intensity_changes():
    from pneumo_helpers.evaluation.stress import transform
    from pneumo_helpers.modeling.augment import gaussian_blur
    x = half_image(1, 20)
    np.testing.assert_allclose(np.asarray(transform(x)), x, atol=1e-6)
    blurred = np.asarray(gaussian_blur(x, 1.0))
    assert 0 < blurred[0, 5, 9, 0] < 1 and blurred[0, 5, 2, 0] > 0.99  # only the edge softens
    np.testing.assert_allclose(blurred.mean(), x.mean(), atol=0.02)
    low = np.asarray(transform(x, contrast=0.5))
    assert np.isclose(low.max() - low.min(), 0.5, atol=1e-5)
    g = np.full((1, 4, 4, 1), 0.25, "float32")
    np.testing.assert_allclose(np.asarray(transform(g, gamma=0.5)), 0.5, atol=1e-5)


def test_counter_exposed_gives_the_other_class_exposure():
    import tensorflow as tf

    from pneumo_helpers.evaluation.stress import EXPOSURE_LEVELS, counter_exposed

    levels = np.linspace(0, 1, EXPOSURE_LEVELS, dtype="float32")
    bank = np.stack([np.tile(levels ** 2, (3, 1)),  # "normal" curves: dark
                     np.tile(np.sqrt(levels), (3, 1))])  # "pneumonia" curves: bright
    view = counter_exposed(bank)
    rng = np.random.default_rng(0)
    x = rng.random((2, 16, 16, 1)).astype("float32")
    y = tf.constant([0, 1])
    out = np.asarray(view(tf.constant(x), y))
    # same order of pixels, new intensity distribution: the normal image got the
    # bright curve, the pneumonia image the dark one
    for i in range(2):
        assert np.corrcoef(np.argsort(np.argsort(out[i].ravel())),
                           np.argsort(np.argsort(x[i].ravel())))[0, 1] > 0.99
    assert np.median(out[0]) == pytest.approx(np.sqrt(0.5), abs=0.03)
    assert np.median(out[1]) == pytest.approx(0.25, abs=0.03)
    np.testing.assert_array_equal(out, np.asarray(view(tf.constant(x), y)))  # deterministic


def test_local_contrast_scales_structure_about_the_local_mean():
    from pneumo_helpers.modeling.augment import local_contrast

    rng = np.random.default_rng(0)
    smooth = np.linspace(0.3, 0.7, 64, dtype="float32")[None, :, None, None] * np.ones(
        (2, 64, 64, 1), "float32")
    ribs = 0.1 * np.sign(np.sin(np.arange(64) / 1.5)).astype("float32")[None, :, None, None]
    x = np.clip(smooth.transpose(0, 2, 1, 3) + ribs + 0.01 * rng.standard_normal(
        (2, 64, 64, 1)), 0, 1).astype("float32")
    np.testing.assert_allclose(np.asarray(local_contrast(x, 1.0)), x, atol=1e-6)
    flat = np.full((1, 64, 64, 1), 0.4, "float32")  # no structure: nothing to scale
    np.testing.assert_allclose(np.asarray(local_contrast(flat, 0.5)), flat, atol=1e-6)
    inner = (slice(None), slice(8, -8), slice(8, -8))  # away from the edges
    fainter = np.asarray(local_contrast(x, np.array([0.5, 1.5])))
    detail = lambda a: np.abs(np.diff(a[inner], axis=1)).mean(axis=(1, 2, 3))  # noqa: E731
    assert detail(fainter)[0] == pytest.approx(0.5 * detail(x)[0], rel=0.05)
    assert detail(fainter)[1] == pytest.approx(1.5 * detail(x)[1], rel=0.05)
    # the broad brightness is kept: the means of 8 x 8 blocks hardly move
    blocks = lambda a: a[:, 8:-8, 8:-8, 0].reshape(2, 6, 8, 6, 8).mean(axis=(2, 4))  # noqa: E731
    np.testing.assert_allclose(blocks(fainter), blocks(x), atol=0.03)


def test_random_local_contrast_only_in_training_and_per_image():
    from pneumo_helpers.modeling.augment import RandomLocalContrast, local_contrast

    x = np.random.default_rng(1).random((6, 32, 32, 1)).astype("float32")
    layer = RandomLocalContrast((0.7, 1.4), seed=5)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    out = np.asarray(layer(x, training=True))
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    detail = np.abs(out - np.asarray(local_contrast(x, 0.0))).mean(axis=(1, 2, 3)) / \
        np.abs(x - np.asarray(local_contrast(x, 0.0))).mean(axis=(1, 2, 3))
    assert detail.min() > 0.6 and detail.max() < 1.45 and detail.std() > 0.02  # one factor each
    again = RandomLocalContrast.from_config(layer.get_config())
    assert again.factor == (0.7, 1.4) and again.seed == 5


def test_faint_structure_view_lowers_structure_only():
    from pneumo_helpers.evaluation.stress import VIEWS, transform

    x = np.random.default_rng(2).random((2, 48, 48, 1)).astype("float32") * 0.5 + 0.25
    out = np.asarray(transform(x, **VIEWS["faint_structure"]))
    assert np.abs(np.diff(out, axis=1)).mean() < 0.85 * np.abs(np.diff(x, axis=1)).mean()
    assert abs(out.mean() - x.mean()) < 0.01


def test_structure_measures_what_the_faint_view_removes():
    from pneumo_helpers.evaluation.anatomy import structure
    from pneumo_helpers.evaluation.stress import VIEWS, transform

    rng = np.random.default_rng(3)
    x = np.clip(0.5 + 0.15 * rng.standard_normal((4, 64, 64, 1)), 0, 1).astype("float32")
    flat = np.full((1, 64, 64, 1), 0.5, "float32") + np.linspace(0, 0.2, 64)[None, :, None, None]
    plain, faint = structure(x), structure(np.asarray(transform(x, **VIEWS["faint_structure"])))
    assert plain.shape == (4,) and (faint < plain).all()
    assert structure(flat.astype("float32"))[0] < 0.5 * plain.min()  # a smooth ramp: little


def test_structure_normalization_gives_every_image_one_structure():
    from pneumo_helpers.modeling.augment import local_contrast
    from pneumo_helpers.modeling.layers import StructureNormalization

    rng = np.random.default_rng(4)
    ramp = np.linspace(0.25, 0.75, 64, dtype="float32")[None, :, None, None]
    x = np.clip(ramp + 0.1 * rng.standard_normal((1, 64, 64, 1)), 0, 1).astype("float32")
    pair = np.concatenate([np.asarray(local_contrast(x, 0.6)), np.asarray(local_contrast(x, 1.3))])

    def detail(a):
        return np.abs(a - np.asarray(local_contrast(a, 0.0))).mean(axis=(1, 2, 3))

    assert detail(pair)[0] < 0.6 * detail(pair)[1]
    layer = StructureNormalization()
    out = np.asarray(layer(pair))
    np.testing.assert_allclose(detail(out), layer.level, rtol=0.1)  # one level, whatever came in
    assert np.abs(out[0] - out[1]).mean() < 0.01  # the same image, faint or strong (but clipping)
    assert StructureNormalization.from_config(layer.get_config()).level == layer.level
