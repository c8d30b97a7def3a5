"""Grad-CAM: which parts of an X-ray drove the pneumonia score.

A model that reads the lungs lights up inside the chest; one that learned a
framing shortcut lights up on borders, corners and labels.
"""

from __future__ import annotations

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf


def last_conv_layer(model: keras.Model) -> str:
    """Name of the last 2-D convolution in ``model``, looking inside nested
    models too (a transfer network's backbone)."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            return layer.name
        if isinstance(layer, keras.Model):
            try:
                return last_conv_layer(layer)
            except ValueError:
                continue
    raise ValueError(f"{model.name} has no Conv2D layer for Grad-CAM")


def _holds(model, name: str) -> bool:
    try:
        model.get_layer(name)
    except ValueError:
        return False
    return True


def grad_cam(networks, images: np.ndarray, layer: str | None = None,
             pneumonia=True) -> np.ndarray:
    """Heat maps in [0, 1], one per image, at the input's resolution
    (gradient of the pneumonia score, or with ``pneumonia`` false of the
    normal score, with respect to ``layer``'s activations, default the last
    convolution; ``pneumonia`` may be one flag per image). ``networks``: one
    network or a list (the seeds of a mean model, ``TrainedModel.networks``):
    the mean of their maps, scaled to its peak again. ``images`` are what the
    networks take (after any preprocessing such as the crop to the lung fields)."""
    if isinstance(networks, (list, tuple)):
        cam = np.mean([_peak_normalised(_grad_cam(n, images, layer, pneumonia))
                       for n in networks], axis=0)
    else:
        cam = _grad_cam(networks, images, layer, pneumonia)
    return _peak_normalised(cam)


def cam_resolution(network: keras.Model, layer: str | None = None) -> int:
    """The side of ``network``'s Grad-CAM maps before they are resized to the
    input (``layer``'s output, default the last convolution's: 8 for the
    robust CNN at 128 px)."""
    size = tuple(int(d) for d in network.input_shape[1:])
    cam = _cam_function(network, layer or last_conv_layer(network))(
        tf.zeros((1, *size)), tf.constant([True]))
    return int(cam.shape[1])


def _peak_normalised(cam: np.ndarray) -> np.ndarray:
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return cam / np.maximum(peak, 1e-8)


def _grad_cam(model: keras.Model, images: np.ndarray, layer: str | None = None,
              pneumonia=True) -> np.ndarray:
    x = tf.convert_to_tensor(images, tf.float32)
    flags = tf.broadcast_to(tf.constant(pneumonia, tf.bool), (len(images),))
    cam = _cam_function(model, layer or last_conv_layer(model))(x, flags)
    return tf.image.resize(cam, images.shape[1:3]).numpy()[..., 0]


_CAM_FUNCTIONS: dict = {}  # (id(model), layer) -> (model, compiled function)


def _cam_function(model: keras.Model, layer: str):
    """One compiled Grad-CAM for ``model`` and ``layer`` (traced once per
    batch shape), so that maps of many batches cost one graph each, not one
    eager pass of every layer."""
    key = (id(model), layer)
    if key in _CAM_FUNCTIONS and _CAM_FUNCTIONS[key][0] is model:
        return _CAM_FUNCTIONS[key][1]
    steps = _chain(model, layer)

    @tf.function(reduce_retracing=True)
    def cam(x, flags):
        with tf.GradientTape() as tape:
            features, score = _run(steps, x)
            # softmax over normal / bacteria / virus: pneumonia = 1 - p(normal)
            score = 1.0 - score[:, 0] if score.shape[-1] > 1 else score[:, 0]
            score = tf.where(flags, score, 1.0 - score)
        grads = tape.gradient(score, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))

    if len(_CAM_FUNCTIONS) > 32:
        _CAM_FUNCTIONS.clear()
    _CAM_FUNCTIONS[key] = (model, cam)
    return cam


def _chain(model: keras.Model, layer: str) -> list:
    """``model``'s layers as a chain of steps ``(call, how, keeps)`` for
    :func:`_run` (its layers must form a chain): ``how`` is ``"one"``,
    ``"repeat"`` (a layer taking the same input several times, e.g. grey to RGB
    ``[x, x, x]``) or ``"nested"`` (a backbone holding ``layer``: one sub-model
    giving that layer's output and its own); ``keeps``: this step's output is
    ``layer``'s. (A sub-model from ``model.get_layer(layer).output`` does not
    build when the model holds Keras image-preprocessing layers.)"""
    steps, found = [], False
    for op in model.layers:
        if isinstance(op, keras.layers.InputLayer):
            continue
        if isinstance(op, keras.Model) and _holds(op, layer):
            inner = keras.Model(op.inputs, [op.get_layer(layer).output, op.outputs[0]])
            steps.append((inner, "nested", True))
            found = True
            continue
        inputs = op.input if isinstance(op.input, (list, tuple)) else None
        repeat = bool(inputs) and len(inputs) > 1 and all(t is inputs[0] for t in inputs)
        steps.append((op, ("repeat", len(inputs)) if repeat else "one", op.name == layer))
        found = found or op.name == layer
    if not found:
        raise ValueError(f"{model.name} has no layer named {layer}")
    return steps


def _run(steps, x):
    features = None
    for op, how, keeps in steps:
        try:
            if how == "nested":
                features, x = op(x, training=False)
                continue
            if isinstance(how, tuple):
                x = op([x] * how[1], training=False)
            else:
                x = op(x, training=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Grad-CAM needs a model whose layers form a chain; "
                             f"it failed at layer {op.name}: {err}") from None
        if keeps:
            features = x
    return features, x


CAM_LABEL = "Grad-CAM: how much each region raised the pneumonia score (0-1, per image)"


def overlay(ax, image, cam, title: str = ""):
    """One X-ray (gray) with its Grad-CAM map over it (``jet``, 35% opaque),
    on ``ax``; returns the map's image for a colour bar."""
    ax.imshow(np.asarray(image)[..., 0] if np.ndim(image) == 3 else image, cmap="gray",
              vmin=0, vmax=1)
    shown = ax.imshow(cam, cmap="jet", alpha=0.35, vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return shown


def plot_grad_cam(images, heatmaps, titles, ncols: int = 4) -> plt.Figure:
    """X-rays with their Grad-CAM heat maps overlaid (:func:`overlay`), a
    title above each (two short lines at most) and one colour bar for all: 0
    is a region that did not raise the pneumonia score, 1 the region that
    raised it most (each map is scaled to its own peak)."""
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols + 0.8, 3.3 * nrows),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    shown = None
    for ax, img, cam, title in zip(axes.ravel(), images, heatmaps, titles):
        shown = overlay(ax, img, cam, title)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.6, pad=0.02)
        bar.set_label(CAM_LABEL)
    return fig


def pick_examples(y_true, y_score, threshold: float, per_kind: int = 2, seed: int = 0):
    """Indices of true negatives, false positives, false negatives and true
    positives (up to ``per_kind`` each), with a label for each."""
    y_true, pred = np.asarray(y_true), np.asarray(y_score) >= threshold
    rng = np.random.default_rng(seed)
    picks, labels = [], []
    for name, mask in (("normal, called normal", (y_true == 0) & ~pred),
                       ("normal, flagged", (y_true == 0) & pred),
                       ("pneumonia, missed", (y_true == 1) & ~pred),
                       ("pneumonia, found", (y_true == 1) & pred)):
        idx = np.flatnonzero(mask)
        chosen = rng.choice(idx, min(per_kind, len(idx)), replace=False) if len(idx) else []
        picks.extend(int(i) for i in chosen)
        labels.extend([name] * len(chosen))
    return picks, labels
