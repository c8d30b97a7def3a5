"""Named recipes: a network, the preprocessing it sees, the test-time views it
is scored with and how it is trained; training over several seeds, and seed
ensembles. The final notebook trains one recipe; chapters 07 and 08 compare
them (``evaluation.selection``). A new recipe is one entry of :data:`RECIPES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import keras
import numpy as np

from .augment import TTA_FRAMES
from .training import TrainedModel, fit_network, operating_points, set_seed


@dataclass(frozen=True)
class Recipe:
    """Everything that makes a trained model of this kind: the builder
    (a key of ``models.BUILDERS`` or ``"transfer"``) and its keyword
    arguments (``network``), the crop to the lung fields (``lungs``: ``None``,
    ``"crop"`` or ``"crop_mask"``, see ``lungs.crop``), the test-time
    ``views`` (zoom, shift_x, shift_y; ``()`` for none), and the training
    schedule. A second, fine-tuning phase (``finetune``: ``epochs``,
    ``unfreeze_layers``, ``learning_rate``) is for transfer recipes."""

    name: str
    description: str
    builder: str = "robust_cnn"
    network: dict = field(default_factory=dict)
    lungs: str | None = None
    scale_balanced: bool = False  # training zoom that gives both classes one lung-field scale
    structure_balanced: bool = False  # weights that give every class one structure distribution
    lung_focus: float = 0.0  # weight of the evidence share outside the lungs in the loss
    context_swap: float = 0.0  # share of training crops given another image's surroundings
    image_size: int | None = None  # the network's input size, if not the split's
    views: tuple = TTA_FRAMES
    learning_rate: float = 0.002
    schedule: bool = True  # one warm-up epoch, then cosine decay
    optimizer: str = "adam"
    ema: float | None = None  # momentum of a moving average of the weights, validated and kept
    balance: bool = True  # 'balanced' class weights
    monitor: str | None = None  # default: the task's
    patience: int = 6
    finetune: dict | None = None

    # ------------------------------------------------------------ the images

    def network_size(self, data) -> int:
        """The network's input size: the recipe's own, else the split's."""
        return self.image_size or data.image_size

    def decode_size(self, image_size) -> int:
        """The size images are decoded at: the network's input size, or more
        for a crop to the lung fields (the crop is resized to the network's).
        ``image_size``: the network's input size, or a ``SplitData``."""
        size = self.network_size(image_size) if hasattr(image_size, "image_size") else image_size
        if not self.lungs:
            return size
        from ..lungs.crop import decode_size
        return decode_size(size)

    def preprocess(self, image_size: int) -> keras.Model | None:
        """The frozen model between the decoded image and the network (the
        crop to the lung fields), or ``None``."""
        if not self.lungs:
            return None
        from ..lungs.crop import crop_model
        return crop_model(self.decode_size(image_size), image_size, self.lungs)

    def as_seen(self, images, image_size: int):
        """``images`` decoded at :meth:`decode_size` as the networks see them
        (cropped to the lung fields when the recipe crops; Grad-CAM and the
        figures draw on these)."""
        crop = self.preprocess(image_size)
        return images if crop is None else crop.predict(images, verbose=0)

    def prepared(self, data, subset: str, shuffle_seed: int | None = None):
        """``(image, label)`` batches of ``subset`` as the network sees them."""
        return data.dataset(subset, self.decode_size(data),
                            self.preprocess(self.network_size(data)), shuffle_seed=shuffle_seed)

    def training_images(self, data, seed: int):
        """The training batches, shuffled by ``seed``; with ``scale_balanced``,
        each image zoomed (about its centre, anew each epoch) so that its
        lung box takes an area drawn from the areas of all training images,
        whatever its class: both classes then reach the network with one
        distribution of lung-field scale. With ``context_swap`` (lung
        recipes), that share of the training crops keep their own lung fields
        and take everything around them from another training image of either
        class, drawn anew each epoch: what surrounds the lungs (shoulders,
        neck, markers, the child's size) then tells the network nothing.
        With ``structure_balanced``, ``(image, label, weight)`` batches: each
        training image weighted (``training.matched_weights``) so that every
        class counts alike and, within each class, the lungs' structure
        (``evaluation.anatomy.structure`` of the image as the network sees
        it) has the distribution it has over all training images: how faint
        the structure is then tells the network nothing about the label."""
        if self.scale_balanced:
            return _scale_balanced(data, self.network_size(data), seed)
        if self.structure_balanced:
            return _structure_balanced(data, self, seed)
        if self.context_swap:
            return _context_swapped(data, self, seed)
        return self.prepared(data, "train", shuffle_seed=seed)

    # ----------------------------------------------------------- the models

    def build(self, image_size: int, task, seed: int) -> keras.Model:
        from . import models

        image_size = self.image_size or image_size
        if self.builder == "transfer":
            from .transfer import transfer_model
            return transfer_model(image_size=image_size, task=task, seed=seed,
                                  name=f"network_seed{seed}", **self.network)
        return models.BUILDERS[self.builder](image_size, task=task, seed=seed,
                                             name=f"network_seed{seed}", **self.network)

    def inference_model(self, networks: list[keras.Model]) -> keras.Model:
        """Preprocessing, test-time views and the mean of ``networks``, as one model."""
        from .models import inference_model

        size = int(networks[0].input_shape[1])
        return inference_model(networks, self.views, self.preprocess(size), name=self.name)


def _scale_balanced(data, size: int, seed: int):
    """See ``Recipe.training_images``. The lung boxes of the training images
    are found once per split (``SplitData.memo``)."""
    import tensorflow as tf

    from ..data.pipeline import batched
    from ..lungs.fields import lung_fields
    from .augment import affine_matrix

    pairs = data.images("train", size)  # in table order, not shuffled

    def areas():
        images = np.concatenate([x.numpy() for x, _ in batched(pairs, 64)])
        _, boxes, _ = lung_fields(images)
        return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).astype("float32")

    area = data.memo(("lung_box_area", "train", size), areas)
    pool = tf.constant(np.sort(area))
    keyed = tf.data.Dataset.zip((pairs, tf.data.Dataset.from_tensor_slices(area)))
    keyed = keyed.shuffle(len(area), seed=seed, reshuffle_each_iteration=True)

    def zoom(xy, a):
        x, y = xy
        pick = tf.random.uniform(tf.shape(a), 0, tf.shape(pool)[0], dtype=tf.int32, seed=seed)
        z = tf.clip_by_value(tf.sqrt(tf.gather(pool, pick) / tf.maximum(a, 1e-3)), 0.6, 1.6)
        zero = tf.zeros_like(z)
        x = tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=affine_matrix(z, zero, zero, zero, size, size),
            output_shape=tf.constant([size, size]), fill_value=0.0, interpolation="BILINEAR",
            fill_mode="CONSTANT")
        return x, y

    return keyed.batch(data.batch_size).map(zoom, num_parallel_calls=tf.data.AUTOTUNE) \
        .prefetch(tf.data.AUTOTUNE)


def lung_masks_as_seen(data, recipe, subset: str) -> np.ndarray:
    """``(n, size, size)`` float masks of ``subset``'s lung fields, in table
    order, in the space of ``recipe``'s network input (cut to its crop; see
    ``evaluation.anatomy.lungs_as_the_network_sees_them``); found once per split."""
    from ..data.pipeline import batched
    from ..evaluation.anatomy import lungs_as_the_network_sees_them
    from ..lungs.fields import lung_fields

    size = recipe.network_size(data)

    def masks():
        full = np.concatenate([x.numpy() for x, _ in batched(
            data.images(subset, recipe.decode_size(data)), 64)])
        probability, boxes, _ = lung_fields(full)
        return lungs_as_the_network_sees_them(recipe, probability, boxes, size).astype("float32")

    return data.memo(("lung_masks_in_crop", subset, recipe.lungs, size), masks)


def structure_weights(data, recipe) -> np.ndarray:
    """The training images' weights of a ``structure_balanced`` recipe, in
    table order (see ``Recipe.training_images``); found once per split."""
    from ..data.pipeline import batched
    from ..evaluation.anatomy import structure
    from .training import matched_weights

    size = recipe.network_size(data)
    seen = data.images("train", recipe.decode_size(data), recipe.preprocess(size))

    def weights():
        images = np.concatenate([x.numpy() for x, _ in batched(seen, 64)])
        return matched_weights(data.labels("train"), structure(images))

    return data.memo(("structure_weights", recipe.lungs, size), weights)


def _structure_balanced(data, recipe, seed: int):
    """See ``Recipe.training_images``: the training images as the network
    sees them, with their weights, shuffled anew each epoch."""
    import tensorflow as tf

    size = recipe.network_size(data)
    seen = data.images("train", recipe.decode_size(data), recipe.preprocess(size))
    weights = structure_weights(data, recipe)
    rows = tf.data.Dataset.zip((seen, tf.data.Dataset.from_tensor_slices(weights)))
    rows = rows.shuffle(len(weights), seed=seed, reshuffle_each_iteration=True)
    return rows.map(lambda xy, w: (xy[0], xy[1], w)).batch(data.batch_size) \
        .prefetch(tf.data.AUTOTUNE)


def _context_swapped(data, recipe, seed: int):
    """See ``Recipe.training_images``: the crops, their lung masks in the
    crop's space (dilated by 4% of the size), shuffled; within each batch a
    share ``recipe.context_swap`` of the crops get the surroundings of
    another crop of the batch."""
    import tensorflow as tf

    size = recipe.network_size(data)
    crops = data.images("train", recipe.decode_size(data), recipe.preprocess(size))
    k = max(1, int(round(0.04 * size)) * 2 + 1)

    def dilated():  # once per split, not per batch: a k x k max pool is slow on the CPU
        lungs = lung_masks_as_seen(data, recipe, "train")[..., None]
        return np.concatenate([  # separable: rows then columns, the same maximum
            tf.nn.max_pool2d(tf.nn.max_pool2d(lungs[i:i + 64], (k, 1), 1, "SAME"), (1, k), 1,
                             "SAME").numpy() for i in range(0, len(lungs), 64)])

    lungs = data.memo(("dilated_lung_masks_in_crop", recipe.lungs, size, k), dilated)
    pairs = tf.data.Dataset.zip((crops, tf.data.Dataset.from_tensor_slices(lungs)))
    pairs = pairs.shuffle(len(lungs), seed=seed, reshuffle_each_iteration=True)

    def swap(xy, m):
        x, y = xy
        n = tf.shape(x)[0]
        other = tf.gather(x, tf.random.shuffle(tf.range(n), seed=seed))
        chosen = tf.cast(tf.random.uniform((n, 1, 1, 1), seed=seed) < recipe.context_swap,
                         x.dtype)
        mixed = m * x + (1.0 - m) * other
        return chosen * mixed + (1.0 - chosen) * x, y

    return pairs.batch(data.batch_size).map(swap, num_parallel_calls=tf.data.AUTOTUNE) \
        .prefetch(tf.data.AUTOTUNE)


# test-time views that zoom out and shift, but never zoom in (zooming in frames a
# normal chest the way pneumonia images are framed in the training data)
TTA_ZOOM_OUT = ((0.8, 0.0, 0.0), (0.9, 0.0, 0.0), (1.0, -0.05, 0.0), (1.0, 0.05, 0.0))
# small test-time shifts only, for images already cropped to the lung fields
TTA_SHIFTS = ((1.0, -0.04, 0.0), (1.0, 0.04, 0.0), (1.0, 0.0, -0.04), (1.0, 0.0, 0.04))

RECIPES = {r.name: r for r in [
    Recipe("robust_cnn", "the recipe of the first blind evaluation: random reframing, aspect, "
           "gamma and sharpness augmentation, per-image standardisation, test-time views"),
    Recipe("equalized", "robust_cnn on histogram-equalised images (exposure curves removed)",
           network=dict(equalize=True)),
    Recipe("equalized_tta_out", "equalized, with test-time views that zoom out but never in",
           network=dict(equalize=True), views=TTA_ZOOM_OUT),
    Recipe("equalized_deep", "equalized, two convolutions per block",
           network=dict(equalize=True, convs_per_block=2)),
    Recipe("equalized_deep_tta_out", "equalized_deep, with test-time views that zoom out but "
           "never in", network=dict(equalize=True, convs_per_block=2), views=TTA_ZOOM_OUT),
    Recipe("equalized_body_crop", "equalized, each image first cropped to the body's width",
           network=dict(equalize=True, body_crop=True)),
    Recipe("equalized_no_augment", "histogram equalisation, no random augmentation and no "
           "test-time views (chapter 04's unaugmented steps ranked the counter-framed subset best)",
           network=dict(equalize=True, augment="none"), views=()),
    Recipe("zoom_0.7_2.0", "robust_cnn with random zoom up to 2x (crops of a quarter of the "
           "image)", network=dict(zoom=(0.7, 2.0))),
    # inputs normalised by anatomy (chapter 08)
    Recipe("lung_crop", "each image cropped to its lung fields' box (with a margin) before the "
           "equalised CNN; mild reframing, small test-time shifts", lungs="crop",
           network=dict(equalize=True, zoom=(0.85, 1.15), shift=0.06), views=TTA_SHIFTS),
    Recipe("lung_crop_mask", "lung_crop, and everything outside the (slightly widened) lung "
           "fields set to black", lungs="crop_mask",
           network=dict(equalize=True, zoom=(0.85, 1.15), shift=0.06), views=TTA_SHIFTS),
    Recipe("lung_crop_mask_zoom", "lung_crop_mask, trained with zoom up to 1.4x (crops whose "
           "edges cut into the lung fields, as a tighter framing does, seen in training)",
           lungs="crop_mask", network=dict(equalize=True, zoom=(0.85, 1.4), shift=0.06),
           views=TTA_SHIFTS),
    Recipe("lung_crop_structure", "lung_crop, and structure contrast (ribs, vessels, lung "
           "texture about the local mean) scaled by 0.7 to 1.4 in training, both classes alike: "
           "how much of it an X-ray shows is the machine's processing, not the lungs",
           lungs="crop", network=dict(equalize=True, zoom=(0.85, 1.15), shift=0.06,
                                      local_contrast=(0.7, 1.4)), views=TTA_SHIFTS),
    Recipe("lung_crop_structure_norm", "lung_crop, each equalised crop's structure brought to "
           "one level (the local mean kept): how faint the lungs' structure is overall tells "
           "the network nothing, only where it is faint", lungs="crop",
           network=dict(equalize=True, normalize_structure=True, zoom=(0.85, 1.15), shift=0.06),
           views=TTA_SHIFTS),
    Recipe("lung_crop_swap", "lung_crop, and half of the training crops keep their own lung "
           "fields inside another training image's surroundings (drawn anew each epoch, either "
           "class): what surrounds the lungs tells the network nothing", lungs="crop",
           context_swap=0.5, network=dict(equalize=True, zoom=(0.85, 1.15), shift=0.06),
           views=TTA_SHIFTS),
    Recipe("scale_balanced", "no crop: training images zoomed so that the lung-field scale has "
           "one distribution in both classes; equalised CNN, zoom-out test-time views",
           scale_balanced=True, network=dict(equalize=True, zoom=(0.9, 1.1)),
           views=TTA_ZOOM_OUT),
    Recipe("lung_crop_mobilenet", "the lung-field crop under an ImageNet MobileNet (alpha 0.25, "
           "112 px), frozen then its top blocks fine-tuned", builder="transfer", lungs="crop",
           image_size=112, network=dict(backbone="MobileNet", alpha=0.25),
           learning_rate=1e-3, schedule=False, patience=3, views=(),
           finetune=dict(epochs=6, unfreeze_layers=12, learning_rate=1e-4)),
]}


def _variant(base: str, name: str, description: str, **changes) -> Recipe:
    """``base``'s recipe with ``changes``: every other setting is ``base``'s."""
    return replace(RECIPES[base], name=name, description=description, **changes)


RECIPES.update({r.name: r for r in [
    _variant("lung_crop_structure_norm", "lung_crop_structure_norm_ema",
             "lung_crop_structure_norm, the weights kept and validated an exponential moving "
             "average over about an epoch of steps (momentum 0.99): a smoother choice of "
             "weights, less left to the seed", ema=0.99),
    _variant("lung_crop", "lung_crop_ema", "lung_crop, the weights kept and validated an "
             "exponential moving average over about an epoch of steps (momentum 0.99)", ema=0.99),
    _variant("lung_crop", "lung_crop_structure_balanced", "lung_crop, each training image "
             "weighted so that both classes count alike and, within each, the lungs' structure "
             "has one distribution (ribs and vessels faint in both classes as often): faint "
             "structure alone no longer tells pneumonia", structure_balanced=True),
    _variant("lung_crop", "lung_crop_focus", "lung_crop, and the loss asks the network to find "
             "its evidence inside the lung fields: each training image also pays the share of "
             "its class evidence (the dense head on the last block's map, what Grad-CAM reads) "
             "outside its lungs", lung_focus=1.0),
]})
DEFAULT_RECIPE = "lung_crop_ema"  # chosen in chapter 08 on validation instruments (its rule)


def get_recipe(name: str | Recipe) -> Recipe:
    """The recipe called ``name`` (one ParameterError line for an unknown one)."""
    from ..parameters import StrOptions, check

    if isinstance(name, Recipe):
        return name
    return RECIPES[check("recipe", name, StrOptions(RECIPES))]


def fit_recipe(recipe, data, seed: int, epochs: int = 15, target_recall: float = 0.98,
               verbose=0, strategy=None) -> TrainedModel:
    """Train ``recipe`` on ``data`` with training seed ``seed`` (weights,
    augmentation and shuffling; the patient split is ``data``'s), early
    stopping and operating points on validation. With a ``tf.distribute``
    ``strategy``, the network is built in its scope and the recipe's learning
    rate scaled by the number of replicas (``data.batch_size`` is then the
    global batch, see ``distribute``)."""
    from .distribute import scope

    recipe = get_recipe(recipe)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    set_seed(seed)
    with scope(strategy):
        network = recipe.build(data.image_size, data.task, seed)
    history, timing = fit_network(network, data, recipe, epochs, seed,
                                  recipe.learning_rate * replicas, strategy, verbose)
    if recipe.finetune:
        history, timing = _finetune(network, data, recipe, seed, history, timing, replicas,
                                    strategy, verbose)
    return operating_points(f"{recipe.name} seed {seed}", recipe, [network], data,
                            target_recall, history=history, timing=timing, seeds=(seed,))


def _finetune(network, data, recipe, seed, history, timing, replicas, strategy, verbose):
    """Phase two of a transfer recipe: the top backbone layers unfrozen, kept
    only if it raises the best validation value of the monitored figure."""
    from .transfer import unfreeze_top

    monitor = recipe.monitor or data.task.monitor
    best = max if "loss" not in monitor else min
    saved = [w.numpy() for w in network.weights]
    unfreeze_top(network, recipe.finetune.get("unfreeze_layers", 12))
    phase2 = replace(recipe, learning_rate=recipe.finetune["learning_rate"], finetune=None)
    h2, t2 = fit_network(network, data, phase2, recipe.finetune["epochs"], seed,
                         phase2.learning_rate * replicas, strategy, verbose)
    kept = 2 if best(h2[monitor]) == best(history[monitor] + h2[monitor]) else 1
    if kept == 1:
        for w, v in zip(network.weights, saved):
            w.assign(v)
    merged = {"phase": [1] * len(history["loss"]) + [2] * len(h2["loss"])}
    for k in history:
        merged[k] = list(history[k]) + list(h2.get(k, [None] * len(h2["loss"])))
    seconds = timing["train_seconds"] + t2["train_seconds"]
    epochs = timing["epochs_run"] + t2["epochs_run"]
    return merged, {"train_seconds": round(seconds, 2), "epochs_run": epochs,
                    "train_images_per_second": round(len(data.labels("train")) * epochs
                                                     / seconds, 2),
                    "frozen_seconds": timing["train_seconds"], "frozen_epochs": timing["epochs_run"],
                    "finetune_seconds": t2["train_seconds"], "finetune_epochs": t2["epochs_run"],
                    "selected_phase": kept}


def fit_seeds(recipe, data, seeds, progress: bool = True, **kwargs) -> list[TrainedModel]:
    """:func:`fit_recipe` once per seed; with ``progress``, one line per seed
    as it finishes (readable in JupyterLab and in papermill's saved outputs)."""
    seeds = list(seeds)
    trained = []
    for i, seed in enumerate(seeds, 1):
        t = fit_recipe(recipe, data, seed, **kwargs)
        trained.append(t)
        if progress:
            print(f"[{i}/{len(seeds)}] seed {seed}: {t.timing['epochs_run']} epochs in "
                  f"{t.timing['train_seconds']:.0f} s, validation ROC AUC "
                  f"{t.validation['binary']['roc_auc']:.3f}, threshold "
                  f"{t.thresholds['pneumonia']:.3f}", flush=True)
    return trained


def ensemble(trained: list[TrainedModel], data, target_recall: float = 0.98) -> TrainedModel:
    """The mean of several trainings of one recipe as one model: its operating
    points chosen afresh on validation, on the mean of the members' validation
    scores (the scores of the mean model); ``members`` keeps the trainings."""
    if len(trained) == 1:
        return trained[0]
    timing = {"train_seconds": round(sum(t.timing["train_seconds"] for t in trained), 2),
              "epochs_run": sum(t.timing["epochs_run"] for t in trained)}
    return operating_points(
        f"{trained[0].recipe.name}, mean of {len(trained)} seeds", trained[0].recipe,
        [n for t in trained for n in t.networks], data, target_recall,
        val_scores=np.mean([t.val_scores for t in trained], axis=0),
        history=trained[0].history, timing=timing,
        seeds=tuple(s for t in trained for s in t.seeds), members=list(trained))
