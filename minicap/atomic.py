"""Writing files so that nobody ever sees half of one.

Every file minicap writes (checkpoints, caches, figures, JSON, downloads
that are complete) goes through ``atomic_open``: the data goes to a
temporary file in the destination folder, is flushed to disk, and only then
is renamed over the target with ``os.replace``. On POSIX the rename is
atomic. On Windows ``os.replace`` is ``MoveFileEx`` with
``MOVEFILE_REPLACE_EXISTING``: readers never see a partial file either, but
the rename fails with PermissionError while another process holds the target
open (an image viewer, a memory-mapped ``np.load``). A crash, a full disk or
Ctrl-C mid-write leaves the previous file (or no file) in place, never a
truncated one, and no temporary file behind.

The temporary file lives beside the target, so the rename never crosses a
file system. A symbolic link at ``path`` is replaced by the new file (the
link's target is left alone), as with any rename.
"""

import contextlib
import errno
import os
import pathlib
import stat
import tempfile


def current_umask():
    """The process umask, read without changing it where the system allows.

    ``os.umask`` can only read the mask by setting it, which changes it for
    every thread of the process for a moment: a file another thread creates
    then gets the wrong permissions. Linux reports the mask in
    ``/proc/self/status``; elsewhere the fallback sets the restrictive 077 for
    that moment, never 0.
    """
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file beside ``path``; on a clean exit it becomes ``path``.

    ``mode`` is "wb" (bytes) or "w" (text, always UTF-8, whatever the locale).

    The parent folder is created if needed. The file gets the permissions a
    plain ``open`` would give it: an existing file keeps its mode, a new one
    gets 0666 less the umask (``mkstemp``'s private 0600 is widened), so
    checkpoints and figures are readable as usual. A folder at ``path`` is an
    IsADirectoryError before anything is written.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'wb' or 'w', got {mode!r}")
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "atomic_open writes a file, but this path is a folder", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        permissions = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        permissions = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # text is UTF-8 whatever the locale (LANG=C, a Windows code page): the readers expect it
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            try:
                os.chmod(tmp, permissions)
            except OSError:
                pass  # some file systems (FAT, network mounts) refuse; the data matters more
            yield f
            f.flush()
            os.fsync(f.fileno())  # the rename must not reach the disk before the data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
