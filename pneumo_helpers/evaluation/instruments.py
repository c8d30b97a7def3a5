"""One evaluator per split, for every model and both tasks (as
``medmnist.Evaluator(flag, split)``): it owns the split's labels, patients and
the inputs of the instruments, and scores models on them.

:class:`Evaluator` on ``validation`` gives everything a model is selected on,
from validation patients alone: the plain validation metrics at the operating
points chosen there, the **counter-framed** subset (``framing``), the
**stress test** of validation images (``stress``), the anatomy-grounded
instruments (``anatomy``: the saliency share inside the lung fields, the
scale-matched subset, the marker view) and, for the record, Kaggle's 16
``val`` images (``sanity``). It works from scores (:meth:`Evaluator.scores`),
so the instruments of a mean of models come from the mean of their scores
(:func:`average_scores`). On ``test`` it is the single look, with
patient-bootstrap intervals (:meth:`Evaluator.test`).
:func:`comparison_row` flattens instruments into one row of a table.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from ..metrics import binary_metrics, pneumonia_score
from . import framing
from .stress import GEOMETRIC, VIEWS, counter_exposed, exposure_bank, stress_table, view_scores


class Evaluator:
    """The instruments of subset ``split`` of ``data`` (a ``SplitData``).
    What they need is derived once, from ``data``'s training patients only:
    the border-only model (framing), the exposure bank (counter-exposed view)."""

    def __init__(self, data, split: str = "validation"):
        if split not in set(data.table["subset"]):
            raise ValueError(f"no {split!r} images in this split of the data")
        self.data, self.split, self.task = data, split, data.task
        self.table = data.subset(split)
        self.labels = data.labels(split)
        self.patients = data.patients(split)
        self._prepared = {}  # stress views as the crop to the lung fields prepares them

    def __repr__(self) -> str:
        counts = dict(zip(*np.unique(self.labels, return_counts=True)))
        return (f"Evaluator({self.task.name}, {self.split!r}: {len(self.labels)} images, "
                f"{ {self.task.class_names[int(k)]: int(v) for k, v in counts.items()} })")

    # ------------------------------------------------------- what it owns

    @cached_property
    def frame_scores(self) -> np.ndarray:
        """The border-only model's pneumonia probability for each image (the
        model fitted on the training patients only)."""
        model = framing.fit_border_model(self.data.subset("train"))
        return framing.border_scores(model, self.table)

    @cached_property
    def counter_framed(self) -> np.ndarray:
        """Which images are counter-framed (``framing.counter_framed_mask``)."""
        return framing.counter_framed_mask(self.labels, self.frame_scores)

    @cached_property
    def views(self) -> dict:
        """The stress views: :data:`stress.VIEWS` and the counter-exposed view,
        whose exposures come from training images only."""
        bank = exposure_bank(self.data.subset("train"), self.data.image_size, seed=self.data.seed)
        return {**VIEWS, "counter_exposed": counter_exposed(bank)}

    def views_at(self, size: int) -> dict:
        """:attr:`views` and the marker view for images decoded at ``size``."""
        from .anatomy import marker_view

        return {**self.views, "markers": marker_view(size)}

    @cached_property
    def input_size(self) -> int:
        """The size the anatomy instruments decode images at (that of the lung crop)."""
        from ..lungs.crop import decode_size
        return decode_size(self.data.image_size)

    @cached_property
    def images(self) -> np.ndarray:
        """This split's images at :attr:`input_size` (for the anatomy instruments)."""
        batches = self.data.dataset(self.split, self.input_size).map(lambda x, y: x)
        return np.concatenate([b.numpy() for b in batches])

    @cached_property
    def fields(self) -> dict:
        """The lung fields of each image: ``probability`` maps, lung ``boxes``
        (x0, y0, x1, y1) and whether each was ``found``, and ``table``, their
        statistics (``lungs.fields.field_statistics``) with the label."""
        from ..lungs.fields import field_statistics, lung_fields

        probability, boxes, found = lung_fields(self.images)
        table = field_statistics(probability, boxes, found).assign(label=self.labels)
        return {"probability": probability, "boxes": boxes, "found": found, "table": table}

    @cached_property
    def scale_matched(self) -> np.ndarray:
        """Which images form the scale-matched subset (``anatomy.scale_matched_mask``)."""
        from .anatomy import scale_matched_mask
        return scale_matched_mask(self.labels, self.fields["table"]["box_area"].to_numpy())

    @cached_property
    def structure(self) -> np.ndarray:
        """Each image's structure inside its lung box (``anatomy.structure`` of
        the crop to the lung fields, whatever the recipe)."""
        from ..lungs.crop import crop_model
        from .anatomy import structure

        crop = crop_model(self.input_size, self.data.image_size, "crop")
        return structure(crop.predict(self.images, verbose=0))

    @cached_property
    def structure_matched(self) -> np.ndarray:
        """Which images form the structure-matched subset
        (``anatomy.structure_matched_mask``)."""
        from .anatomy import structure_matched_mask
        return structure_matched_mask(self.labels, self.structure)

    def saliency(self, trained, batch_size: int = 64) -> np.ndarray:
        """Per image, the share of ``trained``'s Grad-CAM mass inside its lung
        fields, in the space the networks see (``anatomy.saliency_share``); the
        map of each image's own class: of the pneumonia score for pneumonia
        images, of the normal score for normal ones (where the model finds
        pneumonia in a healthy child says little; where it finds health does)."""
        from .anatomy import saliency_share
        from .explain import grad_cam

        recipe = trained.recipe
        size = int(trained.networks[0].input_shape[1])
        pre = recipe.preprocess(size)
        key = ("saliency", getattr(pre, "cache_key", None), size)
        if key not in self._prepared:
            self._prepared[key] = (pre.predict(self.images, verbose=0) if pre is not None
                                   else _resized(self.images, size))
        shares = []
        for i in range(0, len(self.images), batch_size):
            x = self._prepared[key][i:i + batch_size]
            own = self.labels[i:i + batch_size] > 0
            shares.append(saliency_share(grad_cam(trained.networks, x, pneumonia=own),
                                         self._lungs_seen(recipe, size)[i:i + batch_size]))
        return np.concatenate(shares)

    def _lungs_seen(self, recipe, size: int) -> np.ndarray:
        """Every image's lung mask in the space of ``recipe``'s network input
        (``anatomy.lungs_as_the_network_sees_them``), computed once per crop
        and size: the seeds of a recipe, and the recipes sharing a crop, reuse it."""
        from .anatomy import lungs_as_the_network_sees_them

        key = ("lungs_seen", bool(recipe.lungs), size)
        if key not in self._prepared:
            self._prepared[key] = lungs_as_the_network_sees_them(
                recipe, self.fields["probability"], self.fields["boxes"], size)
        return self._prepared[key]

    def lung_area(self, recipe, size: int) -> np.ndarray:
        """Per image, the share of the network's input (``size`` pixels, as
        ``recipe`` prepares it) inside the lung fields: the saliency share a
        map spread evenly over the image would get (its chance level)."""
        from .anatomy import saliency_share

        lungs = self._lungs_seen(recipe, size)
        return saliency_share(np.ones(lungs.shape, "float32"), lungs)

    def lung_map(self, recipe, size: int, resolution: int) -> np.ndarray:
        """Per image, the saliency share of the lungs' own map at the Grad-CAM
        maps' ``resolution`` (``anatomy.lung_map_share``): the share a network
        that reads the lungs alone would get, where :meth:`lung_area` is chance."""
        from .anatomy import lung_map_share

        return lung_map_share(self._lungs_seen(recipe, size), resolution)

    def dataset(self, recipe=None):
        """This split's ``(image, label)`` batches, decoded as ``recipe`` needs."""
        size = recipe.decode_size(self.data) if recipe is not None else self.data.image_size
        return self.data.dataset(self.split, size)

    # ------------------------------------------------------------ scoring

    def scores(self, trained, with_views: bool = True, views: dict | None = None) -> dict:
        """Everything the instruments read, as scores of ``trained`` (a
        ``TrainedModel``): ``plain`` (this split's images), ``views`` (each
        stress view of them; given as ``views`` when already scored, see
        :meth:`seed_scores`) and, on validation, ``sanity`` (Kaggle's 16
        ``val`` images, when they hold both classes)."""
        ds = self.dataset(trained.recipe)
        plain = (trained.val_scores if self.split == "validation" and len(trained.val_scores)
                 else trained.scores(ds))
        out = {"plain": np.asarray(plain)}
        if with_views:
            size = int(trained.networks[0].input_shape[1])
            out["views"] = views if views is not None else self.view_scores(trained)
            out["saliency"] = self.saliency(trained)
            out["lung_area"] = self.lung_area(trained.recipe, size)
        sanity = self.data.subset("sanity")
        if self.split == "validation" and len(sanity) and sanity["label"].nunique() == 2:
            out["sanity"] = trained.scores(self.data.dataset("sanity",
                                                             trained.recipe.decode_size(self.data)))
        return out

    def view_scores(self, trained, each_network: bool = False) -> dict:
        """``trained``'s scores on every stress view of this split: ``{view:
        scores}``; with ``each_network``, ``{view: [scores of each network]}``,
        every network scored in the same forward pass (several networks of one
        batch keep both cores busier than one network at a time)."""
        from ..modeling.models import inference_model, split_networks

        recipe, networks = trained.recipe, trained.networks
        ds = self.dataset(recipe)
        views = self.views_at(recipe.decode_size(self.data))
        prepare = recipe.preprocess(int(networks[0].input_shape[1]))
        fused = each_network and len(networks) > 1
        # with a crop, each view is cropped once for every seed of the recipe (``_prepared``)
        head = inference_model(networks, recipe.views, each_network=fused)
        out = view_scores(head, ds, views, prepare, self._prepared)
        if not each_network:
            return out
        return {name: split_networks(s, len(networks)) if fused else [s]
                for name, s in out.items()}

    def seed_scores(self, trained: list) -> list[dict]:
        """:meth:`scores` of each of ``trained`` (the trainings of one recipe,
        one network each, e.g. one per seed), the stress views of all of them
        scored together, every network in the same forward pass."""
        from dataclasses import replace

        if len({t.recipe.name for t in trained}) != 1 or any(len(t.networks) != 1
                                                             for t in trained):
            raise ValueError("seed_scores takes trainings of one recipe, one network each")
        together = replace(trained[0], networks=[t.networks[0] for t in trained])
        views = self.view_scores(together, each_network=True)
        return [self.scores(t, views={name: s[i] for name, s in views.items()})
                for i, t in enumerate(trained)]

    def operating_points(self, scores, target_recall: float = 0.98) -> dict:
        """The task's operating points chosen on these scores (validation only)."""
        if self.split != "validation":
            raise ValueError(f"operating points are chosen on validation, not on {self.split!r}")
        return self.task.thresholds(self.labels, scores, target_recall)

    def instruments(self, scores: dict, thresholds: dict) -> dict:
        """From :meth:`scores`, at ``thresholds``: ``validation`` (this split's
        metrics), ``counter_framed``, ``stress`` (a table, one row per view) and
        ``sanity`` (pneumonia vs normal on the 16 ``val`` images)."""
        out = {"validation": self.task.metrics(self.labels, scores["plain"], thresholds),
               "counter_framed": self.counter_framed_metrics(scores["plain"], thresholds)}
        if scores.get("views"):
            out["stress"] = stress_table(scores["views"], self.labels, self.task, thresholds)
        if "sanity" in scores:
            out["sanity"] = binary_metrics(self.data.labels("sanity") > 0,
                                           pneumonia_score(scores["sanity"]),
                                           thresholds["pneumonia"])
        if scores.get("views"):
            out["anatomy"] = self.anatomy(scores, thresholds, out["stress"])
        return out

    def anatomy(self, scores: dict, thresholds: dict, stress) -> dict:
        """The anatomy-grounded figures (``anatomy``): saliency share inside
        the lungs per class, the scale-matched and structure-matched subsets'
        ROC AUC and specificity, and the specificity on the marker view."""
        pneumonia = self.labels > 0
        out = {}
        if "saliency" in scores:
            share = np.asarray(scores["saliency"], dtype=float)
            for name, part in (("saliency_normal", share[~pneumonia]),
                               ("saliency_pneumonia", share[pneumonia])):
                # NaN where no image has any Grad-CAM mass (an untrained network)
                out[name] = float(np.nanmean(part)) if np.isfinite(part).any() else float("nan")
        if "lung_area" in scores:  # the chance level of the saliency share, per class
            area = np.asarray(scores["lung_area"], dtype=float)
            out["lung_area_normal"] = float(np.mean(area[~pneumonia]))
            out["lung_area_pneumonia"] = float(np.mean(area[pneumonia]))
        score = pneumonia_score(scores["plain"])
        for prefix, mask in (("sm", self.scale_matched), ("st", self.structure_matched)):
            m = binary_metrics(pneumonia[mask], score[mask], thresholds["pneumonia"])
            out.update({f"{prefix}_auc": m["roc_auc"], f"{prefix}_specificity": m["specificity"],
                        f"{prefix}_recall": m["recall"],
                        f"{prefix}_n_normal": int((mask & ~pneumonia).sum()),
                        f"{prefix}_n_pneumonia": int((mask & pneumonia).sum())})
        if "markers" in stress.index:
            out["marker_specificity"] = float(stress.loc["markers", "specificity"])
        return out

    def evaluate(self, trained) -> dict:
        """:meth:`instruments` of ``trained`` at its own operating points."""
        return self.instruments(self.scores(trained), trained.thresholds)

    def counter_framed_metrics(self, scores, thresholds: dict) -> dict:
        """The task's metrics on the counter-framed images (at the operating
        points chosen on all of validation), with the image counts."""
        mask, labels = self.counter_framed, self.labels
        m = self.task.metrics(labels[mask], np.asarray(scores)[mask], thresholds, partial=True)
        m["n_normal"] = int((mask & (labels == 0)).sum())
        m["n_pneumonia"] = int((mask & (labels > 0)).sum())
        return m

    def test(self, trained, n_boot: int = 1000) -> dict:
        """The single look at this split (``test``): the task's metrics at the
        validation thresholds, with patient-bootstrap 95% intervals (``n_boot``
        resamples), and the scores."""
        scores = trained.scores(self.dataset(trained.recipe))
        m = self.task.metrics(self.labels, scores, trained.thresholds, patients=self.patients,
                              n_boot=n_boot, seed=self.data.seed)
        return {"metrics": m, "scores": scores}


def _resized(images, size: int) -> np.ndarray:
    if images.shape[1] == size:
        return images
    import tensorflow as tf
    return tf.image.resize(images, (size, size), antialias=True).numpy()


def average_scores(all_scores: list[dict]) -> dict:
    """The mean of several models' :meth:`Evaluator.scores`: the scores of the
    model that averages them (``models.inference_model``); the saliency share
    of the mean model is the mean of its networks' shares."""
    first = all_scores[0]
    out = {k: np.mean([s[k] for s in all_scores], axis=0) for k in ("plain", "sanity", "saliency",
                                                                 "lung_area") if k in first}
    if "views" in first:
        out["views"] = {v: np.mean([s["views"][v] for s in all_scores], axis=0)
                        for v in first["views"]}
    return out


def worst_view(stress, figure: str = "specificity", views=None):
    """The stress view with the lowest ``figure`` (among ``views``, default
    all) and its row; ``stress`` is a table or its ``metrics.json`` dict."""
    table = stress if isinstance(stress, pd.DataFrame) else pd.DataFrame.from_dict(
        stress, orient="index")
    if views is not None:
        table = table.loc[[v for v in views if v in table.index]]
    name = table[figure].astype(float).idxmin()
    return name, table.loc[name]


def comparison_row(name: str, task, instruments: dict, test: dict | None = None,
                   timing: dict | None = None) -> dict:
    """One row of a comparison table: the key figures on validation, on the
    counter-framed subset, the worst stress view (of all, and of the
    geometric ones), the anatomy instruments, the 16 sanity images, and test
    when given (each column prefixed by where it was measured)."""
    row = {"model": name}
    row.update({f"val_{k}": v for k, v in task.key_figures(instruments["validation"]).items()})
    row["threshold"] = instruments["validation"]["binary"]["threshold"]
    cf = instruments["counter_framed"]
    row.update({f"cf_{k}": v for k, v in task.key_figures(cf).items()})
    stress = instruments.get("stress")
    if stress is not None:
        figures = stress.drop(columns=["mean_score_normal", "mean_score_pneumonia"])
        row.update({f"stress_worst_{k}": v for k, v in figures.min().items()})
        geometric = figures.loc[[v for v in GEOMETRIC if v in figures.index]]
        if len(geometric):
            row.update({f"geo_worst_{k}": v for k, v in geometric.min().items()})
            row["geo_worst_view"] = geometric["specificity"].astype(float).idxmin()
        for view in ("counter_exposed", "zoom_in_1.2", "markers", "faint_structure"):
            if view in stress.index:
                row[f"stress_{view}_specificity"] = stress.loc[view, "specificity"]
    for key, value in instruments.get("anatomy", {}).items():
        row[key] = value
    if "sanity" in instruments:
        s = instruments["sanity"]
        row.update({"sanity_auc": s["roc_auc"], "sanity_specificity": s["specificity"]})
    if test is not None:
        row.update({f"test_{k}": v for k, v in task.key_figures(test["metrics"]).items()})
    if timing:
        row.update({k: timing[k] for k in ("epochs_run", "train_seconds") if k in timing})
    return row


def instruments_from_document(doc: dict) -> dict:
    """The validation instruments of a run, read back from its ``metrics.json``."""
    out = {k: doc[k] for k in ("validation", "counter_framed", "sanity", "anatomy") if k in doc}
    if "stress" in doc:
        out["stress"] = pd.DataFrame.from_dict(doc["stress"], orient="index")
    return out


#: Short column names for wide tables, in reading order, each defined once.
SHORT_NAMES = {
    "val_auc": "AUC", "val_recall": "recall", "val_specificity": "spec", "threshold": "threshold",
    "cf_auc": "cf AUC", "cf_recall": "cf recall", "cf_specificity": "cf spec",
    "stress_counter_exposed_specificity": "exposed spec",
    "stress_zoom_in_1.2_specificity": "zoom-in spec",
    "geo_worst_specificity": "worst geo spec", "geo_worst_auc": "worst geo AUC",
    "stress_worst_auc": "worst-view AUC", "stress_worst_recall": "worst-view recall",
    "stress_worst_specificity": "worst-view spec",
    "sm_auc": "scale-matched AUC", "sm_specificity": "scale-matched spec",
    "st_auc": "structure-matched AUC", "st_specificity": "structure-matched spec",
    "stress_markers_specificity": "marker spec",
    "stress_faint_structure_specificity": "faint spec",
    "saliency_normal": "saliency in lungs (normal)",
    "saliency_pneumonia": "saliency in lungs (pneumonia)",
    "lung_area_normal": "lung area (normal)",
    "lung_area_pneumonia": "lung area (pneumonia)",
    "sanity_auc": "sanity AUC", "sanity_specificity": "sanity spec"}
SHORT_DEFINITIONS = {
    "cf": "the counter-framed validation subset (normal images framed like pneumonia, "
          "pneumonia images framed like normal, by a model that sees only the borders)",
    "exposed": "validation images counter-exposed (given the exposure of a training image of "
               "the other class)",
    "zoom-in": "validation images zoomed in 1.2x",
    "worst geo": "the worst geometric stress view (zoom out, zoom in, shifts) for specificity",
    "worst-view": "the worst of all stress views",
    "scale-matched": "the validation normals whose lungs fill the frame most and the "
                     "pneumonias whose lungs fill it least",
    "structure-matched": "the validation normals whose lungs show the least structure (ribs, "
                         "vessels, texture) and the pneumonias whose lungs show the most",
    "marker": "validation images with laterality letters and text pasted outside the lungs",
    "faint": "validation images with their structure (ribs, vessels, lung texture) 20% "
             "fainter about the local mean, as in the originals of Kaggle's val normals",
    "saliency in lungs": "the share of Grad-CAM mass inside the lung fields",
    "lung area": "the share of the network's input inside the lung fields (the saliency "
                 "share of a map spread evenly)",
    "sanity": "Kaggle's 16 val images (for the record only)"}


def short_table(table: pd.DataFrame, keep=("recipe", "seed")) -> pd.DataFrame:
    """The columns of :data:`SHORT_NAMES` (and ``keep``) under their short
    names (defined in :data:`SHORT_DEFINITIONS`), rounded to 3 digits."""
    cols = [c for c in (*keep, *SHORT_NAMES) if c in table]
    return table[cols].rename(columns=SHORT_NAMES).round(3)


def comparison_table(rows: list[dict]) -> pd.DataFrame:
    """Rows of :func:`comparison_row` as a table indexed by model name."""
    return pd.DataFrame(rows).set_index("model")
