"""Training augmentation of the lung-field model: random reframing (mostly
zooming out: children are framed wide), photometric changes, and synthetic
pneumonia-like opacities inside the lungs (the target mask stays the
anatomical lung field), so that a model trained on adult masks travels to
children with and without pneumonia.

Random draws are stateless and seeded by ``(seed, batch index)``, so a run
is reproducible whatever the tf.data parallelism.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from .segmenter import IMAGE_SIZE


# --------------------------------------------------------------------------
# random numbers (stateless, reproducible)
# --------------------------------------------------------------------------

class StatelessRng:
    """Stateless random draws from one ``(2,)`` int seed: every call uses a
    new sub-seed, so each call site draws independent numbers, and the same
    seed gives the same numbers."""

    def __init__(self, seed):
        self.seed = tf.cast(seed, tf.int64)
        self.count = 0

    def _next(self):
        self.count += 1
        return tf.stack([self.seed[0] * 1000003 + self.count, self.seed[1]])

    def uniform(self, shape, lo=0.0, hi=1.0):
        return tf.random.stateless_uniform(shape, self._next(), lo, hi)

    def log_uniform(self, shape, lo, hi):
        return tf.exp(self.uniform(shape, math.log(lo), math.log(hi)))

    def normal(self, shape):
        return tf.random.stateless_normal(shape, self._next())

    def bernoulli(self, n, p):
        return tf.cast(self.uniform((n,)) < p, tf.float32)


def _per_image(v):
    return tf.reshape(v, (-1, 1, 1, 1))


# --------------------------------------------------------------------------
# image helpers (batched TF ops)
# --------------------------------------------------------------------------

def _gauss_matrix(n: int, sigma):
    """``(b, n, n)`` row-normalised Gaussian matrices, one per sigma ``(b,)``
    (rows renormalised at the borders)."""
    i = tf.range(n, dtype=tf.float32)
    d = i[:, None] - i[None, :]
    s = tf.maximum(tf.reshape(tf.cast(sigma, tf.float32), (-1, 1, 1)), 1e-3)
    g = tf.exp(-0.5 * (d[None] / s) ** 2)
    return g / tf.reduce_sum(g, axis=2, keepdims=True)


def gaussian_blur(images, sigma):
    """Blur ``(n, h, w, c)`` images with a Gaussian of ``sigma`` pixels, a
    number (all images) or a ``(n,)`` tensor (one per image; 0 = unchanged).
    Separable, as two matrix products (fast on CPU for any sigma); the
    kernel is renormalised at the borders."""
    n = tf.shape(images)[0]
    h, w = int(images.shape[1]), int(images.shape[2])
    if isinstance(sigma, (int, float)):
        if sigma <= 0:
            return images
        gy = _gauss_matrix(h, [sigma])[0]
        gx = gy if w == h else _gauss_matrix(w, [sigma])[0]
        out = tf.einsum("ij,bjkc->bikc", gy, images)
        return tf.einsum("kl,bilc->bikc", gx, out)
    sigma = tf.broadcast_to(tf.cast(sigma, tf.float32), (n,))
    gy = _gauss_matrix(h, sigma)
    gx = gy if w == h else _gauss_matrix(w, sigma)
    out = tf.einsum("bij,bjkc->bikc", gy, images)
    return tf.einsum("bkl,bilc->bikc", gx, out)


def smooth_field(rng: StatelessRng, n: int, size: int, cells):
    """Smooth random fields in [0, 1], ``(n, size, size, 1)``: uniform noise
    on a ``cells`` x ``cells`` grid, bicubically upsampled, min-max scaled."""
    noise = rng.uniform((n, cells, cells, 1))
    field = tf.image.resize(noise, (size, size), method="bicubic")
    lo = tf.reduce_min(field, axis=(1, 2, 3), keepdims=True)
    hi = tf.reduce_max(field, axis=(1, 2, 3), keepdims=True)
    return (field - lo) / tf.maximum(hi - lo, 1e-6)


def _coords(h: int, w: int):
    """Pixel-centre coordinates as fractions, ``(1, h, w, 1)`` each."""
    y = (tf.range(h, dtype=tf.float32) + 0.5) / h
    x = (tf.range(w, dtype=tf.float32) + 0.5) / w
    yy, xx = tf.meshgrid(y, x, indexing="ij")
    return yy[None, :, :, None], xx[None, :, :, None]


def _masked_mean(values, mask, axis=(1, 2, 3)):
    return tf.reduce_sum(values * mask, axis=axis) / tf.maximum(tf.reduce_sum(mask, axis=axis), 1.0)


# --------------------------------------------------------------------------
# geometric + photometric augmentation
# --------------------------------------------------------------------------

def affine_resample(images, masks, zoom, aspect, shift_x, shift_y, angle, out_size: int,
                    fill_modes=("CONSTANT",), fill_choice=None, fill_value=None):
    """Zoom (``< 1``: zoom out), squash (``aspect > 1``: wider), shift
    (fractions of the size) and rotate (radians) each image and mask (one
    value per image, ``(n,)`` tensors) about the centre, resampled to
    ``out_size`` px. Images: bilinear, filled per image by one of
    ``fill_modes`` (index ``fill_choice``); where the constant fill applies it
    uses ``fill_value`` (per image). Masks: bilinear then thresholded, filled
    with 0."""
    n = tf.shape(images)[0]
    h_in, w_in = int(images.shape[1]), int(images.shape[2])
    # Output pixel x (index) -> normalised u = (2x + 1)/S - 1 in (-1, 1);
    # input normalised v = M (u - 2 shift), M the inverse zoom/rotation;
    # input pixel index = (size_in / 2) v + (size_in - 1) / 2.
    zx, zy = zoom * aspect, zoom / aspect
    cos, sin = tf.cos(angle), tf.sin(angle)
    m00, m01 = cos / zx, sin / zx
    m10, m11 = -sin / zy, cos / zy
    s = float(out_size)
    ux0 = 1.0 / s - 1.0 - 2.0 * shift_x  # u_x - 2 shift_x at x = 0
    uy0 = 1.0 / s - 1.0 - 2.0 * shift_y
    a0, a1 = w_in / 2.0 * m00 * 2.0 / s, w_in / 2.0 * m01 * 2.0 / s
    a2 = w_in / 2.0 * (m00 * ux0 + m01 * uy0) + (w_in - 1) / 2.0
    b0, b1 = h_in / 2.0 * m10 * 2.0 / s, h_in / 2.0 * m11 * 2.0 / s
    b2 = h_in / 2.0 * (m10 * ux0 + m11 * uy0) + (h_in - 1) / 2.0
    # anti-aliasing: blur the input by the extra downsampling beyond 2x
    factor = (w_in / s) / tf.minimum(zx, zy)
    images = gaussian_blur(images, tf.clip_by_value(0.5 * factor - 1.0, 0.0, 4.0))
    zero = tf.zeros_like(a0)
    transform = tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)
    out_shape = tf.constant([out_size, out_size], tf.int32)

    def warp(x, mode, value=0.0):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=transform, output_shape=out_shape,
            fill_value=value, interpolation="BILINEAR", fill_mode=mode)

    if fill_value is None:
        fill_value = tf.zeros((n,))
    warped = []
    for mode in fill_modes:
        if mode == "CONSTANT":
            cover = warp(tf.ones_like(images[..., :1]), "CONSTANT")
            img = warp(images, "CONSTANT")
            img = img + (1.0 - cover) * _per_image(fill_value)
        else:
            img = warp(images, mode)
        warped.append(img)
    if fill_choice is None or len(warped) == 1:
        out = warped[0]
    else:
        out = tf.zeros_like(warped[0])
        for k, img in enumerate(warped):
            out += _per_image(tf.cast(tf.equal(fill_choice, k), tf.float32)) * img
    mask_out = tf.cast(warp(masks, "CONSTANT") > 0.5, tf.float32)
    return out, mask_out


def photometric(rng: StatelessRng, images, gamma=(0.6, 1.6), max_blur=1.5,
                max_sharpen=1.0, noise=0.02):
    """Gamma (log-uniform), then blur (half the images, sigma up to
    ``max_blur`` px) or unsharp masking (the other half, amount up to
    ``max_sharpen``), then Gaussian noise (std up to ``noise``); clipped to
    [0, 1]."""
    n = tf.shape(images)[0]
    g = rng.log_uniform((n,), *gamma)
    x = tf.pow(tf.clip_by_value(images, 1e-6, 1.0), _per_image(g))
    blurred = gaussian_blur(x, 1.0)
    choose_blur = _per_image(rng.bernoulli(n, 0.5))
    sigma = rng.uniform((n,), 0.0, max_blur)
    x_blur = gaussian_blur(x, sigma)
    amount = _per_image(rng.uniform((n,), 0.0, max_sharpen))
    x_sharp = x + amount * (x - blurred)
    x = choose_blur * x_blur + (1.0 - choose_blur) * x_sharp
    x = x + _per_image(rng.uniform((n,), 0.0, noise)) * rng.normal(tf.shape(x))
    return tf.clip_by_value(x, 0.0, 1.0)


# --------------------------------------------------------------------------
# synthetic pneumonia-like opacities
# --------------------------------------------------------------------------

OPACITY_PROBS = {  # probability of each kind, per image, drawn independently
    "lobar": 0.35,     # a large smooth region of one lung (blob or half-plane)
    "haze": 0.20,      # diffuse bilateral haze
    "patchy": 0.25,    # patchy multifocal opacities
    "effusion": 0.12,  # fluid at one base, meniscus-shaped
    "whiteout": 0.08,  # one whole lung opaque
}


OPACITY_LEVELS = dict(  # ranges (uniform) of the opacity parameters
    target_gain=(0.95, 1.2),   # soft-tissue level multiplier
    lobar=(0.7, 1.0),          # peak opacity of a lobar consolidation
    haze=(0.25, 0.7),
    patchy=(0.4, 0.95),
    effusion=(0.8, 1.0),
    whiteout=(0.8, 1.0),
    soften=(0.2, 0.9),         # loss of fine texture inside the opacity
)

# a stronger setting (variant v2): more and denser opacities
OPACITY_PROBS_STRONG = {"lobar": 0.45, "haze": 0.2, "patchy": 0.25, "effusion": 0.15,
                        "whiteout": 0.15}
OPACITY_LEVELS_STRONG = dict(target_gain=(1.0, 1.3), lobar=(0.85, 1.0), haze=(0.3, 0.8),
                             patchy=(0.5, 1.0), effusion=(0.85, 1.0), whiteout=(0.9, 1.0),
                             soften=(0.4, 1.0))


def synthetic_opacities(rng: StatelessRng, images, masks, probs: dict | None = None,
                        scale: float = 1.0, levels: dict | None = None):
    """Add pneumonia-like opacities inside the lung fields of ``images``
    (``(n, s, s, 1)`` in [0, 1]); ``masks`` (1 in the lungs) are NOT changed:
    the target stays the anatomical lung field.

    Each kind of ``probs`` (default :data:`OPACITY_PROBS`, each probability
    multiplied by ``scale``) gives a soft opacity map ``alpha`` in [0, 1];
    the maps combine as ``1 - prod(1 - alpha)``. The opacity raises the local
    mean intensity toward a soft-tissue level (the mean of the non-lung
    pixels of the lung box, i.e. mediastinum / heart / chest wall, times
    0.9-1.2) *additively*, so ribs and other fine structure stay visible
    over the consolidation, and partly blurs it (loss of lung texture; the level is the mean plus one standard deviation of those pixels);
    the added intensity carries a mild texture. Lungs are told apart as the
    mask on either side of the mask's centroid column."""
    probs = dict(OPACITY_PROBS if probs is None else probs)
    lv = {**OPACITY_LEVELS, **(levels or {})}
    n = tf.shape(images)[0]
    size = int(images.shape[1])
    yy, xx = _coords(size, size)
    m = masks
    area = tf.reduce_sum(m, axis=(1, 2, 3))
    has = _per_image(tf.cast(area > 20, tf.float32))
    cx = _per_image(_masked_mean(xx + 0 * m, m))
    # lung box, per image
    rows = tf.reduce_max(m, axis=2)[..., 0]  # (n, s)
    cols = tf.reduce_max(m, axis=1)[..., 0]
    ridx = tf.range(size, dtype=tf.float32)[None] + 0.5
    y0 = tf.reduce_min(tf.where(rows > 0, ridx, 1e9), axis=1) / size
    y1 = tf.reduce_max(tf.where(rows > 0, ridx, -1e9), axis=1) / size
    x0 = tf.reduce_min(tf.where(cols > 0, ridx, 1e9), axis=1) / size
    x1 = tf.reduce_max(tf.where(cols > 0, ridx, -1e9), axis=1) / size
    y0, y1 = tf.where(area > 20, y0, 0.2), tf.where(area > 20, y1, 0.8)
    x0, x1 = tf.where(area > 20, x0, 0.2), tf.where(area > 20, x1, 0.8)
    inbox = tf.cast((yy >= _per_image(y0)) & (yy <= _per_image(y1))
                    & (xx >= _per_image(x0)) & (xx <= _per_image(x1)), tf.float32)
    tissue = inbox * (1.0 - m)
    mean_t = _masked_mean(images, tissue)  # (n,)
    std_t = tf.sqrt(tf.maximum(_masked_mean(images ** 2, tissue) - mean_t ** 2, 0.0))
    soft_tissue = mean_t + std_t  # about the heart / mediastinum level
    soft_tissue = tf.where(tf.reduce_sum(tissue, axis=(1, 2, 3)) > 10, soft_tissue,
                           tf.reduce_mean(images, axis=(1, 2, 3)))
    target = tf.clip_by_value(soft_tissue * rng.uniform((n,), *lv["target_gain"]), 0.3, 1.0)

    # one lung, chosen at random (0 = image left, 1 = image right)
    side = rng.bernoulli(n, 0.5)
    left = tf.cast(xx < cx, tf.float32) * m
    right = m - left
    one = _per_image(side) * right + (1 - _per_image(side)) * left
    other = m - one

    def gate(kind):
        return _per_image(rng.bernoulli(n, min(1.0, probs.get(kind, 0.0) * scale)))

    alphas = []
    # lobar consolidation: one lung x (blob or half-plane), smooth edge
    blob = tf.cast(smooth_field(rng, n, size, 4) > _per_image(rng.uniform((n,), 0.3, 0.6)),
                   tf.float32)
    theta = rng.uniform((n,), 0.0, 2 * math.pi)
    py = _per_image(y0 + (y1 - y0) * rng.uniform((n,), 0.3, 0.7))
    px = _per_image(tf.where(side > 0, (cx[:, 0, 0, 0] + x1) / 2, (x0 + cx[:, 0, 0, 0]) / 2))
    plane = tf.cast((xx - px) * _per_image(tf.cos(theta)) + (yy - py) * _per_image(tf.sin(theta))
                    > 0, tf.float32)
    use_plane = _per_image(rng.bernoulli(n, 0.5))
    region = one * (use_plane * plane + (1 - use_plane) * blob)
    # sometimes the other lung too (bilateral lobar pneumonia)
    region += other * blob * _per_image(rng.bernoulli(n, 0.2))
    lobar = gaussian_blur(region, rng.uniform((n,), 1.0, 4.0))
    lobar *= _per_image(rng.uniform((n,), *lv["lobar"]))
    alphas.append(gate("lobar") * lobar)
    # diffuse bilateral haze, uneven
    haze = gaussian_blur(m, 3.0) * (0.5 + 0.5 * smooth_field(rng, n, size, 5))
    haze *= _per_image(rng.uniform((n,), *lv["haze"]))
    alphas.append(gate("haze") * haze)
    # patchy multifocal opacities
    cells = 10
    patches = smooth_field(rng, n, size, cells)
    thr = _per_image(rng.uniform((n,), 0.55, 0.75))
    patchy = tf.clip_by_value((patches - thr) / 0.12, 0.0, 1.0) * m
    patchy = gaussian_blur(patchy, 1.0) * _per_image(rng.uniform((n,), *lv["patchy"]))
    alphas.append(gate("patchy") * patchy)
    # effusion: base of one lung, meniscus rising laterally
    level = _per_image(y0 + (y1 - y0) * rng.uniform((n,), 0.6, 0.92))
    lateral = tf.where(_per_image(side) > 0, xx - cx, cx - xx)  # > 0 toward the chest wall
    meniscus = yy > level - _per_image(rng.uniform((n,), 0.1, 0.5)) * tf.maximum(lateral, 0.0)
    effusion = gaussian_blur(one * tf.cast(meniscus, tf.float32), 2.0)
    effusion *= _per_image(rng.uniform((n,), *lv["effusion"]))
    alphas.append(gate("effusion") * effusion)
    # white-out of one lung
    whiteout = gaussian_blur(one, 2.0) * _per_image(rng.uniform((n,), *lv["whiteout"]))
    alphas.append(gate("whiteout") * whiteout)

    keep = tf.ones_like(images)
    for a in alphas:
        keep *= 1.0 - tf.clip_by_value(a, 0.0, 1.0)
    alpha = (1.0 - keep) * has
    # local mean of the lung pixels alone (the aerated lung level)
    local = gaussian_blur(images * m, 6.0) / tf.maximum(gaussian_blur(m, 6.0), 1e-3)
    local = m * local + (1 - m) * gaussian_blur(images, 6.0)
    texture = 1.0 + 0.12 * (smooth_field(rng, n, size, 24) - 0.5)
    delta = tf.maximum(_per_image(target) * texture - local, 0.0)
    out = images + alpha * delta
    # partial loss of fine texture inside dense opacity
    soften = _per_image(rng.uniform((n,), *lv["soften"]))
    out = out * (1 - soften * alpha) + soften * alpha * gaussian_blur(out, 2.0)
    return tf.clip_by_value(out, 0.0, 1.0)


# --------------------------------------------------------------------------
# the full training augmentation
# --------------------------------------------------------------------------

DEFAULT_AUG = dict(
    zoom_out=(0.55, 0.95),  # log-uniform, with probability p_zoom_out
    zoom_in=(0.95, 1.25),
    p_zoom_out=0.65,
    aspect=(0.8, 1.25),     # log-uniform: > 1 wider
    shift=0.12,
    rotation=8.0,           # degrees
    fill_modes=("CONSTANT", "NEAREST", "REFLECT"),
    fill_probs=(0.5, 0.3, 0.2),
    fill_value=(0.0, 0.45),
    opacity_scale=1.0,      # multiplies the opacity probabilities; 0 disables opacities
    opacity_probs=None,     # None: OPACITY_PROBS
    opacity_levels=None,    # None: OPACITY_LEVELS
)


def augment_batch(images, masks, seed, out_size: int = IMAGE_SIZE, config: dict | None = None,
                  opacity_mask=None):
    """Training augmentation of a batch of images and masks (any size, ``(n,
    h, w, 1)`` in [0, 1]), resampled to ``out_size``: random zoom (mostly
    out: children are framed wide), aspect squash, shift, rotation with
    a random border fill; synthetic opacities inside the lungs (where
    ``opacity_mask``, ``(n,)`` 0/1, allows; default all); gamma, blur or
    sharpening, noise. ``seed``: ``(2,)`` int tensor (e.g. ``(run seed,
    batch index)``). Returns ``(images, masks)`` at ``out_size``."""
    cfg = {**DEFAULT_AUG, **(config or {})}
    rng = StatelessRng(seed)
    n = tf.shape(images)[0]
    out_choice = rng.bernoulli(n, cfg["p_zoom_out"])
    zoom = (out_choice * rng.log_uniform((n,), *cfg["zoom_out"])
            + (1 - out_choice) * rng.log_uniform((n,), *cfg["zoom_in"]))
    aspect = rng.log_uniform((n,), *cfg["aspect"])
    sx = rng.uniform((n,), -cfg["shift"], cfg["shift"])
    sy = rng.uniform((n,), -cfg["shift"], cfg["shift"])
    angle = rng.uniform((n,), -1.0, 1.0) * math.radians(cfg["rotation"])
    logits = tf.math.log(tf.constant([cfg["fill_probs"]], tf.float32))
    choice = tf.random.stateless_categorical(tf.tile(logits, (n, 1)), 1, rng._next())[:, 0]
    fill = rng.uniform((n,), *cfg["fill_value"])
    x, m = affine_resample(images, masks, zoom, aspect, sx, sy, angle, out_size,
                           cfg["fill_modes"], tf.cast(choice, tf.int32), fill)
    if cfg["opacity_scale"] > 0:
        xo = synthetic_opacities(rng, x, m, probs=cfg["opacity_probs"], scale=cfg["opacity_scale"],
                                 levels=cfg["opacity_levels"])
        if opacity_mask is not None:
            g = _per_image(tf.cast(opacity_mask, tf.float32))
            xo = g * xo + (1 - g) * x
        x = xo
    x = photometric(rng, x)
    return x, m


def make_train_dataset(images: np.ndarray, masks: np.ndarray, batch_size: int = 16,
                       seed: int = 0, out_size: int = IMAGE_SIZE, config: dict | None = None,
                       opacity_allowed: np.ndarray | None = None, weights: np.ndarray | None = None):
    """An endless, shuffled, augmented ``tf.data`` pipeline of ``(image, mask)``
    batches from uint8 arrays ``(n, h, w)`` (images 0-255, masks 0/255 or 0/1).
    ``opacity_allowed`` (n,) bool: which images may get synthetic opacities
    (default all). ``weights`` (n,) sampling weights (default uniform)."""
    n = len(images)
    allowed = np.ones(n, np.float32) if opacity_allowed is None else opacity_allowed.astype(np.float32)
    if weights is None:
        idx_ds = tf.data.Dataset.range(n).repeat().shuffle(4 * n, seed=seed)
    else:
        p = np.asarray(weights, np.float64) / np.sum(weights)
        rng = np.random.default_rng(seed)
        order = rng.choice(n, size=200 * n, p=p)
        idx_ds = tf.data.Dataset.from_tensor_slices(order).repeat()
    imgs = tf.constant(images[..., None])
    msk = tf.constant((masks > 0).astype(np.uint8)[..., None])
    allowed_t = tf.constant(allowed)

    def gather(batch_index, idx):
        x = tf.cast(tf.gather(imgs, idx), tf.float32) / 255.0
        m = tf.cast(tf.gather(msk, idx), tf.float32)
        a = tf.gather(allowed_t, idx)
        s = tf.stack([tf.constant(seed, tf.int64), batch_index])
        return augment_batch(x, m, s, out_size, config, a)

    ds = idx_ds.batch(batch_size, drop_remainder=True).enumerate()
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(2)
