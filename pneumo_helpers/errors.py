"""The errors a user meets: each message is one line naming what is wrong and
what is expected, shown without a traceback in Jupyter and on the command line
(``pneumo`` prints ``error: <message>``)."""

from __future__ import annotations


class PneumoError(ValueError):
    """Base of the project's one-line errors."""

    def _render_traceback_(self):  # IPython/Jupyter: one line, no traceback
        return [f"{type(self).__name__}: {self}"]


class DataError(PneumoError):
    """Input data (a folder, an image) is missing or malformed."""


class ParameterError(PneumoError):
    """A parameter is out of range or of the wrong kind."""


class ModelFileError(PneumoError):
    """A model file cannot be used."""


class MissingWeightsError(PneumoError):
    """ImageNet weights are neither in ``$KERAS_HOME/models`` nor downloadable."""


class DataWarning(UserWarning):
    """Something in the data folder was skipped or read in a weaker way."""
