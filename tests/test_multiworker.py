"""Two real workers: ``MultiWorkerMirroredStrategy`` across two processes of
this machine (a ``TF_CONFIG`` cluster of two ports on 127.0.0.1), each
training one recipe for one epoch on real chest X-rays through the package's
API, as ``final_notebook.ipynb`` does with ``-p distribute multiworker``.

Checked: both workers finish; they end with the same weights (gradients are
summed across workers at every step); only the chief (``distribute.is_chief``)
writes into its output folder. The workers are killed if the run outlives its
time limit or one of them fails (the other would wait for it for ever).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TIMEOUT = 240  # seconds, for the whole two-worker run
PER_REPLICA_BATCH = 16
WORKERS = 2

# One worker: the notebook's calls (strategy first, then the data with the
# global batch, then the recipe), then its weights to RESULTS and, on the chief
# alone, the model to OUT. Its last stdout line is a JSON summary.
WORKER = r"""
import hashlib, json, os, sys
from pathlib import Path

import numpy as np
import tensorflow as tf

# two processes share the machine's cores
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(2)

from pneumo_helpers.data import prepare_data
from pneumo_helpers.modeling import distribute
from pneumo_helpers.modeling.recipes import Recipe, fit_recipe

data_dir, out, results, per_replica = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
strategy = distribute.get_strategy("multiworker")
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
data = prepare_data(data_dir, "binary", image_size=32,
                    batch_size=per_replica * strategy.num_replicas_in_sync, seed=1,
                    max_train_images=64)
recipe = Recipe("tiny", "two workers", network=dict(filters=(4, 8), augment="none"), views=())
trained = fit_recipe(recipe, data, seed=1, epochs=1, strategy=strategy)
network = trained.networks[0]

weights = [np.asarray(w) for w in network.get_weights()]
np.savez(results / f"weights-{index}.npz", *weights)


def digest(arrays):
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


summary = {"index": index, "chief": distribute.is_chief(strategy),
           "replicas": strategy.num_replicas_in_sync, "global_batch": data.batch_size,
           "n_train": int(len(data.labels("train"))),
           "names": [w.path for w in network.weights],
           "trainable": [w.path for w in network.trainable_weights],
           "digest": digest(weights), "loss": trained.history["loss"],
           "thresholds": trained.thresholds, "val_scores": digest([trained.val_scores])}
if distribute.is_chief(strategy):  # the project's rule: only the chief writes
    import keras

    network.save(out / "model.keras")
    summary["saved_digest"] = digest(keras.models.load_model(out / "model.keras").get_weights())
print(json.dumps(summary), flush=True)
"""


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 (held open together while chosen)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tail(path, n=3000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-n:]


def kill(proc: subprocess.Popen) -> None:
    """Stop a worker this test started (its own process group) and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture(scope="module")
def two_workers(data_dir, tmp_path_factory):
    """Run the two workers to the end; their summaries, weights and folders."""
    root = tmp_path_factory.mktemp("multiworker")
    script = root / "worker.py"
    script.write_text(WORKER)
    results = root / "results"
    results.mkdir()
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(WORKERS)]}
    outs, logs, procs = [], [], []
    started = time.monotonic()
    try:
        for i in range(WORKERS):
            out = root / f"output-{i}"  # each worker's output_dir, as on its own machine
            out.mkdir()
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
                   "TF_CONFIG": json.dumps({"cluster": cluster,
                                            "task": {"type": "worker", "index": i}})}
            stdout, stderr = root / f"worker-{i}.out", root / f"worker-{i}.err"
            with open(stdout, "w") as o, open(stderr, "w") as e:
                procs.append(subprocess.Popen(
                    [sys.executable, str(script), str(data_dir), str(out), str(results),
                     str(PER_REPLICA_BATCH)],
                    cwd=root, env=env, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                    start_new_session=True))
            outs.append(out)
            logs.append((stdout, stderr))
        # wait for both; one that fails leaves the other waiting for it: stop then
        while any(p.poll() is None for p in procs):
            failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if failed:
                i = failed[0]
                pytest.fail(f"worker {i} exited with {procs[i].returncode}:\n{tail(logs[i][1])}")
            if time.monotonic() - started > TIMEOUT:
                pytest.fail(f"the two workers did not finish within {TIMEOUT} s:\n"
                            + "\n".join(f"--- worker {i}:\n{tail(e, 1500)}"
                                        for i, (_, e) in enumerate(logs)))
            time.sleep(0.5)
    finally:
        for p in procs:
            kill(p)
    seconds = time.monotonic() - started
    for i, p in enumerate(procs):  # (a) both finished
        assert p.returncode == 0, f"worker {i} exited with {p.returncode}:\n{tail(logs[i][1])}"
    summaries = []
    for i, (stdout, stderr) in enumerate(logs):
        lines = stdout.read_text().strip().splitlines()
        assert lines, f"worker {i} printed nothing:\n{tail(stderr)}"
        summaries.append(json.loads(lines[-1]))
    weights = []
    for i in range(WORKERS):
        with np.load(results / f"weights-{i}.npz") as f:
            weights.append([f[f"arr_{k}"] for k in range(len(f.files))])
    print(f"two workers: {seconds:.0f} s")
    return {"summaries": summaries, "weights": weights, "outs": outs, "seconds": seconds}


def test_both_workers_train_in_one_cluster(two_workers):
    chief, other = two_workers["summaries"]
    assert (chief["index"], other["index"]) == (0, 1)
    for s in (chief, other):
        assert s["replicas"] == WORKERS  # one replica per worker, in sync
        assert s["global_batch"] == PER_REPLICA_BATCH * WORKERS
        assert s["n_train"] == 64 and len(s["loss"]) == 1 and np.isfinite(s["loss"][0])
    # the loss of the epoch is reduced across workers: the same number on both
    assert chief["loss"] == other["loss"]


def test_both_workers_end_with_the_same_trained_weights(two_workers):
    (chief, other), (w0, w1) = two_workers["summaries"], two_workers["weights"]
    assert chief["names"] == other["names"] and len(w0) == len(w1) == len(chief["names"])
    for name, a, b in zip(chief["names"], w0, w1):
        if name in chief["trainable"]:
            np.testing.assert_array_equal(a, b, err_msg=f"{name} differs between the workers")


def test_both_workers_end_with_the_same_weights_and_statistics(two_workers):
    (chief, other), (w0, w1) = two_workers["summaries"], two_workers["weights"]
    for name, a, b in zip(chief["names"], w0, w1):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} differs between the workers")
    assert chief["digest"] == other["digest"]
    assert chief["val_scores"] == other["val_scores"]  # so the same operating points
    assert chief["thresholds"] == other["thresholds"]


def test_only_the_chief_writes(two_workers):
    chief, other = two_workers["summaries"]
    out_chief, out_other = two_workers["outs"]
    assert chief["chief"] is True and other["chief"] is False
    assert sorted(p.name for p in out_chief.iterdir()) == ["model.keras"]
    assert sorted(p.name for p in out_other.iterdir()) == []  # the non-chief wrote nothing
    # the file holds the weights the chief trained
    assert chief["saved_digest"] == chief["digest"]
