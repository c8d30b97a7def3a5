"""The seed-spread summary, the recipe table and the choice rule, by hand."""

import numpy as np
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


def rule_row(recipe, seed, auc, spec, geo, sm, saliency):
    return {**row(recipe, seed, auc, spec, 0.2), "geo_worst_specificity": geo,
            "sm_specificity": sm, "saliency_normal": saliency, "saliency_pneumonia": saliency + 0.1}


def rows_of(recipe, auc, specs, geo, sm, saliency):
    """Single-seed rows with validation specificities ``specs``, and the mean row."""
    return ([rule_row(recipe, str(i), auc, s, geo, sm, saliency) for i, s in enumerate(specs)]
            + [rule_row(recipe, "mean", auc, float(np.mean(specs)), geo, sm, saliency)])


def test_choose_gates_on_auc_spread_and_saliency_then_takes_the_lower_shift_figure():
    table = pd.DataFrame(
        # the best shift figures, but its AUC is 0.03 below the best: not eligible
        rows_of("weak", 0.965, [0.9, 0.9], 0.95, 0.95, 0.9)
        # eligible, but its specificity wanders 0.08 over seeds
        + rows_of("wandering", 0.995, [0.86, 0.94], 0.9, 0.9, 0.9)
        # eligible, high geometric view but a poor scale-matched subset: shift 0.5
        + rows_of("framing", 0.995, [0.95, 0.95], 0.9, 0.5, 0.7)
        # eligible, both shift figures 0.8, but it looks outside the lungs
        + rows_of("outside", 0.995, [0.95, 0.95], 0.85, 0.8, 0.4)
        # eligible, lungs decide, shift min(0.75, 0.78) = 0.75
        + rows_of("lungs", 0.994, [0.94, 0.96], 0.75, 0.78, 0.65))
    rules = selection.rule_table(table)
    assert rules.loc["framing", "shift"] == 0.5 and not rules.loc["weak", "eligible"]
    assert not rules.loc["wandering", "eligible"] and not rules.loc["outside", "lungs_decide"]
    assert selection.choose(table) == "lungs"
    # the saliency gate comes first: without "lungs", "framing" is kept over "outside"
    assert selection.choose(table[table.recipe != "lungs"]) == "framing"
    # and when no eligible recipe passes it, the best shift figure among them
    assert selection.choose(table[~table.recipe.isin(["lungs", "framing"])]) == "outside"


def test_short_table_names():
    t = pd.DataFrame([row("a", "1", 0.99, 0.9, 0.1)])
    short = instruments.short_table(t)
    assert list(short.columns[:4]) == ["recipe", "seed", "AUC", "spec"]
    assert "exposed spec" in short and "zoom-in spec" in short


def test_anatomy_sentence_reads_the_saliency_share_against_its_chance_level():
    from pneumo_helpers.use.report import anatomy_in_words

    anatomy = {"saliency_normal": 0.36, "saliency_pneumonia": 0.40, "sm_auc": 0.99,
               "sm_specificity": 0.96, "marker_specificity": 0.82}
    without = anatomy_in_words(anatomy, {"specificity": 0.82})
    assert "0.36 of the Grad-CAM mass" in without and "spread evenly" not in without
    with_area = anatomy_in_words({**anatomy, "lung_area_normal": 0.325,
                                  "lung_area_pneumonia": 0.323}, {"specificity": 0.82})
    assert "a map spread evenly would put 0.33 and 0.32 there" in with_area
    assert "structure-matched" not in with_area
    structured = anatomy_in_words({**anatomy, "st_auc": 0.97, "st_specificity": 0.61},
                                  {"specificity": 0.82})
    assert "structure-matched subset" in structured and "specificity 0.610" in structured
