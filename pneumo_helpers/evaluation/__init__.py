"""Measuring models on validation patients: framing, stress views,
instruments, selection among recipes, Grad-CAM and figures."""

from .._tensorflow import import_quietly as _import_quietly

_import_quietly()
