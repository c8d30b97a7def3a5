"""Model builders, saving and loading, and seeded determinism on a tiny subset."""

import numpy as np
import pytest

from pneumo_helpers import models


def test_original_cnn_matches_the_original_description():
    m = models.original_cnn(224)
    kinds = [type(layer).__name__ for layer in m.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "LeakyReLU",
                     "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dense", "Dense"]
    assert m.layers[0].activation.__name__ == "tanh" and m.layers[0].kernel_size == (3, 3)
    assert m.layers[2].kernel_size == (4, 4)
    assert m.input_shape == (None, 224, 224, 1) and m.output_shape == (None, 1)


@pytest.mark.parametrize("builder", [
    lambda: models.baseline(32),
    lambda: models.baseline(32, border_only=0.2),
    lambda: models.robust_cnn(32, filters=(4, 8)),
    lambda: models.robust_cnn(32, filters=(4, 8), augment="light", batch_norm=False,
                              global_pool=False),
    lambda: models.robust_cnn(32, filters=(4, 8), n_classes=3),
])
def test_builders_give_probabilities(builder):
    m = builder()
    x = np.random.default_rng(0).random((3, 32, 32, 1)).astype("float32")
    p = np.asarray(m(x, training=False))
    assert p.shape[0] == 3 and ((0 <= p) & (p <= 1)).all()
    if p.shape[1] > 1:
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)


def test_keras_file_round_trip(tmp_path):
    import keras
    m = models.robust_cnn(32, filters=(4, 8), seed=1)
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    path = tmp_path / "model.keras"
    m.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(m(x)), rtol=1e-5)


@pytest.mark.slow
def test_same_seed_same_numbers(data_dir):
    from pneumo_helpers.training import set_seed
    from pneumo_helpers.workflow import prepare_data, train_binary

    def run():
        set_seed(3)
        data = prepare_data(data_dir, 32, 16, seed=3, max_train_images=96, progress=False)
        r = train_binary("tiny", models.robust_cnn(32, filters=(4, 8), seed=3), data,
                         epochs=2, verbose=0, lr_schedule=True)
        return r.val_scores, r.validation

    (s1, m1), (s2, m2) = run(), run()
    np.testing.assert_array_equal(s1, s2)
    assert m1 == m2


def test_histogram_equalization_evens_out_exposure():
    rng = np.random.default_rng(0)
    base = rng.random((1, 16, 16, 1)).astype("float32")
    dark, bright = base * 0.3, 0.6 + base * 0.4
    eq = models.HistogramEqualization()
    a, b = np.asarray(eq(dark)), np.asarray(eq(bright))
    np.testing.assert_allclose(a, b, atol=1e-6)  # same ranks, same output
    assert a.min() == 0 and a.max() == 1
    assert abs(a.mean() - 0.5) < 0.02  # uniform histogram
    zeros = np.zeros((1, 4, 4, 1), "float32")
    zeros[0, 1:3, 1:3] = 0.2
    out = np.asarray(eq(zeros))
    assert out[0, 0, 0, 0] == 0 and out[0, 1, 1, 0] == 1  # black stays black


def test_robust_cnn_really_contains_its_preprocessing():
    m = models.robust_cnn(32, filters=(4, 8), equalize=True, mask_border=0.1)
    kinds = [type(layer).__name__ for layer in m.layers]
    assert kinds[1:6] == ["HistogramEqualization", "CentreOnly", "Sequential", "CentreOnly",
                          "PerImageStandardization"]
    x = np.zeros((1, 32, 32, 1), "float32")
    x[0, :, :3] = 1.0  # a bright left border: masked out, so the output ignores it
    np.testing.assert_allclose(np.asarray(m(x)), np.asarray(m(np.zeros_like(x))), rtol=1e-5)
