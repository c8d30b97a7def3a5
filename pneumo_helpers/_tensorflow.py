"""TensorFlow, imported once and quietly, by the sub-packages that need it
(``data``, ``modeling``, ``evaluation``, ``use``, ``lungs``); the top-level
modules (``info``, ``tasks``, ``metrics``, ``errors``, ``parameters``,
``cli``) never import it, so ``pneumo --help`` answers at once.

TensorFlow's C++ start-up lines (oneDNN, CUDA, absl) are written to the
process's stderr before Python can filter them, and would otherwise land in
every notebook's outputs.
"""

import os
import warnings

_done = False


def import_quietly() -> None:
    global _done
    if _done:
        return
    _done = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no usable stderr file descriptor: nothing to silence
        import tensorflow  # noqa: F401
        return
    os.dup2(devnull, 2)
    try:
        import keras  # noqa: F401
        import tensorflow

        tensorflow.config.list_physical_devices()  # device start-up lines, silenced too
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)
    # Keras warns on every dataset built with shuffle=True that it cannot check
    # the shuffle itself; ours are shuffled by tf.data, on purpose.
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
