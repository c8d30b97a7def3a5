"""Score new chest X-rays with a saved model: image files and folders, JPEG,
PNG and DICOM, one CSV row per image, optional Grad-CAM heat maps.

Images are prepared exactly as in training (one grayscale channel, resized to
the model's input size without keeping the aspect ratio, [0, 1]) and scored
with the model's own test-time views; the decision uses the threshold saved
with the model. An image that cannot be read gets a row with its error and
the others are still scored. Nothing is written beside the images.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..data.images import MIN_SIDE, SUFFIXES, load_image
from ..data.paths import is_hidden_or_system


def find_images(paths) -> list[Path]:
    """Image files named in ``paths``, and those below named folders
    (recursively, hidden and system files skipped as in training), in order."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            below = sorted(q for q in p.rglob("*") if q.is_file()
                           and q.suffix.lower() in SUFFIXES
                           and not any(is_hidden_or_system(part)
                                       for part in q.relative_to(p).parents if part.name)
                           and not is_hidden_or_system(q))
            found.extend(below)
        else:
            found.append(p)  # named explicitly: scored, or reported, whatever it is
    return found


def score_images(saved, paths, batch_size: int = 32, progress: bool = False) -> list[dict]:
    """One row per image of ``paths`` (see :func:`find_images`): ``path``,
    ``pneumonia_probability``, ``decision`` at the model's threshold, the
    class probabilities for a three-class model, and ``error`` (empty when
    scored)."""
    import tensorflow as tf

    from ..metrics import pneumonia_score
    from ..modeling.training import predict_scores

    files = find_images(paths)
    rows, batch, where = [], [], []

    def flush():
        if not batch:
            return
        x = tf.data.Dataset.from_tensors(np.stack(batch))
        probs = predict_scores(saved.model, x)  # its test-time views are inside the model
        p = pneumonia_score(probs)
        for i, row_index in enumerate(where):
            row = rows[row_index]
            row["pneumonia_probability"] = float(p[i])
            row["decision"] = "pneumonia" if p[i] >= saved.threshold else "normal"
            if probs.ndim == 2 and probs.shape[1] > 1:
                for name, value in zip(saved.class_names, probs[i]):
                    row[f"p_{name}"] = float(value)
        batch.clear()
        where.clear()

    iterator = files
    if progress:
        from tqdm import tqdm
        iterator = tqdm(files, desc="scoring", unit="image", disable=len(files) < 50)
    for path in iterator:
        row = {"path": str(path), "pneumonia_probability": "", "decision": "", "error": ""}
        rows.append(row)
        try:
            batch.append(load_image(path, saved.image_size, min_side=MIN_SIDE))
            where.append(len(rows) - 1)
        except (ValueError, OSError) as err:
            row["error"] = str(err).removeprefix(f"{path}: ")
        if len(batch) == batch_size:
            flush()
    flush()
    return rows


def is_predictions_csv(path) -> bool:
    """Whether ``path`` is a CSV written by :func:`write_csv` (which may be replaced)."""
    try:
        with open(path, "rb") as f:
            return f.readline().startswith(b"path,pneumonia_probability,")
    except OSError:
        return False


def write_csv(rows: list[dict], path, class_names=()) -> Path:
    columns = ["path", "pneumonia_probability", "decision"]
    if len(class_names) > 2:
        columns += [f"p_{n}" for n in class_names]
    columns += [c for c in ("pneumonia_probability_at_site_prevalence",) if rows and c in rows[0]]
    columns.append("error")
    path = Path(path)
    # file names that are not valid UTF-8 are written back byte for byte
    with path.open("w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def heatmap_figure(image, cam, title: str):
    """One X-ray with its Grad-CAM overlay, a title and a colour bar."""
    import matplotlib.pyplot as plt

    from ..evaluation.explain import CAM_LABEL, overlay

    fig, ax = plt.subplots(figsize=(4.6, 4.2), layout="constrained")
    bar = fig.colorbar(overlay(ax, image, cam, title), ax=ax, shrink=0.8)
    bar.set_label(CAM_LABEL, fontsize=7)
    return fig


def write_heatmaps(saved, rows: list[dict], folder) -> list[Path]:
    """One PNG per scored image in ``folder``: the X-ray, its Grad-CAM overlay,
    the score and the decision in the title."""
    import matplotlib.pyplot as plt

    from ..evaluation.explain import grad_cam

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written, used = [], set()
    for row in rows:
        if row["error"]:
            continue
        image = load_image(row["path"], saved.image_size)
        cam = grad_cam(saved.networks, image[None])[0]
        name = Path(row["path"]).stem
        stem, k = name, 1
        while stem in used:  # the same file name in two folders
            k += 1
            stem = f"{name}_{k}"
        used.add(stem)
        title = (f"{Path(row['path']).name}\nscore {row['pneumonia_probability']:.3f}: "
                 f"{row['decision']} (threshold {saved.threshold:.3f})")
        fig = heatmap_figure(image, cam, title)
        out = folder / f"{stem}.png"
        fig.savefig(out, dpi=100)
        plt.close(fig)
        written.append(out)
    return written
