"""Build results.csv from the screening runs (runs/*.json written by exp.py).

    python make_table.py RUNS_DIR FRAME_SCORES_JSON > results.csv
"""
import glob
import json
import sys

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

IDEAS = {  # run name -> what it tried
    "base": "the first blind recipe (robust_cnn) as it was",
    "base_notta": "robust_cnn without test-time views",
    "reweight": "sample weights equalising the border-model score distribution of the classes",
    "poe": "product of experts with the border model's logit (debiasing), weight 1",
    "poe2": "product of experts with the border model's logit, weight 2",
    "mixup": "mixup (alpha 0.2)",
    "ema": "exponential moving average of the weights",
    "smooth": "label smoothing 0.1",
    "normzoom": "NORMAL training images zoomed in 1.1-1.5x half the time (towards pneumonia framing)",
    "bswap": "outer band (5-25%) replaced by another training image's, half the time",
    "normaug": "NORMAL images: zoom-in, haze, lower contrast, blur, half the time",
    "normaug_int": "NORMAL images: haze, lower contrast, blur, half the time",
    "normaug_geo": "NORMAL images: zoom-in 1.0-1.4x half the time",
    "allaug": "zoom-in, haze, lower contrast, blur for both classes, half the time",
    "equalize": "histogram equalisation before augmentation (sort-based)",
    "eqfast": "histogram equalisation before augmentation (256-bin histogram)",
    "eq_after": "histogram equalisation after augmentation",
    "eqmid": "histogram equalisation between reframing and gamma",
    "zoom20": "random zoom 0.7-2.0x",
    "zoom16": "random zoom 0.8-1.6x",
    "gmp": "global max pooling",
    "avgmax": "global average and max pooling",
    "wide": "twice the filters",
    "deep2": "two convolutions per block",
    "eqdeep2": "histogram equalisation and two convolutions per block",
    "augmix": "AugMix (keras.layers.AugMix) after reframing",
    "erase": "random erasing (keras.layers.RandomErasing)",
    "randaug": "RandAugment (keras.layers.RandAugment)",
    "crop": "each image cropped to the body's width",
    "cropeq": "cropped to the body's width, then equalised",
}


def figures(d, frames):
    y = np.array(d["val_labels"])
    s = np.array(d["val_scores"])
    fr = np.array([frames["validation"][p] for p in d["val_paths"]])
    # the most specific threshold reaching recall 0.98 (metrics.threshold_for_recall)
    order = np.sort(s[y == 1])
    t = order[int(np.floor(0.02 * len(order)))]
    cf = np.where(y == 1, fr <= 0.5, fr >= 0.4)
    spec = {v: float((np.array(x)[y == 0] < t).mean()) for v, x in d["stress"].items()}
    ys, ss = np.array(d["sanity_labels"]), np.array(d["sanity"])
    return {"val_auc": roc_auc_score(y, s), "threshold": t, "val_specificity": (s[y == 0] < t).mean(),
            "cf_auc": roc_auc_score(y[cf], s[cf]), "cf_specificity": (s[cf & (y == 0)] < t).mean(),
            "stress_zoom_in_1.2_specificity": spec["zoom_in_1.2"],
            "stress_worst_specificity": min(spec.values()),
            "sanity_specificity": (ss[ys == 0] < t).mean()}


def main(runs, frames_path):
    frames = json.load(open(frames_path))
    rows = []
    for name, idea in IDEAS.items():
        files = sorted(glob.glob(f"{runs}/{name}_s*_e15_p128.json"))
        if not files:
            continue
        per_seed = pd.DataFrame([figures(json.load(open(f)), frames) for f in files])
        rows.append({"idea": idea, "run": name, "seeds": len(files),
                     **per_seed.mean().round(4).to_dict(),
                     "threshold_range": round(per_seed["threshold"].max()
                                              - per_seed["threshold"].min(), 4)})
    pd.DataFrame(rows).to_csv(sys.stdout, index=False)


if __name__ == "__main__":
    main(*sys.argv[1:3])
