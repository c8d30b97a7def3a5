"""Patient split and tf.data pipeline."""

import numpy as np
import pytest

from pneumo_helpers.data import load_image_table, patient_split
from pneumo_helpers.data.pipeline import load_arrays, make_dataset
from pneumo_helpers.data.splits import balanced_subset

from .conftest import write_image


def test_patient_split_no_leak_and_ratio_kept(table):
    s = patient_split(table, val_fraction=0.15, seed=7)
    train, val = s[s.subset == "train"], s[s.subset == "validation"]
    assert not set(train.patient) & set(val.patient)
    assert len(train) + len(val) == (table.split == "train").sum()
    assert (s.loc[s.split == "val", "subset"] == "sanity").all()
    assert (s.loc[s.split == "test", "subset"] == "test").all()
    whole = table.loc[table.split == "train", "label"].mean()
    assert abs(val.label.mean() - whole) < 0.02
    assert abs(train.label.mean() - whole) < 0.02
    assert 0.14 < len(val) / (len(train) + len(val)) < 0.17


def test_patient_split_seeded(table):
    a = patient_split(table, seed=1)["subset"]
    b = patient_split(table, seed=1)["subset"]
    c = patient_split(table, seed=2)["subset"]
    assert a.equals(b)
    assert not a.equals(c)


def test_patient_split_rejects_bad_fraction(table):
    with pytest.raises(ValueError, match="val_fraction"):
        patient_split(table, val_fraction=1.5)


def test_balanced_subset(table):
    sub = balanced_subset(table[table.split == "train"], 200, seed=0)
    assert len(sub) == 200
    assert sub.label.value_counts().to_dict() == {0: 100, 1: 100}
    assert balanced_subset(table, 0) is table


def test_pipeline_shapes_and_range(tiny_data):
    t = load_image_table(tiny_data)
    write_image(tiny_data / "extra.png", size=(300, 120), mode="RGB", fmt="PNG")
    t.loc[len(t)] = {**t.iloc[0].to_dict(), "path": str(tiny_data / "extra.png")}
    ds = make_dataset(t, image_size=24, batch_size=5, shuffle=True, seed=3)
    batches = list(ds)
    assert sum(len(y) for _, y in batches) == len(t)
    for x, y in batches:
        assert x.shape[1:] == (24, 24, 1) and x.dtype.name == "float32"
        assert 0.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0
    # same seed, same order
    again = [y.numpy().tolist() for _, y in make_dataset(t, 24, 5, shuffle=True, seed=3)]
    assert again == [y.numpy().tolist() for _, y in batches]


def test_pipeline_on_real_images_of_both_sizes(table):
    # val images are large grayscale originals, the rest 224x224 RGB JPEGs
    sample = table.groupby("split").head(4)
    x, y = load_arrays(sample, image_size=64)
    assert x.shape == (len(sample), 64, 64, 1)
    assert 0.2 < x.mean() < 0.8 and x.std() > 0.1


def test_empty_table_is_an_error(table):
    with pytest.raises(ValueError, match="empty"):
        make_dataset(table.iloc[:0])


def test_reduced_size_jpeg_decoding_matches_a_full_decode(data_dir):
    # Kaggle's originals (1000-2000 px) are decoded at 1/4 or 1/8 of their size,
    # then resized: nearly the image a full decode and resize gives
    import tensorflow as tf

    from pneumo_helpers.data.images import decode_jpeg_or_png as _decode
    from pneumo_helpers.data.images import decode as decode_image

    for f in sorted((data_dir / "val" / "NORMAL").iterdir())[:4]:
        data = tf.io.read_file(str(f))
        assert _decode(data, 128).shape[0] * 4 <= tf.io.extract_jpeg_shape(data)[0]
        full = tf.io.decode_image(data, channels=1, expand_animations=False)
        full = tf.clip_by_value(tf.image.resize(full, (128, 128), antialias=True) / 255.0, 0, 1)
        fast = decode_image(tf.constant(str(f)), 128)
        assert float(tf.reduce_mean(tf.abs(fast - full))) < 0.01
    # 224 px files are decoded whole: the same pixels as before
    f = sorted((data_dir / "test" / "NORMAL").iterdir())[0]
    data = tf.io.read_file(str(f))
    assert _decode(data, 128).shape[:2] == (224, 224)


def test_training_order_depends_on_its_seed_alone(data_dir):
    from pneumo_helpers.data import prepare_data
    data = prepare_data(data_dir, "binary", 16, 64, seed=1, max_train_images=200)

    def first_epoch(ds):
        return np.concatenate([y.numpy() for _, y in ds]).tolist()

    a = data.dataset("train", shuffle_seed=5)
    order = first_epoch(a)
    assert first_epoch(a) != order  # reshuffled every epoch
    assert first_epoch(data.dataset("train", shuffle_seed=5)) == order  # a new pipeline starts over
    assert first_epoch(data.dataset("train", shuffle_seed=6)) != order
    assert sorted(order) == sorted(data.labels("train").tolist())
