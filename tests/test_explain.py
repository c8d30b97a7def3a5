import keras
import numpy as np

from pneumo_helpers.evaluation.explain import (
    grad_cam,
    last_conv_layer,
    pick_examples,
    plot_grad_cam,
)
from pneumo_helpers.modeling import models


def test_grad_cam_shapes_and_range():
    m = models.robust_cnn(32, filters=(4, 8), seed=0)
    x = np.random.default_rng(0).random((3, 32, 32, 1)).astype("float32")
    assert last_conv_layer(m) == "conv2_1"
    cam = grad_cam(m, x)
    assert cam.shape == (3, 32, 32) and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    fig = plot_grad_cam(x, cam, ["a", "b", "c"], ncols=2)
    assert len(fig.axes) == 5  # 2 x 2 panels and one colour bar
    assert "Grad-CAM" in fig.axes[-1].get_ylabel()


def test_pick_examples_covers_each_outcome():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.9, 0.2, 0.8, 0.9])
    idx, labels = pick_examples(y, s, 0.5, per_kind=1)
    assert labels == ["normal, called normal", "normal, flagged", "pneumonia, missed",
                      "pneumonia, found"]
    assert idx[1] == 2 and idx[2] == 3


def test_grad_cam_on_the_final_architecture():
    # equalisation + augmentation layers: a sub-model probe would not build here
    m = models.robust_cnn(32, filters=(4, 8), equalize=True, augment="strong", seed=0)
    x = np.random.default_rng(1).random((2, 32, 32, 1)).astype("float32")
    m.predict(x, verbose=0)
    cam = grad_cam(m, x)
    assert cam.shape == (2, 32, 32) and np.isfinite(cam).all()


def test_grad_cam_of_a_mean_of_models():
    members = [models.robust_cnn(32, filters=(4, 8), seed=s, name=f"m{s}") for s in (1, 2)]
    x = np.random.default_rng(2).random((2, 32, 32, 1)).astype("float32")
    cam = grad_cam(members, x)
    assert cam.shape == (2, 32, 32) and np.allclose(cam.reshape(2, -1).max(axis=1), 1, atol=1e-5)
    # the mean of the members' maps, each scaled to its own peak, scaled to its peak again
    each = [grad_cam(m, x) for m in members]
    mean = np.mean(each, axis=0)
    np.testing.assert_allclose(cam, mean / mean.reshape(2, -1).max(axis=1)[:, None, None],
                               rtol=1e-5, atol=1e-6)


def test_grad_cam_of_the_normal_score_is_the_other_side():
    """The map of the normal score keeps the regions whose activations lower
    the pneumonia score: the other sign of the same weighted activations."""
    keras.utils.set_random_seed(3)  # whatever earlier tests drew from the global generators
    m = models.robust_cnn(32, filters=(4, 8), seed=3)
    x = np.random.default_rng(3).random((2, 32, 32, 1)).astype("float32")
    up, down = grad_cam(m, x), grad_cam(m, x, pneumonia=False)
    assert up.shape == down.shape == (2, 32, 32)
    # the two maps are the two signs of one map: where one is high the other is low
    assert np.corrcoef(up.ravel(), down.ravel())[0, 1] < -0.3
    mixed = grad_cam(m, x, pneumonia=[True, False])
    np.testing.assert_allclose(mixed[0], up[0], atol=1e-6)
    np.testing.assert_allclose(mixed[1], down[1], atol=1e-6)


def test_grad_cam_inside_a_nested_backbone():
    """A transfer network holds its backbone as a nested model: Grad-CAM finds
    the backbone's last convolution and reads its activations there."""
    keras.utils.set_random_seed(6)  # whatever earlier tests drew (seed 6: a map not all zero)
    inner_in = keras.Input((32, 32, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="b_conv1")(inner_in)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="b_conv2")(h)
    backbone = keras.Model(inner_in, h, name="backbone")
    x_in = keras.Input((32, 32, 1))
    y = keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.GlobalAveragePooling2D()(backbone(x_in)))
    m = keras.Model(x_in, y, name="transfer_like")
    assert last_conv_layer(m) == "b_conv2"
    x = np.random.default_rng(4).random((2, 32, 32, 1)).astype("float32")
    cam = grad_cam(m, x)
    assert cam.shape == (2, 32, 32) and np.isfinite(cam).all() and cam.max() > 0
    # the same map as a flat copy of the network gives
    flat = keras.Model(inner_in, m.layers[-1](m.layers[-2](h)))
    np.testing.assert_allclose(cam, grad_cam(flat, x), rtol=1e-4, atol=1e-5)
