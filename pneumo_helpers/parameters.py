"""The final notebook's parameters, each checked before any work is done:
a bad value stops the run with one line naming the parameter and what is
allowed."""

from __future__ import annotations

import pandas as pd


class ParameterError(ValueError):
    """A notebook parameter is out of range. The message is one line naming it."""

    def _render_traceback_(self):  # IPython/Jupyter: one line, no traceback
        return [f"ParameterError: {self}"]


def _choice(*allowed):
    def check(v):
        return v in allowed, "one of " + ", ".join(map(repr, allowed))
    return check


def _integer(lo, hi=None):
    def check(v):
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
        return ok, f"a whole number from {lo}" + (f" to {hi}" if hi is not None else " up")
    return check


def _number(lo, hi, lo_open=True, hi_open=False):
    def check(v):
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool)
              and (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi))
        return ok, f"a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    return check


def _boolean():
    def check(v):
        return isinstance(v, bool), "True or False"
    return check


def _text():
    def check(v):
        return isinstance(v, str) and v.strip() != "", "a non-empty path"
    return check


def _recipes():
    from .recipes import RECIPES
    return _choice(*RECIPES)


FINAL_PARAMETERS = {
    "data_dir": _text,
    "output_dir": _text,
    "task": lambda: _choice("binary", "ternary"),
    "recipe": _recipes,
    "image_size": lambda: _integer(32, 1024),  # four 2x poolings after a strided stem
    "epochs": lambda: _integer(1),
    "batch_size": lambda: _integer(1),
    "learning_rate": lambda: _number(0, 1),
    "seed": lambda: _integer(0),
    "n_seeds": lambda: _integer(1, 20),
    "target_recall": lambda: _number(0, 1),
    "max_train_images": lambda: _integer(0),
    "val_fraction": lambda: _number(0, 1, hi_open=True),
    "distribute": lambda: _choice("none", "mirrored", "multiworker"),
    "mixed_precision": _boolean,
}


def check_parameters(namespace: dict, spec: dict = FINAL_PARAMETERS) -> dict:
    """The parameters named in ``spec``, taken from ``namespace`` (a notebook's
    ``globals()``), each checked against its allowed values; the first bad one
    raises :class:`ParameterError` naming it and what is allowed."""
    params = {}
    for name, make_check in spec.items():
        if name not in namespace:
            raise ParameterError(f"parameter {name} is missing")
        value = namespace[name]
        ok, allowed = make_check()(value)
        if not ok:
            raise ParameterError(f"parameter {name} = {value!r}: expected {allowed}")
        params[name] = value
    return params


def parameter_table(params: dict) -> pd.DataFrame:
    return pd.Series({k: str(v) for k, v in params.items()}, name="value").to_frame()
