"""``make segmenter``: train the lung-field model that ships with the package.

Two stages (chapter 08 and the README say why this recipe; variants were
compared on validation children, per class, before it was kept):

1. a U-Net trained on the adult lung-mask set (``lung_masks/``, 15% of each
   source held out for Dice) with augmentation that makes it travel to
   children: strong zoom-out, shifts, aspect, gamma, and synthetic opacities
   inside the lungs (``lungs.augment``);
2. self-training: its masks of healthy children of the *training* patients
   (the seed-42 patient split of ``train/``; never validation or test) that
   pass the plausibility check and agree with the mask of the mirrored image
   become targets, and a second U-Net is trained on the adults and those
   children, with synthetic opacities added to both. Only healthy children
   are pseudo-labelled: pseudo-labels of pneumonia images would teach the
   model to stop where a consolidation begins.

Run: ``python -m pneumo_helpers.lungs.training MASKS_DIR DATA_DIR [OUT]``
(``make segmenter``). About 20 minutes on two CPU cores.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .segmenter import IMAGE_SIZE, SEGMENTER_FILE, build_unet

HOLDOUT = 0.15  # of each adult source, for Dice
SOURCES = ("MCUCXR_", "CHNCXR_")
STAGE = dict(epochs=30, steps=40, batch=16, learning_rate=2e-3)
PSEUDO = dict(per_class=800, min_ratio=0.4, min_flip_dice=0.8, share=0.5)


def adult_split(masks_dir, holdout: float = HOLDOUT, seed: int = 0) -> tuple[list, list]:
    """Names of the adult images, split into training and held-out, by source."""
    names = sorted(p.name for p in (Path(masks_dir) / "images").glob("*.png"))
    rng = np.random.default_rng(seed)
    train, held = [], []
    for prefix in SOURCES:
        group = [n for n in names if n.startswith(prefix)]
        perm = rng.permutation(len(group))
        k = int(round(holdout * len(group)))
        held += [group[i] for i in perm[:k]]
        train += [group[i] for i in perm[k:]]
    return sorted(train), sorted(held)


def load_adult(masks_dir, names) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 256, 256) and 0/1 masks of ``names``."""
    from PIL import Image

    root = Path(masks_dir)
    x = np.stack([np.asarray(Image.open(root / "images" / n).convert("L")) for n in names])
    m = np.stack([np.asarray(Image.open(root / "masks" / n).convert("L")) > 127 for n in names])
    return x, m.astype(np.uint8)


def dice_bce_loss(y_true, y_pred, smooth: float = 1.0):
    """Binary cross-entropy plus (1 - soft Dice), per image."""
    import keras
    import tensorflow as tf

    y_true = tf.cast(y_true, y_pred.dtype)
    bce = tf.reduce_mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))
    inter = tf.reduce_sum(y_true * y_pred, axis=(1, 2, 3))
    total = tf.reduce_sum(y_true + y_pred, axis=(1, 2, 3))
    return bce + 1.0 - (2.0 * inter + smooth) / (total + smooth)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two bool masks (1 when both are empty)."""
    s = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / s) if s else 1.0


def _at_128(x: np.ndarray, masks: bool = False) -> np.ndarray:
    import tensorflow as tf

    x = tf.constant(x[..., None], tf.float32)
    if masks:
        return (tf.image.resize(x, (IMAGE_SIZE, IMAGE_SIZE)).numpy() > 0.5).astype("float32")
    return tf.image.resize(x / 255.0, (IMAGE_SIZE, IMAGE_SIZE), antialias=True).numpy()


def train_stage(images, masks, allowed=None, weights=None, seed: int = 0, heldout=None,
                epochs: int = STAGE["epochs"], steps: int = STAGE["steps"],
                batch: int = STAGE["batch"], verbose=2):
    """One U-Net trained on uint8 ``images`` / 0-1 ``masks`` (any size) with
    the training augmentation; ``heldout`` (images, masks at 128) is watched."""
    import keras

    from .augment import make_train_dataset

    keras.utils.set_random_seed(seed)
    ds = make_train_dataset(images, masks, batch, seed=seed, opacity_allowed=allowed,
                            weights=weights)
    model = build_unet()
    schedule = keras.optimizers.schedules.CosineDecay(STAGE["learning_rate"], epochs * steps,
                                                      alpha=0.02)
    model.compile(keras.optimizers.Adam(schedule), loss=dice_bce_loss)
    model.fit(ds, epochs=epochs, steps_per_epoch=steps, validation_data=heldout,
              validation_batch_size=64, verbose=verbose)
    return model


def pseudo_labels(model, images: np.ndarray, per_class: int = PSEUDO["per_class"],
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Masks of ``images`` (uint8, 128 px: healthy training children) that pass
    the plausibility check (with a stricter lung ratio) and agree with the mask
    of the mirrored image; at most ``per_class`` of them, drawn at random.
    Returns the images, their masks and the acceptance figures."""
    from .fields import plausibility, postprocess

    x = images.astype("float32")[..., None] / 255.0
    p1 = model.predict(x, batch_size=64, verbose=0)[..., 0]
    p2 = model.predict(x[:, :, ::-1], batch_size=64, verbose=0)[..., 0][:, :, ::-1]
    masks, ok = np.zeros(p1.shape, np.uint8), np.zeros(len(x), bool)
    for i, (a, b) in enumerate(zip(p1, p2)):
        mask = postprocess((a + b) / 2)
        masks[i] = mask
        plausible = not plausibility(mask, {"min_ratio": PSEUDO["min_ratio"]})["failed"]
        ok[i] = plausible and dice(a > 0.5, b > 0.5) >= PSEUDO["min_flip_dice"]
    pool = np.flatnonzero(ok)
    chosen = np.random.default_rng(seed).choice(pool, min(per_class, len(pool)), replace=False)
    return images[chosen], masks[chosen], {"candidates": len(x), "accepted": int(ok.sum()),
                                           "used": len(chosen)}


def heldout_dice(masks_dir, names, model=None):
    """Dice of the (post-processed) masks on held-out adult images, by source,
    at 128 px: a table with ``n``, ``mean`` and ``min`` per source."""
    import pandas as pd

    from .fields import postprocess
    from .segmenter import load_segmenter

    model = model or load_segmenter()
    x, m = load_adult(masks_dir, names)
    prob = model.predict(_at_128(x), batch_size=64, verbose=0)[..., 0]
    truth = _at_128(m, masks=True)[..., 0] > 0.5
    scores = np.array([dice(postprocess(p), t) for p, t in zip(prob, truth)])
    rows = {}
    for prefix in SOURCES:
        pick = np.array([n.startswith(prefix) for n in names])
        if pick.any():
            rows[prefix.rstrip("_")] = {"n": int(pick.sum()), "mean": scores[pick].mean(),
                                        "min": scores[pick].min()}
    return pd.DataFrame.from_dict(rows, orient="index")


def healthy_training_children(data_dir, seed: int = 42) -> np.ndarray:
    """uint8 (n, 128, 128) images of the NORMAL children among the training
    patients of the seed-``seed`` patient split, decoded as the classifier does."""
    from ..data import load_image_table, patient_split
    from ..data.pipeline import make_dataset

    table = patient_split(load_image_table(data_dir, check_images=False), 0.15, seed)
    normal = table[(table["subset"] == "train") & (table["label"] == 0)]
    x = np.concatenate([b.numpy()[..., 0] for b in make_dataset(normal, IMAGE_SIZE, 128,
                                                                label_column=None, cache=False)])
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def train_segmenter(masks_dir, data_dir, out=SEGMENTER_FILE, seed: int = 0, verbose=2,
                    **stage) -> dict:
    """The two stages above; writes the model to ``out`` and its training
    record beside it (``.json``: data, held-out names and Dice, pseudo-label
    figures, minutes). Returns the record."""
    import tensorflow as tf

    start = time.perf_counter()
    train_names, held = adult_split(masks_dir)
    x, m = load_adult(masks_dir, train_names)
    hx, hm = load_adult(masks_dir, held)
    heldout = (_at_128(hx), _at_128(hm, masks=True))
    first = train_stage(x, m, seed=seed, heldout=heldout, verbose=verbose, **stage)
    children = healthy_training_children(data_dir)
    px, pm, accepted = pseudo_labels(first, children, seed=seed)
    px = np.clip(np.round(tf.image.resize(px[..., None].astype("float32"),
                                          x.shape[1:3]).numpy()[..., 0]), 0, 255).astype(np.uint8)
    pm = (tf.image.resize(pm[..., None].astype("float32"), m.shape[1:3]).numpy()[..., 0]
          > 0.5).astype(np.uint8)
    weights = np.concatenate([np.full(len(x), (1 - PSEUDO["share"]) / len(x)),
                              np.full(len(px), PSEUDO["share"] / max(1, len(px)))])
    model = train_stage(np.concatenate([x, px]), np.concatenate([m, pm]), weights=weights,
                        seed=seed, heldout=heldout, verbose=verbose, **stage)
    out = Path(out)
    model.save(out)
    table = heldout_dice(masks_dir, held, model)
    record = {"masks_dir": str(masks_dir), "data_dir": str(data_dir),
              "adult_training_images": len(train_names), "adult_heldout_images": len(held),
              "pseudo_labelled_children": accepted["used"],
              "children_accepted_share": round(accepted["accepted"] / accepted["candidates"], 3),
              "stage": {**STAGE, **stage}, "pseudo": PSEUDO, "seed": seed,
              "minutes": round((time.perf_counter() - start) / 60, 1),
              "heldout": held, "heldout_dice": table.round(4).to_dict(orient="index")}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    return record


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        print("usage: python -m pneumo_helpers.lungs.training MASKS_DIR DATA_DIR [OUT.keras]",
              file=sys.stderr)
        return 2
    record = train_segmenter(argv[0], argv[1], argv[2] if len(argv) == 3 else SEGMENTER_FILE)
    print(f"trained in {record['minutes']} min; held-out Dice "
          + ", ".join(f"{k} {v['mean']:.3f}" for k, v in record["heldout_dice"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
