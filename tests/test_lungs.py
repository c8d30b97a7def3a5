"""The lung-field model, the crop to the lung fields and the instruments
grounded in anatomy, on real X-rays and on masks made in the test."""

import numpy as np
import pytest

from pneumo_helpers.evaluation import anatomy
from pneumo_helpers.lungs import crop


def xrays(data_dir, n=4, size=128):
    from pneumo_helpers.data.images import load_image
    files = [sorted((data_dir / "test" / c).iterdir())[i] for c in ("NORMAL", "PNEUMONIA")
             for i in range(n // 2)]
    return np.stack([load_image(f, size) for f in files])


def test_the_lung_field_model_loads_and_finds_two_lungs(data_dir):
    from pneumo_helpers.lungs.fields import components, postprocess
    from pneumo_helpers.lungs.segmenter import SEGMENTER_FILE, load_segmenter

    assert SEGMENTER_FILE.is_file()  # shipped with the package
    model = load_segmenter()
    assert model.input_shape == (None, 128, 128, 1) and not model.trainable
    x = xrays(data_dir)
    prob = model.predict(x, verbose=0)
    assert prob.shape == (4, 128, 128, 1) and 0 <= prob.min() and prob.max() <= 1
    for p in prob[..., 0]:
        mask = postprocess(p)
        assert 0.08 < mask.mean() < 0.5
        lungs = components(mask)
        assert len(lungs) == 2 and {lungs[0]["cx"] < 0.5, lungs[1]["cx"] < 0.5} == {True, False}


def lungs_map(boxes, size=128):
    """A probability map with a rectangle of 1 per ``(x0, y0, x1, y1)`` pixel box."""
    p = np.zeros((size, size), "float32")
    for x0, y0, x1, y1 in boxes:
        p[y0:y1, x0:x1] = 1.0
    return p


def body(size=128, left=16, right=112):
    """An image whose body spans columns ``left`` to ``right``."""
    img = np.zeros((size, size), "float32")
    img[:, left:right] = 0.8
    return img


def boxes_of(maps, images, margin=0.0):
    import tensorflow as tf
    out, found = crop.lung_boxes(tf.constant(np.stack(maps)[..., None]),
                                 tf.constant(np.stack(images)[..., None]), margin)
    return np.asarray(out), np.asarray(found)


def test_a_known_mask_gives_a_known_box():
    two = lungs_map([(24, 20, 58, 100), (70, 24, 104, 96)])
    speck = two.copy()
    speck[120:122, 2:4] = 1  # a speck far from the lungs does not widen the box
    b, b_speck = boxes_of([two, speck], [body()] * 2)[0]
    np.testing.assert_allclose(b, [20 / 128, 24 / 128, 100 / 128, 104 / 128], atol=1e-6)
    np.testing.assert_allclose(b_speck, b, atol=1e-6)
    # a margin of 10% of the box on each side, clipped to the image
    (m,), _ = boxes_of([two], [body()], 0.1)
    h, w = 80 / 128, 80 / 128
    np.testing.assert_allclose(m, [20 / 128 - 0.1 * h, 24 / 128 - 0.1 * w, 100 / 128 + 0.1 * h,
                                   104 / 128 + 0.1 * w], atol=1e-6)


def test_one_missing_lung_is_mirrored_about_the_body_midline():
    # the right-hand lung is white (consolidated) and missed; the body is centred at 64
    (b,), (found,) = boxes_of([lungs_map([(24, 20, 58, 100)])], [body(left=16, right=112)])
    assert found
    np.testing.assert_allclose(b, [20 / 128, 24 / 128, 100 / 128, (128 - 24) / 128], atol=1e-6)
    # a body off centre (midline at 70 px): the mirror follows it
    (b,), _ = boxes_of([lungs_map([(30, 20, 64, 100)])], [body(left=28, right=112)])
    assert b[3] == pytest.approx((2 * 70 - 30) / 128, abs=1e-6)


def test_no_lungs_gives_the_fallback_box():
    (b,), (found,) = boxes_of([np.zeros((128, 128), "float32")], [body()])
    assert not found
    x0, y0, x1, y1 = crop.FALLBACK_BOX
    np.testing.assert_allclose(b, [y0, x0, y1, x1], atol=1e-6)


def test_crop_to_box_cuts_resizes_and_masks():
    import tensorflow as tf
    img = np.tile(np.linspace(0, 1, 64, dtype="float32"), (64, 1))[None, ..., None]
    boxes = tf.constant([[0.0, 0.5, 1.0, 1.0]])  # the right half
    out = np.asarray(crop.CropToBox(32)([tf.constant(img), boxes]))
    assert out.shape == (1, 32, 32, 1)
    assert out[0, :, 0, 0].mean() == pytest.approx(0.5, abs=0.02) and out.max() == 1
    # masked: black outside the (dilated) lung fields, kept inside
    prob = np.zeros((1, 64, 64, 1), "float32")
    prob[0, 16:48, 40:56] = 1
    masked = np.asarray(crop.CropToBox(64, mask_outside=True, dilate=0.0)(
        [tf.constant(img), tf.constant([[0.0, 0.0, 1.0, 1.0]]), tf.constant(prob)]))
    assert (masked[0, :10] == 0).all() and (masked[0, 20:44, 42:54, 0] > 0.6).all()


def test_crop_model_saves_and_loads_in_safe_mode(data_dir, tmp_path):
    import keras

    model = crop.crop_model(224, 128, "crop")
    x = xrays(data_dir, 2, 224)
    expected = model.predict(x, verbose=0)
    assert expected.shape == (2, 128, 128, 1)
    model.save(tmp_path / "crop.keras")
    again = keras.models.load_model(tmp_path / "crop.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, atol=1e-5)


def test_saliency_share_by_hand():
    cams = np.zeros((2, 4, 4), "float32")
    cams[0, :2] = 1.0  # all of image 0's mass in the top half
    cams[1] = 1.0  # image 1's mass spread evenly
    lungs = np.zeros((2, 4, 4), bool)
    lungs[:, :2] = True  # the lungs: the top half
    np.testing.assert_allclose(anatomy.saliency_share(cams, lungs), [1.0, 0.5])
    assert np.isnan(anatomy.saliency_share(np.zeros((1, 4, 4)), lungs[:1]))[0]


def test_scale_matched_subset_by_hand():
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    area = np.array([0.40, 0.45, 0.50, 0.60, 0.70, 0.45, 0.55, 0.60, 0.65, 0.70])
    mask = anatomy.scale_matched_mask(labels, area)
    # the normals at or above their 70th percentile (0.58), the pneumonias at or below
    # their 30th percentile (0.56)
    assert mask.tolist() == [False, False, False, True, True, True, True, False, False, False]


@pytest.fixture(scope="module")
def small_split(data_dir):
    from pneumo_helpers.data import prepare_data
    return prepare_data(data_dir, "binary", 64, 32, seed=5, max_train_images=120)


def test_scale_matched_subset_comes_from_validation_patients_only(small_split):
    from pneumo_helpers.evaluation.instruments import Evaluator

    ev = Evaluator(small_split, "validation")
    table = ev.fields["table"]
    assert len(table) == len(ev.labels) == len(small_split.subset("validation"))
    mask = ev.scale_matched
    assert (mask & (ev.labels == 0)).any() and (mask & (ev.labels == 1)).any()
    picked = table[mask]
    normals, pneumonias = picked[picked.label == 0], picked[picked.label == 1]
    assert normals.box_area.min() >= table[table.label == 0].box_area.quantile(0.7) - 1e-9
    assert pneumonias.box_area.max() <= table[table.label == 1].box_area.quantile(0.3) + 1e-9
    # the training images take no part: another split's train images give the same subset
    other = small_split.table.copy()
    keep = (other.subset != "train") | (np.arange(len(other)) % 2 == 0)
    from pneumo_helpers.data.splits import SplitData
    again = Evaluator(SplitData(other[keep], small_split.task, 64, 32, 5), "validation")
    np.testing.assert_array_equal(again.scale_matched, mask)


def test_structure_matched_subset_by_hand_and_from_validation_patients(small_split):
    from pneumo_helpers.evaluation.instruments import Evaluator

    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    structure = np.array([0.06, 0.07, 0.08, 0.09, 0.10, 0.05, 0.06, 0.07, 0.08, 0.09])
    # the normals at or below their 30th percentile (0.072), the pneumonias at or above
    # their 70th percentile (0.078): the least-structured healthy, the most-structured sick
    assert anatomy.structure_matched_mask(labels, structure).tolist() == \
        [True, True, False, False, False, False, False, False, True, True]
    ev = Evaluator(small_split, "validation")
    assert ev.structure.shape == ev.labels.shape and (ev.structure > 0).all()
    mask, normal = ev.structure_matched, ev.labels == 0
    assert (mask & normal).any() and (mask & ~normal).any()
    assert ev.structure[mask & normal].max() <= np.quantile(ev.structure[normal], 0.3) + 1e-9
    assert ev.structure[mask & ~normal].min() >= np.quantile(ev.structure[~normal], 0.7) - 1e-9


def test_lung_area_is_the_saliency_share_of_an_even_map(small_split):
    """The chance level of the saliency share: the share of the network's input
    the lungs cover, larger once the image is cropped to the lung box."""
    from pneumo_helpers.evaluation.instruments import Evaluator
    from pneumo_helpers.modeling.recipes import get_recipe

    ev = Evaluator(small_split, "validation")
    crop, whole = (ev.lung_area(get_recipe(name), 64) for name in ("lung_crop", "robust_cnn"))
    assert crop.shape == whole.shape == ev.labels.shape
    lungs = ev._lungs_seen(get_recipe("lung_crop"), 64) > 0.5
    np.testing.assert_allclose(crop, lungs.reshape(len(lungs), -1).mean(axis=1), atol=1e-6)
    found = ev.fields["found"]
    assert (crop[found] > whole[found]).mean() > 0.9 and 0.1 < whole[found].mean() < 0.6

def test_marker_view_writes_markers_outside_the_lungs_only(data_dir):
    import tensorflow as tf

    x = xrays(data_dir, 4, 224)
    view = anatomy.marker_view(224)
    marked = np.asarray(view(tf.constant(x), tf.constant([0, 0, 1, 1])))
    changed = np.abs(marked - x)[..., 0] > 0.02
    assert changed.any(axis=(1, 2)).all()  # every image got markers
    from pneumo_helpers.lungs.fields import lung_fields
    _, boxes, _ = lung_fields(x, margin=0.05)
    for c, (x0, y0, x1, y1) in zip(changed, boxes):
        rows, cols = np.nonzero(c)
        inside = ((cols + 0.5) / 224 > x0) & ((cols + 0.5) / 224 < x1) & \
                 ((rows + 0.5) / 224 > y0) & ((rows + 0.5) / 224 < y1)
        assert not inside.any()  # nothing inside the lung box
    assert (marked[..., 0][changed] > 0.6).mean() > 0.5  # bright letters
    stamps = anatomy.marker_stamps(224)
    assert stamps.shape == (3, 224, 224) and all(s.sum() > 10 for s in stamps)


def test_context_swap_keeps_the_lungs_and_takes_another_images_surroundings(small_split):
    """lung_crop_swap's training batches: every image is either its own crop or
    its own lungs inside the surroundings of another crop of the same batch;
    about half are swapped, and the labels stay the crops' own."""
    from dataclasses import replace

    from pneumo_helpers.modeling.recipes import get_recipe

    recipe = get_recipe("lung_crop_swap")
    plain = replace(recipe, context_swap=0.0)
    crops = np.concatenate([x.numpy() for x, _ in
                            small_split.images("train", recipe.decode_size(small_split),
                                               recipe.preprocess(64)).batch(64)])
    swapped, own, labels = 0, 0, []
    for x, y in recipe.training_images(small_split, seed=1):
        x = x.numpy()
        for image, label in zip(x, y.numpy()):
            # which crop it starts from: the one it shares most non-black pixels with
            match = np.abs(crops - image).reshape(len(crops), -1)
            shared = ((match < 1e-6) & (crops.reshape(len(crops), -1) > 0.02)).sum(axis=1)
            source = int(np.argmax(shared))
            labels.append((label, small_split.labels("train")[source]))
            if np.array_equal(image, crops[source]):
                own += 1
            else:
                swapped += 1
                changed = match[source] > 1e-6
                assert 0.05 < changed.mean() < 0.95  # the surroundings, not the whole image
    assert all(a == b for a, b in labels)
    assert 0.3 < swapped / (swapped + own) < 0.7
    assert len(labels) == len(crops)
    assert sum(1 for _ in plain.training_images(small_split, seed=1).unbatch()) == len(crops)


@pytest.mark.slow
def test_cached_trainings_are_reused_and_given_the_lung_area(small_split, tmp_path, monkeypatch):
    """selection.scored_training keeps each training's scores; a file kept before the
    lung area was measured is completed from the evaluator, without training again."""
    import json

    from pneumo_helpers.evaluation import selection
    from pneumo_helpers.evaluation.instruments import Evaluator
    from pneumo_helpers.modeling import recipes

    ev = Evaluator(small_split, "validation")
    first = selection.scored_training("lung_crop", small_split, 1, ev, epochs=1,
                                      cache_dir=tmp_path)
    path = tmp_path / "lung_crop" / "seed1.json"
    kept = json.loads(path.read_text())
    del kept["scores"]["lung_area"]
    path.write_text(json.dumps(kept))

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(recipes, "fit_recipe", no_training)
    again = selection.scored_training("lung_crop", small_split, 1, ev, epochs=1,
                                      cache_dir=tmp_path)
    np.testing.assert_allclose(again["scores"]["lung_area"], first["scores"]["lung_area"])
    np.testing.assert_allclose(again["scores"]["plain"], first["scores"]["plain"])
    assert again["thresholds"] == first["thresholds"]


def test_lung_map_share_lies_between_chance_and_one_and_rises_with_resolution():
    """The lungs' own map: all its mass inside at full resolution, less at a coarse
    one (mass spills over the edge when resized back), never below an even map's."""
    lungs = np.zeros((2, 64, 64), bool)
    lungs[0, 8:56, 6:28] = lungs[0, 8:56, 36:58] = True  # two lungs
    lungs[1, 20:44, 20:44] = True  # one square
    full = anatomy.lung_map_share(lungs, 64)
    np.testing.assert_allclose(full, 1.0, atol=1e-6)
    chance = anatomy.saliency_share(np.ones(lungs.shape, "float32"), lungs)
    coarse, finer = anatomy.lung_map_share(lungs, 4), anatomy.lung_map_share(lungs, 16)
    assert np.all(chance < coarse) and np.all(coarse < finer) and np.all(finer < 1.0)


def test_cam_resolution_is_the_last_convolution_side():
    from pneumo_helpers.evaluation.explain import cam_resolution
    from pneumo_helpers.modeling.models import robust_cnn

    assert cam_resolution(robust_cnn(64, seed=0)) == 4  # stride-2 stem and 3 poolings
    assert cam_resolution(robust_cnn(128, seed=0)) == 8


def test_matched_weights_give_each_class_the_pooled_distribution():
    """training.matched_weights: each class's weights sum alike and, within
    each class, the covariate's weighted bins follow all images' bins; a
    class rare in a bin is capped at ``clip`` times the mean weight."""
    from pneumo_helpers.modeling.training import matched_weights

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [300, 700])
    covariate = np.where(labels == 0, rng.normal(1.0, 0.3, 1000), rng.normal(0.7, 0.3, 1000))
    w = matched_weights(labels, covariate, bins=4, clip=50.0)
    assert w.shape == (1000,) and abs(w.mean() - 1) < 1e-5 and (w > 0).all()
    assert abs(w[labels == 0].sum() - w[labels == 1].sum()) < 1e-3 * w.sum()
    edges = np.quantile(covariate, [0.25, 0.5, 0.75])
    binned = np.searchsorted(edges, covariate, side="right")
    pooled = np.bincount(binned, minlength=4) / 1000
    for c in (0, 1):
        share = np.bincount(binned[labels == c], weights=w[labels == c], minlength=4)
        assert np.allclose(share / share.sum(), pooled, atol=1e-6)
    # unweighted, the covariate tells the classes apart; weighted, within each bin it cannot
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(labels, -covariate) > 0.7
    assert abs(roc_auc_score(labels, -binned, sample_weight=w) - 0.5) < 1e-6
    capped = matched_weights(labels, covariate, bins=4, clip=2.0)
    assert w.max() > 2.5 and capped.max() < w.max()
    assert np.isclose(capped.max(), 2.0 / np.minimum(w, 2.0).mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="one length"):
        matched_weights(labels[:5], covariate)


def test_structure_balanced_batches_carry_the_weights_of_their_images(small_split, monkeypatch):
    """lung_crop_structure_balanced's training batches are every crop once per
    epoch with its own label and the weight ``structure_weights`` gives it;
    under those weights structure tells the classes apart less; and fitting
    on them uses those weights alone (no class weights on top)."""
    from sklearn.metrics import roc_auc_score

    from pneumo_helpers.modeling import training
    from pneumo_helpers.modeling.recipes import get_recipe, structure_weights

    recipe = get_recipe("lung_crop_structure_balanced")
    size = small_split.image_size
    seen = small_split.images("train", recipe.decode_size(small_split), recipe.preprocess(size))
    crops = np.concatenate([x.numpy() for x, _ in seen.batch(64)])
    weights = structure_weights(small_split, recipe)
    labels = small_split.labels("train")
    assert weights.shape == labels.shape and not np.allclose(weights, weights[0])
    found = []
    for x, y, w in recipe.training_images(small_split, seed=1):
        for image, label, weight in zip(x.numpy(), y.numpy(), w.numpy()):
            i = int(np.argmin(np.abs(crops - image).reshape(len(crops), -1).max(axis=1)))
            assert np.array_equal(crops[i], image)
            assert label == labels[i] and weight == weights[i]
            found.append(i)
    assert sorted(found) == list(range(len(crops)))
    s = anatomy.structure(crops)
    plain, weighted = roc_auc_score(labels, -s), roc_auc_score(labels, -s, sample_weight=weights)
    assert abs(weighted - 0.5) < abs(plain - 0.5)
    seen_by_fit = {}
    monkeypatch.setattr(training, "fit", lambda *a, **k: seen_by_fit.update(k) or ({}, {}))
    network = recipe.build(size, small_split.task, 1)
    training.fit_network(network, small_split, recipe, 1, 1)
    assert seen_by_fit["class_weight"] is None
    training.fit_network(network, small_split, get_recipe("lung_crop"), 1, 1)
    assert seen_by_fit["class_weight"] is not None


def test_outside_share_reads_the_evidence_map_against_the_lungs():
    """lung_focus.outside_share: the share of absolute class evidence (the
    dense kernel on each cell's activations) outside the lung mask."""
    import tensorflow as tf

    from pneumo_helpers.modeling import lung_focus

    kernel = tf.constant([[2.0], [-1.0]])
    a = np.zeros((3, 2, 2, 2), "float32")
    a[0, 0, 0] = (1, 0)  # evidence 2 in cell (0, 0), inside
    a[1, 1, 1] = (0, 3)  # evidence -3 in cell (1, 1), outside
    a[2, 0, 0], a[2, 1, 1] = (1, 0), (0, 2)  # 2 inside, -2 outside
    lungs = np.zeros((3, 2, 2), "float32")
    lungs[:, 0, 0] = 1
    assert np.allclose(lung_focus.evidence(a, kernel).numpy()[2], [[2, 0], [0, -2]])
    share = lung_focus.outside_share(kernel)(tf.constant(lungs), tf.constant(a)).numpy()
    assert np.allclose(share, [0.0, 1.0, 0.5], atol=1e-5)
    # a cell is lung when the lungs cover a quarter of it
    mask = np.zeros((1, 8, 8), bool)
    mask[0, :4, :2] = True  # half of cell (0, 0) at 2 x 2
    mask[0, 4:6, 4:5] = True  # an eighth of cell (1, 1)
    assert lung_focus.map_masks(mask, 2).tolist() == [[[1, 0], [0, 0]]]


def test_lung_focus_trains_the_plain_network_and_moves_its_evidence_into_the_lungs(small_split):
    """A lung_focus recipe trains the network itself (the saved form is the
    plain network), reports the score's figures under their usual names, and
    a heavy focus leaves less of the evidence outside the lungs than none."""
    from dataclasses import replace

    from pneumo_helpers.modeling import lung_focus
    from pneumo_helpers.modeling.recipes import fit_recipe, get_recipe

    recipe = get_recipe("lung_crop_focus")
    assert lung_focus.evidence_activation(recipe.build(64, small_split.task, 1)).name \
        .startswith("activation")

    def outside(focus):
        trained = fit_recipe(replace(recipe, lung_focus=focus, patience=10), small_split, 3,
                             epochs=3)
        network = trained.networks[0]
        assert [w.shape for w in network.weights] == \
            [w.shape for w in recipe.build(64, small_split.task, 1).weights]
        assert {"loss", "auc", "val_auc"} <= set(trained.history)
        assert ("val_lungs_loss" in trained.history) == bool(focus)  # 0: the plain path
        model = lung_focus.focus_model(network)
        r = lung_focus.evidence_activation(network).output.shape[1]
        lungs = lung_focus.masks(small_split, recipe, "validation", r)
        images = np.concatenate([x.numpy() for x, _ in recipe.prepared(small_split,
                                                                       "validation")])
        acts = model.predict(images, verbose=0)["lungs"]
        return float(np.mean(lung_focus.outside_share(network.layers[-1].kernel)(lungs, acts)))

    assert outside(30.0) < outside(0.0) - 0.05  # 0.25 against 0.35 here


def test_lung_focus_training_mask_follows_the_networks_reframing():
    """lung_focus.training_model: in training, the lung cells it reads are the
    mask reframed by the network's own random reframing with the image's draw
    (the same draw as the image alone would get), not the mask as given; in
    inference, the mask as given at the map's resolution."""
    import tensorflow as tf

    from pneumo_helpers.modeling import lung_focus
    from pneumo_helpers.modeling.augment import RandomReframe
    from pneumo_helpers.modeling.recipes import get_recipe

    network = get_recipe("lung_crop_focus").build(64, "binary", 3)
    model = lung_focus.training_model(network)
    mask = np.zeros((6, 64, 64, 1), "float32")
    mask[:, 8:56, 6:28], mask[:, 8:56, 36:58] = 1, 1  # two lungs
    r = lung_focus.evidence_activation(network).output.shape[1]
    plain = model([mask, mask], training=False)["lungs"].numpy()[..., -1]
    assert np.array_equal(plain, lung_focus.map_masks(mask[..., 0], r))

    reframe = next(layer for layer in network.get_layer("augmentation").layers
                   if isinstance(layer, RandomReframe))
    state = reframe.generator.state.numpy()
    moved = model([mask, mask], training=True)["lungs"].numpy()[..., -1]
    reframe.generator.state.assign(state)
    alone = reframe(tf.constant(mask), training=True).numpy()[..., 0]
    assert np.array_equal(moved, lung_focus.map_masks(alone, r))
    assert not np.array_equal(moved, plain)  # the mask moved with the image


@pytest.mark.parametrize("name", ["lung_crop", "equalized_tta_out"])
def test_seed_scores_score_every_network_in_one_pass_as_one_at_a_time(small_split, name):
    """Evaluator.seed_scores (the final notebook's) scores the stress views of
    all seeds in one forward pass: the same scores as each seed on its own."""
    from pneumo_helpers.evaluation.instruments import Evaluator
    from pneumo_helpers.modeling.recipes import get_recipe
    from pneumo_helpers.modeling.training import operating_points

    recipe = get_recipe(name)
    trained = [operating_points(f"seed {s}", recipe, [recipe.build(64, small_split.task, s)],
                                small_split) for s in (1, 2)]
    ev = Evaluator(small_split, "validation")
    together = ev.seed_scores(trained)
    assert len(together) == 2
    for t, fused in zip(trained, together):
        alone = ev.scores(t)
        assert fused["views"].keys() == alone["views"].keys()
        for view, scores in alone["views"].items():
            assert scores.shape == (len(ev.labels),)
            np.testing.assert_allclose(fused["views"][view], scores, atol=1e-5, err_msg=view)
        np.testing.assert_allclose(fused["saliency"], alone["saliency"], atol=1e-6)
    # two seeds really differ, so a mix-up of their columns would show
    assert np.abs(together[0]["views"]["markers"] - together[1]["views"]["markers"]).max() > 1e-3
    with pytest.raises(ValueError, match="one recipe"):
        ev.seed_scores([trained[0], operating_points("other", get_recipe("lung_crop_mask"),
                                                     trained[1].networks, small_split)])
