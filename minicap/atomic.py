"""Writing files so that nobody ever sees half of one.

Every file minicap writes (checkpoints, caches, figures, JSON, downloads
that are complete) goes through ``atomic_open``: the data goes to a
temporary file in the destination folder, is flushed to disk, and only then
is renamed over the target with ``os.replace``, which is atomic on POSIX and
Windows. A crash, a full disk or Ctrl-C mid-write leaves the previous file
(or no file) in place, never a truncated one.
"""

import contextlib
import os
import pathlib
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file beside ``path``; on a clean exit it becomes ``path``.

    The parent folder is created if needed. The file gets the permissions a
    plain ``open`` would give it (``mkstemp``'s private 0600 is widened by
    the umask), so checkpoints and figures are readable as usual.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'wb' or 'w', got {mode!r}")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the rename must not reach the disk before the data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
