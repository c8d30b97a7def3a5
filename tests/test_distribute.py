"""Training under tf.distribute (two logical CPU devices) and mixed precision."""

import subprocess
import sys

import numpy as np
import pytest

SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
import keras
from pneumo_helpers.tasks import BINARY
from pneumo_helpers.modeling import distribute, models
from pneumo_helpers.modeling.training import compile_model, set_seed

rng = np.random.default_rng(0)
x = rng.random((64, 32, 32, 1)).astype("float32")
y = (x[:, 8:24, 8:24].mean(axis=(1, 2, 3)) > 0.5).astype("int32")
x[y == 1, 8:24, 8:24] += 0.3  # a signal in the middle of the image
x = np.clip(x, 0, 1)
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

def build():
    set_seed(1)
    return models.robust_cnn(32, filters=(4, 8), augment="none", batch_norm=False, dropout=0.0,
                             seed=1)

strategy = distribute.get_strategy("mirrored")
with distribute.scope(strategy):
    model = build()
    compile_model(model, BINARY, 0.01)
start = model.get_weights()
history = model.fit(data, epochs=5, verbose=0).history["loss"]
model.save(sys.argv[1])

plain = build()
plain.set_weights(start)
compile_model(plain, BINARY, 0.01)
plain.fit(data, epochs=5, verbose=0)
again = keras.models.load_model(sys.argv[1])
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": history,
                  "diff": float(np.abs(again.predict(x, verbose=0)
                                       - plain.predict(x, verbose=0)).max()),
                  "scaled": distribute.scaled(32, 0.002, strategy)}))
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpu_devices(tmp_path):
    import json
    # a fresh process: logical devices must be set before TensorFlow starts its runtime
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "m.keras")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["loss"][-1] < result["loss"][0]  # the loss falls
    # the saved model predicts like one trained without a strategy from the same weights
    assert result["diff"] < 1e-3
    assert result["scaled"] == [64, 0.004]  # global batch and learning rate scale with replicas


def test_unknown_strategy_and_missing_tf_config(monkeypatch):
    from pneumo_helpers.modeling import distribute
    with pytest.raises(ValueError, match="distribute must be one of 'none', 'mirrored'"):
        distribute.get_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        distribute.get_strategy("multiworker")
    assert distribute.get_strategy("none").num_replicas_in_sync == 1
    assert distribute.is_chief(distribute.get_strategy("none"))


def test_mixed_precision_keeps_the_output_in_float32():
    import keras

    from pneumo_helpers.modeling import distribute, models
    try:
        assert distribute.set_precision(True) == "mixed_float16"
        m = models.robust_cnn(32, filters=(4, 8), equalize=True)
        conv = m.get_layer("conv1_1")
        assert conv.compute_dtype == "float16" and conv.variable_dtype == "float32"
        assert m.get_layer("equalize").compute_dtype == "float32"
        x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
        out = m.predict(x, verbose=0)
        assert out.dtype == np.float32 and np.isfinite(out).all()
    finally:
        distribute.set_precision(False)
    assert keras.mixed_precision.global_policy().name == "float32"
