"""Scoring at a new site: how a scored folder compares with the training
data, what that is expected to do to the operating point, how well the
site's prevalence can be estimated from the scores, and one HTML page for
the folder.

:func:`shift_summary` compares the images ``pneumo predict`` scored with the
training images on the figures that moved when the model was scored blind:
the framing and scale of the lung fields (lung box area share, from the
lung-field model), exposure (mean intensity, contrast) and the network
features' distance from the training images. The reference distributions
(quantiles of the training images) come from ``ood.reference``, carried by
the model file. For a figure that moved, it quotes the validation stress
view that moved the same figure the same way (``model_info``'s ``stress``
table): its specificity and recall at the model's threshold are what the
validation images showed under that change. Folders of fewer than
:data:`MIN_IMAGES` scored images get no verdict.

:func:`check_prevalence_estimate` measures the site-prevalence estimate
(EM, Saerens et al. 2002, ``metrics.estimate_prior``) on validation patients
resampled to other prevalences: its error against the true prevalence, and
whether re-weighting the scores to it improves their Brier score.

:func:`write_report` writes the page ``pneumo predict --report DIR`` leaves:
counts, the score histogram against validation's, the shift summary, the
most and least confident images with their Grad-CAM heat maps, and the
refused files with their reasons; one self-contained HTML file, figures
embedded as base64 PNG.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

MIN_IMAGES = 30  # scored images below which a folder gets no verdict
PREVALENCES = (0.2, 0.4, 0.625, 0.8)  # the prevalences the estimate is measured at
SIDE = 0.10  # the training quantiles compared against: 10% and 90%
P_VALUE = 0.001  # a side holding more images than this binomial test allows has moved
#: which stress views stand for which kind of change
FRAMING_VIEWS = ("zoom_out_0.8", "zoom_out_0.65", "zoom_in_1.2", "zoom_out_shift")
EXPOSURE_VIEWS = ("low_contrast", "gamma_0.7", "gamma_1.4", "counter_exposed")
FIGURES = {"lung_box_area": ("framing", FRAMING_VIEWS),
           "mean_intensity": ("exposure", EXPOSURE_VIEWS),
           "contrast": ("exposure", EXPOSURE_VIEWS),
           "distance": ("features", ())}
#: how a folder's images differ, per figure and direction ("of them ...")
WORDS = {("lung_box_area", "higher"): "have lungs filling more of the frame than in {q} of "
                                      "training images",
         ("lung_box_area", "lower"): "have lungs filling less of the frame than in {q} of "
                                     "training images",
         ("mean_intensity", "higher"): "are brighter than {q} of training images",
         ("mean_intensity", "lower"): "are darker than {q} of training images",
         ("contrast", "higher"): "have more contrast than {q} of training images",
         ("contrast", "lower"): "have less contrast than {q} of training images",
         ("distance", "higher"): "have network features farther from the training images' than "
                                 "{q} of validation X-rays",
         ("distance", "lower"): "have network features closer to the training images' than {q} "
                                "of validation X-rays"}
#: the kind of change, per figure and direction, as the images are described
LIKE = {("lung_box_area", "higher"): "lungs filling more of the frame",
        ("lung_box_area", "lower"): "lungs filling less of the frame",
        ("mean_intensity", "higher"): "brighter", ("mean_intensity", "lower"): "darker",
        ("contrast", "higher"): "more contrast", ("contrast", "lower"): "less contrast"}
VIEW_NAMES = {"zoom_in_1.2": "zoomed-in (1.2x)", "zoom_out_0.8": "zoomed-out (0.8x)",
              "zoom_out_0.65": "zoomed-out (0.65x)", "zoom_out_shift": "zoomed-out and shifted",
              "low_contrast": "low-contrast (0.7x)", "gamma_0.7": "brightened (gamma 0.7)",
              "gamma_1.4": "darkened (gamma 1.4)", "counter_exposed": "counter-exposed"}
REPORT_NAME = "report.html"
GENERATOR = '<meta name="generator" content="pneumo predict report">'


# -------------------------------------------------------- site prevalence

def _patient_sample(rng, groups: list[np.ndarray], k: int) -> np.ndarray:
    """``k`` image indices drawn by patient (with replacement) from
    ``groups`` (each patient's image indices): whole patients until ``k``."""
    out = []
    while len(out) < k:
        out.extend(groups[rng.integers(len(groups))])
    return np.asarray(out[:k], dtype=int)


def check_prevalence_estimate(scores, labels, prevalences=PREVALENCES, patients=None,
                              n_boot: int = 200, sizes=(100, None), train_prior: float = 0.5,
                              seed: int = 0) -> dict:
    """The site-prevalence estimate (``metrics.estimate_prior``) measured on
    labelled images (validation) resampled to other ``prevalences``: per
    prevalence and resample size (``sizes``: images per resample; ``None``:
    as many as given), ``n_boot`` resamples drawn by patient (``patients``;
    by image without), each class drawn apart so that the resample has the
    prevalence asked. Returns ``rows`` (per prevalence and size: the mean
    estimate, its bias, mean absolute error and 95% range, and the mean
    Brier score of the scores as they are, re-weighted to the estimate, and
    re-weighted to the true prevalence), ``summary`` (the largest bias and
    mean absolute error, the Brier scores averaged over the rows) and
    ``verdict``: ``"helps"`` when re-weighting to the estimate lowers the
    Brier score at every prevalence and size, else ``"estimate only"``."""
    from ..metrics import adjust_to_prior, estimate_prior

    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels).astype(bool)
    patients = np.asarray(patients) if patients is not None else np.arange(len(scores))
    rng = np.random.default_rng(seed)
    groups = {}
    for cls in (False, True):
        idx = np.nonzero(labels == cls)[0]
        by = {}
        for i in idx:
            by.setdefault(patients[i], []).append(i)
        groups[cls] = [np.asarray(v) for v in by.values()]
    rows = []
    for size in sizes:
        n = int(size or len(scores))
        for prevalence in prevalences:
            k = int(round(prevalence * n))
            est, raw, fitted, oracle = [], [], [], []
            for _ in range(n_boot):
                pick = np.concatenate([_patient_sample(rng, groups[True], k),
                                       _patient_sample(rng, groups[False], n - k)])
                s, y = scores[pick], labels[pick].astype(float)
                prior, adjusted = estimate_prior(s, train_prior)
                est.append(prior)
                raw.append(np.mean((s - y) ** 2))
                fitted.append(np.mean((adjusted - y) ** 2))
                oracle.append(np.mean((adjust_to_prior(s, k / n, train_prior) - y) ** 2))
            est = np.asarray(est)
            rows.append({"prevalence": prevalence, "images": n,
                         "estimate": float(est.mean()), "bias": float(est.mean() - k / n),
                         "mean_abs_error": float(np.abs(est - k / n).mean()),
                         "range95": [float(v) for v in np.percentile(est, [2.5, 97.5])],
                         "brier_raw": float(np.mean(raw)),
                         "brier_reweighted": float(np.mean(fitted)),
                         "brier_true_prevalence": float(np.mean(oracle)),
                         "reweighting_better_share": float(np.mean(np.less(fitted, raw)))})
    helps = all(r["brier_reweighted"] < r["brier_raw"] for r in rows)
    summary = {"largest_abs_bias": max(abs(r["bias"]) for r in rows),
               "largest_mean_abs_error": max(r["mean_abs_error"] for r in rows),
               "brier_raw": float(np.mean([r["brier_raw"] for r in rows])),
               "brier_reweighted": float(np.mean([r["brier_reweighted"] for r in rows])),
               "brier_true_prevalence": float(np.mean([r["brier_true_prevalence"]
                                                       for r in rows])),
               "n_boot": n_boot, "by": "patient" if patients is not None else "image"}
    rows = [{k: (round(v, 4) if isinstance(v, float) else
                 [round(x, 4) for x in v] if isinstance(v, list) else v) for k, v in r.items()}
            for r in rows]
    summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}
    return {"rows": rows, "summary": summary,
            "verdict": "helps" if helps else "estimate only"}


def prevalence_table(check: dict):
    """:func:`check_prevalence_estimate`'s rows as a table."""
    import pandas as pd

    table = pd.DataFrame(check["rows"])
    table["range95"] = [f"{a:.2f}-{b:.2f}" for a, b in table["range95"]]
    return table.set_index(["images", "prevalence"])


def measured_error_phrase(reference: dict | None) -> str:
    """What the model file says of the estimate's measured error, in words ('' when nothing)."""
    check = (reference or {}).get("prevalence")
    if not check:
        return ""
    s = check["summary"]
    prevalences = sorted({r["prevalence"] for r in check["rows"]})
    sizes = sorted({r["images"] for r in check["rows"]})
    verdict = ("re-weighting to it lowered the Brier score at every prevalence" if
               check["verdict"] == "helps" else
               "re-weighting to it did not lower the Brier score everywhere (mean "
               f"{s['brier_reweighted']:.3f} against {s['brier_raw']:.3f} as scored)")
    return (f"measured on validation patients resampled to prevalences "
            f"{', '.join(f'{p:g}' for p in prevalences)} ({' and '.join(map(str, sizes))} "
            f"images): off by up to {s['largest_abs_bias']:.2f} on average (mean absolute "
            f"error up to {s['largest_mean_abs_error']:.2f}); {verdict}")


# ---------------------------------------------------------- shift summary

def _reference(saved) -> dict | None:
    return saved.info.get("reference") if hasattr(saved, "info") else None


def _figures(rows: list[dict], name: str) -> np.ndarray:
    v = np.array([r.get("_figures", {}).get(name, np.nan) for r in rows], dtype=float)
    return v[np.isfinite(v)]


def _at(levels, quantiles, q: float) -> float:
    return float(np.interp(q, levels, [np.nan if v is None else v for v in quantiles]))


def _moved(values: np.ndarray, lo: float, hi: float) -> dict:
    from scipy.stats import binomtest

    n = len(values)
    above, below = int((values > hi).sum()), int((values < lo).sum())
    p_above = binomtest(above, n, SIDE, alternative="greater").pvalue if n else 1.0
    p_below = binomtest(below, n, SIDE, alternative="greater").pvalue if n else 1.0
    direction = None
    if p_above < P_VALUE and above > below:
        direction = "higher"
    elif p_below < P_VALUE and below > above:
        direction = "lower"
    return {"n": n, "above": above / n if n else 0.0, "below": below / n if n else 0.0,
            "direction": direction}


def _stress(saved) -> dict:
    return dict(saved.info.get("stress") or {})


def _closest_view(ref, figure: str, site_median: float, direction: str, candidates):
    """The stress view (of ``candidates``) that moves ``figure`` the way the
    folder did, the closest to the folder's median; ``None`` when none does."""
    views = ref.get("views") or {}
    base = (views.get("original") or {}).get(figure)
    best = None
    for name in candidates:
        v = (views.get(name) or {}).get(figure)
        if v is None or base is None:
            continue
        if (direction == "higher") != (v > base) or abs(v - base) < 1e-3:
            continue
        gap = abs(v - site_median)
        if best is None or gap < best[1]:
            best = (name, gap, v)
    return best


def shift_summary(rows: list[dict], saved) -> dict:
    """How the scored images of ``rows`` (``scoring.score_images``) compare
    with the training images of ``saved`` (a ``SavedModel`` whose file
    carries ``ood.reference``): ``figures`` (per figure: the folder's
    median, the training median, the shares of images beyond the training's
    10% and 90% quantiles and the direction it moved, if it did), ``views``
    (for each moved figure, the validation stress view quoted and its
    figures), ``verdict`` (``None`` for fewer than :data:`MIN_IMAGES` scored
    images or without a reference; else ``"like training"`` or
    ``"shifted"``) and ``text``: one paragraph saying all that and what it is
    expected to do to the operating point."""
    scored = [r for r in rows if r.get("status") == "scored"]
    refused = [r for r in rows if r.get("status") == "out_of_distribution"]
    n = len(scored)
    ref = _reference(saved)
    out = {"n_scored": n, "n_refused": len(refused), "figures": {}, "views": {},
           "verdict": None}
    if ref is None:
        out["text"] = ("This model file carries no reference of its training images "
                       "(written before pneumo_helpers kept one): the folder cannot be compared "
                       "with them, and the network-feature checks were skipped.")
        return out
    levels = ref["quantile_levels"]
    for figure in FIGURES:
        values = _figures(scored, figure)
        quantiles = ref["training"].get(figure)
        if quantiles is None:
            continue
        lo, hi = _at(levels, quantiles, SIDE), _at(levels, quantiles, 1 - SIDE)
        entry = {"median": float(np.median(values)) if len(values) else None,
                 "training_median": _at(levels, quantiles, 0.5),
                 "training_10": lo, "training_90": hi, **_moved(values, lo, hi)}
        if figure == "distance" and entry["direction"] == "lower":
            entry["direction"] = None  # closer to the training images than they are: no shift
        out["figures"][figure] = entry
    if n < MIN_IMAGES:
        out["text"] = (f"Only {n} image{'s' if n != 1 else ''} scored: too few to say whether "
                       f"this folder differs from the training X-rays (at least {MIN_IMAGES} "
                       "are needed); each image was still checked on its own.")
        return out
    stress, threshold = _stress(saved), saved.threshold
    sentences, effects = [], []
    moved = {k: v for k, v in out["figures"].items() if v["direction"]}
    q = f"{1 - SIDE:.0%}"
    for figure, entry in moved.items():
        side = entry["above"] if entry["direction"] == "higher" else entry["below"]
        sentences.append(f"{side:.0%} {WORDS[figure, entry['direction']].format(q=q)} "
                         f"(expected: {SIDE:.0%}; median {ood_name(figure)} "
                         f"{entry['median']:.3g} against {entry['training_median']:.3g})")
    kinds = [k for k in ("framing", "exposure", "features")
             if any(FIGURES[f][0] == k for f in moved)]
    for figure, entry in moved.items():
        kind, candidates = FIGURES[figure]
        if not candidates:
            continue
        best = _closest_view(ref, figure, entry["median"], entry["direction"], candidates)
        if best is None:
            continue
        name, _, value = best
        row = stress.get(name)
        out["views"][figure] = {"view": name, "view_median": value,
                                **({k: row.get(k) for k in ("specificity", "recall", "auc")}
                                   if row else {})}
        like = LIKE[figure, entry["direction"]]
        view = VIEW_NAMES.get(name, name.replace("_", " "))
        if row and row.get("specificity") is not None:
            effects.append(
                f"images {'framed' if kind == 'framing' else 'exposed'} like these ({like}): on "
                f"validation, the {view} view (median {ood_name(figure)} {value:.3g}) kept "
                f"specificity {row['specificity']:.2f} and recall {row['recall']:.2f} at this "
                f"threshold ({threshold:.3g})")
        else:
            effects.append(f"images {'framed' if kind == 'framing' else 'exposed'} like these "
                           f"({like}) resemble the validation {view} view, but this model file "
                           "carries no stress table to say what it did")
    base = saved.info.get("validation") or {}
    where = (f" (validation as it is: specificity {base['specificity']:.2f}, recall "
             f"{base['recall']:.2f})" if "specificity" in base and "recall" in base else "")
    refusal = (f" {len(refused)} further image{'s were' if len(refused) != 1 else ' was'} "
               "refused as unlike a chest X-ray and left out." if refused else "")
    if not moved:
        out["verdict"] = "like training"
        out["text"] = (f"These {n} scored images resemble the training X-rays on framing "
                       "(lung box area share), exposure (mean intensity, contrast) and network "
                       "features: no more of them lie beyond the training images' 10% and "
                       f"90% quantiles than chance allows.{refusal} The validation operating "
                       f"point{where} is the best guide to what to expect here.")
        return out
    out["verdict"] = "shifted"
    listed = ", ".join(kinds[:-1]) + (" and " if len(kinds) > 1 else "") + kinds[-1]
    text = (f"This folder is unlike the training data in {listed}: of its {n} scored images, "
            + "; ".join(sentences) + "." + refusal)
    if effects:
        text += (" What that is expected to do to the operating point: " + "; ".join(effects)
                 + f"{where}. Expect the specificity here nearer those stressed figures than the "
                 "validation one; only labels from this site can say by how much.")
    else:
        text += (" None of the validation stress views imitates this change, so nothing "
                 f"measured says what it does to the operating point{where}; expect it to move.")
    out["text"] = text
    return out


def ood_name(figure: str) -> str:
    return {"lung_box_area": "lung box area share", "mean_intensity": "mean intensity",
            "contrast": "contrast", "distance": "feature distance"}.get(figure, figure)


# ------------------------------------------------------------ the page

def is_report(path) -> bool:
    """Whether ``path`` is a page written by :func:`write_report` (which may be replaced)."""
    try:
        with open(path, "rb") as f:
            return GENERATOR.encode() in f.read(4096)
    except OSError:
        return False


def _png(fig) -> str:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(out.getvalue()).decode("ascii")


def _img(data: str, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{w} src="data:image/png;base64,{data}">'


def score_figure(rows, saved):
    """The folder's score histogram against validation's (by class), with the threshold."""
    from matplotlib.figure import Figure

    ref = _reference(saved) or {}
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    edges = np.asarray(ref.get("scores", {}).get("edges") or np.linspace(0, 1, 21), dtype=float)
    site = np.array([r["pneumonia_score"] for r in rows if r["status"] == "scored"], float)
    widths = np.diff(edges)
    if "scores" in ref:
        for name, colour in (("normal", "tab:blue"), ("pneumonia", "tab:red")):
            counts = np.asarray(ref["scores"][name], dtype=float)
            ax.step(edges[:-1], counts / max(counts.sum(), 1) / widths, where="post",
                    color=colour, label=f"validation {name} ({int(counts.sum())})")
    if len(site):
        counts = np.histogram(site, edges)[0]
        ax.bar(edges[:-1], counts / max(counts.sum(), 1) / widths, width=widths, align="edge",
               color="0.6", alpha=0.6, label=f"this folder ({len(site)})")
    ax.axvline(saved.threshold, color="black", ls="--", lw=1,
               label=f"threshold {saved.threshold:.3g}")
    ax.set(xlabel="pneumonia score", ylabel="density", xlim=(0, 1),
           title="scores of this folder against validation's")
    ax.legend(fontsize=8)
    return fig


def shift_figure(rows, saved):
    """Per figure of the shift summary, the folder's values against the
    training images' 10-90% range and median; ``None`` without a reference."""
    from matplotlib.figure import Figure

    ref = _reference(saved)
    if ref is None:
        return None
    figures = [f for f in FIGURES if f in ref["training"]]
    fig = Figure(figsize=(3 * len(figures), 2.8))
    axes = fig.subplots(1, len(figures))
    scored = [r for r in rows if r["status"] == "scored"]
    levels = ref["quantile_levels"]
    for ax, figure in zip(np.atleast_1d(axes), figures):
        q = ref["training"][figure]
        lo, mid, hi = (_at(levels, q, p) for p in (SIDE, 0.5, 1 - SIDE))
        ax.axvspan(lo, hi, color="tab:green", alpha=0.15, label="training 10-90%")
        ax.axvline(mid, color="tab:green", lw=1.5, label="training median")
        values = _figures(scored, figure)
        if len(values):
            ax.hist(values, bins=15, color="0.4", alpha=0.8, label="this folder")
        ax.set_title(ood_name(figure), fontsize=9)
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    return fig


def confident_rows(rows, threshold: float, k: int = 3) -> dict:
    """The most confident pneumonia and normal images (farthest from the
    threshold, on the scale where it sits at 0.5) and the least confident
    (nearest to it), ``k`` of each."""
    scored = [r for r in rows if r["status"] == "scored"]

    def margin(r):
        p = float(r["pneumonia_score"])
        return (threshold - p) / threshold if p < threshold else (p - threshold) / max(
            1 - threshold, 1e-9)

    pos = sorted((r for r in scored if r["decision"] == "pneumonia"), key=margin, reverse=True)
    neg = sorted((r for r in scored if r["decision"] == "normal"), key=margin, reverse=True)
    near = sorted(scored, key=margin)
    taken = {id(r) for r in pos[:k] + neg[:k]}
    return {"most confident pneumonia": pos[:k], "most confident normal": neg[:k],
            "least confident (nearest the threshold)": [r for r in near if id(r) not in taken][:k]}


def _heat_maps(saved, picked: list[dict]) -> list[str]:
    import tensorflow as tf

    from ..data.images import decode, tf_path
    from .scoring import heat_maps, render_heatmap

    if not picked:
        return []
    images = np.stack([decode(tf.constant(tf_path(r["_found"].path)), saved.image_size).numpy()
                       for r in picked])
    cams = heat_maps(saved, images)
    out = []
    for r, image, cam in zip(picked, images, cams):
        title = (f"{r['_found'].name}\nscore {r['pneumonia_score']}: {r['decision']} "
                 f"(spread over seeds {r['uncertainty']})")
        picture = render_heatmap(image, cam, title, r.get("_size"))
        buf = io.BytesIO()
        picture.save(buf, format="PNG")
        out.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    return out


CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;font-size:0.9em}th{background:#f3f3f3}.maps{display:flex;flex-wrap:wrap;gap:8px}
.maps figure{margin:0}.note{color:#555;font-size:0.9em}h2{margin-top:1.6em}"""


def write_report(rows: list[dict], saved, folder, summary: dict | None = None,
                 prevalence: str | None = None, heat_maps: int = 3) -> Path:
    """The page of a scored folder, ``folder / REPORT_NAME``: counts, the
    score histogram against validation's, the shift summary (``summary``,
    default :func:`shift_summary`), ``heat_maps`` most and least confident
    images with their Grad-CAM heat maps, and the refused and unreadable
    files with their reasons; ``prevalence``: the site-prevalence line, if
    one was estimated."""
    import datetime

    from .. import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summary or shift_summary(rows, saved)
    e = html.escape
    status = [r["status"] for r in rows]
    flagged = sum(r["status"] == "scored" and r["decision"] == "pneumonia" for r in rows)
    info = saved.info
    parts = [f"<!DOCTYPE html><html><head>{GENERATOR}<meta charset=\"utf-8\">"
             f"<title>pneumo predict: {len(rows)} images</title><style>{CSS}</style></head><body>",
             f"<h1>pneumo predict: {len(rows)} images</h1>",
             f"<p class=note>model {e(str(saved.path or ''))} (recipe {e(str(info.get('recipe')))},"
             f" threshold {saved.threshold:.3g}, chosen on validation for recall "
             f"{info.get('target_recall')}); pneumo_helpers {__version__}, "
             f"{datetime.date.today().isoformat()}. Scores rank images; they are not calibrated "
             "probabilities. Research and teaching only.</p>",
             "<table><tr><th>scored</th><th>flagged as pneumonia</th><th>refused (out of "
             "distribution)</th><th>errors (unreadable)</th></tr>"
             f"<tr><td>{status.count('scored')}</td><td>{flagged}</td>"
             f"<td>{status.count('out_of_distribution')}</td><td>{status.count('error')}</td>"
             "</tr></table>"]
    if _reference(saved) is None:
        parts.append("<p class=note>This model file carries no reference of its training "
                     "images: the network-feature checks (distance, upside down, negative) were "
                     "skipped; the intensity and lung-field checks were made.</p>")
    parts.append("<h2>Scores</h2>" + _img(_png(score_figure(rows, saved)), "score histogram"))
    if prevalence:
        parts.append(f"<p>{e(prevalence)}</p>")
    parts.append(f"<h2>This folder against the training data</h2><p>{e(summary['text'])}</p>")
    fig = shift_figure(rows, saved)
    if fig is not None:
        parts.append(_img(_png(fig), "framing, exposure and feature distance"))
    picked = confident_rows(rows, saved.threshold, heat_maps)
    flat = [r for group in picked.values() for r in group]
    maps = iter(_heat_maps(saved, flat))
    if flat:
        parts.append("<h2>Most and least confident images</h2><p class=note>Grad-CAM: the "
                     "regions that raised the pneumonia score.</p>")
    for label, group in picked.items():
        if not group:
            continue
        parts.append(f"<h3>{e(label)}</h3><div class=maps>")
        for r in group:
            parts.append(f"<figure>{_img(next(maps), r['_found'].name, 330)}</figure>")
        parts.append("</div>")
    for kind, title in (("out_of_distribution", "Refused: not like the training X-rays"),
                        ("error", "Not read")):
        bad = [r for r in rows if r["status"] == kind]
        if bad:
            parts.append(f"<h2>{title} ({len(bad)})</h2><table><tr><th>file</th><th>reason</th>"
                         "</tr>" + "".join(f"<tr><td>{e(r['path'])}</td><td>{e(r['reason'])}"
                                           "</td></tr>" for r in bad) + "</table>")
    parts.append("</body></html>")
    page = folder / REPORT_NAME
    page.write_text("\n".join(parts), encoding="utf-8", errors="surrogateescape")
    return page
