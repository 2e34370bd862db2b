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


# --- durability: the folder is synced after the rename ------------------------------

def _record_syncs(monkeypatch):
    """Patch os.fsync and os.replace to log ("fsync", inode, is_folder) and ("replace",) in order."""
    import minicap.atomic as atomic

    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        events.append(("fsync", info.st_ino, stat.S_ISDIR(info.st_mode)))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace",))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    return events


def test_the_folder_is_synced_after_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "new" / "deeper" / "checkpoint.npz"
    events = _record_syncs(monkeypatch)
    with atomic_open(target) as f:
        f.write(b"weights")
    monkeypatch.undo()
    assert target.read_bytes() == b"weights"
    rename = events.index(("replace",))
    # the data before the rename (the temporary is the target's inode now) ...
    assert ("fsync", target.stat().st_ino, False) in events[:rename]
    # ... and after it the folder holding the new entry, and the folders made for it
    folders = {event[1] for event in events[rename + 1:] if event[0] == "fsync" and event[2]}
    expected = {p.stat().st_ino for p in (target.parent, target.parent.parent, tmp_path)}
    assert folders == expected


def test_folders_that_cannot_be_opened_are_not_synced(tmp_path, monkeypatch):
    import minicap.atomic as atomic

    real_open = os.open

    def open_like_windows(path, flags, *args, **kwargs):
        if os.path.isdir(path):
            raise PermissionError(13, "Access is denied", str(path))  # what Windows says for a folder
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "open", open_like_windows)
    with atomic_open(tmp_path / "a.json", "w") as f:
        f.write("{}")
    monkeypatch.undo()
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


# --- temporaries of killed writers --------------------------------------------------

_WRITER = """\
import sys
from minicap.atomic import atomic_open

with atomic_open(sys.argv[1]) as f:
    f.write(b"half of " + sys.argv[2].encode())
    f.flush()
    print("writing", flush=True)
    sys.stdin.readline()  # the test says when to finish (or kills the process here)
    f.write(b" and the rest")
"""


def _start_writer(target, label):
    import subprocess
    import sys

    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), label],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8")
    assert writer.stdout.readline() == "writing\n"
    return writer


def _temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process ids checked with os.kill are POSIX")
def test_a_killed_writers_temporary_is_removed_and_a_live_ones_kept(tmp_path):
    import signal

    target = tmp_path / "checkpoint.npz"
    target.write_bytes(b"epoch 1")
    killed = _start_writer(target, "killed")
    live = _start_writer(target, "live")
    try:
        left = {p: p.read_bytes() for p in tmp_path.glob(".checkpoint.npz.*.tmp")}
        assert len(left) == 2
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
        killed_tmp = [p for p in left if f"-{killed.pid}." in p.name]
        live_tmp = [p for p in left if f"-{live.pid}." in p.name]
        assert len(killed_tmp) == 1 and len(live_tmp) == 1  # each name carries its writer's id
        assert target.read_bytes() == b"epoch 1"  # the kill left the old file

        with atomic_open(target) as f:  # the next write of the same file cleans up
            f.write(b"epoch 2")
        assert target.read_bytes() == b"epoch 2"
        assert _temporaries(tmp_path) == [live_tmp[0].name]  # a live writer's file is left alone

        live.stdin.write("finish\n")
        live.stdin.flush()
        assert live.wait(timeout=60) == 0
    finally:
        for process in (killed, live):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert target.read_bytes() == b"half of live and the rest"
    assert _temporaries(tmp_path) == []


def test_only_our_own_stale_temporaries_are_removed(tmp_path, monkeypatch):
    import minicap.atomic as atomic

    now = 1_000_000_000.0
    host = atomic._host_tag()
    other_host = "0" * 8 if host != "0" * 8 else "1" * 8
    files = {
        ".model.npz.abcd1234.tmp": (now - 2 * atomic.STALE_AGE_S, True),    # an old version's, old
        ".model.npz.abcd1235.tmp": (now - 60, False),                      # an old version's, recent
        f".model.npz.{other_host}-1.abcd1236.tmp": (now - 60, False),        # another host's, recent
        f".model.npz.{other_host}-1.abcd1237.tmp": (now - 2 * atomic.STALE_AGE_S, True),  # another host's, old
        f".model.npz.{host}-{os.getpid()}.abcd1238.tmp": (now - 2 * atomic.STALE_AGE_S, False),  # alive: us
        ".model.npz.tmp": (now - 2 * atomic.STALE_AGE_S, False),           # not a name we make
        ".other.npz.abcd1239.tmp": (now - 2 * atomic.STALE_AGE_S, False),  # another target's
        ".model.npz.x.abcd1240.tmp": (now - 2 * atomic.STALE_AGE_S, False),  # the target "model.npz.x"'s
        "model.npz": (now - 2 * atomic.STALE_AGE_S, False),
    }
    for name, (mtime, _) in files.items():
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (mtime, mtime))
    (tmp_path / ".model.npz.abcd1241.tmp").mkdir()  # a folder: never ours
    os.utime(tmp_path / ".model.npz.abcd1241.tmp", (now - 2 * atomic.STALE_AGE_S,) * 2)
    removed = atomic.remove_stale_temporaries(tmp_path / "model.npz", now=now)
    assert sorted(p.name for p in removed) == sorted(name for name, (_, stale) in files.items() if stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [name for name, (_, stale) in files.items() if not stale] + [".model.npz.abcd1241.tmp"])
