"""load_coco_data on a tiny fake CS231n ``coco_captioning`` folder (h5 via h5py, skipped without it)."""

import json
import sys

import numpy as np
import pytest

from minicap.data import coco
from minicap.data.errors import DataError

WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "man", "dog", "on", "grass"]
N_IMAGES = {"train": 4, "val": 3}
N_CAPTIONS = {"train": 10, "val": 6}


def _fake_folder(root, rng, **overrides):
    """Write the CS231n files with random contents; returns what was written."""
    h5py = pytest.importorskip("h5py")
    root.mkdir(exist_ok=True)
    written = {}
    for split in ("train", "val"):
        m, n = N_CAPTIONS[split], N_IMAGES[split]
        written[f"{split}_captions"] = rng.integers(0, len(WORDS), (m, 17)).astype(np.int32)
        written[f"{split}_image_idxs"] = rng.integers(0, n, m).astype(np.int32)
        written[f"{split}_pca"] = rng.standard_normal((n, 512)).astype(np.float32)
        written[f"{split}_fc7"] = rng.standard_normal((n, 4096)).astype(np.float32)
        written[f"{split}_urls"] = [f"http://127.0.0.1:9/{split}/{i}.jpg" for i in range(n)]
    written.update(overrides)
    with h5py.File(root / "coco2014_captions.h5", "w") as f:
        for split in ("train", "val"):
            for key in ("captions", "image_idxs"):
                f[f"{split}_{key}"] = written[f"{split}_{key}"]
    for split in ("train", "val"):
        for kind in ("pca", "fc7"):
            name = f"{split}2014_vgg16_fc7_pca.h5" if kind == "pca" else f"{split}2014_vgg16_fc7.h5"
            with h5py.File(root / name, "w") as f:
                f["features"] = written[f"{split}_{kind}"]
        (root / f"{split}2014_urls.txt").write_text("\n".join(written[f"{split}_urls"]) + "\n")
    vocab = {"idx_to_word": WORDS, "word_to_idx": {w: i for i, w in enumerate(WORDS)}}
    (root / "coco2014_vocab.json").write_text(json.dumps(vocab))
    return written


@pytest.mark.parametrize("pca", [True, False])
def test_layout_and_values(tmp_path, rng, pca):
    written = _fake_folder(tmp_path / "coco", rng)
    data = coco.load_coco_data(tmp_path / "coco", pca_features=pca)
    for split in ("train", "val"):
        np.testing.assert_array_equal(data[f"{split}_captions"], written[f"{split}_captions"])
        np.testing.assert_array_equal(data[f"{split}_image_idxs"], written[f"{split}_image_idxs"])
        np.testing.assert_array_equal(data[f"{split}_features"], written[f"{split}_{'pca' if pca else 'fc7'}"])
        assert data[f"{split}_urls"].tolist() == written[f"{split}_urls"]
        assert data[f"{split}_captions"].dtype == np.int32 and data[f"{split}_features"].dtype == np.float32
    assert data["idx_to_word"] == WORDS and data["word_to_idx"]["grass"] == 8


def test_max_train_draws_distinct_captions_reproducibly(tmp_path, rng):
    written = _fake_folder(tmp_path / "coco", rng)
    a = coco.load_coco_data(tmp_path / "coco", max_train=6, seed=3)
    b = coco.load_coco_data(tmp_path / "coco", max_train=6, seed=3)
    np.testing.assert_array_equal(a["train_captions"], b["train_captions"])
    # Each kept caption is a distinct row of the file, kept with its own image index.
    full = written["train_captions"]
    rows = [int(np.flatnonzero((full == cap).all(axis=1))[0]) for cap in a["train_captions"]]
    assert len(set(rows)) == 6 and rows == sorted(rows)
    np.testing.assert_array_equal(a["train_image_idxs"], written["train_image_idxs"][rows])
    assert len(a["train_features"]) == N_IMAGES["train"]  # features of all images stay
    assert len(a["val_captions"]) == N_CAPTIONS["val"]
    bigger = coco.load_coco_data(tmp_path / "coco", max_train=1000)
    assert len(bigger["train_captions"]) == N_CAPTIONS["train"]


def test_spatial_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no spatial maps"):
        coco.load_coco_data(tmp_path, spatial=True)


def test_missing_folder_and_files_say_where_to_get_them(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="minicap data download coco-cs231n"):
        coco.load_coco_data(tmp_path / "nowhere")
    _fake_folder(tmp_path / "coco", rng)
    (tmp_path / "coco" / "val2014_urls.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"val2014_urls\.txt is missing.*coco-cs231n"):
        coco.load_coco_data(tmp_path / "coco")


def test_without_h5py_the_message_says_how_to_install(tmp_path, rng, monkeypatch):
    (tmp_path / "coco").mkdir()
    vocab = {"idx_to_word": WORDS, "word_to_idx": {w: i for i, w in enumerate(WORDS)}}
    (tmp_path / "coco" / "coco2014_vocab.json").write_text(json.dumps(vocab))
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` fail
    with pytest.raises(ImportError, match=r"pip install 'minicap\[coco\]'"):
        coco.load_coco_data(tmp_path / "coco")


def test_image_index_out_of_range_is_named(tmp_path, rng):
    bad = np.full(N_CAPTIONS["val"], N_IMAGES["val"], np.int32)
    _fake_folder(tmp_path / "coco", rng, val_image_idxs=bad)
    with pytest.raises(DataError, match=r"val_image_idxs\] points outside the 3 rows"):
        coco.load_coco_data(tmp_path / "coco")


def test_caption_ids_outside_the_vocabulary_are_named(tmp_path, rng):
    bad = np.full((N_CAPTIONS["train"], 17), len(WORDS), np.int32)
    _fake_folder(tmp_path / "coco", rng, train_captions=bad)
    with pytest.raises(DataError, match="outside the vocabulary"):
        coco.load_coco_data(tmp_path / "coco")


def test_url_count_must_match_the_features(tmp_path, rng):
    _fake_folder(tmp_path / "coco", rng, train_urls=["http://x/1.jpg"])
    with pytest.raises(DataError, match="1 lines for 4 images"):
        coco.load_coco_data(tmp_path / "coco")


def test_corrupt_h5_and_vocab_are_named(tmp_path, rng):
    _fake_folder(tmp_path / "coco", rng)
    (tmp_path / "coco" / "train2014_vgg16_fc7_pca.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match=r"train2014_vgg16_fc7_pca\.h5 is not a readable h5 file"):
        coco.load_coco_data(tmp_path / "coco")
    (tmp_path / "coco" / "coco2014_vocab.json").write_text('{"idx_to_word": ["a"]}')
    with pytest.raises(DataError, match="coco2014_vocab.json is not the vocabulary json"):
        coco.load_coco_data(tmp_path / "coco")


def test_missing_h5_dataset_is_named(tmp_path, rng):
    h5py = pytest.importorskip("h5py")
    _fake_folder(tmp_path / "coco", rng)
    with h5py.File(tmp_path / "coco" / "coco2014_captions.h5", "a") as f:
        del f["val_captions"]
    with pytest.raises(DataError, match=r"lacks the datasets \['val_captions'\]"):
        coco.load_coco_data(tmp_path / "coco")


# ---------------------------------------------------------------- review fixes


@pytest.mark.parametrize("pca", [True, False])
def test_the_download_keeps_every_file_the_loader_reads(tmp_path, rng, pca):
    from minicap.data.download import DATASETS

    written = _fake_folder(tmp_path / "coco", rng)
    needs = DATASETS["coco-cs231n"].needs
    for path in (tmp_path / "coco").iterdir():
        if path.name not in needs:
            path.unlink()
    data = coco.load_coco_data(tmp_path / "coco", pca_features=pca)  # a folder holding only `needs` is enough
    np.testing.assert_array_equal(data["val_features"], written[f"val_{'pca' if pca else 'fc7'}"])


def test_url_list_that_is_not_utf8_is_named(tmp_path, rng):
    _fake_folder(tmp_path / "coco", rng)
    path = tmp_path / "coco" / "train2014_urls.txt"
    path.write_bytes(b"\xffhttp://x/1.jpg\n" * 4)
    with pytest.raises(DataError) as err:
        coco.load_coco_data(tmp_path / "coco")
    assert str(err.value).startswith(f"{path} is not UTF-8 text (")
    assert str(err.value).endswith("download it again")


def test_max_train_accepts_numpy_integers(tmp_path, rng):
    _fake_folder(tmp_path / "coco", rng)
    data = coco.load_coco_data(tmp_path / "coco", max_train=np.int64(2))
    assert data["train_captions"].shape == (2, 17)
    for bad in (np.int64(0), np.bool_(True), True, 2.0):
        with pytest.raises(ValueError, match="max_train must be a positive integer or None"):
            coco.load_coco_data(tmp_path / "coco", max_train=bad)


def test_cli_without_h5py_prints_the_install_hint_not_a_traceback(tmp_path, monkeypatch, capsys):
    from minicap.cli import main

    (tmp_path / "coco").mkdir()
    vocab = {"idx_to_word": WORDS, "word_to_idx": {w: i for i, w in enumerate(WORDS)}}
    (tmp_path / "coco" / "coco2014_vocab.json").write_text(json.dumps(vocab))
    monkeypatch.setitem(sys.modules, "h5py", None)
    assert main(["data", "show", "coco-cs231n", "--data-path", str(tmp_path / "coco"), "--out", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert err == "minicap data: error: reading the CS231n COCO files needs h5py: pip install 'minicap[coco]'\n"


def test_missing_wide_features_say_to_use_pca_or_download_again(tmp_path, rng):
    # The download counts a folder without the 4096-wide files as complete: the
    # loader must not send the user back to a download that returns the same folder.
    _fake_folder(tmp_path / "coco", rng)
    (tmp_path / "coco" / "train2014_vgg16_fc7.h5").unlink()
    assert coco.load_coco_data(tmp_path / "coco")["train_features"].shape[1] > 0  # PCA still loads
    with pytest.raises(FileNotFoundError) as err:
        coco.load_coco_data(tmp_path / "coco", pca_features=False)
    message = str(err.value)
    assert "train2014_vgg16_fc7.h5 is missing" in message and "pca_features=False" in message
    assert f"delete {tmp_path / 'coco'}" in message


# ---------------------------------------------------------------- hostile h5 files: small on disk, huge in memory

from memory import peak_growth  # noqa: E402  (a helper beside the tests)


@pytest.mark.parametrize("how", ["unwritten", "compressed"])
def test_h5_datasets_declaring_more_than_the_file_holds_are_refused(tmp_path, rng, how):
    """68 MB of caption ids declared in a file of kilobytes: never written, or one value gzipped."""
    h5py = pytest.importorskip("h5py")
    _fake_folder(tmp_path / "coco", rng)
    path = tmp_path / "coco" / "coco2014_captions.h5"
    with h5py.File(path, "a") as f:
        del f["train_captions"]
        if how == "unwritten":  # late allocation: nothing is stored, reading gives the fill value
            f.create_dataset("train_captions", shape=(10**6, 17), dtype="int32")
        else:
            f.create_dataset("train_captions", data=np.zeros((10**6, 17), np.int32), compression="gzip",
                             chunks=(10**5, 17))
    assert path.stat().st_size < 500_000
    growth, outcome = peak_growth("from minicap.data import coco", f"coco.load_coco_data({str(tmp_path / 'coco')!r})")
    assert outcome.startswith("DataError") and f"{path}[train_captions] declares int32 (1000000, 17)" in outcome
    assert growth < 16 << 20


def test_compressed_h5_datasets_that_compress_like_data_still_load(tmp_path, rng):
    h5py = pytest.importorskip("h5py")
    written = _fake_folder(tmp_path / "coco", rng)
    with h5py.File(tmp_path / "coco" / "train2014_vgg16_fc7_pca.h5", "a") as f:
        del f["features"]
        f.create_dataset("features", data=written["train_pca"], compression="gzip")
    data = coco.load_coco_data(tmp_path / "coco")
    np.testing.assert_array_equal(data["train_features"], written["train_pca"])


@pytest.mark.parametrize("how", ["external", "virtual"])
def test_h5_datasets_stored_in_other_files_are_refused(tmp_path, rng, how):
    """External storage could read any local file (here /dev/zero, 68 MB of it) into the captions."""
    h5py = pytest.importorskip("h5py")
    _fake_folder(tmp_path / "coco", rng)
    path = tmp_path / "coco" / "coco2014_captions.h5"
    with h5py.File(path, "a") as f:
        del f["train_captions"]
        if how == "external":
            f.create_dataset("train_captions", shape=(10**6, 17), dtype="int32",
                             external=[("/dev/zero", 0, h5py.h5f.UNLIMITED)])
        else:
            layout = h5py.VirtualLayout(shape=(10, 17), dtype="int32")
            layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "x", shape=(10, 17))
            f.create_virtual_dataset("train_captions", layout)
    with pytest.raises(DataError, match=r"train_captions\] keeps its data in other files"):
        coco.load_coco_data(tmp_path / "coco")
