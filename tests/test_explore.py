"""pneumo_helpers.explore on tiny folders and constructed arrays, its numbers on
the real data, and a papermill run of the exploration notebook."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from pneumo_helpers.data import explore, load_image_table
from pneumo_helpers.evaluation.plots import save

from .conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "01_data_exploration.ipynb"


@pytest.fixture
def tiny_table(tiny_data):
    return load_image_table(tiny_data)


def framed(n_normal=4, n_pneumonia=6, size=32, width=8):
    """Constructed images: NORMAL has a left border of 0.1, PNEUMONIA of 0.3,
    the rest of every image is 0.5."""
    labels = np.array([0] * n_normal + [1] * n_pneumonia)
    images = np.full((len(labels), size, size, 1), 0.5, dtype=np.float32)
    images[:, :, :width, 0] = np.where(labels == 0, 0.1, 0.3)[:, None, None]
    return images, labels


# ------------------------------------------------------------------ tables

def test_type_counts_on_tiny_folder(tiny_table):
    counts = explore.type_counts(tiny_table)
    assert counts.to_numpy().sum() == len(tiny_table) == 18
    assert list(counts.index) == ["train", "val", "test"]
    assert list(counts.columns) == [("NORMAL", "normal"), ("PNEUMONIA", "bacteria"),
                                    ("PNEUMONIA", "virus")]
    # tiny_data: per split, person0 and person2 are virus, person1 bacteria
    assert counts[("PNEUMONIA", "virus")].tolist() == [2, 2, 2]


def test_type_counts_on_real_data(table):
    counts = explore.type_counts(table)
    assert counts.to_numpy().sum() == len(table)
    assert counts.loc["train"].tolist() == [1107, 2274, 1210]
    assert counts.loc["val", ("PNEUMONIA", "virus")] == 0  # Kaggle's val has no viral image
    assert counts.loc["test", "PNEUMONIA"].sum() == 391


def test_size_table(tiny_table, table):
    sizes = explore.size_table(tiny_table)
    assert sizes["images"].tolist() == [6, 6, 6]
    assert sizes["distinct_sizes"].tolist() == [3, 3, 3]  # widths 40, 50, 60
    assert sizes.loc["train", "channels"] == "1, 3"
    real = explore.size_table(table)
    assert real.loc["train", ["width_max", "height_max", "distinct_sizes"]].tolist() == [224, 224, 1]
    assert real.loc["val", "width_min"] > 900


def test_patients_table_counts_repeated_patients():
    rows = [("NORMAL", "normal", "IM-1"), ("NORMAL", "normal", "IM-1"), ("NORMAL", "normal", "IM-2"),
            ("PNEUMONIA", "bacteria", "person1"), ("PNEUMONIA", "virus", "person1"),
            ("PNEUMONIA", "bacteria", "person1"), ("PNEUMONIA", "bacteria", "person2")]
    table = pd.DataFrame(rows, columns=["class_name", "type", "patient"]).assign(
        split="train", path=lambda t: [f"f{i}.jpeg" for i in range(len(t))])
    out = explore.patients_table(table)
    assert out.loc["NORMAL"].to_dict() == dict(
        patients=2, images=3, images_per_patient=1.5, max_images=2, patients_with_several=1,
        share_of_images=0.667, patients_with_both_types=0)
    assert out.loc["PNEUMONIA", ["patients", "images", "max_images"]].tolist() == [2, 4, 3]
    assert out.loc["PNEUMONIA", "share_of_images"] == 0.75
    assert out.loc["PNEUMONIA", "patients_with_both_types"] == 1


# ------------------------------------------------------- pixel statistics

def test_border_intensity_separates_constructed_images():
    images, labels = framed(width=8)
    out = explore.border_intensity(images, labels, width=8)
    assert out["images"].tolist() == [4, 6]
    np.testing.assert_allclose(out["border_mean"], [0.1 * 255, 0.3 * 255], rtol=1e-5)
    np.testing.assert_allclose(out["border_std"], [0, 0], atol=1e-3)
    # whole-image means: a quarter of the image is border
    np.testing.assert_allclose(out["image_mean"], [(0.1 + 3 * 0.5) / 4 * 255,
                                                   (0.3 + 3 * 0.5) / 4 * 255], rtol=1e-5)
    # (n, h, w) arrays give the same table; a wider border mixes in the 0.5 interior
    pd.testing.assert_frame_equal(explore.border_intensity(images[..., 0], labels, width=8), out)
    wider = explore.border_intensity(images, labels, width=16)
    np.testing.assert_allclose(wider["border_mean"], [0.3 * 255, 0.4 * 255], rtol=1e-5)


def test_image_stats_and_class_means():
    images, labels = framed(width=8)
    stats = explore.image_stats(images, labels)
    assert stats["class_name"].tolist() == ["NORMAL"] * 4 + ["PNEUMONIA"] * 6
    assert (stats["contrast"] > 0).all()
    flat = np.full((2, 5, 5), 0.2, dtype=np.float32)
    np.testing.assert_allclose(explore.image_stats(flat, [0, 1])["contrast"], 0, atol=1e-4)
    means = explore.class_mean_images(images, labels)
    np.testing.assert_allclose(means["NORMAL"], images[labels == 0, ..., 0].mean(0) * 255, rtol=1e-5)
    np.testing.assert_allclose(means["PNEUMONIA"][:, 0], 0.3 * 255, rtol=1e-5)


@pytest.mark.slow
def test_real_border_intensity_shows_framing(table):
    """The README's number: the 20 leftmost columns (224 px) are darker in NORMAL."""
    from pneumo_helpers.data.pipeline import load_arrays

    sample = table[table["split"] == "train"].groupby("label").sample(n=400, random_state=0)
    out = explore.border_intensity(*load_arrays(sample, 224), width=20)
    normal, pneumonia = out["border_mean"]
    assert 35 < normal < 45 and 44 < pneumonia < 55 and pneumonia - normal > 5
    # not a brightness difference: whole images differ by far less
    assert abs(out["image_mean"].diff().iloc[-1]) < 3


# ------------------------------------------------------------------ figures

def test_plot_class_balance_labels_every_bar(tiny_table):
    fig = explore.plot_class_balance(tiny_table)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    by_type = explore.type_counts(tiny_table).to_numpy().ravel()
    assert sorted(int(t.get_text()) for t in fig.axes[1].texts) == sorted(by_type)
    assert sum(int(t.get_text()) for t in fig.axes[0].texts) == len(tiny_table)


def test_plot_sample_grid(tiny_table):
    fig = explore.plot_sample_grid(tiny_table, n_per_class=4, seed=1)
    assert len(fig.axes) == 3 * 4
    shown = [ax for ax in fig.axes if ax.axison]
    # 9 normal, 3 bacteria, 6 virus images: the bacteria row has one empty cell
    assert len(shown) == 4 + 3 + 4
    names = set(tiny_table["path"].map(lambda p: Path(p).name))
    assert {ax.get_title() for ax in shown} <= names
    assert [fig.axes[4 * r].get_ylabel() for r in range(3)] == [
        "NORMAL", "PNEUMONIA\nbacteria", "PNEUMONIA\nvirus"]


def test_plot_size_and_intensity(tiny_table):
    assert len(explore.plot_size_distribution(tiny_table).axes) == 2
    images, labels = framed()
    assert len(explore.plot_intensity(images, labels).axes) == 2


def test_plot_framing(tmp_path):
    images, labels = framed()
    fig = explore.plot_framing(images, labels, width=8)
    assert len(fig.axes) == 7  # 2 mean images, difference + colour bar, 3 plots
    path = save(fig, tmp_path / "new" / "folder", "framing")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="both classes"):
        explore.plot_framing(images[labels == 0], labels[labels == 0])


# ------------------------------------------------------------------ notebook

@pytest.mark.slow
def test_notebook_runs_on_tiny_data(tiny_data, tmp_path):
    import papermill

    figures = tmp_path / "img"
    papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "out.ipynb"), cwd=str(NOTEBOOK.parent),
        parameters=dict(data_dir=str(tiny_data), image_size=32, figures_dir=str(figures)),
        kernel_name="python3", progress_bar=False)
    assert sorted(p.name for p in figures.iterdir()) == ["class_balance.png", "framing.png"]
