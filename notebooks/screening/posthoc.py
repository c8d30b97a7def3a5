"""post-hoc: TTA variants on saved models (ensemble of given models)."""
import os, sys, json; os.environ["TF_CPP_MIN_LOG_LEVEL"]="3"
sys.path.insert(0, "/work/scratch/snap"); sys.path.insert(0, "/work/scratch")
import numpy as np, keras, tensorflow as tf
import pneumo_helpers.models, recipes  # registers layers
from pneumo_helpers.workflow import prepare_data
from pneumo_helpers.augment import view, reframe
from pneumo_helpers.stress import VIEWS
from pneumo_helpers.metrics import threshold_for_recall
from pneumo_helpers.training import predict
from sklearn.metrics import roc_auc_score
fs = json.load(open("frame_scores.json"))
data = prepare_data(os.environ.get("DATA_DIR", "/work/shared/data/chest_xray"), 128, 32, 42)
models = [keras.models.load_model(p, custom_objects={"FastEq": recipes.FastEq, "RandGamma": recipes.RandGamma, "BodyCrop": recipes.BodyCrop}) for p in sys.argv[2:]]
TTAS = {
  "none": [],
  "std": [(0.9, 0, 0), (1.1, 0, 0), (1, -0.05, 0), (1, 0.05, 0)],
  "wide": [(0.8, 0, 0), (0.9, 0, 0), (1.1, 0, 0), (1.25, 0, 0), (1, -0.05, 0), (1, 0.05, 0)],
  "zoomout": [(0.8, 0, 0), (0.9, 0, 0), (1, -0.05, 0), (1, 0.05, 0)],
}
tta = [lambda x, v=v: reframe(x, *v) for v in TTAS[sys.argv[1]]]
y = data.labels("validation"); paths = data.subset("validation")["path"].tolist()
fr = np.array([fs["validation"][p] for p in paths])
vds = data.dataset("validation")
def sc(ds): return np.mean([predict(m, ds, tta)[0] for m in models], 0)
s = sc(vds); t = threshold_for_recall(y, s, 0.98)
cf2 = np.where(y == 1, fr <= 0.5, fr >= 0.4)
out = dict(auc=roc_auc_score(y, s), thr=t, spec=(s[y==0]<t).mean(), cf2_auc=roc_auc_score(y[cf2], s[cf2]), cf2_spec=(s[(y==0)&(fr>=0.4)]<t).mean())
for v in ("zoom_in_1.2", "zoom_out_0.65", "zoom_out_0.8", "shift_up", "blur", "gamma_0.7"):
    sv = sc(vds.map(lambda x, yy, kw=VIEWS[v]: (view(x, **kw), yy)))
    out[v] = (sv[y==0] < t).mean()
ys = data.labels("sanity"); ss = sc(data.dataset("sanity"))
out["san_spec"] = (ss[ys==0] < t).mean(); out["san_auc"] = roc_auc_score(ys, ss)
print(sys.argv[1], len(models), " ".join(f"{k} {v:.3f}" for k, v in out.items()), np.round(np.sort(ss[ys==0]), 2))
