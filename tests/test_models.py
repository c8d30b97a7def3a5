"""Model builders, saving and loading, and seeded determinism on a tiny subset."""

import numpy as np
import pytest

from pneumo_helpers.modeling import models


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
    lambda: models.robust_cnn(32, filters=(4, 8)),
    lambda: models.robust_cnn(32, filters=(4, 8), augment="none", batch_norm=False,
                              pooling="flatten"),
    lambda: models.robust_cnn(32, filters=(4, 8), task="ternary"),
    lambda: models.robust_cnn(32, filters=(4, 8), equalize=True, body_crop=True, pooling="max"),
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


def test_inference_model_is_views_and_mean_in_one_file(tmp_path):
    """The test-time views and the mean of the seeds' networks are one Keras
    model: it scores like the views applied by hand and averaged, and saves
    and loads as one file (safe mode)."""
    import keras

    from pneumo_helpers.modeling.augment import TTA_FRAMES, reframe

    networks = [models.robust_cnn(32, filters=(4, 8), seed=s, name=f"network_seed{s}")
                for s in (1, 2)]
    model = models.inference_model(networks, TTA_FRAMES)
    x = np.random.default_rng(0).random((5, 32, 32, 1)).astype("float32")
    by_hand = np.mean([n.predict(v, verbose=0) for n in networks
                       for v in [x] + [np.asarray(reframe(x, *f)) for f in TTA_FRAMES]], axis=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), by_hand, rtol=1e-4, atol=1e-6)
    assert models.networks_of(model) == networks and models.networks_of(networks[0]) == [
        networks[0]]
    assert models.views_of(model) == TTA_FRAMES and models.views_of(networks[0]) == ()
    model.save(tmp_path / "mean.keras")
    again = keras.models.load_model(tmp_path / "mean.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), by_hand, rtol=1e-4, atol=1e-6)
    assert [n.name for n in models.networks_of(again)] == ["network_seed1", "network_seed2"]
    # without views and with one network, the model is that network's scores
    single = models.inference_model(networks[:1])
    np.testing.assert_allclose(single.predict(x, verbose=0), networks[0].predict(x, verbose=0),
                               rtol=1e-6)


def test_histogram_equalization_ignores_exposure():
    from pneumo_helpers.modeling.layers import HistogramEqualization
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32") ** 2
    eq = HistogramEqualization()
    y = np.asarray(eq(x))
    assert y.min() == 0 and y.max() == 1
    # a different exposure curve (any increasing map) gives (nearly) the same image
    np.testing.assert_allclose(np.asarray(eq(x ** 0.5)), y, atol=2 / 255 + 0.05)
    assert np.histogram(y, bins=4, range=(0, 1))[0].min() > 0.2 * y.size



def test_histogram_equalization_is_per_image():
    """Each image through its own histogram (the batch is one flat bincount):
    the same as numpy's equalisation of that image alone, whatever the others."""
    from pneumo_helpers.modeling.layers import HistogramEqualization
    rng = np.random.default_rng(1)
    x = np.stack([rng.random((24, 24, 1)) ** p for p in (0.3, 1.0, 4.0)]).astype("float32")
    x[2, :12] = 0.0  # a black border: the darkest bin goes to 0
    y = np.asarray(HistogramEqualization(bins=256)(x))
    for image, out in zip(x, y):
        idx = np.clip((image * 255 + 0.5).astype(int), 0, 255)
        cdf = np.cumsum(np.bincount(idx.ravel(), minlength=256)) / idx.size
        expected = np.clip((cdf[idx] - cdf[0]) / max(1 - cdf[0], 1e-6), 0, 1)
        np.testing.assert_allclose(out, expected, atol=1e-6)
    alone = np.asarray(HistogramEqualization(bins=256)(x[1:2]))
    np.testing.assert_array_equal(alone[0], y[1])

@pytest.mark.slow
def test_same_seed_same_numbers(data_dir):
    """A training's numbers depend on its seed alone: not on the process, and
    not on the trainings that ran before it on the same data."""
    from pneumo_helpers.data import prepare_data
    from pneumo_helpers.modeling import recipes

    data = prepare_data(data_dir, "binary", 32, 16, seed=3, max_train_images=96)

    def run(seed=3):
        r = recipes.fit_recipe("robust_cnn", data, seed, epochs=2)
        return r.val_scores, r.validation, r.thresholds

    s1, m1, t1 = run()
    run(seed=4)  # another training in between, on the same data
    s2, m2, t2 = run()
    np.testing.assert_array_equal(s1, s2)
    assert m1 == m2 and t1 == t2
    s4, _, _ = run(seed=4)
    assert not np.array_equal(s1, s4)  # and the seed does matter


def test_moving_average_of_weights_is_what_is_validated_and_kept():
    """With ``ema``, each epoch is validated on the averaged weights, early
    stopping keeps the best of those, and they are what the model holds after
    ``fit``: evaluating it gives the best epoch's validation figure, and the
    weights differ from a training without the average."""
    import keras
    import tensorflow as tf

    from pneumo_helpers.modeling.training import compile_model, fit
    from pneumo_helpers.tasks import BINARY

    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

    def trained(ema):
        keras.utils.set_random_seed(1)
        m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1, activation="sigmoid")])
        compile_model(m, BINARY, 0.05, ema=ema)
        history, _ = fit(m, ds, ds, 4, 64, monitor="val_auc", patience=10, verbose=0)
        return m, history

    plain, raw = trained(None)
    averaged, history = trained(0.9)
    assert averaged.optimizer.use_ema and not plain.optimizer.use_ema
    # one trajectory of steps (the average does not steer them), validated on other weights
    assert not np.allclose(raw["val_auc"], history["val_auc"])
    assert not np.allclose(plain.get_weights()[0], averaged.get_weights()[0])
    kept = averaged.evaluate(ds, verbose=0, return_dict=True)
    auc = next(v for k, v in kept.items() if "auc" in k)
    assert auc == pytest.approx(max(history["val_auc"]), abs=1e-6)
