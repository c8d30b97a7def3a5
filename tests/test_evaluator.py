"""The seed-spread summary, the recipe table and the choice rule, by hand."""

import pandas as pd
import pytest

from pneumo_helpers.evaluation import instruments, selection


def row(recipe, seed, auc, spec, threshold, cf_spec=0.9, exposed=0.9, zoom_in=0.6, cf_auc=0.97):
    return {"recipe": recipe, "seed": seed, "val_auc": auc, "val_specificity": spec,
            "threshold": threshold, "cf_auc": cf_auc, "cf_specificity": cf_spec,
            "stress_counter_exposed_specificity": exposed,
            "stress_zoom_in_1.2_specificity": zoom_in, "stress_worst_specificity": zoom_in}


def test_seed_spread_by_hand():
    rows = [row("a", "1", 0.99, 0.90, 0.10), row("a", "2", 0.98, 0.94, 0.30),
            row("a", "3", 0.97, 0.92, 0.20)]
    out = selection.seed_spread(rows)
    assert out.loc["threshold"].to_dict() == pytest.approx(
        {"min": 0.10, "max": 0.30, "mean": 0.20, "range": 0.20})
    assert out.loc["val_specificity"].to_dict() == pytest.approx(
        {"min": 0.90, "max": 0.94, "mean": 0.92, "range": 0.04})
    assert "val_accuracy" not in out.index  # only figures the rows have
    # per recipe, the same numbers
    table = pd.DataFrame(rows + [row("b", "1", 0.9, 0.5, 0.5), row("b", "mean", 0.9, 0.9, 0.9)])
    spread = selection.spread_table(table)
    assert spread.loc["a", "threshold_range"] == pytest.approx(0.20)
    assert spread.loc["b", "val_specificity_range"] == 0  # the mean row is not a seed


def test_choose_keeps_auc_then_shift_specificity_then_steadiness():
    table = pd.DataFrame([
        # best shift specificity, but its AUC is 0.005 below the best: not eligible
        row("framing_free", "1", 0.990, 0.9, 0.1, 0.99, 0.99, 0.99),
        row("framing_free", "mean", 0.990, 0.9, 0.1, 0.99, 0.99, 0.99),
        # eligible, shift mean 0.8, steady
        row("steady", "1", 0.995, 0.95, 0.1, 0.9, 0.9, 0.6),
        row("steady", "2", 0.995, 0.95, 0.1, 0.9, 0.9, 0.6),
        row("steady", "mean", 0.995, 0.95, 0.1, 0.9, 0.9, 0.6),
        # the same shift mean, wandering specificity: loses the tie
        row("wandering", "1", 0.995, 0.90, 0.1, 0.9, 0.9, 0.6),
        row("wandering", "2", 0.995, 0.99, 0.5, 0.9, 0.9, 0.6),
        row("wandering", "mean", 0.995, 0.95, 0.3, 0.9, 0.9, 0.6),
        # the best AUC, lower shift specificity
        row("sharp", "1", 0.995, 0.95, 0.1, 0.8, 0.7, 0.5),
        row("sharp", "mean", 0.995, 0.95, 0.1, 0.8, 0.7, 0.5),
    ])
    assert selection.choose(table) == "steady"
    spread = selection.spread_table(table)
    assert spread.loc["wandering", "val_specificity_range"] == pytest.approx(0.09)
    assert spread.loc["wandering", "threshold_range"] == pytest.approx(0.4)
    assert spread.loc["steady", "val_specificity_range"] == 0


def test_short_table_names():
    t = pd.DataFrame([row("a", "1", 0.99, 0.9, 0.1)])
    short = instruments.short_table(t)
    assert list(short.columns[:4]) == ["recipe", "seed", "AUC", "spec"]
    assert "exposed spec" in short and "zoom-in spec" in short
