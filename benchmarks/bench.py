"""Throughput and memory of the original CNN against the final recipe,
measured in one run, on the same images, on this machine.

    make bench [DATA_DIR=...] [OUT_DIR=reports]
    .venv/bin/python benchmarks/bench.py DATA_DIR [--images 1024] [--out reports/benchmarks]
                                                  [--skip-training-step]

For each model: training images/s (after a warm-up epoch), prediction
images/s from decoded tensors, and end to end from the files on disk (decode
and resize included, batches decoded in parallel by tf.data, as training and
``pneumo predict`` do it); Kaggle's full-size originals decoded whole and at
reduced size; the peak resident memory after each phase; and, for the final
recipe, the wall time of ``make results``' training step (``n_seeds``
trainings on the whole training split). Prints the ratios against the original
CNN and writes everything to ``<out>/results.json`` so that two versions can
be compared. Absolute figures depend on the machine; ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's graph-building chatter
import pneumo_helpers
from pneumo_helpers.data import load_image_table, prepare_data
from pneumo_helpers.data.pipeline import make_dataset
from pneumo_helpers.modeling import models, recipes
from pneumo_helpers.modeling.training import compile_model, set_seed
from pneumo_helpers.tasks import BINARY


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024 if sys.platform != "darwin" else kb / 2**20, 1)


def timed(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def arrays(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def measure(name, model, table, size, batch, optimizer) -> dict:
    files = make_dataset(table, size, batch, cache=False)
    x, y = arrays(files)
    compile_model(model, BINARY, 1e-3, optimizer)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # warm-up: graphs built, caches hot
    train = len(x) / timed(lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0))
    model.predict(x[:batch], verbose=0)
    tensors = len(x) / timed(lambda: model.predict(x, batch_size=128, verbose=0), 2)
    ds = make_dataset(table, size, 128, label_column=None, cache=False)
    end_to_end = len(x) / timed(lambda: model.predict(ds, verbose=0), 2)
    row = {"model": name, "image_size": size, "batch_size": batch,
           "train_images_per_second": round(train, 1),
           "predict_images_per_second": round(tensors, 1),
           "predict_from_files_images_per_second": round(end_to_end, 1),
           "peak_memory_mb": peak_memory_mb()}
    print(f"{name:34s} train {train:7.1f} img/s  predict {tensors:7.1f} img/s  "
          f"from files {end_to_end:7.1f} img/s  peak memory {row['peak_memory_mb']:.0f} MB",
          flush=True)
    return row


def decoding(data_dir, size) -> dict:
    """Kaggle's full-size originals (the 16 ``val`` images, 1000-2000 px):
    decoded whole, and at reduced size, then resized."""
    import tensorflow as tf

    from pneumo_helpers.data.images import decode as decode_image

    files = [str(p) for p in sorted(Path(data_dir).glob("val/*/*.jpeg"))]
    if not files:
        return {}

    def full(f):
        im = tf.io.decode_image(tf.io.read_file(f), channels=1, expand_animations=False)
        return tf.image.resize(im, (size, size), antialias=True)

    out = {}
    for name, fn in (("full_decode", full), ("reduced_decode", lambda f: decode_image(f, size))):
        [fn(f) for f in files]
        out[f"{name}_images_per_second"] = round(
            len(files) / timed(lambda: [fn(f) for f in files], 3), 1)
    print(f"{len(files)} originals at {size} px: full decode {out['full_decode_images_per_second']}"
          f" img/s, reduced-size decode {out['reduced_decode_images_per_second']} img/s")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir")
    parser.add_argument("--images", type=int, default=1024,
                        help="training images used for the throughput figures (default 1024)")
    parser.add_argument("--out", default="reports/benchmarks",
                        help="folder for results.json (default reports/benchmarks)")
    parser.add_argument("--skip-training-step", action="store_true",
                        help="skip the wall time of make results' training step (minutes)")
    args = parser.parse_args(argv)
    set_seed(0)
    table = load_image_table(args.data_dir, splits=("train",), check_images=False)
    table = table.sample(min(args.images, len(table)), random_state=0)
    recipe = recipes.get_recipe(recipes.DEFAULT_RECIPE)
    rows = [measure("original CNN (224 px, batch 64)", models.original_cnn(224), table, 224, 64,
                    "rmsprop"),
            measure(f"final recipe {recipe.name} (128 px)",
                    recipe.build(128, BINARY, 0), table, 128, 32, "adam")]
    original, final = rows
    ratios = {k: round(final[k] / original[k], 2) for k in
              ("train_images_per_second", "predict_images_per_second",
               "predict_from_files_images_per_second")}
    print("final / original: " + ", ".join(f"{k.replace('_images_per_second', '')} "
                                           f"{v:.2f}x" for k, v in ratios.items()))
    result = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                          "processor": platform.processor() or platform.machine()},
              "package_version": pneumo_helpers.__version__, "images": len(table),
              "models": rows, "final_over_original": ratios,
              "originals": decoding(args.data_dir, 128)}
    if not args.skip_training_step:
        data = prepare_data(args.data_dir, "binary", 128, 32, 42)
        seconds = timed(lambda: recipes.fit_seeds(recipe, data, range(42, 45), progress=False))
        result["training_step"] = {"recipe": recipe.name, "n_seeds": 3, "epochs": 15,
                                   "wall_seconds": round(seconds, 1),
                                   "peak_memory_mb": peak_memory_mb()}
        print(f"make results' training step ({recipe.name}, 3 seeds, 15 epochs): "
              f"{seconds / 60:.1f} min")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
