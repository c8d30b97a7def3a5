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


def alternated(a, b, files, rounds: int = 2) -> tuple[float, float]:
    """Images/s of two ``ood.Measurer``\ s measuring what ``pneumo predict``
    measures of each image (scores, check features, lung checks) on the same
    files, both traced first, then timed A B A B so that the machine's drift
    falls on both (median of ``rounds``)."""
    names = [str(f) for f in files]

    def run(m):
        for image, check, _ in m.decoded(names).batch(32).prefetch(2):
            m(image, check, ("scores", "lungs", "variants"))

    run(a), run(b)  # traced before timing
    times = ([], [])
    for _ in range(rounds):
        times[0].append(timed(lambda: run(a)))
        times[1].append(timed(lambda: run(b)))
    return tuple(len(names) / float(np.median(t)) for t in times)


def shared_segmenter(saved, files, rounds: int = 2) -> dict:
    """:func:`alternated`: one segmenter pass serving the crop and the lung
    check, against the parts measured one by one (two passes)."""
    from pneumo_helpers.use.ood import Measurer

    once, twice = Measurer(saved.model), Measurer(saved.model)
    for part in [p for p in twice._parts if p.endswith("+lungs")]:
        del twice._parts[part]
    if "scores+variants+lungs" not in once._parts:
        return {}
    r_once, r_twice = alternated(once, twice, files, rounds)
    print(f"checks' measurements of {len(files)} images: segmenter once {r_once:.1f} "
          f"img/s, twice {r_twice:.1f} img/s ({r_once / r_twice:.2f}x)")
    return {"images": len(files), "segmenter_once_images_per_second": round(r_once, 1),
            "segmenter_twice_images_per_second": round(r_twice, 1),
            "once_over_twice": round(r_once / r_twice, 2)}


def feature_source(saved, files, rounds: int = 2) -> dict:
    """:func:`alternated`: the check features of the image and of its turned
    and inverted copies read from the first seed's network (references of
    version 2), against every network, averaged (version 1)."""
    from pneumo_helpers.use.ood import Measurer

    if len(saved.networks) < 2:
        return {}
    first, mean = Measurer(saved.model, "first"), Measurer(saved.model, "mean")
    if not first.has_features:
        return {}
    r_first, r_mean = alternated(first, mean, files, rounds)
    print(f"checks' measurements of {len(files)} images: features of the first network "
          f"{r_first:.1f} img/s, of every network {r_mean:.1f} img/s "
          f"({r_first / r_mean:.2f}x)")
    return {"images": len(files), "first_network_images_per_second": round(r_first, 1),
            "every_network_images_per_second": round(r_mean, 1),
            "first_over_every": round(r_first / r_mean, 2)}


def predict_command(data_dir, model_path, out: Path) -> dict:
    """What a user runs: ``pneumo predict`` on files, against its ceiling, the
    saved model's forward rate on decoded tensors (its crop, views and seeds
    included), measured in this run. Steady state from two folder sizes (the
    difference removes start-up); the wall time of the command on a
    624-image folder (the official test split's size) with start-up; heat
    maps per second; ``pneumo --help``."""
    import shutil
    import subprocess

    from pneumo_helpers.data.images import load_image
    from pneumo_helpers.use import modelfile
    from pneumo_helpers.use.scoring import score_images, write_heatmaps

    saved = modelfile.load(model_path)
    pool = sorted(Path(data_dir).glob("train/*/*.jpeg"))[::3][:2000]
    folder = out / "predict_images"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for f in pool:
        shutil.copyfile(f, folder / f.name)
    files = sorted(folder.iterdir())
    x = np.stack([load_image(f, saved.image_size) for f in files[:256]])
    saved.model.predict(x[:32], verbose=0)
    ceiling = len(x) / timed(lambda: saved.model.predict(x, batch_size=32, verbose=0), 2)
    score_images(saved, files[:72])  # warm-up: full and short batches traced before timing
    small, large = files[:400], files[:2000]
    t_small = timed(lambda: score_images(saved, small))
    t_large = timed(lambda: score_images(saved, large))
    steady = (len(large) - len(small)) / max(t_large - t_small, 1e-9)
    rows = score_images(saved, files[:300])
    heat = out / "predict_heatmaps"

    def heat_maps(n):  # a fresh process's first call traces the compiled Grad-CAM
        shutil.rmtree(heat, ignore_errors=True)
        return timed(lambda: write_heatmaps(saved, rows[:n], heat))

    heatmaps = 200 / heat_maps(200)  # the first call, as a user's command pays it
    heatmaps_steady = 200 / max(heat_maps(300) - heat_maps(100), 1e-9)
    official = out / "predict_624"
    shutil.rmtree(official, ignore_errors=True)
    official.mkdir()
    for f in files[:624]:
        shutil.copyfile(f, official / f.name)
    pneumo = Path(sys.executable).with_name("pneumo")
    csv = out / "predictions_624.csv"
    csv.unlink(missing_ok=True)
    def command():  # exit status 1: some image was not scored (refused or unreadable)
        done = subprocess.run([str(pneumo), "predict", str(model_path), str(official), "--out",
                               str(csv), "--no-progress"], capture_output=True, text=True)
        if done.returncode not in (0, 1) or not csv.is_file():
            raise RuntimeError(f"pneumo predict failed: {done.stderr.strip()[-500:]}")

    wall = timed(command)
    segmenter = shared_segmenter(saved, files[:320])
    features = feature_source(saved, files[:320])
    help_wall = timed(lambda: subprocess.run([str(pneumo), "--help"], check=True,
                                             capture_output=True), 3)
    result = {"model": str(model_path), "recipe": saved.info.get("recipe"),
              "networks": len(saved.networks), "views": 1 + len(saved.info.get("tta_frames", [])),
              "ceiling_images_per_second": round(ceiling, 1),
              "steady_state_images_per_second": round(steady, 1),
              "steady_over_ceiling": round(steady / ceiling, 2),
              "heatmaps_images_per_second": round(heatmaps, 1),
              "heatmaps_steady_images_per_second": round(heatmaps_steady, 1),
              "folder_624_wall_seconds": round(wall, 2),
              "help_wall_seconds": round(help_wall, 2),
              "reference_version": (saved.info.get("reference") or {}).get("version"),
              "shared_segmenter": segmenter, "feature_source": features}
    print(f"pneumo predict ({result['recipe']}, {result['networks']} networks x "
          f"{result['views']} views): ceiling {ceiling:.0f} img/s, steady state {steady:.0f} "
          f"img/s ({result['steady_over_ceiling']:.2f} of the ceiling), heat maps "
          f"{heatmaps:.1f} img/s ({heatmaps_steady:.1f} steady), 624 images in {wall:.1f} s "
          f"wall, --help {help_wall:.2f} s")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(official, ignore_errors=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir")
    parser.add_argument("--images", type=int, default=1024,
                        help="training images used for the throughput figures (default 1024)")
    parser.add_argument("--out", default="reports/benchmarks",
                        help="folder for results.json (default reports/benchmarks)")
    parser.add_argument("--skip-training-step", action="store_true",
                        help="skip the wall time of make results' training step (minutes)")
    parser.add_argument("--model", default="reports/model.keras",
                        help="the model pneumo predict is measured with (default "
                        "reports/model.keras, from make results); skipped when missing")
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
    if Path(args.model).is_file():
        result["predict_command"] = predict_command(args.data_dir, args.model, out)
    else:
        print(f"{args.model} not found (make results writes it): pneumo predict not measured")
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
