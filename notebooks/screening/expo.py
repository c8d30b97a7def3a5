"""post-hoc: exposure-swap stress view (histogram matching to random training images of the other class)"""
import os, sys, json; os.environ["TF_CPP_MIN_LOG_LEVEL"]="3"
sys.path.insert(0, "/work/scratch/snap"); sys.path.insert(0, "/work/scratch")
import numpy as np, keras, tensorflow as tf
import pneumo_helpers.models, recipes
from pneumo_helpers.workflow import prepare_data
from pneumo_helpers.metrics import threshold_for_recall
from pneumo_helpers.training import predict
from pneumo_helpers.augment import tta_views
from sklearn.metrics import roc_auc_score
data = prepare_data(os.environ.get("DATA_DIR", "/work/shared/data/chest_xray"), 128, 32, 42)
K = 64
rng = np.random.default_rng(0)
tr = data.subset("train")
def quantiles(table):
    from pneumo_helpers.pipeline import load_arrays
    x, _ = load_arrays(table, 128)
    return np.stack([np.quantile(i.ravel(), np.linspace(0, 1, 256)) for i in x]).astype("float32")
qN = quantiles(tr[tr.label == 0].sample(K, random_state=1))
qP = quantiles(tr[tr.label == 1].sample(K, random_state=1))
bank = tf.constant(np.stack([qP, qN]))  # index by label: normals get pneumonia quantiles
def swap(x, y):
    n = tf.shape(x)[0]
    flat = tf.reshape(x, (n, -1))
    idx = tf.clip_by_value(tf.cast(flat * 255 + 0.5, tf.int32), 0, 255)
    counts = tf.cast(tf.math.bincount(idx, minlength=256, maxlength=256, axis=-1), tf.float32)
    cdf = tf.cumsum(counts, 1) / tf.reduce_sum(counts, 1, keepdims=True)
    u = tf.gather(cdf, idx, batch_dims=1)  # rank of each pixel in [0,1]
    pick = tf.cast(tf.math.floormod(tf.cast(tf.reduce_sum(flat, 1) * 1000, tf.int64), K), tf.int32)
    ref = tf.gather_nd(bank, tf.stack([tf.cast(tf.minimum(y, 1), tf.int32), pick], 1))  # (n,256)
    q = tf.clip_by_value(tf.cast(u * 255 + 0.5, tf.int32), 0, 255)
    out = tf.gather(ref, q, batch_dims=1)
    return tf.reshape(out, tf.shape(x)), y
y = data.labels("validation")
for group in sys.argv[1:]:
    paths = group.split(",")
    ms = [keras.models.load_model(p, custom_objects={"FastEq": recipes.FastEq, "RandGamma": recipes.RandGamma, "BodyCrop": recipes.BodyCrop}) for p in paths]
    sc = lambda ds: np.mean([predict(m, ds, tta_views())[0] for m in ms], 0)
    s = sc(data.dataset("validation")); t = threshold_for_recall(y, s, 0.98)
    ss = sc(data.dataset("validation").map(swap))
    print(os.path.basename(paths[0])[:12], len(ms), f"thr {t:.3f} spec {(s[y==0]<t).mean():.3f} | exposure-swap auc {roc_auc_score(y, ss):.3f} spec {(ss[y==0]<t).mean():.3f} recall {(ss[y==1]>=t).mean():.3f} meanN {ss[y==0].mean():.3f} vs {s[y==0].mean():.3f}")
