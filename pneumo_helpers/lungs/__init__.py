"""The lung-field model: segmenting the lungs and cropping to them."""

from .._tensorflow import import_quietly as _import_quietly

_import_quietly()
