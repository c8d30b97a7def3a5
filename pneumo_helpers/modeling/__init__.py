"""Models and how they are trained: preprocessing layers, augmentation,
builders, transfer learning, distribution, training and named recipes."""

from .._tensorflow import import_quietly as _import_quietly

_import_quietly()
