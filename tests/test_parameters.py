"""Parameters checked the scikit-learn way: every parameter of the final
notebook refuses a wrong value with one line naming it, and the allowed
choices come from the registries."""

import math
from numbers import Real

import pytest

from pneumo_helpers.errors import ParameterError
from pneumo_helpers.parameters import (FINAL_PARAMETERS, Interval, NoneOr, Options, StrOptions,
                                       check, check_parameters, validate_params)

DEFAULTS = dict(data_dir="data/chest_xray", output_dir="reports", task="binary",
                recipe="equalized_tta_out", image_size=128, epochs=15, batch_size=32, seed=42,
                n_seeds=3, target_recall=0.98, max_train_images=0, val_fraction=0.15,
                distribute="none", mixed_precision=False)
# one wrong value per parameter, and what the message must say is allowed
WRONG = {"data_dir": ("", "a non-empty path"), "output_dir": (3, "a non-empty path"),
         "task": ("both", "one of 'binary', 'ternary'"), "recipe": ("nope", "one of 'robust_cnn'"),
         "image_size": (16, "a whole number from 32 to 1024"),
         "epochs": (0, "a whole number from 1"), "batch_size": (2.5, "a whole number from 1"),
         "seed": (-1, "a whole number from 0"), "n_seeds": (21, "a whole number from 1 to 20"),
         "target_recall": (1.5, "a number in (0, 1]"), "max_train_images": (True,
                                                                             "a whole number"),
         "val_fraction": (1.0, "a number in (0, 1)"),
         "distribute": ("tpu", "one of 'none', 'mirrored', 'multiworker'"),
         "mixed_precision": ("yes", "True or False")}


def test_the_defaults_pass():
    assert check_parameters(DEFAULTS) == DEFAULTS


def test_every_parameter_has_a_wrong_value_here():
    assert set(WRONG) == set(FINAL_PARAMETERS) == set(DEFAULTS)


@pytest.mark.parametrize("name", sorted(FINAL_PARAMETERS))
def test_a_wrong_value_is_one_line_naming_the_parameter(name):
    value, allowed = WRONG[name]
    with pytest.raises(ParameterError) as err:
        check_parameters({**DEFAULTS, name: value})
    message = str(err.value)
    assert message.startswith(f"parameter {name} = {value!r}: expected ") and allowed in message
    assert "\n" not in message


def test_a_missing_parameter_is_named():
    with pytest.raises(ParameterError, match="parameter epochs is missing"):
        check_parameters({k: v for k, v in DEFAULTS.items() if k != "epochs"})


def test_constraint_texts_and_edges():
    unit = Interval(Real, 0, 1, closed="right")
    assert not unit.is_satisfied_by(0) and unit.is_satisfied_by(1) and not unit.is_satisfied_by(
        math.nan)
    assert str(NoneOr(Options((1, 2)))) == "None or one of 1, 2"
    # a registry is read when checked: a recipe registered later is allowed at once
    registry = {"a": 1}
    options = StrOptions(lambda: registry)
    registry["b"] = 2
    assert options.is_satisfied_by("b") and str(options) == "one of 'a', 'b'"
    assert check("x", 3, Interval(int, 0, 5)) == 3


def test_validate_params_checks_library_calls():
    from numbers import Integral

    @validate_params({"n": Interval(Integral, 1, None, closed="left")})
    def f(n=1):
        return n

    assert f(2) == 2
    with pytest.raises(ParameterError, match="argument n = 0: expected a whole number from 1"):
        f(0)
