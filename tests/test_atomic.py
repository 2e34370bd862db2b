import os
import stat

import pytest

from minicap.atomic import atomic_open


def test_writes_whole_file_with_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "sub" / "a.txt", "w") as f:
            f.write("hello")
    finally:
        os.umask(old)
    target = tmp_path / "sub" / "a.txt"
    assert target.read_text() == "hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_failure_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write(b"half of the new")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_rejects_append_and_read_modes(tmp_path):
    for mode in ("a", "r", "r+b"):
        with pytest.raises(ValueError, match="mode"):
            with atomic_open(tmp_path / "x", mode):
                pass


def test_existing_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "secret.json"
    target.write_text("{}")
    os.chmod(target, 0o600)
    with atomic_open(target, "w") as f:
        f.write('{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_folder_target_is_refused_before_writing(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="this path is a folder"):
        with atomic_open(folder) as f:
            f.write(b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert list(folder.iterdir()) == []


def test_umask_is_read_without_changing_it(tmp_path, monkeypatch):
    import minicap.atomic as atomic

    if not os.path.exists("/proc/self/status"):
        pytest.skip("reading the umask without setting it needs /proc (Linux)")

    def no_umask(mask):
        raise AssertionError("os.umask changes the mask for every thread")

    old = os.umask(0o027)
    try:
        monkeypatch.setattr(atomic.os, "umask", no_umask)
        assert atomic.current_umask() == 0o027
        with atomic_open(tmp_path / "a.bin") as f:
            f.write(b"x")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o640


def test_chmod_refused_by_the_file_system_still_writes(tmp_path, monkeypatch):
    import minicap.atomic as atomic

    def refuse(*args, **kwargs):
        raise PermissionError("operation not permitted")

    monkeypatch.setattr(atomic.os, "chmod", refuse)
    fds = len(os.listdir("/proc/self/fd")) if os.path.exists("/proc/self/fd") else None
    with atomic_open(tmp_path / "a.bin") as f:
        f.write(b"data")
    assert (tmp_path / "a.bin").read_bytes() == b"data"
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) == fds
