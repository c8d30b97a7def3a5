"""Parameters checked the scikit-learn way (``sklearn.utils._param_validation``):
constraint objects whose text is the error message, a table of constraints
per function or notebook, and :func:`validate_params` to apply it.

A bad value stops the work with one :class:`ParameterError` line naming the
parameter, the value and what is allowed, e.g.
``parameter epochs = 0: expected a whole number from 1``. The allowed names
of tasks, recipes and strategies are read from their registries, so a new
recipe is allowed the moment it is registered.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from numbers import Integral, Real

from .errors import ParameterError


class Constraint:
    """A set of allowed values; ``str(constraint)`` says what is allowed."""

    def is_satisfied_by(self, value) -> bool:
        raise NotImplementedError

    def __str__(self) -> str:
        raise NotImplementedError


class Interval(Constraint):
    """Numbers of ``kind`` (``Integral`` or ``Real``) between ``left`` and
    ``right`` (``None``: unbounded); ``closed`` is ``"left"``, ``"right"``,
    ``"both"`` or ``"neither"``. Booleans and NaN are never numbers here."""

    def __init__(self, kind, left, right, closed: str = "both"):
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def is_satisfied_by(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if isinstance(value, float) and math.isnan(value):
            return False
        lo_ok = self.left is None or (value >= self.left if self.closed in ("left", "both")
                                      else value > self.left)
        hi_ok = self.right is None or (value <= self.right if self.closed in ("right", "both")
                                       else value < self.right)
        return lo_ok and hi_ok

    def __str__(self) -> str:
        if self.kind is Integral:
            lo = self.left if self.closed in ("left", "both") else self.left + 1
            if self.right is None:
                return f"a whole number from {lo}"
            hi = self.right if self.closed in ("right", "both") else self.right - 1
            return f"a whole number from {lo} to {hi}"
        lo = "(-inf" if self.left is None else (
            f"[{self.left}" if self.closed in ("left", "both") else f"({self.left}")
        hi = "inf)" if self.right is None else (
            f"{self.right}]" if self.closed in ("right", "both") else f"{self.right})")
        return f"a number in {lo}, {hi}"


class Options(Constraint):
    """One of ``options`` (shown in the order given)."""

    def __init__(self, options, kind=object):
        self.options, self.kind = tuple(options), kind

    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, self.kind) and value in self.options

    def __str__(self) -> str:
        return "one of " + ", ".join(map(repr, self.options))


class StrOptions(Options):
    """One of the strings ``options``; a callable is read each time (a registry)."""

    def __init__(self, options):
        self._options = options

    @property
    def options(self):
        return tuple(self._options() if callable(self._options) else self._options)

    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, str) and value in self.options


class Boolean(Constraint):
    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "True or False"


class NonEmptyText(Constraint):
    def __init__(self, what: str = "text"):
        self.what = what

    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, str) and value.strip() != ""

    def __str__(self) -> str:
        return f"a non-empty {self.what}"


class Path(Constraint):
    """One path: a non-empty ``str`` or an ``os.PathLike`` (never a list or
    bytes: a ``str`` is one path, not its characters)."""

    def is_satisfied_by(self, value) -> bool:
        import os
        return (isinstance(value, str) and value.strip() != "") or isinstance(value, os.PathLike)

    def __str__(self) -> str:
        return "a path (str or pathlib.Path)"


class OneOf(Constraint):
    """Satisfied by any of ``constraints``."""

    def __init__(self, *constraints):
        self.constraints = constraints

    def is_satisfied_by(self, value) -> bool:
        return any(c.is_satisfied_by(value) for c in self.constraints)

    def __str__(self) -> str:
        return " or ".join(map(str, self.constraints))


class NoneOr(OneOf):
    def __init__(self, constraint):
        super().__init__(constraint)

    def is_satisfied_by(self, value) -> bool:
        return value is None or super().is_satisfied_by(value)

    def __str__(self) -> str:
        return f"None or {self.constraints[0]}"


def check(name: str, value, constraint: Constraint, what: str = "parameter"):
    """``value``, or one ParameterError line naming ``name`` and what is allowed."""
    if not constraint.is_satisfied_by(value):
        raise ParameterError(f"{what} {name} = {value!r}: expected {constraint}")
    return value


def check_all(values: dict, constraints: dict, what: str = "parameter") -> dict:
    """Every entry of ``constraints`` checked in ``values`` (a missing one is an error)."""
    out = {}
    for name, constraint in constraints.items():
        if name not in values:
            raise ParameterError(f"{what} {name} is missing")
        out[name] = check(name, values[name], constraint, what)
    return out


def validate_params(constraints: dict):
    """Decorator: check the named arguments of a function against
    ``constraints`` on every call (as ``sklearn.utils.validate_params``)."""
    def decorate(func):
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, constraint in constraints.items():
                check(name, bound.arguments[name], constraint, "argument")
            return func(*args, **kwargs)

        wrapper.parameter_constraints = constraints
        return wrapper
    return decorate


# ---------------------------------------------------------------- registries

def _tasks():
    from .tasks import TASKS
    return TASKS


def _recipes():
    from .modeling.recipes import RECIPES
    return RECIPES


def _strategies():
    from .modeling.distribute import STRATEGIES
    return STRATEGIES


TARGET_RECALL = Interval(Real, 0, 1, closed="right")
FRACTION = Interval(Real, 0, 1, closed="neither")

#: The final notebook's parameters and what each allows.
FINAL_PARAMETERS = {
    "data_dir": NonEmptyText("path"),
    "output_dir": NonEmptyText("path"),
    "task": StrOptions(_tasks),
    "recipe": StrOptions(_recipes),
    "image_size": Interval(Integral, 32, 1024),  # four 2x poolings after a strided stem
    "epochs": Interval(Integral, 1, None, closed="left"),
    "batch_size": Interval(Integral, 1, None, closed="left"),
    "seed": Interval(Integral, 0, None, closed="left"),
    "n_seeds": Interval(Integral, 1, 20),
    "target_recall": TARGET_RECALL,
    "max_train_images": Interval(Integral, 0, None, closed="left"),
    "val_fraction": FRACTION,
    "distribute": StrOptions(_strategies),
    "mixed_precision": Boolean(),
}


def check_parameters(namespace: dict, constraints: dict = FINAL_PARAMETERS) -> dict:
    """The parameters named in ``constraints``, taken from ``namespace`` (a
    notebook's ``globals()``), each checked; the first bad one raises
    :class:`ParameterError` naming it and what is allowed."""
    return check_all(namespace, constraints)


def parameter_table(params: dict):
    """The parameters as a one-column table; an ``output_dir`` that is the
    staging folder of ``pneumo results`` is shown as the folder the results
    are moved to at the end, with the staging folder's name."""
    import pandas as pd

    from .use.results import published_dir

    shown = {k: str(v) for k, v in params.items()}
    final = published_dir(params["output_dir"]) if "output_dir" in params else None
    if final is not None:
        staging = os.path.basename(str(params["output_dir"]))
        shown["output_dir"] = (f"{final} (written in {staging}, moved there when the run has "
                               "finished)")
    return pd.Series(shown, name="value").to_frame()
