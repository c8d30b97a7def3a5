"""What a run leaves behind: the output folder, ``metrics.json``, the result
summary in words, and the self-contained HTML report.

The data folder is only ever read; every output goes to the output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import in_words, per_hundred


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


def metrics_document(params: dict, data, instruments: dict, test: dict | None = None,
                     timing: dict | None = None, seeds: dict | None = None) -> dict:
    """Everything ``metrics.json`` holds, the same layout for both tasks:
    ``params``, ``task``, ``data`` (images per subset and class), the
    validation instruments (``validation``, ``counter_framed``, ``stress``,
    ``sanity``), ``seeds`` (figures of each training seed and their spread,
    when several were trained), ``test`` (with patient-bootstrap intervals)
    and ``timing``. Every metrics block has a ``binary`` part (pneumonia vs
    normal); the ternary task adds ``three_class`` and ``bacterial_vs_viral``."""
    doc = {"params": params, "task": data.task.name, "data": data.counts()}
    doc.update({k: v for k, v in instruments.items()})
    if seeds is not None:
        doc["seeds"] = seeds
    if test is not None:
        doc["test"] = test["metrics"]
    if timing:
        doc["timing"] = timing
    return _jsonable(doc)


def write_json(doc: dict, path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2))
    return path


def summary_markdown(doc: dict) -> str:
    """The result of a run in a few sentences, from its own ``metrics.json``
    document: what the test figures are, what they do not show, and where
    the operating point stands under the validation instruments."""
    test, val = doc["test"]["binary"], doc["validation"]["binary"]
    ci = test.get("ci95", {})

    def interval(k):
        return f" (95% CI {ci[k][0]:.3f}-{ci[k][1]:.3f})" if k in ci else ""

    n = doc["data"]
    lines = [
        f"**Result** ({doc['task']} task, image size {doc['params'].get('image_size')}, "
        f"{sum(n['train'].values())} training and {sum(n['validation'].values())} validation "
        f"images, seed {doc['params'].get('seed')}).",
        "",
        f"- **Test** (`test/`, {sum(n['test'].values())} images, scored once, at the threshold "
        f"{val['threshold']:.3f} chosen on validation for recall "
        f"{doc['params'].get('target_recall')}): ROC AUC {test['roc_auc']:.3f}"
        f"{interval('roc_auc')}, recall {test['recall']:.3f}{interval('recall')}, "
        f"specificity {test['specificity']:.3f}{interval('specificity')}: "
        f"{in_words(test).split(' (')[0]}; {per_hundred(test)}.",
    ]
    if "three_class" in doc["test"]:
        tc, bv = doc["test"]["three_class"], doc["test"]["bacterial_vs_viral"]
        lines.append(f"- **Three classes** on test: accuracy {tc['accuracy']:.3f}, bacterial vs "
                     f"viral ROC AUC {bv['roc_auc']:.3f}.")
    cf = doc.get("counter_framed", {}).get("binary")
    if cf:
        lines.append(
            f"- **Counter-framed validation** ({doc['counter_framed']['n_normal']} normal images "
            f"framed like pneumonia, {doc['counter_framed']['n_pneumonia']} pneumonia images "
            f"framed like normal): ROC AUC {cf['roc_auc']:.3f} against {val['roc_auc']:.3f} on "
            f"all of validation; specificity {cf['specificity']:.3f} at the same threshold.")
    stress = doc.get("stress")
    if stress:
        worst = min(stress, key=lambda v: stress[v]["specificity"])
        lines.append(f"- **Stress test** of validation images: the worst view for specificity is "
                     f"`{worst}` ({stress[worst]['specificity']:.3f}; ROC AUC "
                     f"{stress[worst]['auc']:.3f}).")
    seeds = doc.get("seeds")
    if seeds:
        s = seeds["spread"]
        lines.append(f"- **Seeds** ({len(seeds['per_seed'])} trainings): validation threshold "
                     f"{s['threshold']['min']:.3f}-{s['threshold']['max']:.3f}, specificity "
                     f"{s['val_specificity']['min']:.3f}-{s['val_specificity']['max']:.3f}, "
                     f"counter-framed ROC AUC {s['cf_auc']['min']:.3f}-{s['cf_auc']['max']:.3f}.")
    lines += [
        "",
        "What this does not show: `test/` here is a holdout of patients from the official train "
        "split, drawn like the training images, so it flatters every model. Images framed or "
        "exposed otherwise (the official test split, other hospitals) score healthy children "
        "higher; the counter-framed and stress figures above are the honest guide to that.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- tables

def count_table(data) -> pd.DataFrame:
    """Images per subset (rows, in reading order) and class (columns)."""
    counts = pd.DataFrame(data.counts()).T
    order = [s for s in ("train", "validation", "test", "sanity") if s in counts.index]
    return counts.loc[order, list(data.task.class_names)]


# ------------------------------------------------------------- model card

def _ci(m: dict, k: str) -> str:
    ci = m.get("ci95", {}).get(k)
    return f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""


def model_card(doc: dict) -> str:
    """``MODEL_CARD.md``, written from a run's ``metrics.json`` document: what
    the model is for and not for, the data and its known problems, the figures
    with their intervals, the operating point in plain words, and its limits."""
    p, n = doc["params"], doc["data"]
    test, val = doc["test"]["binary"], doc["validation"]["binary"]
    cf = doc.get("counter_framed", {}).get("binary", {})
    stress = doc.get("stress", {})
    worst = min(stress, key=lambda v: stress[v]["specificity"]) if stress else None
    seeds = doc.get("seeds", {}).get("spread", {})
    lines = [
        "# Model card: pneumo",
        "",
        f"Written by the final notebook from its own `metrics.json` (recipe `{p.get('recipe')}`, "
        f"task `{doc['task']}`, image size {p.get('image_size')}, {p.get('n_seeds')} training "
        f"seed(s) from {p.get('seed')}, target recall {p.get('target_recall')}).",
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
        "- **Framing and exposure differ between the classes** in the training data (normal "
        "images share one framing and exposure; pneumonia images vary), and the official test "
        "split's normal images are framed like the training pneumonia images. A model can learn "
        "the frame instead of the lungs; a holdout from the same distribution does not show it.",
        "- **Label noise**: some labels are known to be wrong or uncertain, and pneumonia types "
        "(bacterial / viral) come from file names; hundreds of patient ids carry both types.",
        "- **Kaggle's `val` split has 16 images**: too few to choose anything on; validation "
        "patients are carved out of `train/` instead, and `test/` here is a holdout of patients "
        "from the official train split, not the official test split.",
        "",
        "## Figures",
        "",
        "| | ROC AUC | recall | specificity |",
        "|---|---|---|---|",
        f"| validation (threshold chosen here) | {val['roc_auc']:.3f} | {val['recall']:.3f} | "
        f"{val['specificity']:.3f} |",
    ]
    if cf:
        lines.append(f"| counter-framed validation ({doc['counter_framed']['n_normal']} normal, "
                     f"{doc['counter_framed']['n_pneumonia']} pneumonia) | {cf['roc_auc']:.3f} | "
                     f"{cf['recall']:.3f} | {cf['specificity']:.3f} |")
    if worst:
        lines.append(f"| stress test, worst view (`{worst}`) | {stress[worst]['auc']:.3f} | "
                     f"{stress[worst]['recall']:.3f} | {stress[worst]['specificity']:.3f} |")
    lines.append(f"| test (`test/`, scored once) | {test['roc_auc']:.3f}{_ci(test, 'roc_auc')} | "
                 f"{test['recall']:.3f}{_ci(test, 'recall')} | "
                 f"{test['specificity']:.3f}{_ci(test, 'specificity')} |")
    if "bacterial_vs_viral" in doc["test"]:
        bv, tc = doc["test"]["bacterial_vs_viral"], doc["test"]["three_class"]
        lines += ["", f"Three classes on test: accuracy {tc['accuracy']:.3f}; bacterial vs viral "
                  f"ROC AUC {bv['roc_auc']:.3f}{_ci(bv, 'roc_auc')}."]
    lines += ["", "Intervals: 95% bootstrap over patients."]
    if seeds:
        lines.append(f"Over the {len(doc['seeds']['per_seed'])} training seeds, the validation "
                     f"threshold ranged {seeds['threshold']['min']:.3f}-"
                     f"{seeds['threshold']['max']:.3f} and validation specificity "
                     f"{seeds['val_specificity']['min']:.3f}-{seeds['val_specificity']['max']:.3f}"
                     "; the model is the mean of their predictions.")
    lines += [
        "",
        "## The operating point in plain words",
        "",
        f"The threshold ({val['threshold']:.3f}) is the most specific one that still finds "
        f"{p.get('target_recall')} of the pneumonia cases among validation patients. On `test/`: "
        f"{per_hundred(test)}.",
    ]
    if cf:
        lines.append(f"On validation images framed against type (counter-framed): {per_hundred(cf)}.")
    lines += [
        "",
        "## Limits",
        "",
        "- One hospital, one age range, one period: other sites, ages and machines were never "
        "seen. Expect the specificity to be lower where images are framed or exposed "
        "otherwise; the counter-framed and stress figures above are the honest guide.",
        "- The score is a ranking with a threshold chosen for one target recall, not a "
        "calibrated probability for another site; `pneumo predict --site-prevalence` re-weights "
        "it to a site's estimated prevalence, the decision stays at the threshold.",
        "- Input: one frontal chest X-ray per image, JPEG, PNG or single-frame DICOM, resized to "
        f"{p.get('image_size')} x {p.get('image_size')} pixels without keeping the aspect ratio.",
    ]
    return "\n".join(lines) + "\n"
