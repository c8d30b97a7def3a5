"""What a run says about itself: ``metrics.json``, the result summary in
words, ``MODEL_CARD.md`` and the self-contained HTML report.

Every sentence is written from the run's own ``metrics.json`` and is true for
the data it ran on: what ``test/`` is is said from what is known of it (its
counts against those of Kaggle's official test split), and what is not known
is put as a condition.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import in_words, per_hundred, predictive_values

#: Kaggle's official test split ("chest-xray-pneumonia"), images per class
OFFICIAL_TEST = {"normal": 234, "pneumonia": 390}
#: the prevalence the model card also reads the operating point at
OTHER_PREVALENCE = 0.10


def _jsonable(value):
    if isinstance(value, pd.DataFrame):
        return {k: _jsonable(v) for k, v in value.round(4).to_dict(orient="index").items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


#: the packages whose versions decide a run's floating-point paths: name and module
ENVIRONMENT_PACKAGES = {"tensorflow": "tensorflow", "keras": "keras", "numpy": "numpy",
                        "scikit-learn": "sklearn", "pandas": "pandas"}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def environment() -> dict:
    """Where a run ran: Python, the package versions, the CPU, its cores and
    its widest vector instructions. The same seed and data give the same
    figures to the last digit on the same CPU and packages, other ones take
    other floating-point paths; this says which a run had."""
    versions = {}
    for name, module in ENVIRONMENT_PACKAGES.items():
        loaded = sys.modules.get(module)  # the version in use, however it was installed
        try:
            versions[name] = getattr(loaded, "__version__", None) or metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    flags = _cpu_flags()
    vector = next((v for v in ("avx512f", "avx2", "avx", "sse4_2", "asimd") if v in flags), None)
    return {"python": platform.python_version(), "packages": versions,
            "cpu": _cpu_model(), "cores": os.cpu_count(), "vector": vector,
            "system": f"{platform.system()} {platform.release()}"}


def environment_lines(doc: dict) -> list[str]:
    """The model card's line on where the run ran, when its document says."""
    env = doc.get("environment")
    if not env:
        return []
    pk = env.get("packages", {})
    return [f"- Trained and scored on {env.get('cores')} cores of {env.get('cpu')} "
            f"({env.get('vector') or 'no vector flags read'}), Python {env.get('python')}, "
            f"TensorFlow {pk.get('tensorflow')}, Keras {pk.get('keras')}. The same seed and data "
            "give the same figures to the last digit there; another CPU or other versions take "
            "other floating-point paths (figures seen to differ by up to about 0.02)."]


def metrics_document(params: dict, data, instruments: dict, test: dict | None = None,
                     timing: dict | None = None, seed_rows: list[dict] | None = None) -> dict:
    """Everything ``metrics.json`` holds, the same layout for both tasks:
    ``params``, ``task``, ``data`` (images per subset and class), the
    validation instruments (``validation``, ``counter_framed``, ``stress``,
    ``anatomy``, ``sanity``), ``seeds`` (the row of each training seed and the
    spread of each figure over them, when several were trained), ``test``
    (with patient-bootstrap intervals), ``timing``, the package version,
    the ``environment`` (:func:`environment`) and the date. Every metrics block has a ``binary`` part (pneumonia vs
    normal); the ternary task adds ``three_class`` and ``bacterial_vs_viral``."""
    from .. import __version__
    from ..evaluation.selection import seed_spread

    doc = {"params": params, "task": data.task.name, "data": data.counts(),
           "package_version": __version__, "environment": environment(),
           "date": datetime.date.today().isoformat()}
    doc.update(instruments)
    if seed_rows:
        doc["seeds"] = {"per_seed": seed_rows,
                        "spread": seed_spread(seed_rows).to_dict(orient="index")}
    if test is not None:
        doc["test"] = test["metrics"]
    if timing:
        doc["timing"] = timing
    return _jsonable(doc)


def write_json(doc: dict, path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2))
    return path


# ----------------------------------------------------------------- phrases

def interval(m: dict, k: str) -> str:
    """`` (95% CI a-b)`` for figure ``k`` of a metrics block, or nothing."""
    ci = m.get("ci95", {}).get(k)
    return f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""


def _binary_counts(counts: dict) -> dict:
    normal = counts.get("normal", 0)
    return {"normal": normal, "pneumonia": sum(v for k, v in counts.items() if k != "normal")}


def test_split_in_words(doc: dict) -> str:
    """What ``test/`` is, from what is known of it, the caveat a condition."""
    n = _binary_counts(doc["data"]["test"])
    held = f"`test/` holds {n['normal']} normal and {n['pneumonia']} pneumonia images"
    if n == OFFICIAL_TEST:
        return (f"{held}, the counts of Kaggle's official test split: if it is that split, "
                "its images come from a later period and are framed and exposed unlike the "
                "training images, so its figures measure the model outside its training "
                "distribution.")
    return (f"{held}; Kaggle's official test split has {OFFICIAL_TEST['normal']} and "
            f"{OFFICIAL_TEST['pneumonia']}, so this is another set. If it holds patients "
            "drawn like the training images (as a holdout carved from the official train split "
            "does), it flatters every model: images framed or exposed otherwise (the official "
            "test split, other hospitals) score healthy children higher.")


def geometric_worst(doc: dict):
    """The worst geometric stress view for specificity: ``(name, row)`` or ``None``."""
    from ..evaluation.instruments import worst_view
    from ..evaluation.stress import GEOMETRIC

    stress = doc.get("stress")
    if not stress or not any(v in stress for v in GEOMETRIC):
        return None
    return worst_view(stress, "specificity", GEOMETRIC)


def _model_in_words(doc: dict) -> str:
    p = doc["params"]
    n_seeds = p.get("n_seeds", 1)
    seeds = (f"the mean of {n_seeds} networks trained with seeds {p.get('seed')}-"
             f"{p.get('seed') + n_seeds - 1}" if n_seeds > 1
             else f"one network trained with seed {p.get('seed')}")
    return f"recipe `{p.get('recipe')}`, {seeds}"


def summary_markdown(doc: dict) -> str:
    """The result of a run in a few sentences, from its own ``metrics.json``
    document: the test figures, what ``test/`` is, and where the operating
    point stands under the validation instruments that tracked the official
    test split when it was scored blind."""
    test, val = doc["test"]["binary"], doc["validation"]["binary"]
    n = doc["data"]
    lines = [
        f"**Result** ({doc['task']} task; {_model_in_words(doc)}; image size "
        f"{doc['params'].get('image_size')}; {sum(n['train'].values())} training and "
        f"{sum(n['validation'].values())} validation images).",
        "",
        f"- **Test** (`test/`, {sum(n['test'].values())} images, scored once, at the threshold "
        f"{val['threshold']:.3f} chosen on validation for recall "
        f"{doc['params'].get('target_recall')}): ROC AUC {test['roc_auc']:.3f}"
        f"{interval(test, 'roc_auc')}, recall {test['recall']:.3f}{interval(test, 'recall')}, "
        f"specificity {test['specificity']:.3f}{interval(test, 'specificity')}: "
        f"{in_words(test).split(' (')[0]}; {per_hundred(test)}.",
    ]
    if "three_class" in doc["test"]:
        tc, bv = doc["test"]["three_class"], doc["test"]["bacterial_vs_viral"]
        lines.append(f"- **Three classes** on test: accuracy {tc['accuracy']:.3f}, bacterial vs "
                     f"viral ROC AUC {bv['roc_auc']:.3f}.")
    worst = geometric_worst(doc)
    if worst is not None:
        name, row = worst
        lines.append(f"- **Worst geometric stress view** of validation images (zoomed or "
                     f"shifted, the instrument that tracked the blind specificity): `{name}`, "
                     f"specificity {row['specificity']:.3f} (ROC AUC {row['auc']:.3f}) at the "
                     "same threshold.")
    anatomy = doc.get("anatomy")
    if anatomy:
        lines.append("- **Anatomy** (validation): " + anatomy_in_words(anatomy, val) + ".")
    cf = doc.get("counter_framed", {}).get("binary")
    if cf:
        lines.append(
            f"- Counter-framed validation subset ({doc['counter_framed']['n_normal']} normal, "
            f"{doc['counter_framed']['n_pneumonia']} pneumonia images; a row for the record: "
            f"blind, it did not predict the shift): ROC AUC {cf['roc_auc']:.3f}, specificity "
            f"{cf['specificity']:.3f}.")
    seeds = doc.get("seeds")
    if seeds:
        s = seeds["spread"]
        lines.append(f"- **Seeds** ({len(seeds['per_seed'])} trainings): validation threshold "
                     f"{s['threshold']['min']:.3f}-{s['threshold']['max']:.3f}, specificity "
                     f"{s['val_specificity']['min']:.3f}-{s['val_specificity']['max']:.3f}.")
    lines += ["", "What `test/` is: " + test_split_in_words(doc)]
    return "\n".join(lines)


def anatomy_in_words(anatomy: dict, val: dict) -> str:
    """The anatomy-grounded instruments in one sentence."""
    parts = []
    if "saliency_normal" in anatomy:
        parts.append(f"{anatomy['saliency_normal']:.2f} of the Grad-CAM mass inside the lung "
                     f"fields on normal images, {anatomy['saliency_pneumonia']:.2f} on pneumonia "
                     "images" + (f" (a map spread evenly would put {anatomy['lung_area_normal']:.2f}"
                                 f" and {anatomy['lung_area_pneumonia']:.2f} there: the share of "
                                 "the input the lungs cover)" if "lung_area_normal" in anatomy
                                 else ""))
    if "sm_specificity" in anatomy:
        parts.append(f"scale-matched subset ROC AUC {anatomy['sm_auc']:.3f}, specificity "
                     f"{anatomy['sm_specificity']:.3f}")
    if "st_specificity" in anatomy:
        parts.append(f"structure-matched subset (the healthy lungs showing the least structure, "
                     f"the sick ones the most) ROC AUC {anatomy['st_auc']:.3f}, specificity "
                     f"{anatomy['st_specificity']:.3f}")
    if "marker_specificity" in anatomy:
        parts.append(f"specificity {anatomy['marker_specificity']:.3f} with markers pasted "
                     f"outside the lungs (plain validation {val['specificity']:.3f})")
    return "; ".join(parts)


# ------------------------------------------------------------- model card

def _row(name: str, m: dict) -> str:
    return (f"| {name} | {m['roc_auc']:.3f}{interval(m, 'roc_auc')} | "
            f"{m['recall']:.3f}{interval(m, 'recall')} | "
            f"{m['specificity']:.3f}{interval(m, 'specificity')} |")


TERMS = [
    ("recall (sensitivity)", "the share of children with pneumonia that the model flags"),
    ("specificity", "the share of healthy children that the model calls normal"),
    ("ROC AUC", "the chance that a random child with pneumonia scores higher than a random "
                "healthy child (1 is perfect, 0.5 is chance); it does not depend on the threshold"),
    ("threshold", "the score at or above which an image is called pneumonia"),
    ("PPV / NPV", "positive / negative predictive value: of the children flagged, the share "
                  "that have pneumonia; of those called normal, the share that are healthy. "
                  "They depend on how common pneumonia is (the prevalence)"),
    ("validation patients", "children of `train/` held out by patient, where every choice is "
                            "made"),
    ("geometric stress view", "the validation images zoomed out, zoomed in or shifted, scored "
                              "at the same threshold"),
    ("counter-framed subset", "validation images framed against type by a model that sees only "
                              "the image borders"),
    ("95% CI", "a 95% bootstrap interval over patients"),
]


def model_card(doc: dict, figures=("confusion_matrix.png", "roc_pr.png",
                                   "score_histograms.png", "stress_test.png",
                                   "grad_cam.png")) -> str:
    """``MODEL_CARD.md``, written from a run's ``metrics.json`` document: what
    the model is for and not for, the data and its known problems, the figures
    with their intervals, the operating point in plain words (with predictive
    values at the data's prevalence and at :data:`OTHER_PREVALENCE`), its
    limits, the figures of the run (linked: they sit beside the card) and
    every term defined."""
    p, n = doc["params"], doc["data"]
    test, val = doc["test"]["binary"], doc["validation"]["binary"]
    counts = _binary_counts(n["test"])
    prevalence = counts["pneumonia"] / max(1, sum(counts.values()))
    lines = [
        "# Model card: pneumo",
        "",
        f"Written on {doc.get('date', '?')} by pneumo_helpers {doc.get('package_version', '?')} "
        f"from the run's own `metrics.json`: {_model_in_words(doc)}, task `{doc['task']}`, "
        f"image size {p.get('image_size')}, threshold chosen for recall {p.get('target_recall')}.",
        "",
        "## Intended use",
        "",
        "Research and teaching: how convolutional networks tell pneumonia from normal in "
        "pediatric chest X-rays (children aged one to five), and how to evaluate them honestly. "
        "**Not a medical device**: not validated for diagnosis, triage or any clinical decision.",
        "",
        "## Data",
        "",
        "Kaggle's \"Chest X-Ray Images (Pneumonia)\" (Kermany, Zhang, Goldbaum; CC BY 4.0), one "
        "hospital in Guangzhou. This run: "
        + "; ".join(f"{s}: " + ", ".join(f"{v} {k}" for k, v in c.items())
                    for s, c in n.items()) + ".",
        "",
        "Known problems:",
        "",
        "- **Framing and scale differ between the classes** in the training data (the healthy "
        "children are mostly small and framed wide, the pneumonia images tighter), and in the "
        "official test split many healthy children fill the frame. A model can learn the child's "
        "size and framing instead of the lungs; a holdout from the same distribution does not "
        "show it.",
        "- **Label noise**: some labels are known to be wrong or uncertain, and pneumonia types "
        "(bacterial / viral) come from file names; hundreds of patient ids carry both types.",
        "- **Kaggle's `val` split has 16 images**: too few to choose anything on; validation "
        "patients are carved out of `train/` instead.",
        f"- What `test/` is: {test_split_in_words(doc)}",
        "",
        "## Figures",
        "",
        "| | ROC AUC | recall | specificity |",
        "|---|---|---|---|",
        _row("validation (threshold chosen here)", val),
    ]
    worst = geometric_worst(doc)
    if worst is not None:
        name, row = worst
        lines.append(f"| worst geometric stress view of validation (`{name}`) | "
                     f"{row['auc']:.3f} | {row['recall']:.3f} | {row['specificity']:.3f} |")
    cf = doc.get("counter_framed", {}).get("binary")
    if cf:
        lines.append(_row(f"counter-framed validation ({doc['counter_framed']['n_normal']} "
                          f"normal, {doc['counter_framed']['n_pneumonia']} pneumonia)", cf))
    lines.append(_row("test (`test/`, scored once)", test))
    if "bacterial_vs_viral" in doc["test"]:
        bv, tc = doc["test"]["bacterial_vs_viral"], doc["test"]["three_class"]
        lines += ["", f"Three classes on test: accuracy {tc['accuracy']:.3f}; bacterial vs viral "
                  f"ROC AUC {bv['roc_auc']:.3f}{interval(bv, 'roc_auc')}."]
    anatomy = doc.get("anatomy")
    if anatomy:
        lines += ["", "Anatomy-grounded instruments (validation): "
                  + anatomy_in_words(anatomy, val) + "."]
    seeds = doc.get("seeds", {}).get("spread", {})
    if seeds:
        lines += ["", f"Over the {len(doc['seeds']['per_seed'])} training seeds, the validation "
                  f"threshold ranged {seeds['threshold']['min']:.3f}-"
                  f"{seeds['threshold']['max']:.3f} and validation specificity "
                  f"{seeds['val_specificity']['min']:.3f}-{seeds['val_specificity']['max']:.3f}"
                  "; the model is the mean of their predictions."]
    ppv, npv = predictive_values(test["recall"], test["specificity"], prevalence)
    ppv2, npv2 = predictive_values(test["recall"], test["specificity"], OTHER_PREVALENCE)
    lines += [
        "",
        "## The operating point in plain words",
        "",
        f"The threshold ({val['threshold']:.3f}) is the most specific one that still finds "
        f"{p.get('target_recall')} of the pneumonia cases among validation patients. On `test/`: "
        f"{per_hundred(test)}.",
        "",
        f"At the prevalence of `test/` ({prevalence:.0%} pneumonia), {ppv:.0%} of the children "
        f"flagged have pneumonia (PPV) and {npv:.0%} of those called normal are healthy (NPV). "
        f"Where {OTHER_PREVALENCE:.0%} of the children X-rayed have pneumonia, with the same "
        f"recall and specificity: PPV {ppv2:.0%}, NPV {npv2:.0%}.",
    ]
    if worst is not None:
        lines.append(f"\nOn validation images zoomed or shifted as in `{worst[0]}`: "
                     f"{per_hundred(worst[1])}.")
    lines += [
        "",
        "## Limits",
        "",
        "- One hospital, one age range, one period: other sites, ages and machines were never "
        "seen. Expect the specificity to be lower where children are framed or sized otherwise; "
        "the worst geometric stress view above is the validation figure that tracked the "
        "official test split when it was scored blind.",
        "- The score is a ranking with a threshold chosen for one target recall, not a "
        "calibrated probability for another site; `pneumo predict --site-prevalence` re-weights "
        "it to a site's estimated prevalence, the decision stays at the threshold.",
        "- Input: one frontal chest X-ray per image, JPEG, PNG or single-frame DICOM, resized to "
        "a square without keeping the aspect ratio.",
        *environment_lines(doc),
        "",
        "## Figures of this run",
        "",
        *[f"![{f.removesuffix('.png').replace('_', ' ')}]({f})" for f in figures],
        "",
        "## Terms",
        "",
        *[f"- **{term}**: {meaning}." for term, meaning in TERMS],
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------- HTML report

GENERATOR = '<meta name="generator" content="pneumo report">'


def is_html_report(path) -> bool:
    """Whether ``path`` is a page written by :func:`html_report` (which may be replaced)."""
    try:
        with open(path, "rb") as f:
            return GENERATOR.encode() in f.read(4096 * 16)
    except OSError:
        return False


def html_report(notebook, html, with_code: bool = False, title: str | None = None) -> Path:
    """Write an executed notebook as one HTML file anyone can open in a
    browser: figures embedded, code cells shown only ``with_code``; the tab
    title names the run."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    nb.metadata["title"] = title or f"pneumo: {Path(notebook).name}"
    exporter = HTMLExporter(exclude_input=not with_code, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    body = body.replace("<head>", "<head>\n" + GENERATOR, 1)
    html = Path(html)
    html.write_text(body, encoding="utf-8")
    return html
