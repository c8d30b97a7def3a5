"""The saved model file across versions of the package."""

from pathlib import Path

import numpy as np

from pneumo_helpers.modeling.models import views_of
from pneumo_helpers.use import modelfile

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_model_saved_before_the_layout_move_still_loads():
    """``model_0.2.0.keras`` was written by pneumo_helpers 0.2.0 (the flat
    layout, commit ecb65bc): the mean of two tiny ``equalized_tta_out``
    networks at 32 px, its test-time views applied outside the model (file
    format 1). Loaded by this version in safe mode, the views are put inside
    the model and it gives the scores 0.2.0's ``pneumo predict`` gave for the
    same four images (with views), and its networks the plain scores."""
    saved = modelfile.load(FIXTURES / "model_0.2.0.keras")
    assert saved.info["package_version"] == "0.2.0" and saved.info["recipe"] == "equalized_tta_out"
    assert saved.image_size == 32 and len(saved.networks) == 2
    assert views_of(saved.model) == tuple(tuple(f) for f in saved.info["tta_frames"])
    x = np.random.default_rng(0).random((4, 32, 32, 1)).astype("float32")
    x[1] = x[1] ** 3
    x[2] = np.linspace(0, 1, 32 * 32, dtype="float32").reshape(32, 32, 1)
    x[3] = 1 - x[2]
    with_views_in_0_2_0 = [0.3987129330635071, 0.3925096392631531, 0.4549334645271301,
                           0.4515329897403717]
    plain_in_0_2_0 = [0.3999551832675934, 0.3931569457054138, 0.45039570331573486,
                      0.45646077394485474]
    np.testing.assert_allclose(saved.model.predict(x, verbose=0).ravel(), with_views_in_0_2_0,
                               rtol=1e-5)
    plain = np.mean([n.predict(x, verbose=0).ravel() for n in saved.networks], axis=0)
    np.testing.assert_allclose(plain, plain_in_0_2_0, rtol=1e-5)
