"""The two tasks, each described once: what is predicted, by which head and
loss, how the model is selected, how its scores become a pneumonia
probability, how the operating points are chosen, and which metrics it gets.

Everything else (training, evaluation, the metrics document, plots) takes a
:class:`Task` and has no branch of its own on the task.

- ``binary``: pneumonia vs normal, one sigmoid output, early stopping on
  validation ROC AUC, one threshold (the most specific reaching the target
  recall on validation).
- ``ternary``: normal / bacterial / viral, a softmax over three classes,
  early stopping on validation loss, two thresholds (pneumonia vs normal on
  ``p(bacteria) + p(virus)`` for the target recall, exactly as the binary
  task; bacterial vs viral by Youden's J on the pneumonia cases).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import metrics as M
from .info import TYPES


@dataclass(frozen=True)
class Task:
    name: str
    label_column: str  # the table column the model is trained on
    class_names: tuple[str, ...]
    monitor: str  # the validation metric early stopping follows

    @property
    def n_outputs(self) -> int:
        """1 (a sigmoid) for two classes, else one softmax output per class."""
        return 1 if len(self.class_names) == 2 else len(self.class_names)

    @property
    def is_binary(self) -> bool:
        return self.n_outputs == 1

    def head(self, x):
        """The output layer on features ``x`` (float32 even under mixed precision)."""
        from keras import layers

        if self.is_binary:
            return layers.Dense(1, activation="sigmoid", name="pneumonia", dtype="float32")(x)
        return layers.Dense(self.n_outputs, activation="softmax", name="classes",
                            dtype="float32")(x)

    def loss(self) -> str:
        return "binary_crossentropy" if self.is_binary else "sparse_categorical_crossentropy"

    def compile_metrics(self) -> list:
        import keras

        if self.is_binary:
            return [keras.metrics.AUC(name="auc"), "accuracy"]
        return ["accuracy"]

    def prepare_table(self, table: pd.DataFrame, verbose: bool = True) -> pd.DataFrame:
        """The image table with this task's label column. Ternary: ``type_label``
        (0 normal, 1 bacteria, 2 virus); pneumonia images whose name gives no
        type are dropped, with a note."""
        if self.is_binary:
            return table
        known = table["type"].isin(TYPES)
        if not known.all():
            names = table.loc[~known, "path"].map(lambda p: str(p).rsplit("/", 1)[-1])
            note = (f"ternary task: dropped {int((~known).sum())} pneumonia image(s) whose "
                    f"name gives no type (bacteria/virus), e.g. {', '.join(names.head(3))}")
            if verbose:
                print(note)
            warnings.warn(note, stacklevel=2)
        out = table[known].copy()
        out["type_label"] = out["type"].map({t: i for i, t in enumerate(TYPES)}).astype(int)
        return out

    def counts(self, table: pd.DataFrame) -> dict:
        """Images per subset and class: ``{subset: {class name: n}}``."""
        names = np.asarray(self.class_names)[table[self.label_column].to_numpy()]
        c = table.assign(_class=names).groupby(["subset", "_class"]).size()
        return {s: {k: int(c[s].get(k, 0)) for k in self.class_names}
                for s in table["subset"].unique()}

    def thresholds(self, labels, scores, target_recall: float) -> dict:
        """The operating points, chosen on validation data: ``pneumonia`` (the
        most specific threshold reaching ``target_recall``), and for the ternary
        task ``viral`` (Youden's J on the pneumonia cases)."""
        labels = np.asarray(labels)
        out = {"pneumonia": M.threshold_for_recall(labels > 0, M.pneumonia_score(scores),
                                                   target_recall)}
        if not self.is_binary:
            pneu = labels > 0
            out["viral"] = M.youden_threshold(labels[pneu] == 2, M.viral_score(scores)[pneu])
        return out

    def metrics(self, labels, scores, thresholds: dict, patients=None, n_boot: int = 0,
                seed: int = 42, partial: bool = False) -> dict:
        """``binary`` (pneumonia vs normal at ``thresholds["pneumonia"]``), and
        for the ternary task ``three_class`` and ``bacterial_vs_viral`` (at
        ``thresholds["viral"]``). With ``patients`` and ``n_boot``, each block
        gets ``ci95``: patient-bootstrap intervals. With ``partial`` (for
        subsets such as the counter-framed one), a block whose classes are
        not all present is left out instead of raising."""
        labels = np.asarray(labels)
        if partial:
            present = set(np.unique(labels).tolist())
            if not {0} < present:
                return {}
            if not self.is_binary and present != {0, 1, 2}:
                return {"binary": M.binary_metrics(labels > 0, M.pneumonia_score(scores),
                                                   thresholds["pneumonia"])}
        pneumonia, score = labels > 0, M.pneumonia_score(scores)
        out = {"binary": M.binary_metrics(pneumonia, score, thresholds["pneumonia"])}
        if n_boot:
            out["binary"]["ci95"] = M.binary_intervals(
                pneumonia, score, thresholds["pneumonia"], patients, n_boot, seed)
        if not self.is_binary:
            out["three_class"] = M.three_class_metrics(labels, scores)
            out["bacterial_vs_viral"] = M.bacterial_vs_viral(labels, scores, thresholds["viral"])
            if n_boot:
                out["bacterial_vs_viral"]["ci95"] = M.bacterial_vs_viral_intervals(
                    labels, scores, thresholds["viral"], patients, n_boot, seed)
        return out

    def key_figures(self, m: dict) -> dict:
        """The figures a comparison table shows, from :meth:`metrics` (NaN
        where a block is missing)."""
        nan = float("nan")
        b = m.get("binary", {})
        out = {"auc": b.get("roc_auc", nan), "recall": b.get("recall", nan),
               "specificity": b.get("specificity", nan)}
        if not self.is_binary:
            out.update({"accuracy": m.get("three_class", {}).get("accuracy", nan),
                        "bv_auc": m.get("bacterial_vs_viral", {}).get("roc_auc", nan)})
        return out

    def in_words(self, m: dict) -> str:
        text = "pneumonia vs normal: " + M.in_words(m["binary"])
        if not self.is_binary:
            text += "\nthree classes: " + M.three_class_in_words(m["three_class"],
                                                                  m["bacterial_vs_viral"])
        return text


BINARY = Task("binary", "label", ("normal", "pneumonia"), monitor="val_auc")
TERNARY = Task("ternary", "type_label", TYPES, monitor="val_loss")
TASKS = {t.name: t for t in (BINARY, TERNARY)}


def get_task(name: str | Task) -> Task:
    """The task called ``name`` (``"binary"`` or ``"ternary"``)."""
    from .parameters import StrOptions, check

    if isinstance(name, Task):
        return name
    return TASKS[check("task", name, StrOptions(TASKS))]
