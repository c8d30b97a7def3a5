"""Screening recipes (scratch). Each returns (result-like, tta)."""
import json, time, math
import numpy as np, pandas as pd, tensorflow as tf, keras
from keras import layers, ops
from pneumo_helpers import models, metrics as M
from pneumo_helpers.workflow import train_binary, Result
from pneumo_helpers.augment import tta_views, RandomReframe
from pneumo_helpers.pipeline import decode_image
from pneumo_helpers.training import class_weights, cosine_schedule, predict

FS = json.load(open("/work/scratch/frame_scores.json"))

def base(data, seed, epochs, size, tta=True, **model_kw):
    model = models.robust_cnn(image_size=size, seed=seed, **model_kw)
    t = tta_views() if tta else None
    r = train_binary("m", model, data, epochs=epochs, learning_rate=0.002, target_recall=0.98,
                     lr_schedule=True, patience=6, verbose=0, tta=t)
    return r, t

def logit(p):
    p = np.clip(p, 1e-4, 1 - 1e-4); return np.log(p / (1 - p))

def frame_weights(table, bins=5, clip=10.0):
    """weights making the frame-score distribution the same in both classes."""
    fr = np.array([FS["train"][p] for p in table["path"]]); y = table["label"].to_numpy()
    edges = np.quantile(fr, np.linspace(0, 1, bins + 1)[1:-1])
    b = np.digitize(fr, edges)
    pooled = np.bincount(b, minlength=bins) / len(b)
    w = np.ones(len(y))
    for c in (0, 1):
        pc = np.bincount(b[y == c], minlength=bins) / (y == c).sum()
        w[y == c] = pooled[b[y == c]] / np.maximum(pc[b[y == c]], 1e-9)
    w = np.minimum(w, clip)
    for c in (0, 1):  # each class's weights average to its balanced class weight
        w[y == c] *= (len(y) / 2 / (y == c).sum()) / w[y == c].mean()
    return w

def custom(data, seed, epochs, size, model_kw={}, weights=None, bias=0.0, mixup=0.0,
           ema=False, smoothing=0.0, lr=0.002, tta=True, extra_aug=None, monitor="val_auc",
           val_fraction_note=None):
    train = data.subset("train")
    y = train["label"].to_numpy().astype("float32")
    cw = class_weights(y.astype(int))
    w = np.array([cw[int(v)] for v in y]) if weights is None else weights(train)
    model = models.robust_cnn(image_size=size, seed=seed, **model_kw)
    paths = train["path"].to_numpy()
    ds = tf.data.Dataset.from_tensor_slices((paths, y, w.astype("float32")))
    if bias:
        bl = (bias * logit(np.array([FS["train"][p] for p in paths]))).astype("float32")
    else:
        bl = np.zeros(len(y), "float32")
    ds = tf.data.Dataset.from_tensor_slices((paths, y, w.astype("float32"), bl))
    ds = ds.map(lambda p, y, w, b: (decode_image(p, size), y, w, b), num_parallel_calls=tf.data.AUTOTUNE).cache()
    ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True).batch(32)
    if extra_aug is not None:
        ds = ds.map(lambda x, y, w, b: (extra_aug(x, y), y, w, b), num_parallel_calls=tf.data.AUTOTUNE)
    if mixup:
        def mix(x, y, w, b):
            n = tf.shape(x)[0]
            lam = tf.compat.v1.distributions.Beta(mixup, mixup).sample([n]) if False else None
            g1 = tf.random.gamma([n], mixup); g2 = tf.random.gamma([n], mixup)
            lam = g1 / (g1 + g2); lam = tf.maximum(lam, 1 - lam)
            idx = tf.random.shuffle(tf.range(n))
            l4 = tf.reshape(lam, (-1, 1, 1, 1))
            return (l4 * x + (1 - l4) * tf.gather(x, idx), lam * y + (1 - lam) * tf.gather(y, idx),
                    lam * w + (1 - lam) * tf.gather(w, idx), lam * b + (1 - lam) * tf.gather(b, idx))
        ds = ds.map(mix)
    # training model: sigmoid(cnn_logit + bias_logit) (product of experts); inference: cnn alone
    img = keras.Input((size, size, 1)); bin_ = keras.Input(())
    prob = model(img)
    pc = ops.clip(prob, 1e-6, 1 - 1e-6)
    z = ops.log(pc) - ops.log(1 - pc)
    out = ops.sigmoid(z[:, 0] + bin_)
    trainer = keras.Model([img, bin_], out)
    ds = ds.map(lambda x, y, w, b: ((x, b), y, w)).prefetch(tf.data.AUTOTUNE)
    steps = math.ceil(len(y) / 32)
    opt = keras.optimizers.Adam(cosine_schedule(lr, epochs, steps), use_ema=ema)
    trainer.compile(opt, keras.losses.BinaryCrossentropy(label_smoothing=smoothing))
    # validation monitoring on the cnn alone: callback computing val AUC
    vds = data.dataset("validation"); yv = data.labels("validation")
    class ValAUC(keras.callbacks.Callback):
        def __init__(s): super().__init__(); s.best = -1; s.hist = []; s.wts = None
        def on_epoch_end(s, epoch, logs=None):
            pv = model.predict(vds, verbose=0)[:, 0]
            from sklearn.metrics import roc_auc_score
            a = roc_auc_score(yv, pv); s.hist.append(a); logs["val_auc"] = a
            if a > s.best: s.best, s.wts = a, model.get_weights()
    cb = ValAUC()
    t0 = time.time()
    h = trainer.fit(ds, epochs=epochs, verbose=0, callbacks=[cb])
    secs = time.time() - t0
    if not ema:
        model.set_weights(cb.wts)  # restore best epoch (as EarlyStopping would)
    t = tta_views() if tta else None
    vs, _ = predict(model, vds, t)
    thr = M.threshold_for_recall(yv, vs, 0.98)
    hist = dict(h.history); hist["val_auc"] = cb.hist
    return Result("m", model, hist, {"epochs_run": epochs, "train_seconds": secs},
                  M.binary_metrics(yv, vs, thr), val_scores=vs), t

class NormalZoomIn:
    """extra zoom-in/shift for NORMAL training images only (pneumonia-like tight framing)"""
    def __init__(self, p=0.5, zoom=(1.1, 1.5), seed=0):
        self.p, self.zoom, self.gen = p, zoom, keras.random.SeedGenerator(seed)
    def __call__(self, x, y):
        from pneumo_helpers.augment import affine_matrix
        n = tf.shape(x)[0]
        u = lambda lo, hi: keras.random.uniform((n,), lo, hi, seed=self.gen)
        zoom = tf.exp(u(math.log(self.zoom[0]), math.log(self.zoom[1])))
        do = tf.logical_and(tf.equal(y, 0.0), u(0.0, 1.0) < self.p)
        zoom = tf.where(do, zoom, tf.ones_like(zoom))
        m = affine_matrix(zoom, tf.zeros_like(zoom), tf.zeros_like(zoom), tf.zeros_like(zoom), x.shape[2], x.shape[1])
        return ops.image.affine_transform(x, m, interpolation="bilinear", fill_mode="constant", fill_value=0.0)

class BorderSwap:
    """replace a random-width outer band with the band of another image of the batch"""
    def __init__(self, p=0.5, width=(0.05, 0.25), seed=0):
        self.p, self.width, self.gen = p, width, keras.random.SeedGenerator(seed)
    def __call__(self, x, y):
        n = tf.shape(x)[0]; h = x.shape[1]; w = x.shape[2]
        u = lambda lo, hi: keras.random.uniform((n,), lo, hi, seed=self.gen)
        bw = u(*self.width)
        do = tf.cast(u(0.0, 1.0) < self.p, x.dtype)
        r = tf.cast(tf.range(h), x.dtype)[None, :, None] / h
        c = tf.cast(tf.range(w), x.dtype)[None, None, :] / w
        b = bw[:, None, None]
        band = tf.cast((r < b) | (r >= 1 - b) | (c < b) | (c >= 1 - b), x.dtype)
        band = band * do[:, None, None]
        idx = tf.random.shuffle(tf.range(n))
        other = tf.gather(x, idx)
        band = band[..., None]
        return x * (1 - band) + other * band

RECIPES = {
  "base": base,
  "base_notta": lambda d, s, e, p: base(d, s, e, p, tta=False),
  "equalize": lambda d, s, e, p: base(d, s, e, p, equalize=True),
  "custom": lambda d, s, e, p: custom(d, s, e, p),
  "reweight": lambda d, s, e, p: custom(d, s, e, p, weights=frame_weights),
  "poe": lambda d, s, e, p: custom(d, s, e, p, bias=1.0),
  "poe2": lambda d, s, e, p: custom(d, s, e, p, bias=2.0),
  "mixup": lambda d, s, e, p: custom(d, s, e, p, mixup=0.2),
  "ema": lambda d, s, e, p: custom(d, s, e, p, ema=True),
  "smooth": lambda d, s, e, p: custom(d, s, e, p, smoothing=0.1),
  "normzoom": lambda d, s, e, p: custom(d, s, e, p, extra_aug=NormalZoomIn(seed=s)),
  "bswap": lambda d, s, e, p: custom(d, s, e, p, extra_aug=BorderSwap(seed=s)),
}

class NormalAppearance:
    """extra appearance changes for NORMAL (or all, if all_classes) training images:
    zoom-in, black-level lift (haze), contrast reduction, blur; each with prob p."""
    def __init__(self, p=0.5, zoom=(1.0, 1.4), lift=(0.0, 0.25), contrast=(0.6, 1.0),
                 blur=(0.0, 1.5), seed=0, all_classes=False, geometric=True, intensity=True):
        self.p, self.zoom, self.lift, self.contrast, self.blur = p, zoom, lift, contrast, blur
        self.gen = keras.random.SeedGenerator(seed); self.all = all_classes
        self.geo, self.int = geometric, intensity
    def __call__(self, x, y):
        from pneumo_helpers.augment import affine_matrix, gaussian_blur
        n = tf.shape(x)[0]
        u = lambda lo, hi: keras.random.uniform((n,), lo, hi, seed=self.gen)
        target = tf.ones_like(y, tf.bool) if self.all else tf.equal(y, 0.0)
        def pick(v, ident):
            return tf.where(tf.logical_and(target, u(0.0, 1.0) < self.p), v, ident * tf.ones_like(v))
        out = x
        if self.geo:
            zoom = pick(tf.exp(u(math.log(self.zoom[0]), math.log(self.zoom[1]))), 1.0)
            z0 = tf.zeros_like(zoom)
            m = affine_matrix(zoom, z0, z0, z0, x.shape[2], x.shape[1])
            out = ops.image.affine_transform(out, m, interpolation="bilinear", fill_mode="constant", fill_value=0.0)
        if self.int:
            sig = pick(u(*self.blur), 0.0)
            blurred = gaussian_blur(out, 1.0)
            # blend towards a sigma-1 blur by sig/1.5 (cheap variable blur)
            a = tf.reshape(tf.minimum(sig / 1.5, 1.0), (-1, 1, 1, 1))
            out = (1 - a) * out + a * blurred
            c = tf.reshape(pick(u(*self.contrast), 1.0), (-1, 1, 1, 1))
            mean = tf.reduce_mean(out, axis=(1, 2, 3), keepdims=True)
            out = mean + c * (out - mean)
            l = tf.reshape(pick(u(*self.lift), 0.0), (-1, 1, 1, 1))
            out = l + (1 - l) * out
        return tf.clip_by_value(out, 0.0, 1.0)

RECIPES.update({
  "normaug": lambda d, s, e, p: custom(d, s, e, p, extra_aug=NormalAppearance(seed=s)),
  "normaug_int": lambda d, s, e, p: custom(d, s, e, p, extra_aug=NormalAppearance(seed=s, geometric=False)),
  "normaug_geo": lambda d, s, e, p: custom(d, s, e, p, extra_aug=NormalAppearance(seed=s, intensity=False)),
  "allaug": lambda d, s, e, p: custom(d, s, e, p, extra_aug=NormalAppearance(seed=s, all_classes=True)),
})

def cnn(size=128, seed=42, equalize="none", filters=(16, 32, 64, 128), stem_stride=2,
        augment="strong", dropout=0.3, l2=1e-4, standardize=True, pre=None):
    """robust_cnn with equalisation placed before or after augmentation"""
    from pneumo_helpers.models import HistogramEqualization, PerImageStandardization, augmentation
    reg = keras.regularizers.L2(l2) if l2 else None
    inp = keras.Input((size, size, 1))
    x = inp
    if pre is not None:
        x = pre(x)
    if equalize == "before":
        x = HistogramEqualization()(x)
    x = augmentation(augment, seed=seed)(x)
    if equalize == "after":
        x = HistogramEqualization()(x)
    if standardize:
        x = PerImageStandardization()(x)
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, strides=stem_stride if i == 0 else 1, padding="same", use_bias=False,
                          kernel_regularizer=reg, name=f"conv{i+1}_1")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout, seed=seed)(x)
    return keras.Model(inp, layers.Dense(1, activation="sigmoid", name="pneumonia")(x))

def base2(data, seed, epochs, size, tta=True, lr=0.002, **kw):
    model = cnn(size, seed, **kw)
    t = tta_views() if tta else None
    r = train_binary("m", model, data, epochs=epochs, learning_rate=lr, target_recall=0.98,
                     lr_schedule=True, patience=6, verbose=0, tta=t)
    return r, t

RECIPES.update({
  "eq_after": lambda d, s, e, p: base2(d, s, e, p, equalize="after"),
  "eq_before": lambda d, s, e, p: base2(d, s, e, p, equalize="before"),
})

def cnn2(size=128, seed=42, zoom=(0.7, 1.3), shift=0.15, pool="avg", filters=(16, 32, 64, 128),
         stem_stride=2, dropout=0.3, l2=1e-4, equalize="none", convs=1, extra=()):
    from pneumo_helpers.models import HistogramEqualization, PerImageStandardization
    reg = keras.regularizers.L2(l2) if l2 else None
    inp = keras.Input((size, size, 1)); x = inp
    if equalize == "before": x = HistogramEqualization()(x)
    if equalize == "fast": x = FastEq()(x)
    x = keras.Sequential([RandomReframe(zoom=zoom, shift=shift, rotation=6.0, gamma=(0.7, 1.4),
                                        aspect=(0.85, 1.18), seed=seed),
                          layers.RandomSharpness((0.1, 0.9), value_range=(0, 1), seed=seed + 1),
                          *[e(seed) for e in extra]],
                         name="augmentation")(x)
    if equalize == "after": x = HistogramEqualization()(x)
    x = PerImageStandardization()(x)
    for i, f in enumerate(filters):
        for j in range(convs):
            x = layers.Conv2D(f, 3, strides=stem_stride if i == j == 0 else 1, padding="same",
                              use_bias=False, kernel_regularizer=reg, name=f"conv{i+1}_{j+1}")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    if pool == "avg": x = layers.GlobalAveragePooling2D()(x)
    elif pool == "max": x = layers.GlobalMaxPooling2D()(x)
    elif pool == "avgmax": x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    x = layers.Dropout(dropout, seed=seed)(x)
    return keras.Model(inp, layers.Dense(1, activation="sigmoid", name="pneumonia")(x))

def base3(data, seed, epochs, size, tta=True, lr=0.002, **kw):
    model = cnn2(size, seed, **kw)
    t = tta_views() if tta else None
    r = train_binary("m", model, data, epochs=epochs, learning_rate=lr, target_recall=0.98,
                     lr_schedule=True, patience=6, verbose=0, tta=t)
    return r, t

RECIPES.update({
  "b3": lambda d, s, e, p: base3(d, s, e, p),
  "zoom20": lambda d, s, e, p: base3(d, s, e, p, zoom=(0.7, 2.0)),
  "zoom16": lambda d, s, e, p: base3(d, s, e, p, zoom=(0.8, 1.6)),
  "gmp": lambda d, s, e, p: base3(d, s, e, p, pool="max"),
  "avgmax": lambda d, s, e, p: base3(d, s, e, p, pool="avgmax"),
  "wide": lambda d, s, e, p: base3(d, s, e, p, filters=(32, 64, 128, 256)),
  "deep2": lambda d, s, e, p: base3(d, s, e, p, convs=2),
})

RECIPES.update({
  "augmix": lambda d, s, e, p: base3(d, s, e, p, extra=[lambda sd: layers.AugMix(value_range=(0, 1), seed=sd + 7)]),
  "erase": lambda d, s, e, p: base3(d, s, e, p, extra=[lambda sd: layers.RandomErasing(factor=(0.0, 0.5), scale=(0.02, 0.2), value_range=(0, 1), seed=sd + 7)]),
  "randaug": lambda d, s, e, p: base3(d, s, e, p, extra=[lambda sd: layers.RandAugment(value_range=(0, 1), num_ops=2, factor=0.5, seed=sd + 7)]),
})

class FastEq(layers.Layer):
    def call(self, x):
        shape = tf.shape(x); bins = 256
        flat = tf.reshape(x, (shape[0], -1))
        idx = tf.clip_by_value(tf.cast(flat * (bins - 1) + 0.5, tf.int32), 0, bins - 1)
        counts = tf.cast(tf.math.bincount(idx, minlength=bins, maxlength=bins, axis=-1), x.dtype)
        cdf = tf.cumsum(counts, axis=1) / tf.reduce_sum(counts, axis=1, keepdims=True)
        low = cdf[:, :1]
        out = (tf.gather(cdf, idx, batch_dims=1) - low) / tf.maximum(1.0 - low, 1e-6)
        return tf.reshape(tf.clip_by_value(out, 0.0, 1.0), shape)

class RandGamma(layers.Layer):
    def __init__(self, gamma=(0.7, 1.4), seed=None, **kw):
        super().__init__(**kw); self.gamma = gamma; self.gen = keras.random.SeedGenerator(seed)
    def call(self, x, training=None):
        if not training: return x
        n = ops.shape(x)[0]
        g = ops.exp(keras.random.uniform((n,), math.log(self.gamma[0]), math.log(self.gamma[1]), seed=self.gen))
        return ops.power(ops.clip(x, 1e-6, 1.0), ops.reshape(g, (-1, 1, 1, 1)))

def cnn3(size=128, seed=42, eq="mid", zoom=(0.7, 1.3), filters=(16, 32, 64, 128), pool="avg",
         gamma=(0.7, 1.4), sharp=True, dropout=0.3, l2=1e-4):
    from pneumo_helpers.models import PerImageStandardization
    reg = keras.regularizers.L2(l2)
    inp = keras.Input((size, size, 1)); x = inp
    if eq == "before": x = FastEq()(x)
    x = RandomReframe(zoom=zoom, shift=0.15, rotation=6.0, gamma=(1.0, 1.0), aspect=(0.85, 1.18), seed=seed)(x)
    if eq == "mid": x = FastEq()(x)
    x = RandGamma(gamma, seed=seed + 3)(x)
    if sharp: x = layers.RandomSharpness((0.1, 0.9), value_range=(0, 1), seed=seed + 1)(x)
    if eq == "after": x = FastEq()(x)
    x = PerImageStandardization()(x)
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, strides=2 if i == 0 else 1, padding="same", use_bias=False,
                          kernel_regularizer=reg, name=f"conv{i+1}_1")(x)
        x = layers.BatchNormalization()(x); x = layers.Activation("relu")(x); x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x) if pool == "avg" else layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(dropout, seed=seed)(x)
    return keras.Model(inp, layers.Dense(1, activation="sigmoid", name="pneumonia")(x))

def base4(data, seed, epochs, size, tta=True, lr=0.002, **kw):
    model = cnn3(size, seed, **kw)
    t = tta_views() if tta else None
    r = train_binary("m", model, data, epochs=epochs, learning_rate=lr, target_recall=0.98,
                     lr_schedule=True, patience=6, verbose=0, tta=t)
    return r, t

RECIPES.update({
  "eqmid": lambda d, s, e, p: base4(d, s, e, p, eq="mid"),
  "eqfast": lambda d, s, e, p: base4(d, s, e, p, eq="before"),
  "eqnone": lambda d, s, e, p: base4(d, s, e, p, eq="none"),
})

class BodyCrop(layers.Layer):
    """crop each image horizontally to the body (columns brighter than frac of the
    profile range over the central rows), resize back"""
    def __init__(self, frac=0.25, margin=0.02, **kw):
        super().__init__(**kw); self.frac, self.margin = frac, margin
    def call(self, x):
        h, w0 = x.shape[1], x.shape[2]
        r0, r1 = int(0.2 * h), int(0.8 * h)
        col = tf.reduce_mean(x[:, r0:r1, :, 0], axis=1)
        col = tf.nn.conv1d(col[..., None], tf.ones((5, 1, 1)) / 5.0, 1, "SAME")[..., 0]
        lo = tf.reduce_min(col, 1, keepdims=True); hi = tf.reduce_max(col, 1, keepdims=True)
        above = col > lo + self.frac * (hi - lo)
        w = tf.shape(col)[1]; idx = tf.range(w)[None, :]
        first = tf.reduce_min(tf.where(above, idx, w), 1); last = tf.reduce_max(tf.where(above, idx, -1), 1)
        wf = tf.cast(w, tf.float32)
        x1 = tf.maximum(tf.cast(first, tf.float32) / wf - self.margin, 0.0)
        x2 = tf.minimum(tf.cast(last + 1, tf.float32) / wf + self.margin, 1.0)
        ok = x2 - x1 > 0.3
        x1 = tf.where(ok, x1, 0.0); x2 = tf.where(ok, x2, 1.0)
        z = tf.zeros_like(x1)
        b = tf.stack([z, x1, z + 1.0, x2], 1)
        return tf.image.crop_and_resize(x, b, tf.range(tf.shape(x)[0]), (h, w0))

def cnn4(size=128, seed=42, crop=True, eq=True, zoom=(0.7, 1.3), gamma=(0.7, 1.4)):
    from pneumo_helpers.models import PerImageStandardization
    reg = keras.regularizers.L2(1e-4)
    inp = keras.Input((size, size, 1)); x = inp
    if crop: x = BodyCrop()(x)
    if eq: x = FastEq()(x)
    x = RandomReframe(zoom=zoom, shift=0.15, rotation=6.0, gamma=(1.0, 1.0), aspect=(0.85, 1.18), seed=seed)(x)
    x = RandGamma(gamma, seed=seed + 3)(x)
    x = layers.RandomSharpness((0.1, 0.9), value_range=(0, 1), seed=seed + 1)(x)
    x = PerImageStandardization()(x)
    for i, f in enumerate((16, 32, 64, 128)):
        x = layers.Conv2D(f, 3, strides=2 if i == 0 else 1, padding="same", use_bias=False,
                          kernel_regularizer=reg, name=f"conv{i+1}_1")(x)
        x = layers.BatchNormalization()(x); x = layers.Activation("relu")(x); x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3, seed=seed)(x)
    return keras.Model(inp, layers.Dense(1, activation="sigmoid", name="pneumonia")(x))

def base5(data, seed, epochs, size, tta=True, lr=0.002, **kw):
    model = cnn4(size, seed, **kw)
    t = tta_views() if tta else None
    r = train_binary("m", model, data, epochs=epochs, learning_rate=lr, target_recall=0.98,
                     lr_schedule=True, patience=6, verbose=0, tta=t)
    return r, t

RECIPES.update({
  "cropeq": lambda d, s, e, p: base5(d, s, e, p),
  "crop": lambda d, s, e, p: base5(d, s, e, p, eq=False),
})

RECIPES.update({
  "eqdeep2": lambda d, s, e, p: base3(d, s, e, p, convs=2, equalize="fast"),
})
