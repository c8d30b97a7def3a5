"""The two layers that made a training step slow, against the versions they
replaced, measured in one run on the same tensors (and a whole training step
of the kept recipe's network with each pair), alternating A and B so that the
machine's drift falls on both.

    .venv/bin/python benchmarks/training_layers.py [--repeats 5]

- random sharpness: ``keras.layers.RandomSharpness`` (a depthwise
  convolution) against ``modeling.augment.RandomSharpness`` (nine shifted
  copies; the same numbers to float32 rounding);
- histogram equalisation: a bincount per image row (the previous
  ``HistogramEqualization``) against one flat bincount and the mapping on the
  bins (``modeling.layers.HistogramEqualization``; the same numbers).

Prints each pair's times and their ratio; checks that the outputs agree.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from pneumo_helpers.modeling import augment, layers, models  # noqa: E402
from pneumo_helpers.modeling.recipes import get_recipe  # noqa: E402


@keras.saving.register_keras_serializable(package="pneumo_bench")
class RowBincountEqualization(keras.layers.Layer):
    """The previous HistogramEqualization: a bincount per row, then the mapping per pixel."""

    def call(self, x):
        shape = tf.shape(x)
        flat = tf.reshape(x, (shape[0], -1))
        idx = tf.clip_by_value(tf.cast(flat * 255 + 0.5, tf.int32), 0, 255)
        counts = tf.cast(tf.math.bincount(idx, minlength=256, maxlength=256, axis=-1), x.dtype)
        cdf = tf.cumsum(counts, axis=1) / tf.reduce_sum(counts, axis=1, keepdims=True)
        rank, low = tf.gather(cdf, idx, batch_dims=1), cdf[:, :1]
        out = (rank - low) / tf.maximum(1.0 - low, 1e-6)
        return tf.reshape(tf.clip_by_value(out, 0.0, 1.0), shape)


def timed(f, x, repeats: int) -> float:
    f(x)  # traced and warmed up
    start = time.perf_counter()
    for _ in range(repeats):
        f(x)
    return (time.perf_counter() - start) / repeats


def alternate(pair: dict, x, repeats: int, rounds: int) -> dict:
    """Seconds per call of each function of ``pair``, A B A B ... over ``rounds``."""
    times = {name: [] for name in pair}
    for _ in range(rounds):
        for name, f in pair.items():
            times[name].append(timed(f, x, repeats))
    return {name: float(np.median(t)) for name, t in times.items()}


def report(title: str, times: dict, unit: str) -> None:
    (a, ta), (b, tb) = times.items()
    print(f"{title}: {a} {ta * 1000:.1f} ms, {b} {tb * 1000:.1f} ms per {unit} "
          f"({ta / tb:.2f}x)", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds of A then B")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x32 = tf.constant(rng.random((32, 128, 128, 1)).astype("float32"))

    theirs = keras.layers.RandomSharpness((0.1, 0.9), value_range=(0, 1), seed=1)
    ours = augment.RandomSharpness((0.1, 0.9), value_range=(0, 1), seed=1)
    np.testing.assert_allclose(theirs(x32, training=True), ours(x32, training=True), rtol=0,
                               atol=1e-6)  # the convolution's summing order is the CPU's
    report("random sharpness", alternate(
        {"keras": tf.function(lambda a: theirs(a, training=True)),
         "pneumo": tf.function(lambda a: ours(a, training=True))}, x32, 20, args.repeats),
        "32 images")

    before, after = RowBincountEqualization(), layers.HistogramEqualization()
    np.testing.assert_array_equal(before(x32), after(x32))
    report("histogram equalisation", alternate(
        {"row bincount": tf.function(before), "flat bincount": tf.function(after)}, x32, 20,
        args.repeats), "32 images")

    # a training step of the kept recipe's network, with the old and the new pair
    recipe = get_recipe("lung_crop")
    y = tf.constant(rng.integers(0, 2, 32).astype("float32"))

    def network(old: bool):
        saved = models.RandomSharpness, models.HistogramEqualization
        if old:  # the same network built with the layers it had before
            models.RandomSharpness = keras.layers.RandomSharpness
            models.HistogramEqualization = RowBincountEqualization
        try:
            net = models.robust_cnn(128, seed=1, **recipe.network)
        finally:
            models.RandomSharpness, models.HistogramEqualization = saved
        kinds = {type(layer).__name__ for layer in net.layers + net.get_layer("augmentation").layers}
        assert ("RowBincountEqualization" in kinds) == old, kinds
        net.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
        return lambda a: net.train_on_batch(a, y)

    report("training step of one lung_crop network", alternate(
        {"before": network(True), "after": network(False)}, x32, 10, args.repeats),
        "32-image step")


if __name__ == "__main__":
    main()
