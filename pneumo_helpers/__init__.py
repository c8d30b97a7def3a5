"""pneumo_helpers: data, models, training, evaluation and reports for the pneumo notebooks.

Importing the package imports TensorFlow once, quietly: its C++ start-up lines
(oneDNN, CUDA, absl) are written to the process's stderr before Python can
filter them, and would otherwise land in every notebook's outputs.
"""

import os as _os
import warnings as _warnings

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly():
    try:
        saved, devnull = _os.dup(2), _os.open(_os.devnull, _os.O_WRONLY)
    except OSError:  # no usable stderr file descriptor: nothing to silence
        import tensorflow  # noqa: F401
        return
    _os.dup2(devnull, 2)
    try:
        import keras  # noqa: F401
        import tensorflow

        tensorflow.config.list_physical_devices()  # device start-up lines, silenced too
    finally:
        _os.dup2(saved, 2)
        _os.close(devnull)
        _os.close(saved)


_import_tensorflow_quietly()
# Keras warns on every dataset built with shuffle=True that it cannot check
# the shuffle itself; ours are shuffled by tf.data, on purpose.
_warnings.filterwarnings("ignore", message=".*shuffle=True.*")

from .data import DataError, load_image_table  # noqa: E402
from .info import CLASS_FOLDERS, SPLITS, TYPES  # noqa: E402
from .splits import SplitData, balanced_subset, patient_split, prepare_data  # noqa: E402
from .tasks import BINARY, TERNARY, Task, get_task  # noqa: E402

__all__ = ["BINARY", "CLASS_FOLDERS", "DataError", "SPLITS", "SplitData", "TERNARY", "TYPES",
           "Task", "balanced_subset", "get_task", "load_image_table", "patient_split",
           "prepare_data"]
__version__ = "0.2.0"
