"""The on-disk cache: round trip, key sensitivity, corrupt-file rebuild, atomic writes."""

import logging
import os
import shutil
import sys

import numpy as np
import pytest

from minicap.data import cache
from minicap.data.cache import cache_dir, cache_path, load_or_build


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICAP_HOME", str(tmp_path))
    return tmp_path


class Builder:
    """Counts its calls so a test can tell a cache hit from a rebuild."""

    def __init__(self, value=1.0):
        self.calls = 0
        self.value = value

    def __call__(self):
        self.calls += 1
        return {"x": np.full((3, 2), self.value, dtype=np.float32), "words": np.array(["a", "bb"])}


def test_cache_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("MINICAP_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "minicap"
    monkeypatch.setenv("MINICAP_HOME", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"


def test_round_trip_second_call_loads(home):
    build = Builder()
    first, path, built = load_or_build("toy", {"n": 3}, build, version=1)
    assert built and path.is_dir() and path.parent == home
    second, path2, built2 = load_or_build("toy", {"n": 3}, build, version=1)
    assert not built2 and path2 == path and build.calls == 1
    assert set(second) == {"x", "words"}
    np.testing.assert_array_equal(second["x"], first["x"])
    assert second["x"].dtype == np.float32
    assert second["words"].tolist() == ["a", "bb"]
    assert [p.name for p in home.iterdir()] == [path.name]  # no temporary folders left


def test_loaded_arrays_are_private_copies(home):
    load_or_build("toy", {"n": 3}, Builder(), version=1)
    arrays, _, _ = load_or_build("toy", {"n": 3}, Builder(), version=1)
    arrays["x"][0, 0] = 42.0  # allowed, and must not reach the file
    again, _, built = load_or_build("toy", {"n": 3}, Builder(), version=1)
    assert not built and again["x"][0, 0] == 1.0


def test_empty_arrays_round_trip(home):
    build = lambda: {"e": np.zeros((0, 3), dtype=np.int32)}  # noqa: E731
    load_or_build("toy", {}, build, version=1)
    arrays, _, built = load_or_build("toy", {}, build, version=1)
    assert not built and arrays["e"].shape == (0, 3) and arrays["e"].dtype == np.int32


def test_key_sensitive_to_every_setting_and_version(home):
    base = cache_path("toy", {"n": 3, "seed": 0}, 1)
    assert cache_path("toy", {"seed": 0, "n": 3}, 1) == base  # order does not matter
    others = {
        cache_path("toy", {"n": 4, "seed": 0}, 1),
        cache_path("toy", {"n": 3, "seed": 1}, 1),
        cache_path("toy", {"n": 3, "seed": 0, "extra": True}, 1),
        cache_path("toy", {"n": 3, "seed": 0}, 2),
        cache_path("other", {"n": 3, "seed": 0}, 1),
    }
    assert base not in others and len(others) == 5
    build = Builder()
    load_or_build("toy", {"n": 3}, build, version=1)
    load_or_build("toy", {"n": 4}, build, version=1)
    assert build.calls == 2


def _truncate(path):
    data = (path / "x.npy").read_bytes()
    (path / "x.npy").write_bytes(data[: len(data) // 2])


DAMAGE = {
    "truncated array": _truncate,
    "empty array": lambda path: (path / "x.npy").write_bytes(b""),  # what a power cut leaves; np.load raises EOFError
    "garbage array": lambda path: (path / "x.npy").write_bytes(b"not an npy file" * 10),
    "missing array": lambda path: (path / "words.npy").unlink(),
    "garbage settings": lambda path: (path / "settings.json").write_text("{not json"),
    "missing settings": lambda path: (path / "settings.json").unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_corrupt_entry_is_rebuilt_with_warning(home, caplog, damage):
    build = Builder()
    _, path, _ = load_or_build("toy", {"n": 3}, build, version=1)
    DAMAGE[damage](path)
    with caplog.at_level(logging.WARNING, logger="minicap.data.cache"):
        arrays, _, built = load_or_build("toy", {"n": 3}, build, version=1)
    assert built and build.calls == 2
    assert "rebuilding" in caplog.text
    np.testing.assert_array_equal(arrays["x"], np.ones((3, 2), dtype=np.float32))
    again, _, built = load_or_build("toy", {"n": 3}, build, version=1)
    assert not built and again["words"].tolist() == ["a", "bb"]  # the rebuilt entry is good again
    assert [p.name for p in home.iterdir()] == [path.name]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names synced files through /proc/self/fd")
def test_every_file_and_the_folder_are_synced_before_the_rename(home, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(cache.os, "fsync", fsync)
    monkeypatch.setattr(cache.os, "replace", replace)
    _, path, _ = load_or_build("toy", {"n": 3}, Builder(), version=1)
    rename = next(i for i, e in enumerate(events) if e[0] == "replace" and e[2] == str(path))
    tmp = events[rename][1]
    synced_before = {e[1] for e in events[:rename] if e[0] == "fsync"}
    assert {f"{tmp}/x.npy", f"{tmp}/words.npy", f"{tmp}/settings.json", tmp} <= synced_before
    assert ("fsync", str(home)) in events[rename:]  # the rename itself made durable


def test_entry_with_other_settings_is_rebuilt(home, caplog):
    _, path_a, _ = load_or_build("toy", {"n": 3}, Builder(1.0), version=1)
    path_b = cache_path("toy", {"n": 4}, 1)
    shutil.copytree(path_a, path_b)  # an entry under the wrong name
    build = Builder(7.0)
    with caplog.at_level(logging.WARNING, logger="minicap.data.cache"):
        arrays, _, built = load_or_build("toy", {"n": 4}, build, version=1)
    assert built and arrays["x"][0, 0] == 7.0
    assert "other settings" in caplog.text


def test_unwritable_cache_still_returns_data(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("MINICAP_HOME", str(blocker / "sub"))
    with caplog.at_level(logging.WARNING, logger="minicap.data.cache"):
        arrays, _, built = load_or_build("toy", {"n": 3}, Builder(), version=1)
    assert built and arrays["x"].shape == (3, 2)
    assert "MINICAP_HOME" in caplog.text


def test_bad_names_and_settings(home):
    with pytest.raises(ValueError, match="cache name"):
        cache_path("../escape", {}, 1)
    with pytest.raises(ValueError, match="JSON"):
        cache_path("toy", {"n": object()}, 1)
    with pytest.raises(TypeError, match="NumPy array"):
        load_or_build("toy", {}, lambda: {"x": [1, 2]}, version=1)
    with pytest.raises(ValueError, match="array names"):
        load_or_build("toy", {}, lambda: {"../x": np.zeros(1)}, version=1)


def test_entry_written_by_another_process_meanwhile_is_kept(home, caplog):
    """Two processes building one entry: the later writer keeps the first
    complete entry (readers may have it memory-mapped) and warns about nothing."""
    settings_text = '{"settings": {"n": 5}, "version": 1}'
    path = cache_path("toy", {"n": 5}, 1)

    def build_while_another_process_finishes():
        assert cache._write(path, {"x": np.full(3, 2.0)}, settings_text)  # the other process wins
        return {"x": np.full(3, 9.0)}

    with caplog.at_level(logging.WARNING, logger="minicap.data.cache"):
        arrays, _, built = load_or_build("toy", {"n": 5}, build_while_another_process_finishes, version=1)
    assert built and arrays["x"][0] == 9.0
    assert caplog.text == ""
    assert [p.name for p in home.iterdir()] == [path.name]  # no temporary or stale folder left
    again, _, built = load_or_build("toy", {"n": 5}, Builder(), version=1)
    assert not built and again["x"][0] == 2.0  # the first writer's entry, untouched


def test_concurrent_builders_in_separate_processes(home, tmp_path):
    script = tmp_path / "race.py"
    script.write_text(
        "import logging, sys\n"
        "import numpy as np\n"
        "from minicap.data.cache import load_or_build\n"
        "logging.basicConfig(level=logging.WARNING, stream=sys.stdout)\n"
        "for r in range(15):\n"
        "    load_or_build('toy', {'round': r}, lambda: {f'a{i}': np.zeros(500) for i in range(10)}, 1)\n")
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path))
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert "WARNING" not in "".join(outputs), outputs
    folders = [p.name for p in home.iterdir() if p.is_dir()]
    assert len(folders) == 15 and all(name.startswith("toy-v1-") and "." not in name for name in folders)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_entry_folder_gets_umask_permissions(home):
    old = os.umask(0o022)
    try:
        _, path, _ = load_or_build("toy", {"n": 6}, Builder(), version=1)
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(0o755)  # not mkdtemp's private 0700


# ---------------------------------------------------------------- hand-edited entries


def test_array_names_that_leave_the_entry_are_refused(home, caplog):
    """settings.json naming "../secret" would read a file outside the entry."""
    import json

    build = Builder()
    _, path, _ = load_or_build("toy", {"n": 3}, build, version=1)
    np.save(home / "secret.npy", np.full(3, 7.0))
    meta = json.loads((path / "settings.json").read_text())
    meta["arrays"] = ["x", "../secret"]
    (path / "settings.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="minicap.data.cache"):
        arrays, _, built = load_or_build("toy", {"n": 3}, build, version=1)
    assert built and "not plain names" in caplog.text and set(arrays) == {"x", "words"}


def test_an_entry_that_fails_the_check_is_rebuilt_and_replaced(home, caplog):
    def check(arrays):
        if arrays["x"].shape != (3, 2):
            raise ValueError(f"x is {arrays['x'].shape}")

    build = Builder()
    _, path, _ = load_or_build("toy", {"n": 3}, build, version=1, check=check)
    np.save(path / "x.npy", np.zeros((5, 5), np.float32))  # hand-edited
    with caplog.at_level(logging.WARNING, logger="minicap.data.cache"):
        arrays, _, built = load_or_build("toy", {"n": 3}, build, version=1, check=check)
    assert built and "x is (5, 5)" in caplog.text and arrays["x"].shape == (3, 2)
    again, _, built = load_or_build("toy", {"n": 3}, build, version=1, check=check)
    assert not built and again["x"].shape == (3, 2)  # the bad entry was replaced, not kept
