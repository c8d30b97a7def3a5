"""Training and prediction throughput of the original CNN (224x224) against the
final robust CNN (128x128), measured in one run on the same machine.

    .venv/bin/python benchmarks/throughput.py [DATA_DIR] [--images 512]

Prints images per second for each and the ratios; absolute numbers depend on
the machine, the ratios much less. Uses real training images when DATA_DIR
is given, random ones otherwise.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pneumo_helpers import models  # noqa: E402
from pneumo_helpers.training import compile_model  # noqa: E402


def images(data_dir, n, size):
    if data_dir:
        from pneumo_helpers import load_image_table
        from pneumo_helpers.pipeline import load_arrays
        table = load_image_table(data_dir, splits=("train",), check_images=False)
        return load_arrays(table.sample(n, random_state=0), size)
    rng = np.random.default_rng(0)
    return rng.random((n, size, size, 1), dtype=np.float32), rng.integers(0, 2, n)


def measure(name, model, x, y, batch_size, optimizer):
    compile_model(model, 1e-3, optimizer)
    model.fit(x[: 2 * batch_size], y[: 2 * batch_size], batch_size=batch_size, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    train = len(x) / (time.perf_counter() - start)
    start = time.perf_counter()
    model.predict(x, batch_size=128, verbose=0)
    pred = len(x) / (time.perf_counter() - start)
    print(f"{name:28s} train {train:7.1f} img/s   predict {pred:7.1f} img/s")
    return train, pred


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--images", type=int, default=512)
    args = parser.parse_args()
    x224, y224 = images(args.data_dir, args.images, 224)
    x128, y128 = images(args.data_dir, args.images, 128)
    orig = measure("original CNN, 224, batch 64", models.original_cnn(224), x224, y224, 64,
                   "rmsprop")
    final = measure("robust CNN, 128, batch 32", models.robust_cnn(128), x128, y128, 32, "adam")
    print(f"robust/original: training {final[0] / orig[0]:.2f}x, "
          f"prediction {final[1] / orig[1]:.2f}x the images per second")


if __name__ == "__main__":
    main()
