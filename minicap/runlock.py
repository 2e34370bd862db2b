"""One process at a time in a run folder: a lock file that holds the holder's PID.

Two ``minicap train`` (or ``demo``) runs writing one folder would each check it, then
each write: the folder would end up with one run's config.json beside the other's
model.npz, and nothing would say so. ``hold_run_folder`` makes the check and the writes
one step: the first process takes ``RUN/.minicap.lock`` and the second is refused with
one line that names the holder's PID.

On POSIX the lock is ``fcntl.flock`` on that file, which the kernel releases when the
holder exits in any way (SIGKILL and power loss included), so a lock left behind by a
killed process is simply taken over. Elsewhere the file is created with ``O_EXCL`` and
a stale one must be deleted by hand (the message says which file).
"""

import contextlib
import os
import pathlib

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".minicap.lock"

__all__ = ["LOCK_NAME", "RunFolderBusy", "hold_run_folder"]


class RunFolderBusy(OSError):
    """Another process holds the run folder."""


@contextlib.contextmanager
def hold_run_folder(folder, create=True):
    """Hold ``folder`` for the duration of the ``with`` block (RunFolderBusy if another process does).

    create: make the folder when it does not exist (and remove it again, if it is still
    empty, when the block ends: a refused run leaves nothing behind). With ``create=False``
    a missing folder is not locked: there is nothing in it to protect, and the caller
    reports it.
    """
    folder = pathlib.Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a run folder; choose another folder (--out)")
    if not folder.exists() and not create:
        yield
        return
    created = False
    try:
        folder.mkdir(parents=True)
        created = True
    except FileExistsError:  # there already, or made by a process started at the same moment
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file, not a run folder; choose another folder (--out)") from None
    path = folder / LOCK_NAME
    fd = _acquire(path) if fcntl is not None else _acquire_exclusive(path)
    try:
        yield
    finally:
        # unlink while still holding the lock: a process that opened the file meanwhile
        # finds it gone after its flock and starts over on a new file (see _acquire)
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):  # only when empty: never remove what the run wrote
                folder.rmdir()


def _busy(path, pid):
    holder = f"process {pid}" if pid else "another process"
    how = "wait for it to finish or stop it"
    if fcntl is None:
        how += f"; if it no longer runs, delete {path}"
    return RunFolderBusy(f"{path.parent} is in use by {holder} (a minicap command writing there); {how}, "
                         "or choose another folder")


def _acquire(path):
    while True:
        try:
            # O_NOFOLLOW: a lock file planted as a link would have us truncate the file it points at
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileNotFoundError:  # a refused process that made the folder has just removed it again
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        except OSError:
            if not path.is_symlink():
                raise
            path.unlink()  # never a lock of ours: replace it with one
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise _busy(path, pid) from None
        except BaseException:
            os.close(fd)
            raise
        # the holder may have released (and unlinked) the file between our open and our
        # flock: then we hold a lock on a file nobody else will ever see; start over
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _acquire_exclusive(path):
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        with open(path, "rb") as f:
            raise _busy(path, _parse_pid(f.read(32))) from None
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _read_pid(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    return _parse_pid(os.read(fd, 32))


def _parse_pid(data):
    text = data.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
