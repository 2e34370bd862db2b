"""Writing files so that nobody ever sees half of one.

Every file minicap writes (checkpoints, caches, figures, JSON, downloads
that are complete) goes through ``atomic_open``: the data goes to a
temporary file in the destination folder, is flushed to disk, and only then
is renamed over the target with ``os.replace``; then the folder itself is
flushed, so that the rename is on disk too.

What is guaranteed, on a file system that honours ``fsync``:

- Readers see the old file or the whole new one, never part of one. On POSIX
  the rename is atomic. On Windows ``os.replace`` is ``MoveFileEx`` with
  ``MOVEFILE_REPLACE_EXISTING``: readers never see a partial file either, but
  the rename fails with PermissionError while another process holds the
  target open (an image viewer, a memory-mapped ``np.load``).
- A crash, a full disk or Ctrl-C mid-write leaves the previous file (or no
  file) in place, never a truncated one. An exception removes the temporary
  file at once.
- Once ``atomic_open`` has returned, a power cut keeps the new file (POSIX):
  the data is synced before the rename, and the folder after it, as are the
  folders it created (without the folder sync the rename itself could be
  lost, and a run would resume from an older checkpoint).
- A process killed outright (SIGKILL, a power cut) cannot remove its
  temporary file. The next ``atomic_open`` of the same target removes it:
  a temporary's name carries its writer's host and process id
  (``.NAME.HOST-PID.XXXXXXXX.tmp``), and one whose writer is no longer
  running on this host is removed. A live writer's temporary on this host is
  never removed (POSIX; as long as the process ids are those of one host, not
  of two containers with separate process namespaces sharing a folder and a
  host name). One that cannot be checked that way (written on another host,
  on Windows, or by an earlier minicap, whose names lacked the id) is removed
  once it has not changed for an hour: only a writer suspended mid-write for
  that long loses its file, and its write then fails, leaving the old file.

Not guaranteed: durability of the rename on Windows (folders cannot be
opened to be synced there; NTFS journals the rename, but ``os.replace``
does not ask for write-through), and anything on file systems or disks that
acknowledge ``fsync`` without writing (some network mounts, drives with
volatile write caches).

The temporary file lives beside the target, so the rename never crosses a
file system. A symbolic link at ``path`` is replaced by the new file (the
link's target is left alone), as with any rename.
"""

import contextlib
import errno
import hashlib
import os
import pathlib
import platform
import re
import stat
import tempfile
import time

# A temporary this old is a leftover whoever wrote it: writing one file never takes an hour.
STALE_AGE_S = 3600.0


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


def fsync_folder(folder):
    """Make a folder's entries (new files, a rename) durable.

    A no-op where folders cannot be opened (Windows) or synced (some file
    systems refuse): the files themselves are synced regardless.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _host_tag():
    """8 hex digits naming this machine: a process id means something only on its own host."""
    return hashlib.sha256(platform.node().encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _pid_alive(pid):
    """True, False, or None where it cannot be told.

    Windows is never asked: there signal 0 is CTRL_C_EVENT, so ``os.kill(pid, 0)``
    would interrupt the process instead of probing it.
    """
    if os.name != "posix":
        return None
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return None
    return True


# After ".NAME.": HOST-PID.XXXXXXXX (this version) or XXXXXXXX (mkstemp's part alone: earlier minicap versions).
_OURS = re.compile(r"(?:(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)\.)?[a-z0-9_]{8}")


def remove_stale_temporaries(path, now=None):
    """Remove the temporary files that writers of ``path`` killed mid-write left behind.

    Only files named like ``atomic_open``'s temporaries of this very target
    are considered; see the module docstring for which count as stale.
    Returns the paths removed. Errors (a file already gone, a folder that
    cannot be listed) are skipped: cleaning up must never stop a write.
    """
    path = pathlib.Path(path)
    prefix, host = f".{path.name}.", _host_tag()
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        match = _OURS.fullmatch(name[len(prefix):-len(".tmp")])
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        alive = _pid_alive(int(match["pid"])) if match["host"] == host else None
        if alive is None:
            alive = now - info.st_mtime < STALE_AGE_S
        if alive:
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue  # removed by another process first, or not ours to remove
        removed.append(pathlib.Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file beside ``path``; on a clean exit it becomes ``path``.

    ``mode`` is "wb" (bytes) or "w" (text, always UTF-8, whatever the locale).
    The parent folder is created if needed. The file gets the permissions a
    plain ``open`` would give it: an existing file keeps its mode, a new one
    gets 0666 less the umask (``mkstemp``'s private 0600 is widened), so
    checkpoints and figures are readable as usual. A folder at ``path`` is an
    IsADirectoryError before anything is written. Temporaries of ``path``
    left by killed writers are removed first (``remove_stale_temporaries``).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'wb' or 'w', got {mode!r}")
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "atomic_open writes a file, but this path is a folder", str(path))
    # the folders about to be created: their own entries must be synced too
    created = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    try:
        permissions = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        permissions = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_host_tag()}-{os.getpid()}.", suffix=".tmp")
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
        # the rename is an entry of the folder: without this a power cut can undo it
        for folder in (path.parent, *(folder.parent for folder in created)):
            fsync_folder(folder)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
