"""The X-rays: the image table (``table``), paths (``paths``), the one image
reader (``images``), tf.data pipelines (``pipeline``), patient splits
(``splits``) and the data-exploration figures (``explore``)."""

from .._tensorflow import import_quietly as _import_quietly

_import_quietly()

from .splits import SplitData, balanced_subset, patient_split, prepare_data  # noqa: E402
from .table import load_image_table  # noqa: E402

__all__ = ["SplitData", "balanced_subset", "load_image_table", "patient_split", "prepare_data"]
