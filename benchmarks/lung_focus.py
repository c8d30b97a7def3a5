"""How much the lungs decide against what it costs: the kept recipe
(``lung_crop``) trained with the evidence-outside-the-lungs penalty of
``modeling.lung_focus`` at several weights (0 is ``lung_crop`` itself, 1 the
registered ``lung_crop_focus``), each with several seeds, measured on
validation patients with chapter 08's instruments (``selection.compare``,
chapter 08's parameters and cache, so trainings already made are reused).

    .venv/bin/python benchmarks/lung_focus.py DATA_DIR [--weights 0,0.3,1,3]
        [--seeds 42,43,44] [--cache runs/08_lungs] [--out reports/lung_focus]

Writes ``<out>/lung_focus.csv`` (a row per weight and seed, and the mean of
the seeds) and ``<out>/lung_focus.png`` (the saliency share inside the lungs
and the specificities, against the weight). Validation patients only; the
``test/`` holdout is never read.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def recipe_for(weight: str):
    """``lung_crop`` at weight 0, ``lung_crop_focus`` at 1, else
    ``lung_crop_focus`` with that weight (named ``lung_crop_focus_lung_focus<w>``)."""
    from pneumo_helpers.modeling.recipes import get_recipe

    w = float(weight)
    if w == 0:
        return get_recipe("lung_crop")
    if w == 1:
        return get_recipe("lung_crop_focus")
    return replace(get_recipe("lung_crop_focus"), name=f"lung_crop_focus_lung_focus{weight}",
                   lung_focus=w)


def figure(table, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    singles, means = table[table.seed != "mean"], table[table.seed == "mean"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    panels = (
        (axes[0], (("saliency_normal", "healthy children"), ("saliency_pneumonia", "pneumonia")),
         "Grad-CAM mass inside the lungs", 0.6, "issue's floor 0.6"),
        (axes[1], (("val_specificity", "plain validation"),
                   ("geo_worst_specificity", "worst geometric view"),
                   ("st_specificity", "structure-matched subset")),
         "specificity at recall 0.98 (validation threshold)", 0.8, "worst-view target 0.80"),
    )
    for ax, columns, ylabel, target, target_label in panels:
        for (column, label), colour in zip(columns, ("C0", "C3", "C2")):
            ax.plot(means.weight, means[column], "o-", color=colour, label=f"{label} (mean of seeds)")
            ax.plot(singles.weight, singles[column], ".", color=colour, alpha=0.5)
        ax.axhline(target, color="grey", ls="--", lw=1, label=target_label)
        ax.set_xscale("symlog", linthresh=0.3)
        ax.set_xticks(sorted(means.weight.unique()))
        ax.set_xticklabels([f"{w:g}" for w in sorted(means.weight.unique())])
        ax.set_xlabel("weight of the evidence share outside the lungs (lung_focus)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8, loc="best")
    chance = means["lung_area_normal"].mean()
    axes[0].axhline(chance, color="grey", ls=":", lw=1)
    axes[0].annotate(f"lung area of the crop ({chance:.2f}): an even map", (0, chance),
                     textcoords="offset points", xytext=(4, 4), fontsize=8, color="grey")
    n = singles.groupby("weight").size().min()
    fig.suptitle(f"lung_crop with its evidence asked into the lungs: validation patients, "
                 f"{n} seeds per weight (dots), mean-of-seeds model (line)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir")
    parser.add_argument("--weights", default="0,0.3,1,3")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--cache", default="runs/08_lungs")
    parser.add_argument("--out", default="reports/lung_focus")
    args = parser.parse_args(argv)

    import pandas as pd

    from pneumo_helpers.data import prepare_data
    from pneumo_helpers.evaluation import selection
    from pneumo_helpers.evaluation.instruments import Evaluator
    from pneumo_helpers.use.runfolder import check_output_dir

    out = Path(args.out)
    check_output_dir(out, args.data_dir)
    data = prepare_data(args.data_dir, "binary", 128, 32, 42)  # chapter 08's split
    evaluator = Evaluator(data, "validation")
    weights = args.weights.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    tables = []
    for w in weights:
        rows = selection.compare([recipe_for(w)], data, seeds, evaluator, epochs=args.epochs,
                                 target_recall=0.98, cache_dir=args.cache)
        tables.append(pd.DataFrame(rows).assign(weight=float(w)))
    table = pd.concat(tables, ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    columns = ["weight", "recipe", "seed", "val_auc", "val_specificity", "geo_worst_specificity",
               "sm_specificity", "st_specificity", "stress_faint_structure_specificity",
               "marker_specificity", "saliency_normal", "saliency_pneumonia", "sanity_specificity",
               "threshold"]
    table[columns].to_csv(out / "lung_focus.csv", index=False)
    figure(table, out / "lung_focus.png")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table[table.seed == "mean"][columns].round(3).to_string(index=False))
    print(f"wrote {out / 'lung_focus.csv'} and {out / 'lung_focus.png'}")
    return 0


if __name__ == "__main__":
    from pneumo_helpers.errors import PneumoError

    try:
        sys.exit(main())
    except PneumoError as err:  # a bad folder or parameter: one line, not a traceback
        sys.exit(f"lung_focus.py: {err}")
