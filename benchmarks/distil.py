"""A fast model for big folders, as a row of evidence: one network distilled
from the model of ``make results`` (its seeds and test-time views), its
validation instruments against the teacher's, and ``pneumo predict``'s
steady rate for both, measured in one run.

    make distil [DATA_DIR=...] [OUT_DIR=reports]
    .venv/bin/python benchmarks/distil.py DATA_DIR --teacher reports/model.keras
                                          [--out reports/distilled] [--epochs 15] [--seed 42]

The split is the teacher's run's (its ``metrics.json`` beside the model:
seed, image size, validation share), so the teacher's validation instruments
are read from that document and the student's measured on the same
validation patients. The student is kept (``<out>/model.keras``, saved like
any model, with its own threshold and out-of-distribution reference) only if
every compared figure is within ``distil.TOLERANCE`` of the teacher's;
``<out>/distil.json`` holds the figures, the gaps, the rates and the verdict
either way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def steady_rate(saved, files, small: int, large: int) -> float:
    """``pneumo predict``'s images per second between two folder sizes (the
    difference removes start-up), after a warm-up."""
    from pneumo_helpers.use.scoring import score_images

    score_images(saved, files[:40])  # warm-up: full and short batches traced before timing

    def timed(n):
        start = time.perf_counter()
        score_images(saved, files[:n])
        return time.perf_counter() - start

    return (large - small) / max(timed(large) - timed(small), 1e-9)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir")
    parser.add_argument("--teacher", default="reports/model.keras")
    parser.add_argument("--out", default="reports/distilled")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-reference", action="store_true",
                        help="save without the out-of-distribution reference (faster)")
    args = parser.parse_args(argv)

    import numpy as np

    from pneumo_helpers.data import prepare_data
    from pneumo_helpers.evaluation.instruments import (Evaluator, comparison_row,
                                                       instruments_from_document)
    from pneumo_helpers.modeling import distil
    from pneumo_helpers.modeling.recipes import get_recipe
    from pneumo_helpers.use import modelfile, ood

    teacher_path = Path(args.teacher)
    doc = json.loads((teacher_path.parent / "metrics.json").read_text())
    p = doc["params"]
    saved = modelfile.load(teacher_path)
    recipe = get_recipe(saved.info["recipe"])
    data = prepare_data(args.data_dir, "binary", p["image_size"], p["batch_size"], p["seed"],
                        p["max_train_images"], p["val_fraction"])
    print(f"teacher: {teacher_path} ({recipe.name}, {len(saved.networks)} networks x "
          f"{1 + len(recipe.views)} views)", flush=True)
    start = time.perf_counter()
    soft = distil.teacher_scores(saved.model, data, saved.image_size)
    teacher_seconds = time.perf_counter() - start
    print(f"teacher scores of {len(soft)} training images in {teacher_seconds:.0f} s", flush=True)
    student = distil.distil(saved.model, recipe, data, seed=args.seed, epochs=args.epochs,
                            target_recall=saved.info.get("target_recall", 0.98), soft=soft)
    print(f"student trained: {student.timing['epochs_run']} epochs in "
          f"{student.timing['train_seconds']:.0f} s", flush=True)
    validation = Evaluator(data, "validation")
    student_row = comparison_row(student.name, data.task, validation.evaluate(student))
    teacher_row = comparison_row(f"{recipe.name} (teacher)", data.task,
                                 instruments_from_document(doc))
    verdict = distil.holds(student_row, teacher_row)
    for k, gap in verdict["gaps"].items():
        print(f"  {k}: student {student_row[k]:.3f}, teacher {teacher_row[k]:.3f} "
              f"({gap:+.3f})")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reference = None if args.no_reference else ood.reference(student, data)
    # a student that does not hold is measured from a temporary file, then removed
    tmp = tempfile.TemporaryDirectory()
    path = out / "model.keras" if verdict["kept"] else Path(tmp.name) / "model.keras"
    modelfile.save(student.model, path, modelfile.model_info(student, data, reference=reference))
    files = sorted(Path(args.data_dir).glob("train/*/*.jpeg"))[::3][:600]
    rates = {"teacher": steady_rate(saved, files, 200, 600),
             "student": steady_rate(modelfile.load(path), files, 200, 600)}
    tmp.cleanup()
    rates["student_over_teacher"] = rates["student"] / rates["teacher"]
    print(f"pneumo predict steady state: teacher {rates['teacher']:.1f} img/s, student "
          f"{rates['student']:.1f} img/s ({rates['student_over_teacher']:.1f}x)")
    result = {"teacher_model": str(teacher_path),
              "student_model": str(path) if verdict["kept"] else None, "recipe": recipe.name,
              "split": {k: p[k] for k in ("seed", "image_size", "val_fraction",
                                          "max_train_images")},
              "epochs": args.epochs, "student_seed": args.seed,
              "student_threshold": student.thresholds["pneumonia"],
              "teacher_threshold": saved.threshold, "timing": student.timing,
              "teacher": {k: teacher_row.get(k) for k in distil.COMPARED},
              "student": {k: student_row.get(k) for k in distil.COMPARED},
              "gaps": verdict["gaps"], "tolerance": distil.TOLERANCE, "kept": verdict["kept"],
              "images_per_second": {k: round(float(v), 2) for k, v in rates.items()}}
    (out / "distil.json").write_text(json.dumps(result, indent=2, default=float))
    print((f"kept: {path}" if verdict["kept"] else "not kept (no model file written)")
          + f"; wrote {out / 'distil.json'}")
    return 0 if np.isfinite(rates["student"]) else 1


if __name__ == "__main__":
    sys.exit(main())
