"""The torch-free reader: committed fixtures (no torch needed), hostile and
damaged files, and round trips through real ``torch.save`` when torch is installed."""

import os
import pathlib
import pickle
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicap.data.errors import DataError, UnsafePickleError
from minicap.data.torchfile import LEGACY_MAGIC, LEGACY_PROTOCOL, read_torch_file

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
TINY = [FIXTURES / "tiny_zip.pt", FIXTURES / "tiny_legacy.pt"]


# ---------------------------------------------------------------- committed fixtures


@pytest.mark.parametrize("path", TINY, ids=["zip", "legacy"])
def test_fixture_values_views_and_dtypes(path):
    d = read_torch_file(path)
    m = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(d["m"], m)
    np.testing.assert_array_equal(d["mt"], m.T)
    np.testing.assert_array_equal(d["row"], m[1, 1:])
    np.testing.assert_array_equal(d["ids"], np.array([-1, 0, 1]))
    np.testing.assert_array_equal(d["px"], np.array([0, 128, 255], dtype=np.uint8))
    np.testing.assert_array_equal(d["flags"], np.array([True, False]))
    np.testing.assert_array_equal(d["half"], np.array([0.5, -2.0], dtype=np.float32))
    assert d["meta"] == {"name": "tiny", "sizes": [2, 3]}
    assert [d[k].dtype for k in ("m", "ids", "px", "flags", "half")] == [
        np.float32, np.int64, np.uint8, np.bool_, np.float32
    ]
    # m, mt and row were one storage when saved: they must share memory here.
    assert d["mt"].strides == (4, 12)
    assert np.shares_memory(d["m"], d["mt"]) and np.shares_memory(d["m"], d["row"])
    d["m"][1, 2] = 42.0
    assert d["mt"][2, 1] == 42.0 and d["row"][1] == 42.0


def test_fixture_files_are_small():
    assert all(p.stat().st_size < 4096 for p in TINY)


# ---------------------------------------------------------------- hostile pickles


class _Evil:
    """Pickles as a call to ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _torch_zip(path, payload, prefix="archive"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{prefix}/data.pkl", pickle.dumps(payload, protocol=2))
        z.writestr(f"{prefix}/byteorder", "little")
        z.writestr(f"{prefix}/version", "3\n")


def _torch_legacy(path, payload, keys=()):
    with open(path, "wb") as f:
        for part in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}, payload, list(keys)):
            pickle.dump(part, f, protocol=2)


def _attacks(sentinel):
    return [
        _Evil(os.system, f"touch {sentinel}"),
        _Evil(eval, f"open({str(sentinel)!r}, 'w').close()"),
        _Evil(exec, f"open({str(sentinel)!r}, 'w').close()"),
        _Evil(pathlib.Path.touch, pathlib.Path(sentinel)),
    ]


@pytest.mark.parametrize("container", ["zip", "legacy", "plain"])
@pytest.mark.parametrize("which", range(4))
def test_malicious_pickle_raises_and_runs_nothing(tmp_path, container, which):
    sentinel = tmp_path / "pwned"
    payload = {"ok": [1, 2], "evil": _attacks(sentinel)[which]}
    path = tmp_path / "evil.pt"
    if container == "zip":
        _torch_zip(path, payload)
    elif container == "legacy":
        _torch_legacy(path, payload)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafePickleError, match="nothing was run") as err:
        read_torch_file(path)
    assert str(path) in str(err.value)
    assert not sentinel.exists()


def test_plain_containers_are_allowed(tmp_path):
    import collections

    payload = collections.OrderedDict(a={1, 2}, b=frozenset([3]), c=(1.5, "x", None, [True]))
    path = tmp_path / "plain.pt"
    _torch_zip(path, payload)
    assert read_torch_file(path) == payload


def _tensor_pickle(numel, length):
    """A hand-written pickle of one float32 tensor of ``length`` elements on a storage of ``numel``."""
    return (
        b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n"
        b"((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ"
        + struct.pack("<i", numel)
        + b"tQK\x00J"
        + struct.pack("<i", length)
        + b"\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR."
    )


def test_hand_written_tensor_pickle_reads(tmp_path):
    """The helper above is a valid tensor file: the refusals below are about its numbers only."""
    path = tmp_path / "ok.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", _tensor_pickle(3, 3))
        z.writestr("archive/data/0", np.array([1.5, 2.5, 3.5], np.float32).tobytes())
    np.testing.assert_array_equal(read_torch_file(path), [1.5, 2.5, 3.5])


def test_tensor_reaching_past_its_storage_is_refused(tmp_path):
    path = tmp_path / "oob.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", _tensor_pickle(2, 3))
        z.writestr("archive/data/0", np.zeros(2, np.float32).tobytes())
    with pytest.raises(DataError, match="past the end"):
        read_torch_file(path)


def test_storage_larger_than_the_file_is_refused_before_allocating(tmp_path):
    path = tmp_path / "huge.pt"
    with open(path, "wb") as f:
        for part in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
            pickle.dump(part, f, protocol=2)
        f.write(_tensor_pickle(2**30, 1))
        pickle.dump(["0"], f, protocol=2)
    with pytest.raises(DataError, match="more than the whole file"):
        read_torch_file(path)


# ---------------------------------------------------------------- damaged and foreign files


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        read_torch_file(tmp_path / "nope.pt")


def test_foreign_zip_is_refused(tmp_path):
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.txt", "hello")
    with pytest.raises(DataError, match="not a torch.save file") as err:
        read_torch_file(path)
    assert "photos.zip" in str(err.value)


def test_numpy_file_is_refused(tmp_path):
    path = tmp_path / "arrays.npy"
    np.save(path, np.arange(3))
    with pytest.raises(DataError, match="not a torch.save file"):
        read_torch_file(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_give_a_clear_error(tmp_path, data):
    path = tmp_path / "random.pt"
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        read_torch_file(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("path", TINY, ids=["zip", "legacy"])
def test_truncation_gives_a_clear_error(tmp_path, path):
    blob = path.read_bytes()
    cut = tmp_path / "cut.pt"
    rng = np.random.default_rng(0)
    lengths = {0, 1, len(blob) - 1, *rng.choice(len(blob), size=120, replace=False).tolist()}
    for n in sorted(lengths):
        cut.write_bytes(blob[:n])
        with pytest.raises(DataError) as err:
            read_torch_file(cut)
        assert "cut.pt" in str(err.value)


@pytest.mark.parametrize("path", TINY, ids=["zip", "legacy"])
def test_flipped_bytes_never_escape_as_raw_errors(tmp_path, path):
    """Any single corrupted byte is either harmless or a DataError, never a stray exception."""
    blob = bytearray(path.read_bytes())
    bad = tmp_path / "bad.pt"
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(blob), size=150, replace=False):
        flipped = bytearray(blob)
        flipped[pos] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        try:
            read_torch_file(bad)
        except DataError:
            pass


def test_zip_crc_damage_is_reported(tmp_path):
    blob = bytearray(TINY[0].read_bytes())
    where = blob.find(np.arange(6, dtype=np.float32).tobytes())  # the stored bytes of "m"
    assert where > 0
    blob[where + 5] ^= 0x01
    bad = tmp_path / "crc.pt"
    bad.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="damaged"):
        read_torch_file(bad)


# ---------------------------------------------------------------- real torch.save round trips

torch_only = pytest.mark.torch


def _reference(t):
    import torch

    t = t.detach()
    return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()


def _check_same(ours, tensor):
    ref = _reference(tensor)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


@torch_only
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_dtypes_round_trip(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, generator=g) * 100
    obj = {
        name: x.to(dtype)
        for name, dtype in [
            ("f32", torch.float32), ("f64", torch.float64), ("f16", torch.float16), ("bf16", torch.bfloat16),
            ("u8", torch.uint8), ("i8", torch.int8), ("i16", torch.int16), ("i32", torch.int32),
            ("i64", torch.int64), ("b", torch.bool), ("c64", torch.complex64), ("c128", torch.complex128),
        ]
    }
    obj["u16"] = torch.tensor([1, 2, 65535], dtype=torch.uint16)
    obj["u32"] = torch.tensor([7, 2**32 - 1], dtype=torch.uint32)
    obj["scalar"] = torch.tensor(3.25, dtype=torch.float64)
    obj["empty"] = torch.empty(0, 4)
    obj["param"] = torch.nn.Parameter(torch.randn(2, 3, generator=g))
    path = tmp_path / "dtypes.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    got = read_torch_file(path)
    assert got.keys() == obj.keys()
    for name, tensor in obj.items():
        _check_same(got[name], tensor)


@torch_only
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
    zip_format=st.booleans(),
)
def test_torch_views_strides_offsets_and_shared_storage(tmp_path, shape, seed, zip_format):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    base = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    perm = [int(i) for i in rng.permutation(len(shape))]
    starts = [int(rng.integers(0, n)) for n in shape]
    steps = [int(rng.integers(1, 3)) for _ in shape]
    sliced = base[tuple(slice(s, None, k) for s, k in zip(starts, steps))]
    obj = {"base": base, "perm": base.permute(perm), "sliced": sliced, "expanded": base[..., :1].expand(*shape)}
    path = tmp_path / "views.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    got = read_torch_file(path)
    for name, tensor in obj.items():
        _check_same(got[name], tensor)
        assert got[name].strides == tuple(s * 4 for s in tensor.stride())
        assert np.shares_memory(got[name], got["base"])


@torch_only
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_nested_containers_and_separate_storages(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    a, b = torch.arange(4), torch.ones(2, 2, dtype=torch.float64)
    obj = {"list": [a, (b, "s")], "state": torch.nn.Linear(3, 2).state_dict(), "n": 7}
    path = tmp_path / "nested.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    got = read_torch_file(path)
    _check_same(got["list"][0], a)
    _check_same(got["list"][1][0], b)
    assert got["list"][1][1] == "s" and got["n"] == 7
    assert list(got["state"]) == ["weight", "bias"]
    for key, tensor in obj["state"].items():
        _check_same(got["state"][key], tensor)
    assert not np.shares_memory(got["list"][0], got["list"][1][0])


# ---------------------------------------------------------------- the allow-listed names stay out of the pickle's reach


def _raw_zip(path, pickle_bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle_bytes)


_REBUILD_V2 = b"ctorch._utils\n_rebuild_tensor_v2\n"


def test_pickle_cannot_set_attributes_on_a_reader_function(tmp_path):
    from minicap.data import torchfile

    before = (torchfile._rebuild_tensor_v2.__defaults__, torchfile._rebuild_tensor_v2.__qualname__)
    # GLOBAL, then BUILD with slot state {"__defaults__": (1, 2, 3), "__qualname__": "pwned"}
    state = b"N}(X\x0c\x00\x00\x00__defaults__K\x01K\x02K\x03\x87X\x0c\x00\x00\x00__qualname__X\x05\x00\x00\x00pwnedu\x86b."
    path = tmp_path / "build.pt"
    _raw_zip(path, b"\x80\x02" + _REBUILD_V2 + state)
    with pytest.raises(DataError, match="build.pt: the pickle tries to modify a reader function"):
        read_torch_file(path)
    assert (torchfile._rebuild_tensor_v2.__defaults__, torchfile._rebuild_tensor_v2.__qualname__) == before


@pytest.mark.parametrize("pickle_bytes, what", [
    (b"\x80\x02" + _REBUILD_V2 + b".", "the function _rebuild_tensor_v2"),
    (b"\x80\x02]ccollections\nOrderedDict\na.", "the class OrderedDict"),
    (b"\x80\x02}X\x01\x00\x00\x00actorch\nfloat32\ns.", "the dtype torch.float32"),
    (b"\x80\x02(ctorch\nFloatStorage\nt.", "a storage type"),
], ids=["function", "class", "dtype", "storage-type"])
def test_reader_markers_are_not_returned_as_data(tmp_path, pickle_bytes, what):
    path = tmp_path / "marker.pt"
    _raw_zip(path, pickle_bytes)
    with pytest.raises(DataError) as err:
        read_torch_file(path)
    assert str(err.value) == (
        f"{path}: the pickle returns {what} itself as a value; "
        "only tensors, numbers, strings and containers of them can be read"
    )


def test_markers_nested_in_dicts_are_found():
    from minicap.data import torchfile

    # Several dicts, each walked: an id-based "seen" set once held the (key, value)
    # pairs of dict.items(), whose ids are reused, so later pairs were skipped.
    reader = torchfile._ALLOWED[("torch._utils", "_rebuild_tensor")]
    nested = {"a": {"x": 1}, "b": {"y": reader}, "c": [{"z": 2}]}
    with pytest.raises(DataError, match="the function _rebuild_tensor itself"):
        torchfile._check_result(nested)
    for many in range(50):  # the marker at every depth of a list of dicts
        data = {"layer": [{f"k{i}": i} for i in range(many)] + [{"deep": {"er": reader}}]}
        with pytest.raises(DataError):
            torchfile._check_result(data)


def test_cyclic_containers_still_read(tmp_path):
    path = tmp_path / "cycle.pt"
    _raw_zip(path, b"\x80\x02]q\x00h\x00a.")  # a list that holds itself
    loaded = read_torch_file(path)
    assert isinstance(loaded, list) and loaded[0] is loaded


def test_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder, not a file written by torch.save"):
        read_torch_file(tmp_path)


# ---------------------------------------------------------------- memory: a small file never costs much more than its size

from memory import peak_growth  # noqa: E402  (a helper beside the tests)


def _byte_storage_zip(path, numel, compression):
    """A torch zip of one uint8 tensor of ``numel`` zeros, its storage entry written with ``compression``."""
    pkl = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nByteStorage\n"
           b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ" + struct.pack("<i", numel) + b"tQK\x00J"
           + struct.pack("<i", numel) + b"\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR.")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/data/0", bytes(numel), compress_type=compression)


def test_compressed_storage_is_refused_before_it_is_inflated(tmp_path):
    """A deflated storage (a zip bomb: 64 KB of file declaring 64 MiB) is refused, never allocated."""
    path = tmp_path / "bomb.pt"
    _byte_storage_zip(path, 64 << 20, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 200_000
    growth, outcome = peak_growth("from minicap.data.torchfile import read_torch_file",
                                  f"read_torch_file({str(path)!r})")
    assert outcome.startswith("DataError") and "is compressed, which torch.save never does" in outcome
    assert str(path) in outcome
    assert growth < 8 << 20


def test_compressed_pickle_is_refused(tmp_path):
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", pickle.dumps([1, 2], protocol=2))
    with pytest.raises(DataError, match="archive/data.pkl is compressed"):
        read_torch_file(path)


def test_stored_storage_is_read_without_a_second_copy(tmp_path):
    """ZipExtFile.readinto copies through a bytes object: reading in chunks keeps the peak near the storage."""
    nbytes = 48 << 20
    path = tmp_path / "big.pt"
    _byte_storage_zip(path, nbytes, zipfile.ZIP_STORED)
    growth, outcome = peak_growth("from minicap.data.torchfile import read_torch_file",
                                  f"x = read_torch_file({str(path)!r}); assert x.size == {nbytes}")
    assert outcome == "ok"
    assert growth < nbytes * 1.25  # one copy, not two


def test_storages_adding_up_to_more_than_the_file_are_refused(tmp_path):
    """Each storage fits the file, together they do not: refused before any is allocated."""
    path = tmp_path / "many.pt"
    numel = 200
    two = (b"\x80\x02(" + _tensor_pickle(numel, 1)[2:-1] + b"ctorch._utils\n_rebuild_tensor_v2\n"
           b"((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x001X\x03\x00\x00\x00cpuJ"
           + struct.pack("<i", numel) + b"tQK\x00K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRl.")
    with open(path, "wb") as f:
        for part in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
            pickle.dump(part, f, protocol=2)
        f.write(two)
        pickle.dump(["0", "1"], f, protocol=2)
        f.write(b"\x00" * (4 * numel + 100))  # room for one storage, not for two
    assert 4 * numel < path.stat().st_size < 8 * numel
    with pytest.raises(DataError, match="storages add up to more than"):
        read_torch_file(path)


def test_bare_storage_is_refused(tmp_path):
    """docs/data.md: only tensors, numbers, strings and containers come back, never the reader's storage object."""
    path = tmp_path / "storage.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
                                       b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQ.")
        z.writestr("archive/data/0", bytes(8))
    with pytest.raises(DataError, match="the bare storage '0'"):
        read_torch_file(path)
