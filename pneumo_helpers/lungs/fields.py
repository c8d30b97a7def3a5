"""The lung fields as numbers: the segmenter's probability maps cleaned up
(the two largest components, holes filled), a plausibility check of each
mask, and per-image statistics (lung area share, components, the box the crop
uses), for the instruments and for showing that the segmenter's failures and
mask statistics do not depend on the class.

The box itself always comes from ``lungs.crop.lung_boxes``, the rule inside
the saved models, so these statistics describe the crop the classifier sees.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_LUNG_SHARE = 0.01  # a component smaller than this share of the image is not a lung
PLAUSIBLE = dict(
    min_area=0.02,         # lung area share of the image
    min_lungs=2,           # components of at least MIN_LUNG_SHARE
    min_ratio=0.25,        # smaller / larger of the two lungs (area)
    min_separation=0.15,   # horizontal distance of the two lung centroids (fraction of width)
    box_w=(0.30, 1.0),     # box width share
    box_h=(0.25, 1.0),     # box height share
    centre_x=(0.30, 0.70),
    centre_y=(0.25, 0.75),
)



def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2 + 0.5


def split_column(mask: np.ndarray, lo: float = 0.3, hi: float = 0.7) -> int:
    """The column, within ``lo``-``hi`` of the width, where ``mask`` has the
    fewest pixels (the mediastinum between two lungs); ties go to the centre."""
    h, w = mask.shape
    a, b = int(lo * w), int(hi * w)
    sums = mask[:, a:b].sum(axis=0).astype(float)
    sums += 1e-3 * np.abs(np.arange(a, b) - (w - 1) / 2)
    return a + int(np.argmin(sums))


def postprocess(prob: np.ndarray, threshold: float = 0.5, keep: int = 2,
                min_share: float = 0.002, open_radius: int = 1, split: bool = True) -> np.ndarray:
    """Threshold a ``(h, w)`` probability map, open it with a disk of
    ``open_radius`` px (cuts thin bridges between the lungs and thin leaks,
    e.g. up the trachea), keep the ``keep`` largest 8-connected components
    (each at least ``min_share`` of the image) and fill their holes.

    ``split``: when the lungs come out as one component (joined across the
    mediastinum), that component is cut at :func:`split_column` if at least
    a fifth of it lies on each side. Returns a bool mask."""
    from scipy import ndimage

    mask = prob > threshold
    if open_radius > 0 and mask.any():
        mask = ndimage.binary_opening(mask, structure=_disk(open_radius))
    lab, k = ndimage.label(mask, structure=np.ones((3, 3)))
    if k == 0:
        return mask
    sizes = ndimage.sum(mask, lab, index=np.arange(1, k + 1))
    order = np.argsort(sizes)[::-1]
    parts = [lab == order[0] + 1]
    if len(order) > 1:
        parts.append(lab == order[1] + 1)
    if split and (len(parts) == 1 or parts[1].sum() < 0.25 * parts[0].sum()):
        big = parts[0]
        col = split_column(big)
        left, right = big.copy(), big.copy()
        left[:, col:] = False       # the cut column itself is dropped, so the
        right[:, :col + 1] = False  # two halves stay separate components
        if min(left.sum(), right.sum()) >= 0.2 * big.sum():
            parts = [left, right] + parts[1:]
    out = np.zeros_like(mask)
    pieces = []
    for p in parts:
        lab2, k2 = ndimage.label(p, structure=np.ones((3, 3)))
        for j in range(1, k2 + 1):
            pieces.append(lab2 == j)
    pieces.sort(key=lambda p: -p.sum())
    for p in pieces[:keep]:
        if p.sum() >= min_share * mask.size:
            out |= ndimage.binary_fill_holes(p)
    return out


def components(mask: np.ndarray, min_share: float = MIN_LUNG_SHARE):
    """The components of a bool mask of at least ``min_share`` of the image,
    largest first: a list of dicts with area share, centroid x/y and box
    (fractions)."""
    from scipy import ndimage

    h, w = mask.shape
    lab, k = ndimage.label(mask, structure=np.ones((3, 3)))
    out = []
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        comp = lab[sl] == i
        a = comp.sum() / mask.size
        if a < min_share:
            continue
        ys, xs = np.nonzero(comp)
        out.append(dict(area=a, cx=(xs.mean() + sl[1].start + 0.5) / w,
                        cy=(ys.mean() + sl[0].start + 0.5) / h,
                        box=(sl[1].start / w, sl[0].start / h, sl[1].stop / w, sl[0].stop / h)))
    return sorted(out, key=lambda c: -c["area"])



def plausibility(mask: np.ndarray, rules: dict | None = None) -> dict:
    """Checks a post-processed bool mask for a plausible pair of lung fields.
    Returns ``{"failed": bool, "reasons": [...]}``; the reasons are

    ``area`` (lung share < ``min_area``), ``lungs`` (fewer than ``min_lungs``
    components of at least :data:`MIN_LUNG_SHARE`), ``ratio`` (the smaller
    lung under ``min_ratio`` of the larger), ``sides`` (the two lungs'
    centroids less than ``min_separation`` apart horizontally), ``box_w``,
    ``box_h``, ``centre_x``, ``centre_y`` (the box of the two lungs outside
    the given ranges)."""
    r = {**PLAUSIBLE, **(rules or {})}
    reasons = []
    share = mask.mean()
    if share < r["min_area"]:
        reasons.append("area")
    comps = components(mask)
    if len(comps) < r["min_lungs"]:
        reasons.append("lungs")
    else:
        a, b = comps[0], comps[1]
        if b["area"] < r["min_ratio"] * a["area"]:
            reasons.append("ratio")
        if abs(a["cx"] - b["cx"]) < r["min_separation"]:
            reasons.append("sides")
    box = components_box(comps)
    if box is not None:
        bw, bh = box[2] - box[0], box[3] - box[1]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        for name, v in (("box_w", bw), ("box_h", bh), ("centre_x", cx), ("centre_y", cy)):
            lo, hi = r[name]
            if not lo <= v <= hi:
                reasons.append(name)
    return {"failed": bool(reasons), "reasons": reasons}


def components_box(comps: list[dict]):
    """The box ``(x0, y0, x1, y1)`` of the two largest components, or ``None``."""
    if not comps:
        return None
    boxes = [c["box"] for c in comps[:2]]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def lung_fields(images: np.ndarray, margin: float = 0.0,
                batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``(n, s, s, 1)`` images in [0, 1]: the lung probability maps
    ``(n, 128, 128)``, the lung boxes ``(n, 4)`` as ``(x0, y0, x1, y1)``
    fractions (the crop's rule, widened by ``margin``; the crop itself uses
    ``crop.MARGIN``) and whether each box came from the map (not the
    fallback)."""
    import tensorflow as tf

    from .crop import fields_model, lung_boxes

    model = fields_model(int(images.shape[1]))
    probability, _ = model.predict(images, batch_size=batch_size, verbose=0)
    small = tf.image.resize(images, probability.shape[1:3], antialias=True)
    boxes, found = lung_boxes(tf.constant(probability), small, margin)
    y0, x0, y1, x1 = np.asarray(boxes).T
    return probability[..., 0], np.stack([x0, y0, x1, y1], axis=1), np.asarray(found)


def field_statistics(probability: np.ndarray, boxes: np.ndarray,
                     found: np.ndarray) -> pd.DataFrame:
    """One row per image: ``area_share`` (lung share of the image, after
    :func:`postprocess`), ``n_lungs`` (components of at least
    :data:`MIN_LUNG_SHARE`), ``lung_ratio`` (smaller / larger), the crop box
    without its margin (``box_x0`` ... ``box_y1``, ``box_w``, ``box_h``,
    ``box_area``), ``fallback`` (no lungs found: the fixed box), ``failed``
    and ``reasons`` (:func:`plausibility`)."""
    rows = []
    for prob, box, ok in zip(probability, boxes, found):
        mask = postprocess(prob)
        comps = components(mask)
        check = plausibility(mask)
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        rows.append(dict(area_share=float(mask.mean()), n_lungs=len(comps),
                         lung_ratio=(comps[1]["area"] / comps[0]["area"]) if len(comps) > 1
                         else 0.0, box_x0=x0, box_y0=y0, box_x1=x1, box_y1=y1, box_w=w,
                         box_h=h, box_area=w * h, fallback=not bool(ok),
                         failed=check["failed"], reasons="+".join(check["reasons"])))
    return pd.DataFrame(rows)


#: the statistics compared between the classes
STATISTICS = ("area_share", "box_w", "box_h", "box_area", "n_lungs", "lung_ratio")


def class_table(table: pd.DataFrame, labels=("normal", "pneumonia")) -> pd.DataFrame:
    """Per class (columns): the failure and fallback rates and the mean and
    median of each of :data:`STATISTICS`; and, per statistic, the ROC AUC
    with which it alone tells the classes apart (0.5: it does not) and the
    p-value of a two-sample test (Fisher's exact test for the failure rate,
    Kolmogorov-Smirnov for the statistics). ``table``: a
    :func:`field_statistics` table with a ``label`` column."""
    from scipy.stats import fisher_exact, ks_2samp
    from sklearn.metrics import roc_auc_score

    y = table["label"].to_numpy() > 0
    rows = {}
    for name in ("failed", "fallback"):
        v = table[name].to_numpy(bool)
        counts = [[int(v[~y].sum()), int((~v[~y]).sum())], [int(v[y].sum()), int((~v[y]).sum())]]
        rows[f"{name} (share)"] = {labels[0]: v[~y].mean(), labels[1]: v[y].mean(),
                                   "class AUC": np.nan, "p": fisher_exact(counts)[1]}
    for name in STATISTICS:
        v = table[name].to_numpy(float)
        for stat, f in (("mean", np.mean), ("median", np.median)):
            rows[f"{name} {stat}"] = {labels[0]: f(v[~y]), labels[1]: f(v[y]),
                                      "class AUC": roc_auc_score(y, v) if stat == "mean" else np.nan,
                                      "p": ks_2samp(v[~y], v[y]).pvalue if stat == "mean" else np.nan}
    return pd.DataFrame.from_dict(rows, orient="index")
