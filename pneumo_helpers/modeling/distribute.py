"""Training beyond one CPU: ``tf.distribute`` strategies and mixed precision.

- ``"none"``: the default strategy (one device).
- ``"mirrored"``: ``tf.distribute.MirroredStrategy``, every GPU of one machine
  (or the CPU when there is none), each replica a copy of the model, gradients
  summed across replicas at every step.
- ``"multiworker"``: ``tf.distribute.MultiWorkerMirroredStrategy``, the same
  across machines; each machine runs the same command with its own
  ``TF_CONFIG`` (the cluster and this machine's task index); the chief
  (task 0) writes the outputs.

The model, its optimizer and its metrics are built inside the strategy's
scope (``training.train`` and ``recipes.fit_recipe`` take ``strategy=``).
The **global batch** is the per-replica batch times the number of replicas,
and the learning rate scales with it (the linear scaling rule of Goyal et
al. 2017, "Accurate, large minibatch SGD"; the one-epoch warm-up of the
cosine schedule is the warm-up that rule asks for).
"""

from __future__ import annotations

import contextlib
import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multiworker")


def get_strategy(name: str = "none") -> tf.distribute.Strategy:
    """The strategy called ``name`` (see :data:`STRATEGIES`)."""
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("distribute='multiworker' needs TF_CONFIG (the cluster and this "
                             "machine's task index) in the environment")
        return _MultiWorkerMirroredStrategy()
    raise ValueError(f"distribute must be one of {', '.join(map(repr, STRATEGIES))}, got {name!r}")


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3 gives it.

    With two or more workers, Keras 3's TensorFlow trainer (3.15) calls
    ``reduce`` with what TensorFlow's multi-worker ``reduce`` refuses: a nest
    (the first ``(x, y, sample_weight)`` batch, to build the model from, at the
    start of ``fit`` and of every validation) and scalars with ``axis=0`` (the
    loss and metrics of every step). Here a nest is reduced leaf by leaf (as
    ``MirroredStrategy`` does) and a scalar across replicas alone (it has no
    batch axis). A batch reduced element-wise (``axis=None``: Keras wants its
    shape and dtype only, to build the model) is this worker's own: a
    collective would fail when the workers' shares of a last, short batch
    differ by one image (a validation split of 23 images on two workers)."""

    def reduce(self, reduce_op, value, axis):
        reduce = super().reduce

        def leaf(v):
            if v is None:
                return None
            local = self.experimental_local_results(v)
            scalar = all(getattr(p, "shape", None) is not None and p.shape.rank == 0
                         for p in local)
            if not scalar and axis is None:
                return local[0]
            return reduce(reduce_op, v, None if scalar else axis)

        return tf.nest.map_structure(leaf, value)


def scaled(batch_size: int, learning_rate: float,
           strategy: tf.distribute.Strategy) -> tuple[int, float]:
    """The global batch size and learning rate for ``strategy``: both
    multiplied by the number of replicas (the linear scaling rule)."""
    n = strategy.num_replicas_in_sync
    return batch_size * n, learning_rate * n


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether this process writes the outputs (always, but for the
    non-chief workers of a multi-worker run)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or not task:
        return True
    return task.get("type") == "chief" or (task.get("type") == "worker"
                                            and task.get("index", 0) == 0
                                            and "chief" not in config.get("cluster", {}))


def weights_digest(networks) -> str:
    """SHA-256 of every weight of ``networks`` (a list of Keras models), in
    order: the workers of a multi-worker run print it, and agree."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for network in networks:
        for w in network.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def worker_line(strategy, networks) -> str:
    """One line for each worker of a multi-worker run to print after
    training: its task, the replicas in sync and its weights' digest."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("task", {})
    return (f"worker {config.get('type', '?')} {config.get('index', '?')}"
            f"{' (chief, writes the outputs)' if is_chief(strategy) else ''}: "
            f"{strategy.num_replicas_in_sync} replicas in sync; weights sha256 "
            f"{weights_digest(networks)} (every worker prints the same)")


def scope(strategy: tf.distribute.Strategy | None):
    """``strategy.scope()``, or nothing to enter."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def set_precision(mixed: bool) -> str:
    """``"mixed_float16"`` (compute in float16 on GPUs, variables and the
    output layer in float32) or ``"float32"``; returns the policy set. Call
    before building models."""
    policy = "mixed_float16" if mixed else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy
