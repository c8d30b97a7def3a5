"""pneumo_helpers: data, models, training, metrics and plots for the pneumo notebooks."""

from .data import CLASSES, SPLITS, DataError, load_image_table
from .splits import balanced_subset, patient_split

__all__ = ["CLASSES", "SPLITS", "DataError", "load_image_table", "patient_split",
           "balanced_subset"]
__version__ = "0.1.0"
