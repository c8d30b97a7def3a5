import os; os.environ["TF_CPP_MIN_LOG_LEVEL"]="3"
import json, numpy as np
from pneumo_helpers.workflow import prepare_data
from pneumo_helpers import framing
data = prepare_data(os.environ.get("DATA_DIR", "/work/shared/data/chest_xray"), 128, 32, 42)
m = framing.fit_border_model(data.table)
out = {}
for s in ("train", "validation", "sanity"):
    t = data.subset(s)
    out[s] = dict(zip(t["path"], framing.border_scores(m, t).tolist()))
json.dump(out, open("frame_scores.json", "w"))
for s in out:
    t = data.subset(s); p = np.array([out[s][x] for x in t["path"]]); y = t["label"].to_numpy()
    mask = framing.counter_framed_mask(y, p)
    print(s, "normals cf", (mask & (y==0)).sum(), "/", (y==0).sum(), "pneu cf", (mask & (y==1)).sum(), "/", (y==1).sum())
