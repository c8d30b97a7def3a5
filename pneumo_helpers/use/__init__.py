"""Using a trained model: the model file, scoring new X-rays, the run
folder and its reports."""

from .._tensorflow import import_quietly as _import_quietly

_import_quietly()
