"""Hostile model files: a few kilobytes must never cost gigabytes, and a model that cannot
caption (NaN or complex parameters) is refused instead of printing empty captions.

Memory is measured in a subprocess (``tests/memory.py``), never with a wall clock.
"""

import io
import json
import struct
import zipfile

import numpy as np
import pytest

from memory import peak_growth
from minicap.checkpoint import CheckpointError, load_npz
from minicap.model import CaptioningRNN

WORDS = {"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3, "a": 4, "cat": 5}


def _model_file(tmp_path, cell="lstm", **config_changes):
    """A real model's .npz, with its stored config changed (the arrays stay as they were)."""
    model = CaptioningRNN(WORDS, input_dim=6, wordvec_dim=4, hidden_dim=5, cell_type=cell, seed=0)
    arrays = model.to_arrays()
    config = json.loads(str(arrays["config"]))
    config.update(config_changes)
    arrays["config"] = np.array(json.dumps(config))
    path = tmp_path / "model.npz"
    np.savez(path, **arrays)
    return path, arrays


def test_a_good_file_still_loads(tmp_path):
    path, arrays = _model_file(tmp_path)
    model = CaptioningRNN.load(path)
    np.testing.assert_array_equal(model.params["Wh"], arrays["param/Wh"])


@pytest.mark.parametrize("changes", [
    {"hidden_dim": 2000},                                     # Wh alone would be 2000 x 8000
    {"wordvec_dim": 4000},                                    # W_embed, Wx
    {"word_to_idx": {**WORDS, "dog": 2_000_000}},             # W_embed 2e6 x W, W_vocab H x 2e6
], ids=["hidden_dim", "wordvec_dim", "vocabulary-id"])
def test_config_sizes_are_checked_against_the_arrays_before_allocating(tmp_path, changes):
    path, _ = _model_file(tmp_path, **changes)
    assert path.stat().st_size < 20_000
    growth, outcome = peak_growth("from minicap.model import CaptioningRNN",
                                  f"CaptioningRNN.load({str(path)!r})")
    assert outcome.startswith("CheckpointError") and str(path) in outcome
    assert "W_embed has" in outcome or "the config's sizes" in outcome
    assert growth < 16 << 20  # the model it describes would take hundreds of megabytes


@pytest.mark.parametrize("value, message", [
    (np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (1j, "dtype complex128"), (1, "dtype int64"),
], ids=["nan", "inf", "complex", "int"])
def test_parameters_must_be_finite_real_floats(tmp_path, value, message):
    path, arrays = _model_file(tmp_path)
    bad = np.full(arrays["param/W_vocab"].shape, value)
    np.savez(path, **{**arrays, "param/W_vocab": bad})
    with pytest.raises(CheckpointError, match=message) as err:
        CaptioningRNN.load(path)
    assert str(path) in str(err.value) and "W_vocab" in str(err.value)


def test_a_missing_matrix_is_named_before_the_model_is_built(tmp_path):
    path, arrays = _model_file(tmp_path, hidden_dim=3000)
    del arrays["param/Wh"]
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="missing parameter 'Wh'"):
        CaptioningRNN.load(path)


# ---------------------------------------------------------------- load_npz: bounded by the file


def test_compressed_npz_is_refused_before_it_is_inflated(tmp_path):
    """64 MiB of zeros deflate to 64 KB: refused without inflating."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros(64 << 20, np.uint8))
    assert path.stat().st_size < 200_000
    growth, outcome = peak_growth("from minicap.checkpoint import load_npz", f"load_npz({str(path)!r})")
    assert outcome.startswith("CheckpointError") and "is compressed" in outcome and str(path) in outcome
    assert growth < 8 << 20


def test_npy_header_larger_than_its_entry_is_refused(tmp_path):
    """An .npy header may declare any shape; NumPy allocates it (80 GB here) before reading 32 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**10,)})
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", header.getvalue() + bytes(32))
    with pytest.raises(CheckpointError, match=r"declares a float64 array of shape \(10000000000,\)") as err:
        load_npz(path)
    assert str(path) in str(err.value)


def test_entries_sharing_their_bytes_are_refused(tmp_path):
    """Two directory entries pointing at the same data: each fits the file, the two do not."""
    path = tmp_path / "twice.npz"
    np.savez(path, a=np.zeros(10_000))
    data = path.read_bytes()
    start, end = data.find(b"PK\x01\x02"), data.find(b"PK\x05\x06")
    entry = data[start:end]
    twin = entry.replace(b"a.npy", b"b.npy")
    eocd = bytearray(data[end:])
    count = struct.unpack("<H", eocd[10:12])[0]
    eocd[8:12] = struct.pack("<HH", count + 1, count + 1)
    eocd[12:16] = struct.pack("<I", len(entry) + len(twin))
    path.write_bytes(data[:end] + twin + bytes(eocd))
    assert zipfile.ZipFile(path).namelist() == ["a.npy", "b.npy"]
    with pytest.raises(CheckpointError, match="add up to more than"):
        load_npz(path)


def test_gate_columns_must_be_whole_gates(tmp_path):
    path, arrays = _model_file(tmp_path, cell="rnn")
    arrays = {**arrays, "param/Wx": np.zeros((4, 7), np.float32), "param/Wh": np.zeros((5, 7), np.float32)}
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="'Wh' has 7 columns, not a whole number of gates of hidden_dim 5"):
        CaptioningRNN.load(path)
