"""minicap.checkpoint: nested state in one .npz, written atomically, read without pickle."""

import os
import signal

import numpy as np
import pytest

from minicap import checkpoint
from minicap.checkpoint import CheckpointError, DeferredInterrupt, load_npz, load_state, save_state


def _state():
    return {
        "model": {"param/W": np.arange(6, dtype=np.float32).reshape(2, 3), "vocab": np.array(["<NULL>", "a"])},
        "optim": {"W": {"m": np.full((2, 3), 0.1), "t": 7, "learning_rate": 0.1 * 0.95**3}, "b": {}},
        "order": np.array([2, 0, 1]),
        "best": None,
        "history": [1.0 / 3.0, 2.5e-300, float("nan")],
        "rng": np.random.default_rng(5).bit_generator.state,
    }


def test_round_trip_is_exact_and_needs_no_pickle(tmp_path):
    path = save_state(tmp_path / "run" / "ckpt.npz", _state())
    with np.load(path, allow_pickle=False) as f:  # every entry readable without pickle
        assert all(f[key].dtype != object for key in f.files)
    back = load_state(path)
    state = _state()
    np.testing.assert_array_equal(back["model"]["param/W"], state["model"]["param/W"])
    assert back["model"]["param/W"].dtype == np.float32
    assert back["model"]["vocab"].tolist() == ["<NULL>", "a"]
    assert back["optim"]["W"]["t"] == 7 and type(back["optim"]["W"]["t"]) is int
    assert back["optim"]["W"]["learning_rate"] == state["optim"]["W"]["learning_rate"]
    assert back["optim"]["b"] == {} and back["best"] is None
    assert back["history"][:2] == state["history"][:2] and np.isnan(back["history"][2])
    assert back["rng"] == state["rng"]


def test_numpy_scalars_are_stored_as_numbers(tmp_path):
    path = save_state(tmp_path / "c.npz", {"lr": np.float32(0.5), "t": np.int64(3)})
    assert load_state(path) == {"lr": 0.5, "t": 3}


def test_unstorable_values_and_keys_are_refused(tmp_path):
    with pytest.raises(TypeError, match="set"):
        save_state(tmp_path / "c.npz", {"x": {1, 2}})
    with pytest.raises(ValueError, match="__array__"):
        save_state(tmp_path / "c.npz", {"a": {"__array__": "b"}})
    with pytest.raises(ValueError, match="both"):
        save_state(tmp_path / "c.npz", {"a/b": np.zeros(1), "a": {"b": np.ones(1)}})
    with pytest.raises(TypeError, match="object"):
        save_state(tmp_path / "c.npz", {"x": np.array([None, 1])})
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = save_state(tmp_path / "c.npz", {"v": np.ones(3)})
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_state(path, {"v": np.zeros(3)})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]


def test_truncated_foreign_and_missing_files_are_explained(tmp_path):
    path = save_state(tmp_path / "c.npz", _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_state(path)
    np.savez(tmp_path / "plain.npz", W=np.ones(2))
    with pytest.raises(CheckpointError, match="save_state"):
        load_state(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_state(tmp_path / "nowhere.npz")


def _patched(data, offset, value):
    """The archive with a 2-byte field of its (first) central-directory entry changed."""
    entry = data.find(b"PK\x01\x02")
    return data[:entry + offset] + value.to_bytes(2, "little") + data[entry + offset + 2:]


def test_damage_that_zipfile_or_zlib_reports_is_a_checkpoint_error(tmp_path):
    # zipfile raises NotImplementedError, and zlib its own error, for some byte flips:
    # each must still name the file and say what to do
    path = tmp_path / "c.npz"
    np.savez(path, W=np.arange(10.0))
    plain = path.read_bytes()
    for offset, value, reason in ((6, 110, "zip file version 11.0"), (10, 99, "compression method")):
        path.write_bytes(_patched(plain, offset, value))  # version needed to extract / compression method
        with pytest.raises(CheckpointError, match=reason) as info:
            load_npz(path)
        assert str(path) in str(info.value) and "delete it" in str(info.value)
    np.savez_compressed(path, W=np.arange(1000.0))
    data = path.read_bytes()
    header = data.find(b"PK\x03\x04")
    start = header + 30 + int.from_bytes(data[header + 26:header + 28], "little") + int.from_bytes(
        data[header + 28:header + 30], "little")  # the deflate stream of the first entry
    path.write_bytes(data[:start] + b"\xff" * 8 + data[start + 8:])
    # minicap never writes compressed entries: refused (as a possible zip bomb) before inflating
    with pytest.raises(CheckpointError, match="is compressed") as info:
        load_npz(path)
    assert str(path) in str(info.value)


def test_first_interrupt_is_deferred_second_raises_and_handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    with DeferredInterrupt() as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.skipif(os.name != "posix", reason="whether a process id is alive is checked on POSIX only")
def test_a_new_solver_removes_the_temporary_a_killed_run_left(tmp_path):
    import subprocess
    import sys

    from minicap import CaptioningSolver
    from minicap.atomic import _host_tag
    from test_solver_toy import ToyCaptioner, toy_data

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = tmp_path / f".checkpoint.npz.{_host_tag()}-{int(dead.stdout)}.k3x9q2ab.tmp"
    left.write_bytes(b"half of a checkpoint")  # what a SIGKILL mid-write leaves behind
    CaptioningSolver(ToyCaptioner(), toy_data(), verbose=False, checkpoint_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
