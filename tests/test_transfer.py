"""Transfer learning: input scaling against keras.applications, the one-line
error for missing ImageNet weights, and a tiny two-phase run on real images
with the shared MobileNet weights (no network)."""

import urllib.error

import numpy as np
import pytest

from pneumo_helpers.data import SplitData, load_image_table, patient_split
from pneumo_helpers.data.splits import balanced_subset
from pneumo_helpers.modeling import transfer as T
from pneumo_helpers.tasks import BINARY

WEIGHTS_FILE = "mobilenet_2_5_224_tf_no_top.h5"


@pytest.fixture
def offline(monkeypatch):
    """Any download attempt fails as it does without internet, and is counted."""
    import keras.src.utils.file_utils as fu

    calls = []

    def no_network(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(fu, "urlretrieve", no_network)
    return calls


@pytest.mark.parametrize("backbone, module", [
    ("MobileNet", "mobilenet"), ("ResNet50V2", "resnet_v2"), ("VGG16", "vgg16"),
    ("ResNet50", "resnet"), ("DenseNet121", "densenet"), ("EfficientNetB0", "efficientnet"),
    ("ConvNeXtTiny", "convnext"), ("InceptionV3", "inception_v3")])
def test_preprocessing_layer_matches_preprocess_input(backbone, module):
    import keras

    x = np.random.default_rng(0).random((2, 6, 6, 1)).astype("float32")
    x3 = np.repeat(x, 3, axis=-1)
    expected = getattr(keras.applications, module).preprocess_input(x3 * 255.0)
    got = T.preprocessing_layer(backbone)(x3)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-4)


def test_unknown_backbone_scaling_needs_an_explicit_mode():
    with pytest.raises(ValueError, match="preprocessing="):
        T.preprocessing_mode("MyNet")
    assert T.preprocessing_layer("MyNet", "tf").scale == 2.0


def test_missing_weights_one_clear_line(tmp_path, monkeypatch, offline):
    import keras.src.utils.file_utils as fu

    home = tmp_path / "empty_keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    # Keras fixed its cache folder when imported; keep the user's ~/.keras out of this test
    monkeypatch.setattr(fu.config, "keras_home", lambda: str(home))
    with pytest.raises(T.MissingWeightsError) as info:
        T.transfer_model("MobileNet", image_size=96, alpha=0.25)
    msg = str(info.value)
    assert "\n" not in msg
    assert WEIGHTS_FILE in msg and str(home / "models") in msg and "$KERAS_HOME/models" in msg
    assert offline and offline[0].endswith(WEIGHTS_FILE)
    assert not (home / "models" / WEIGHTS_FILE).exists()  # no partial file left behind


def test_sizes_without_shared_weights_name_their_own_file(keras_home_with_shared_weights,
                                                         offline):
    # MobileNet at 128 px needs its own weight file, not the 224 one held here
    with pytest.raises(T.MissingWeightsError, match="mobilenet_2_5_128_tf_no_top.h5"):
        T.load_backbone("MobileNet", image_size=128, alpha=0.25)


@pytest.fixture
def tiny_real_data(data_dir) -> SplitData:
    """About 40 train, 20 validation and 20 test real images, 96 px."""
    table = patient_split(load_image_table(data_dir, check_images=False), 0.15, seed=1)
    parts = [balanced_subset(table[table.subset == s], n, seed=1)
             for s, n in (("train", 40), ("validation", 20), ("test", 20))]
    import pandas as pd
    return SplitData(pd.concat(parts), BINARY, image_size=96, batch_size=16, seed=1)


@pytest.mark.slow
def test_tiny_two_phase_transfer_run(keras_home_with_shared_weights, offline, tiny_real_data,
                                     tmp_path):
    import h5py
    import keras

    from pneumo_helpers.data.pipeline import load_arrays
    from pneumo_helpers.modeling.training import set_seed

    set_seed(1)
    data = tiny_real_data
    model = T.transfer_model("MobileNet", image_size=96, alpha=0.25, seed=1)
    # Keras read KERAS_HOME at import, before the fixture set it: it tries its own
    # folder, then the download (which fails, offline), then the file in KERAS_HOME/models
    assert all(url.endswith(WEIGHTS_FILE) for url in offline)
    base = T.backbone_of(model)
    with h5py.File(keras_home_with_shared_weights / "models" / WEIGHTS_FILE) as f:
        np.testing.assert_array_equal(base.get_layer("conv1").kernel.numpy(),
                                      f["conv1"]["conv1"]["kernel:0"][()])
    assert T.trainable_summary(model)["trainable"] == 257  # only the head: 256 + 1

    from pneumo_helpers.modeling.recipes import Recipe, fit_recipe
    recipe = Recipe("mobilenet", "MobileNet 0.25, frozen then top blocks fine-tuned",
                    builder="transfer", network=dict(backbone="MobileNet", alpha=0.25),
                    learning_rate=1e-3, schedule=False, patience=1, views=(),
                    finetune=dict(epochs=1, unfreeze_layers=12, learning_rate=1e-4))
    result = fit_recipe(recipe, data, seed=1, epochs=1)
    assert result.history["phase"] == [1, 2]
    t = result.timing
    assert t["epochs_run"] == 2 and t["selected_phase"] in (1, 2)
    assert t["train_seconds"] == pytest.approx(t["frozen_seconds"] + t["finetune_seconds"],
                                               abs=0.02)
    assert 0 <= result.thresholds["pneumonia"] <= 1
    network = result.networks[0]
    base = T.backbone_of(network)
    # the top 12 backbone layers train, except batch norm; the rest stay frozen
    top = base.layers[-12:]
    assert all(layer.trainable != isinstance(layer, keras.layers.BatchNormalization)
               for layer in top if layer.weights)
    assert not any(layer.trainable for layer in base.layers[:-12] if layer.weights)

    from pneumo_helpers.evaluation.instruments import Evaluator
    validation = Evaluator(data, "validation")
    instruments = validation.evaluate(result)
    assert list(instruments["stress"].index) == [*validation.views, "markers"]
    test = Evaluator(data, "test").test(result, n_boot=20)
    assert set(test["metrics"]["binary"]) >= {"roc_auc", "recall", "specificity", "ci95"}

    x_test, _ = load_arrays(data.subset("test"), 96)
    path = tmp_path / "transfer.keras"
    result.model.save(path)
    again = keras.models.load_model(path, safe_mode=True)
    expected = network.predict(x_test[:4], verbose=0)
    np.testing.assert_allclose(again.predict(x_test[:4], verbose=0), expected, atol=1e-5)
    np.testing.assert_allclose(result.scores(data.dataset("test"))[:4], expected[:, 0],
                               atol=1e-5)
