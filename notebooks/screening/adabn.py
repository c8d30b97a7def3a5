import os, sys, json; os.environ["TF_CPP_MIN_LOG_LEVEL"]="3"
sys.path.insert(0, "/work/scratch/snap")
import numpy as np, keras, tensorflow as tf
import pneumo_helpers.models  # registers layers
from pneumo_helpers.workflow import prepare_data
from pneumo_helpers.pipeline import load_arrays
from pneumo_helpers.augment import view
from pneumo_helpers.stress import VIEWS
from pneumo_helpers.metrics import threshold_for_recall
from sklearn.metrics import roc_auc_score
path = sys.argv[1]
model = keras.models.load_model(path)
data = prepare_data(os.environ.get("DATA_DIR", "/work/shared/data/chest_xray"), 128, 32, 42)
xv, yv = load_arrays(data.subset("validation"), 128)
xs, ys = load_arrays(data.subset("sanity"), 128)
orig = [ (l.moving_mean.numpy().copy(), l.moving_variance.numpy().copy()) for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
def adapt(x):
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    h = tf.convert_to_tensor(x)
    for l in model.layers:
        if isinstance(l, keras.layers.InputLayer): continue
        if isinstance(l, keras.layers.BatchNormalization):
            m = tf.reduce_mean(h, axis=(0, 1, 2)); v = tf.math.reduce_variance(h, axis=(0, 1, 2))
            l.moving_mean.assign(m); l.moving_variance.assign(v)
        h = l(h, training=False)
def reset():
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    for l, (m, v) in zip(bns, orig): l.moving_mean.assign(m); l.moving_variance.assign(v)
pred = lambda x: model.predict(x, verbose=0, batch_size=128)[:, 0]
sv = pred(xv); t = threshold_for_recall(yv, sv, 0.98)
adapt(xv); sva = pred(xv); ta = threshold_for_recall(yv, sva, 0.98); reset()
print(f"val auc {roc_auc_score(yv, sv):.3f} thr {t:.3f} | adapted-on-val auc {roc_auc_score(yv, sva):.3f} thr {ta:.3f}")
for name, kw in list(VIEWS.items()) + [("sanity", None)]:
    if kw is None: x, y = xs, ys
    else: x, y = np.asarray(view(xv, **kw)), yv
    s = pred(x)
    adapt(x); s2 = pred(x); reset()
    print(f"{name:15s} plain auc {roc_auc_score(y, s):.3f} spec {(s[y==0]<t).mean():.3f} rec {(s[y==1]>=t).mean():.3f} | adabn auc {roc_auc_score(y, s2):.3f} spec {(s2[y==0]<ta).mean():.3f} rec {(s2[y==1]>=ta).mean():.3f}")
    if kw is None: print(" sanity normals plain", np.round(np.sort(s[y==0]),2), "adabn", np.round(np.sort(s2[y==0]),2))
