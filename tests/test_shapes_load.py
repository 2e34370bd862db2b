"""load_shapes: the common layout, determinism, distinct splits, true references, caching."""

import hashlib

import numpy as np
import pytest

import minicap.data.shapes as shapes_module
from minicap.data.shapes import load_shapes
from minicap.data.vocab import decode_captions
from minicap.shapes.grammar import MAX_WORDS
from minicap.shapes.truth import explain

SIZES = dict(num_train=30, num_val=8, num_test=10, captions_per_image=5)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICAP_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MINICAP_HOME", str(tmp_path_factory.mktemp("home")))
    yield load_shapes(spatial=True, **SIZES)
    mp.undo()


def test_common_layout(data):
    counts = {"train": 30, "val": 8, "test": 10}
    for split, n in counts.items():
        caps = data[f"{split}_captions"]
        assert caps.dtype == np.int32 and caps.shape == (5 * n, MAX_WORDS + 2)
        idxs = data[f"{split}_image_idxs"]
        assert idxs.dtype == np.int32 and idxs.shape == (5 * n,)
        np.testing.assert_array_equal(np.bincount(idxs, minlength=n), np.full(n, 5))
        assert data[f"{split}_features"].dtype == np.float32 and data[f"{split}_features"].shape == (n, 180, 4, 4)
        assert data[f"{split}_images"].dtype == np.uint8 and data[f"{split}_images"].shape == (n, 3, 112, 112)
        assert data[f"{split}_objects"].shape == (n, 3, len(data["object_fields"]))
        assert (caps[:, 0] == 1).all() and ((caps == 2).sum(axis=1) == 1).all()
        assert caps.min() >= 0 and caps.max() < len(data["idx_to_word"])
        assert not (caps == 3).any()  # no <UNK>: the vocabulary is the grammar's
    assert data["idx_to_word"][:4] == ["<NULL>", "<START>", "<END>", "<UNK>"]
    assert all(data["word_to_idx"][w] == i for i, w in enumerate(data["idx_to_word"]))
    assert data["feature_mean"].shape == data["feature_std"].shape == (180,)


def test_every_reference_is_true_of_its_scene(data):
    for split in ("train", "val", "test"):
        texts = decode_captions(data[f"{split}_captions"], data["idx_to_word"])
        scenes = data[f"{split}_objects"][data[f"{split}_image_idxs"]]
        assert [t for t, s in zip(texts, scenes) if explain(t, s)] == []


def test_features_standardised_with_training_statistics(data):
    train = data["train_features"]
    np.testing.assert_allclose(train.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    std = train.std(axis=(0, 2, 3))
    assert ((np.abs(std - 1) < 1e-3) | (std == 0)).all()
    assert np.abs(data["test_features"].mean()) < 0.5  # same statistics, not re-fitted per split


def test_splits_are_distinct(data):
    digests = {split: {hashlib.sha1(im.tobytes()).hexdigest() for im in data[f"{split}_images"]}
               for split in ("train", "val", "test")}
    assert len(digests["train"]) == 30
    assert not (digests["train"] & digests["val"]) and not (digests["train"] & digests["test"])
    assert not (digests["val"] & digests["test"])


def test_deterministic_without_cache(data):
    again = load_shapes(spatial=True, cache=False, **SIZES)
    for key in ("train_captions", "train_objects", "test_images", "val_features"):
        np.testing.assert_array_equal(again[key], data[key])
    other = load_shapes(spatial=True, cache=False, seed=1, **SIZES)
    assert not np.array_equal(other["train_images"], data["train_images"])


def test_global_layout_is_the_pooled_appearance(home):
    spatial = load_shapes(spatial=True, **SIZES)
    flat = load_shapes(spatial=False, **SIZES)
    assert flat["train_features"].shape == (30, 172)
    # undo the spatial standardisation, pool the appearance channels, standardise again
    raw = spatial["train_features"] * spatial["feature_std"][None, :, None, None] \
        + spatial["feature_mean"][None, :, None, None]
    pooled = raw[:, :172].mean(axis=(2, 3))
    std = pooled.std(axis=0)
    expected = (pooled - pooled.mean(axis=0)) / np.where(std > 1e-6, std, 1.0)  # constant channels: std 1
    np.testing.assert_allclose(flat["train_features"], expected, atol=2e-3)


def test_second_load_comes_from_the_cache(home, monkeypatch):
    first = load_shapes(spatial=False, **SIZES)

    def no_build(*args, **kwargs):
        raise AssertionError("the cached data should have been used")

    monkeypatch.setattr(shapes_module, "_build", no_build)
    second = load_shapes(spatial=False, **SIZES)
    np.testing.assert_array_equal(second["train_features"], first["train_features"])
    with pytest.raises(AssertionError, match="cached"):
        load_shapes(spatial=False, **dict(SIZES, num_val=9))  # another setting misses the cache


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_train=0), "num_train"), (dict(num_val=-1), "num_val"), (dict(num_test=2.5), "num_test"),
    (dict(seed=-3), "seed"), (dict(captions_per_image=0), "captions_per_image"), (dict(num_train=True), "num_train"),
])
def test_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_shapes(cache=False, **kwargs)


@pytest.mark.parametrize("edit", ["shape", "dtype", "caption-id", "image-index"])
def test_a_hand_edited_cache_entry_is_rebuilt_not_used(home, caplog, edit):
    import logging

    first = load_shapes(spatial=False, **SIZES)
    entry = next(p for p in home.iterdir() if p.name.startswith("shapes-"))
    captions = np.load(entry / "train_captions.npy")
    if edit == "shape":
        np.save(entry / "train_images.npy", np.zeros((30, 3, 8, 8), np.uint8))
    elif edit == "dtype":
        np.save(entry / "train_captions.npy", captions.astype(np.float64))
    elif edit == "caption-id":
        captions[0, 1] = 10**6
        np.save(entry / "train_captions.npy", captions)
    else:
        np.save(entry / "train_image_idxs.npy", np.full(len(captions), 99, np.int32))
    with caplog.at_level(logging.WARNING, logger="minicap.data.cache"):
        second = load_shapes(spatial=False, **SIZES)
    assert "rebuilding" in caplog.text
    for key in ("train_images", "train_captions", "train_image_idxs"):
        np.testing.assert_array_equal(second[key], first[key])
