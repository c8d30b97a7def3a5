"""The saved model file across versions of the package."""

from pathlib import Path

import numpy as np

from pneumo_helpers.modeling.models import member_models
from pneumo_helpers.use import modelfile

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_model_saved_before_the_layout_move_still_loads():
    """``model_0.2.0.keras`` was written by pneumo_helpers 0.2.0 (the flat
    layout, commit ecb65bc): the mean of two tiny ``equalized_tta_out``
    networks at 32 px. Loaded by this version in safe mode, it gives the
    scores 0.2.0 gave for the same four images."""
    saved = modelfile.load(FIXTURES / "model_0.2.0.keras")
    assert saved.info["package_version"] == "0.2.0" and saved.info["recipe"] == "equalized_tta_out"
    assert saved.image_size == 32 and len(member_models(saved.model)) == 2
    x = np.random.default_rng(0).random((4, 32, 32, 1)).astype("float32")
    x[1] = x[1] ** 3
    x[2] = np.linspace(0, 1, 32 * 32, dtype="float32").reshape(32, 32, 1)
    x[3] = 1 - x[2]
    scores_in_0_2_0 = [0.3999551832675934, 0.3931569457054138, 0.45039570331573486,
                       0.45646077394485474]
    np.testing.assert_allclose(saved.model.predict(x, verbose=0).ravel(), scores_in_0_2_0,
                               rtol=1e-5)
