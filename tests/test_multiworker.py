"""Two real workers: the README's multi-machine command,
``papermill final_notebook.ipynb out.ipynb -p distribute multiworker ...``,
run by two processes of this machine, each with its own ``TF_CONFIG`` (a
cluster of two ports on 127.0.0.1, task index 0 and 1), on a small copy of
the real chest X-rays, one epoch of the default recipe.

Checked: both workers finish; they train in one cluster (two replicas in
sync) and end with the same weights (each prints their digest); only the
chief (task 0) writes its output folder, the other's is never created. The
workers are killed if the run outlives its time limit or one of them fails
(the other would wait for it for ever).
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT
from .test_final_notebook import copy_small

pytestmark = pytest.mark.slow

TIMEOUT = 480  # seconds, for the whole two-worker run
WORKERS = 2
PARAMETERS = dict(distribute="multiworker", image_size=32, epochs=1, n_seeds=1, seed=1)


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


def command(data: Path, out: Path, executed: Path) -> list[str]:
    """The README's command for one machine."""
    papermill = Path(sys.executable).with_name("papermill")
    args = [str(papermill), "final_notebook.ipynb", str(executed), "-p", "data_dir", str(data),
            "-p", "output_dir", str(out), "--no-progress-bar"]
    for k, v in PARAMETERS.items():
        args += ["-p", k, str(v)]
    return args


def printed(executed: Path) -> str:
    """Everything the executed notebook printed."""
    nb = json.loads(executed.read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")


@pytest.fixture(scope="module")
def two_workers(data_dir, tmp_path_factory):
    """Run the two workers to the end; what they printed and their folders."""
    root = tmp_path_factory.mktemp("multiworker")
    data = copy_small(data_dir, root / "chest_xray")
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(WORKERS)]}
    outs, executed, logs, procs = [], [], [], []
    started = time.monotonic()
    try:
        for i in range(WORKERS):
            out = root / f"output-{i}"  # each worker's output_dir, as on its own machine
            nb = root / f"executed-{i}.ipynb"
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
                   "TF_CONFIG": json.dumps({"cluster": cluster,
                                            "task": {"type": "worker", "index": i}})}
            log = root / f"worker-{i}.log"
            with open(log, "w") as o:
                procs.append(subprocess.Popen(
                    command(data, out, nb), cwd=ROOT, env=env, stdout=o,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
            outs.append(out)
            executed.append(nb)
            logs.append(log)
        # wait for both; one that fails leaves the other waiting for it: stop then
        while any(p.poll() is None for p in procs):
            failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if failed:
                i = failed[0]
                pytest.fail(f"worker {i} exited with {procs[i].returncode}:\n{tail(logs[i])}")
            if time.monotonic() - started > TIMEOUT:
                pytest.fail(f"the two workers did not finish within {TIMEOUT} s:\n"
                            + "\n".join(f"--- worker {i}:\n{tail(e, 1500)}"
                                        for i, e in enumerate(logs)))
            time.sleep(0.5)
    finally:
        for p in procs:
            kill(p)
    seconds = time.monotonic() - started
    for i, p in enumerate(procs):  # (a) both finished
        assert p.returncode == 0, f"worker {i} exited with {p.returncode}:\n{tail(logs[i])}"
    print(f"two workers: {seconds:.0f} s")
    return {"printed": [printed(nb) for nb in executed], "outs": outs, "seconds": seconds}


WORKER_LINE = re.compile(r"worker worker (\d)( \(chief, writes the outputs\))?: (\d+) replicas "
                         r"in sync; weights sha256 ([0-9a-f]{64})")


def test_both_workers_train_in_one_cluster_to_the_same_weights(two_workers):
    lines = [WORKER_LINE.search(text) for text in two_workers["printed"]]
    assert all(lines), two_workers["printed"]
    (chief, other) = lines
    assert (chief.group(1), other.group(1)) == ("0", "1")
    assert chief.group(2) and not other.group(2)
    assert chief.group(3) == other.group(3) == str(WORKERS)  # one replica per worker, in sync
    assert chief.group(4) == other.group(4)  # gradients summed at every step: the same weights


def test_both_workers_choose_the_same_operating_point(two_workers):
    seed_lines = [re.findall(r"\[1/1\] seed 1: .*(validation ROC AUC [\d.]+, threshold [\d.]+)",
                             text) for text in two_workers["printed"]]
    assert seed_lines[0] and seed_lines[0] == seed_lines[1]  # validation AUC and threshold
    refused = [re.findall(r"validation X-rays refused: .*", text)
               for text in two_workers["printed"]]
    assert refused[0] and not refused[1]  # the saved model is checked by the chief alone


def test_only_the_chief_writes(two_workers):
    out_chief, out_other = two_workers["outs"]
    assert {"model.keras", "metrics.json", "MODEL_CARD.md"} <= {p.name for p in
                                                                 out_chief.iterdir()}
    metrics = json.loads((out_chief / "metrics.json").read_text())
    assert metrics["params"]["distribute"] == "multiworker"
    assert not out_other.exists()  # the non-chief created nothing
