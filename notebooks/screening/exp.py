"""Screening harness: train one recipe with one seed on the seed-42 patient split,
save validation / stress-on-validation / sanity scores. Never touches test."""
import os, sys, json, time, argparse
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import warnings; warnings.filterwarnings("ignore")
import numpy as np
ap = argparse.ArgumentParser()
ap.add_argument("recipe"); ap.add_argument("--seed", type=int, default=42)
ap.add_argument("--epochs", type=int, default=15); ap.add_argument("--size", type=int, default=128)
ap.add_argument("--tag", default="")
a = ap.parse_args()
import recipes
from pneumo_helpers.workflow import prepare_data
from pneumo_helpers.training import set_seed, predict
from pneumo_helpers.augment import tta_views, view
from pneumo_helpers.stress import VIEWS
from pneumo_helpers import framing
import tensorflow as tf

DATA = os.environ.get("DATA_DIR", "/work/shared/data/chest_xray")
out = f"runs/{a.recipe}{a.tag}_s{a.seed}_e{a.epochs}_p{a.size}.json"
data = prepare_data(DATA, a.size, 32, 42)          # split fixed at seed 42
set_seed(a.seed)
t0 = time.time()
result, tta = recipes.RECIPES[a.recipe](data, a.seed, a.epochs, a.size)
train_s = time.time() - t0
val = data.subset("validation")
def scores(ds):
    s, _ = predict(result.model, ds, tta)
    return s
val_scores = result.val_scores
stress = {}
xs = data.dataset("validation")
for name, kw in VIEWS.items():
    if name == "original": continue
    ds = xs.map(lambda x, y, kw=kw: (view(x, **kw), y))
    stress[name] = scores(ds).tolist()
sanity = scores(data.dataset("sanity")).tolist()
import glob
from pneumo_helpers.pipeline import make_dataset
import pandas as pd
rt = data.subset("sanity").copy()
rt["path"] = ["/work/scratch/sanity224/" + "/".join(p.split("/")[-2:]) for p in rt["path"]]
sanity_rt = scores(make_dataset(rt, a.size, 32)).tolist()
result.model.save(out.replace(".json", ".keras"))
doc = dict(recipe=a.recipe, seed=a.seed, epochs=a.epochs, size=a.size, train_s=train_s,
           epochs_run=result.timing["epochs_run"], history=result.history,
           val_paths=val["path"].tolist(), val_labels=val["label"].tolist(),
           val_scores=np.asarray(val_scores).tolist(), stress=stress, sanity=sanity, sanity_rt=sanity_rt,
           sanity_labels=data.labels("sanity").tolist(), total_s=time.time() - t0)
json.dump(doc, open(out, "w"))
print("wrote", out, "train", round(train_s), "total", round(time.time() - t0))
