"""Training that asks the network to find its evidence inside the lung fields.

"Right for the right reasons" (Ross, Hughes and Doshi-Velez, 2017) penalises
input gradients outside the region that should decide; here the penalty is
on the network's own class evidence, the map Grad-CAM approximates: for the
robust CNN (last convolution block, ReLU, global pooling, one dense unit),
the evidence at each cell of the last block's ``h x w`` map is the dense
kernel applied to that cell's activations. Besides the task's loss, each
training image pays ``Recipe.lung_focus`` times the share of its absolute
evidence that lies outside its lung fields (the lung-field model's masks, in
the space of the network's input, at the map's resolution). The network
trained is the plain network: the penalty lives in a training-only wrapper
that shares its weights, and the saved model is unchanged in form.

The network reframes its training images at random (zoom, aspect, shift,
rotation: ``augment.RandomReframe``), so a mask drawn on the image as
cropped is not where the lungs are in what the network sees. The wrapper
(:func:`training_model`) takes the mask as a second input, stacks it with
the image as a second channel for the network's own reframing layer (one
draw for both), and reads it back at the map's resolution: the penalty
asks for the evidence where the lungs are in the reframed image.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

COVER = 0.25  # a map cell belongs to the lungs when they cover at least this share of it


def evidence_activation(network: keras.Model) -> keras.layers.Layer:
    """The layer whose output is the map the evidence is read from: the last
    activation before the global pooling (after the last convolution)."""
    chosen = None
    for layer in network.layers:
        if isinstance(layer, keras.layers.Activation):
            chosen = layer
        if isinstance(layer, (keras.layers.GlobalAveragePooling2D,
                              keras.layers.GlobalMaxPooling2D)):
            break
    else:
        raise ValueError(f"{network.name} has no global pooling: no evidence map to read")
    if chosen is None:
        raise ValueError(f"{network.name} has no activation before its global pooling")
    return chosen


def evidence(activations, kernel) -> tf.Tensor:
    """``(n, h, w)``: the dense ``kernel`` ``(channels, 1)`` applied to every
    cell of ``activations`` ``(n, h, w, channels)``."""
    a = tf.cast(activations, tf.float32)
    return tf.tensordot(a, tf.cast(kernel[:, 0], tf.float32), axes=[[3], [0]])


def outside_share(kernel):
    """The loss ``(lung mask, activations) -> (n,)``: each image's share of
    absolute evidence outside its lungs (0 when all of it is inside)."""
    def loss(lungs, activations):
        e = tf.abs(evidence(activations, kernel))
        inside = tf.cast(tf.reshape(lungs, tf.shape(e)), tf.float32)
        total = tf.reduce_sum(e, axis=(1, 2)) + 1e-6
        return tf.reduce_sum(e * (1.0 - inside), axis=(1, 2)) / total
    return loss


def lung_cells(lungs, resolution: int, cover: float = COVER):
    """Lung masks ``(n, size, size, 1)`` (arrays or symbolic tensors) at the
    evidence map's ``resolution``, 1.0 where the lungs cover at least
    ``cover`` of a cell."""
    cells = keras.ops.image.resize(keras.ops.cast(lungs, "float32"), (resolution, resolution),
                                   interpolation="area")
    return keras.ops.cast(keras.ops.greater_equal(cells, cover), "float32")


def map_masks(lungs: np.ndarray, resolution: int, cover: float = COVER) -> np.ndarray:
    """Lung masks ``(n, size, size)`` at the evidence map's ``resolution``
    (:func:`lung_cells`)."""
    return keras.ops.convert_to_numpy(
        lung_cells(np.asarray(lungs, "float32")[..., None], resolution, cover))[..., 0]


def masks(data, recipe, subset: str, resolution: int) -> np.ndarray:
    """The lung masks of ``subset``'s images, in table order, as the network
    sees the images (cut to the recipe's crop) at ``resolution``; found once
    per split."""
    from .recipes import lung_masks_as_seen

    return data.memo(("lung_focus_masks", subset, recipe.lungs, recipe.network_size(data),
                      resolution),
                     lambda: map_masks(lung_masks_as_seen(data, recipe, subset), resolution))


def focus_model(network: keras.Model) -> keras.Model:
    """The training wrapper: the network's output (``"score"``) and its
    evidence map's activations (``"lungs"``), sharing every weight."""
    return keras.Model(network.inputs, {"score": network.output,
                                        "lungs": evidence_activation(network).output},
                       name=f"{network.name}_focus")


def _chain(network: keras.Model) -> list:
    """The network's layers after its input, checked to form one chain (each
    layer fed by the one before), as ``robust_cnn`` builds them."""
    chain = [layer for layer in network.layers if not isinstance(layer, keras.layers.InputLayer)]
    previous = network.inputs[0]
    for layer in chain:
        if layer.input is not previous:
            raise ValueError(f"{network.name} is not one chain of layers at {layer.name}: "
                             "the lung mask cannot follow its reframing")
        previous = layer.output
    return chain


def training_model(network: keras.Model, cover: float = COVER) -> keras.Model:
    """The training wrapper: inputs ``[image, lung mask]`` (both ``(size, size,
    1)``), outputs the network's score (``"score"``) and, as ``"lungs"``, its
    evidence map's activations with one more channel, the lung cells of the
    mask after the network's own random reframing (the same draw as the image,
    :class:`augment.RandomReframe` on the two stacked channels; its gamma
    leaves 0 and 1 as they are), at the map's resolution (a cell is lung when
    the mask covers at least ``cover`` of it). Shares every weight."""
    from .augment import RandomReframe

    chain = _chain(network)
    target = evidence_activation(network)
    image = network.inputs[0]
    lungs = keras.Input(image.shape[1:], name="lung_mask")
    x, m, acts, reframed = image, lungs, None, False
    for layer in chain:
        inner = getattr(layer, "layers", None)
        if inner and isinstance(inner[0], RandomReframe):
            both = inner[0](keras.layers.Concatenate(dtype="float32")([x, m]))
            x, m = both[..., :1], both[..., 1:]
            for sub in inner[1:]:
                x = sub(x)
            reframed = True
        else:
            x = layer(x)
        if layer is target:
            acts = x
    if not reframed:
        raise ValueError(f"{network.name} has no reframing augmentation for the mask to follow")
    cells = lung_cells(m, int(acts.shape[1]), cover)
    joined = keras.layers.Concatenate(dtype="float32")([keras.ops.cast(acts, "float32"), cells])
    return keras.Model([image, lungs], {"score": x, "lungs": joined},
                       name=f"{network.name}_focus_training")


def outside_share_joined(kernel):
    """:func:`outside_share` for :func:`training_model`'s ``"lungs"`` output
    (the activations with the lung cells as their last channel); the target
    is not read."""
    share = outside_share(kernel)

    def loss(_, joined):
        return share(joined[..., -1], joined[..., :-1])
    return loss


def _batches(data, recipe, subset: str, weights=None, seed=None):
    from .recipes import lung_masks_as_seen

    size = recipe.network_size(data)
    images = data.images(subset, recipe.decode_size(data), recipe.preprocess(size))
    lungs = lung_masks_as_seen(data, recipe, subset)
    w = np.ones(len(lungs), "float32") if weights is None else np.asarray(weights, "float32")
    rows = tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices((lungs, w))))
    if seed is not None:
        rows = rows.shuffle(len(lungs), seed=seed, reshuffle_each_iteration=True)
    rows = rows.map(lambda xy, mw: ((xy[0], mw[0][..., None]),
                                    {"score": xy[1], "lungs": tf.zeros((1,))},
                                    {"score": mw[1], "lungs": mw[1]}))
    return rows.batch(data.batch_size).prefetch(tf.data.AUTOTUNE)


def fit_focused(network: keras.Model, data, recipe, epochs: int, seed: int, learning_rate,
                strategy=None, verbose=0) -> tuple[dict, dict]:
    """``training.fit_network`` for a recipe with ``lung_focus``: the network
    fitted through :func:`training_model` (the masks follow its reframing),
    its loss the task's plus ``recipe.lung_focus`` times :func:`outside_share`, classes balanced by
    per-image weights, early stopping on the score's validation figure.
    Binary task only. Returns the history (the score's figures under their
    usual names) and the timing."""
    from .distribute import scope
    from .training import class_weights, fit, make_optimizer

    task = data.task
    if not task.is_binary:
        raise ValueError("lung_focus is for the binary task (one evidence map per image)")
    head = network.layers[-1]
    with scope(strategy):
        model = training_model(network)
        model.compile(optimizer=make_optimizer(recipe.optimizer, learning_rate, recipe.ema),
                      loss={"score": task.loss(), "lungs": outside_share_joined(head.kernel)},
                      loss_weights={"score": 1.0, "lungs": recipe.lung_focus},
                      metrics={"score": task.compile_metrics()})
    y = data.labels("train")
    cw = class_weights(y) if recipe.balance else {int(c): 1.0 for c in np.unique(y)}
    train = _batches(data, recipe, "train", [cw[int(c)] for c in y], seed)
    val = _batches(data, recipe, "validation")
    monitor = recipe.monitor or task.monitor
    history, timing = fit(model, train, val, epochs, n_train=len(y), monitor=_named(monitor),
                          patience=recipe.patience, verbose=verbose)
    renamed = {(k if k.endswith("loss") else k.replace("score_", "")): v
               for k, v in history.items()}
    return renamed, timing


def _named(monitor: str) -> str:
    """The wrapper's name of a monitored figure (``val_auc`` -> ``val_score_auc``)."""
    if monitor.startswith("val_") and monitor != "val_loss":
        return "val_score_" + monitor[4:]
    return monitor
