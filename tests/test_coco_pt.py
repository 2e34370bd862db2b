"""load_coco_pt and the coco.pt feature cache, on the tiny committed fixture
(no torch needed) and on files written by torch.save when torch is installed."""

import pathlib
import pickle
import shutil
import zipfile

import numpy as np
import pytest

from minicap.data import coco
from minicap.data.errors import DataError
from minicap.encoders import save_features

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "tiny_coco.pt"
WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "red", "cat", "dog"]


def _expected_split(first, n):
    """What tests/fixtures/make_torch_fixtures.py:tiny_coco stores, recomputed with NumPy."""
    images = (np.arange(first * 192, (first + n) * 192) % 256).astype(np.uint8).reshape(n, 3, 8, 8)
    captions = np.zeros((n, 6), np.int32)
    for i in range(n):
        captions[i, :4] = [1, 4 + (first + i) % 4, 5 + (first + i) % 3, 2]
    return images, captions


@pytest.fixture
def coco_pt(tmp_path):
    path = tmp_path / "coco.pt"
    shutil.copy(FIXTURE, path)
    return path


def test_layout_without_features(coco_pt):
    data = coco.load_coco_pt(coco_pt)
    for split, first, n in (("train", 0, 3), ("val", 3, 2)):
        images, captions = _expected_split(first, n)
        np.testing.assert_array_equal(data[f"{split}_images"], images)
        np.testing.assert_array_equal(data[f"{split}_captions"], captions)
        np.testing.assert_array_equal(data[f"{split}_image_idxs"], np.arange(n))
        assert data[f"{split}_captions"].dtype == np.int32 and data[f"{split}_image_idxs"].dtype == np.int32
    assert data["idx_to_word"] == WORDS
    assert data["word_to_idx"] == {w: i for i, w in enumerate(WORDS)}
    assert "train_features" not in data


def test_feature_access_without_features_says_how_to_make_them(coco_pt):
    data = coco.load_coco_pt(coco_pt, encoder="regnet_x_400mf")
    with pytest.raises(DataError, match=r"minicap features .*coco\.pt --encoder regnet_x_400mf"):
        data["val_features"]
    with pytest.raises(KeyError):
        data["no_such_key"]


def _write_features(coco_pt, encoder, rng, n_train=3, n_val=2, d=5):
    arrays = {}
    for split, n in (("train", n_train), ("val", n_val)):
        spatial = rng.standard_normal((n, d, 2, 2)).astype(np.float32)
        arrays[f"{split}_spatial"], arrays[f"{split}_pooled"] = spatial, spatial.mean(axis=(2, 3))
    save_features(coco.features_path(coco_pt, encoder), arrays, encoder)
    return arrays


@pytest.mark.parametrize("spatial", [False, True])
def test_cached_features_are_attached(coco_pt, rng, spatial):
    arrays = _write_features(coco_pt, "mobilenet_v2", rng)
    assert coco.features_path(coco_pt, "mobilenet_v2").name == "coco.pt.mobilenet_v2.features.npz"
    data = coco.load_coco_pt(coco_pt, spatial=spatial)
    for split in ("train", "val"):
        want = arrays[f"{split}_spatial"] if spatial else arrays[f"{split}_spatial"].mean(axis=(2, 3))
        np.testing.assert_allclose(data[f"{split}_features"], want, rtol=1e-6)


def test_num_train_keeps_the_first_images(coco_pt, rng):
    arrays = _write_features(coco_pt, "mobilenet_v2", rng)
    data = coco.load_coco_pt(coco_pt, num_train=2)
    images, captions = _expected_split(0, 2)
    np.testing.assert_array_equal(data["train_images"], images)
    np.testing.assert_array_equal(data["train_captions"], captions)
    np.testing.assert_array_equal(data["train_features"], arrays["train_pooled"][:2])
    np.testing.assert_array_equal(data["train_image_idxs"], [0, 1])
    assert len(data["val_images"]) == 2
    with pytest.raises(ValueError, match="num_train"):
        coco.load_coco_pt(coco_pt, num_train=0)


def test_features_of_another_size_are_refused(coco_pt, rng):
    _write_features(coco_pt, "mobilenet_v2", rng, n_train=4)
    with pytest.raises(DataError, match="delete it and run `minicap features"):
        coco.load_coco_pt(coco_pt)


def test_features_of_another_encoder_are_refused(coco_pt, rng):
    arrays = _write_features(coco_pt, "regnet_x_400mf", rng)
    save_features(coco.features_path(coco_pt, "mobilenet_v2"), arrays, "regnet_x_400mf")  # misnamed copy
    with pytest.raises(DataError, match="regnet_x_400mf"):
        coco.load_coco_pt(coco_pt)


class _MeanEncoder:
    """Stands in for a CNN: the per-channel mean of each 8 x 8 image as a (3, 1, 1) map."""

    name, out_channels, stride = "fake", 3, 32

    def __call__(self, images):
        return images.astype(np.float32).mean(axis=(2, 3), keepdims=True)


def test_extract_features_writes_the_cache_that_load_reads(coco_pt, monkeypatch):
    import minicap.encoders

    monkeypatch.setattr(minicap.encoders, "load_encoder", lambda name, weights=None: _MeanEncoder())
    out = coco.extract_coco_pt_features(coco_pt, encoder="mobilenet_v2", batch_size=2, progress=False)
    assert out == coco.features_path(coco_pt, "mobilenet_v2")
    data = coco.load_coco_pt(coco_pt, spatial=True)
    for split, first, n in (("train", 0, 3), ("val", 3, 2)):
        images, _ = _expected_split(first, n)
        want = images.astype(np.float64).mean(axis=(2, 3))
        assert data[f"{split}_features"].shape == (n, 3, 1, 1)
        np.testing.assert_allclose(data[f"{split}_features"][:, :, 0, 0], want, rtol=1e-6)


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="minicap data download coco-eecs498"):
        coco.load_coco_pt(tmp_path / "coco.pt")


def _plain_torch_zip(path, payload):
    """A torch zip archive whose pickle holds no tensors (enough to test key checks)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))


def test_wrong_keys_are_named(tmp_path):
    path = tmp_path / "other.pt"
    _plain_torch_zip(path, {"weights": [1.0]})
    with pytest.raises(DataError, match=r"not EECS 498's coco.pt.*found \['weights'\]") as err:
        coco.load_coco_pt(path)
    assert str(path) in str(err.value)


def test_non_tensor_images_are_refused(tmp_path):
    path = tmp_path / "lists.pt"
    vocab = {"idx_to_token": WORDS, "token_to_idx": {w: i for i, w in enumerate(WORDS)}}
    _plain_torch_zip(path, {"train_images": [1], "train_captions": [1], "val_images": [1], "val_captions": [1], "vocab": vocab})
    with pytest.raises(DataError, match="train_images must be uint8"):
        coco.load_coco_pt(path)


# ---------------------------------------------------------------- with torch


def _torch_coco(torch, **changes):
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    captions = torch.tensor([[1, 4, 2, 0], [1, 5, 6, 2]])
    obj = {"train_images": images, "train_captions": captions, "val_images": images[:1], "val_captions": captions[:1],
           "vocab": {"idx_to_token": WORDS, "token_to_idx": {w: i for i, w in enumerate(WORDS)}}}
    obj.update(changes)
    return obj


@pytest.mark.torch
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_saved_coco_in_both_formats(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 6, 6), dtype=torch.uint8, generator=g)
    obj = _torch_coco(torch, train_images=images[:2], val_images=images[2:3])  # views into one storage
    path = tmp_path / "coco.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    data = coco.load_coco_pt(path)
    np.testing.assert_array_equal(data["train_images"], images[:2].numpy())
    np.testing.assert_array_equal(data["val_images"], images[2:3].numpy())
    np.testing.assert_array_equal(data["train_captions"], obj["train_captions"].numpy())


@pytest.mark.torch
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: {"train_images": t.zeros(2, 3, 4, 4)}, "train_images must be uint8"),
        (lambda t: {"train_captions": t.tensor([[1, 99, 2, 0], [1, 4, 2, 0]])}, "outside the vocabulary"),
        (lambda t: {"val_captions": t.tensor([1, 4, 2, 0])}, r"\(M, T\+1\)"),
        (lambda t: {"train_captions": t.tensor([[1, 4, 2, 0]])}, "1 train captions for 2 images"),
        (lambda t: {"vocab": {"idx_to_token": ["a", "b"], "token_to_idx": {"a": 0, "b": 1}}}, "must start with"),
    ],
)
def test_torch_saved_bad_contents_are_named(tmp_path, change, message):
    torch = pytest.importorskip("torch")
    path = tmp_path / "coco.pt"
    torch.save(_torch_coco(torch, **change(torch)), path)
    with pytest.raises(DataError, match=message) as err:
        coco.load_coco_pt(path)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------- review fixes: damaged or odd inputs


@pytest.mark.parametrize("damage, reason", [
    (lambda data: data[: len(data) // 2], "BadZipFile: File is not a zip file"),
    (lambda data: data[:200] + bytes([data[200] ^ 1]) + data[201:], "BadZipFile: Bad CRC-32"),
], ids=["truncated", "bad-crc"])
def test_damaged_feature_cache_says_to_delete_it_and_extract_again(coco_pt, rng, damage, reason):
    _write_features(coco_pt, "mobilenet_v2", rng)
    cache = coco.features_path(coco_pt, "mobilenet_v2")
    damaged = damage(cache.read_bytes())
    cache.write_bytes(damaged)
    with pytest.raises(DataError) as err:
        coco.load_coco_pt(coco_pt)
    message = str(err.value)
    assert f"cannot read the feature file {cache} ({reason}" in message
    assert "delete it and extract again" in message
    assert f"`minicap features {coco_pt} --encoder mobilenet_v2`" in message
    assert cache.read_bytes() == damaged


def test_integer_features_are_refused_and_float64_become_float32(coco_pt, rng):
    arrays = _write_features(coco_pt, "mobilenet_v2", rng)
    cache = coco.features_path(coco_pt, "mobilenet_v2")
    save_features(cache, {k: v.astype(np.int64) for k, v in arrays.items()}, "mobilenet_v2")
    with pytest.raises(DataError, match=r"does not hold float train_spatial .*got int64 \(3, 5, 2, 2\), int64 \(3, 5\)"):
        coco.load_coco_pt(coco_pt)
    save_features(cache, {k: v.astype(np.float64) for k, v in arrays.items()}, "mobilenet_v2")
    data = coco.load_coco_pt(coco_pt, spatial=True)
    assert data["train_features"].dtype == np.float32
    np.testing.assert_array_equal(data["train_features"], arrays["train_spatial"])


@pytest.mark.parametrize("vocab, got", [
    ({"idx_to_token": WORDS, "token_to_idx": list(enumerate(WORDS))}, "list and list"),
    ({"idx_to_token": "abc", "token_to_idx": {}}, "str and dict"),
    ({"idx_to_token": 7, "token_to_idx": {}}, "int and dict"),
])
def test_malformed_vocab_is_named(tmp_path, vocab, got):
    path = tmp_path / "vocab.pt"
    _plain_torch_zip(path, {"train_images": [1], "train_captions": [1], "val_images": [1], "val_captions": [1], "vocab": vocab})
    with pytest.raises(DataError) as err:
        coco.load_coco_pt(path)
    assert str(err.value).startswith(f"{path}: the vocabulary must hold a list idx_to_token and a dict token_to_idx, got {got}")


def test_folder_passed_as_coco_pt_is_named_as_a_folder(tmp_path):
    folder = tmp_path / "coco.pt"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=f"{folder} is a folder, not the coco.pt file"):
        coco.load_coco_pt(folder)


def test_num_train_accepts_numpy_integers(coco_pt):
    data = coco.load_coco_pt(coco_pt, num_train=np.int64(2))
    assert data["train_images"].shape[0] == 2 and data["train_image_idxs"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="num_train must be a positive integer"):
        coco.load_coco_pt(coco_pt, num_train=np.bool_(True))


def test_unwritable_folder_is_found_before_the_cnn_runs(coco_pt, monkeypatch):
    import tempfile

    import minicap.encoders

    calls = []
    monkeypatch.setattr(minicap.encoders, "load_encoder", lambda name, weights=None: calls.append(name) or _MeanEncoder())

    def read_only(*args, dir=None, **kwargs):  # the tests run as root, where chmod cannot make a folder read-only
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(PermissionError) as err:
        coco.extract_coco_pt_features(coco_pt, progress=False)
    message = str(err.value)
    assert f"cannot write coco.pt.mobilenet_v2.features.npz in {coco_pt.parent} (Permission denied)" in message
    assert f"Copy {coco_pt} to a folder you can write to" in message
    assert calls == []  # neither the weights nor the CNN were touched
    assert sorted(p.name for p in coco_pt.parent.iterdir()) == ["coco.pt"]


def test_data_show_works_without_features(coco_pt, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from minicap.cli import main

    out = tmp_path / "grid.png"
    assert main(["data", "show", "coco-eecs498", "--data-path", str(coco_pt), "--batch-size", "2", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not coco.features_path(coco_pt, "mobilenet_v2").exists()


# ---------------------------------------------------------------- hostile files: small on disk, huge in memory


def test_mixed_key_types_are_named_with_the_file(tmp_path):
    path = tmp_path / "mixed.pt"
    _plain_torch_zip(path, {"weights": [1.0], 3: "x"})
    with pytest.raises(DataError, match=r"found \['weights', 3\]") as err:
        coco.load_coco_pt(path)
    assert str(path) in str(err.value)


@pytest.mark.torch
@pytest.mark.parametrize("which", ["train_images", "val_captions"])
def test_stride_zero_tensors_are_refused_before_they_are_copied(tmp_path, which):
    """A few kilobytes of file whose tensor repeats one storage (torch's expand) to tens of megabytes."""
    torch = pytest.importorskip("torch")
    n = 2000 if which == "train_images" else 2_000_000
    images = torch.zeros(1, 3, 1, 1, dtype=torch.uint8).expand(n, 3, 112 if which == "train_images" else 1, 1)
    captions = torch.tensor([[1, 4, 2, 0]]).expand(n, 4)  # strides (0, 1)
    split = which.split("_")[0]
    path = tmp_path / "coco.pt"
    obj = _torch_coco(torch, **{f"{split}_images": images, f"{split}_captions": captions})
    torch.save(obj, path)
    assert path.stat().st_size < 10_000
    growth, outcome = peak_growth("from minicap.data import coco", f"coco.load_coco_pt({str(path)!r})")
    assert outcome.startswith("DataError") and "more than the" in outcome and str(path) in outcome
    assert growth < 16 << 20


from memory import peak_growth  # noqa: E402  (a helper beside the tests)


def test_a_compressed_feature_cache_is_refused_before_it_is_inflated(coco_pt):
    """minicap writes the feature file uncompressed; a deflated one (64 MiB of zeros in ~64 KB) is a bomb."""
    cache = coco.features_path(coco_pt, "mobilenet_v2")
    np.savez_compressed(cache, encoder=np.asarray("mobilenet_v2"), train_spatial=np.zeros((3, 1280, 64, 64), np.float32),
                        train_pooled=np.zeros((3, 1280), np.float32), val_spatial=np.zeros((2, 1280, 4, 4), np.float32),
                        val_pooled=np.zeros((2, 1280), np.float32))
    assert cache.stat().st_size < 500_000
    growth, outcome = peak_growth("from minicap.data import coco",
                                  f"coco.load_coco_pt({str(coco_pt)!r}, spatial=True)['train_features']")
    assert outcome.startswith("DataError") and "is compressed" in outcome and "minicap features" in outcome
    assert growth < 16 << 20


def test_a_compressed_weights_npz_is_refused_before_the_cnn_runs(coco_pt, tmp_path):
    weights = tmp_path / "bomb.npz"
    np.savez_compressed(weights, **{"features.0.0.weight": np.zeros((1 << 24,), np.float32)})
    with pytest.raises(ValueError, match="bomb.npz: its entry 'features.0.0.weight.npy' is compressed"):
        coco.extract_coco_pt_features(coco_pt, weights=weights, progress=False)


def test_a_batch_too_large_for_memory_is_refused_before_the_cnn_runs(coco_pt, monkeypatch):
    import minicap.encoders
    from minicap import memcheck

    def never(*args, **kwargs):
        raise AssertionError("the encoder was loaded or run")

    monkeypatch.setattr(minicap.encoders, "load_encoder", never)  # nor fetched from the network
    monkeypatch.setattr(minicap.encoders, "extract_features", never)
    # 8 x 8 images: 4 * (3*8*8 + 32*4*4) = 2,816 bytes each at least; room for two
    monkeypatch.setattr(memcheck, "available_bytes", lambda: 6000)
    with pytest.raises(MemoryError, match="feature extraction with batch_size 64 needs at least 8.2 KB .* "
                                          "batch_size 2 is about the most that fits"):
        coco.extract_coco_pt_features(coco_pt, batch_size=64, progress=False)
