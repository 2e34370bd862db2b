"""An on-disk cache of generated data: one folder of ``.npy`` files per setting.

The folder name carries a hash of every setting that shaped the data plus a
format version, so changing anything (a size, a seed, the extractor) misses
the cache instead of returning stale arrays. The settings are also stored
inside, in ``settings.json``, and compared on load, which guards against a
hash collision and a folder copied under the wrong name.

Why ``.npy`` files rather than one ``.npz``: they are memory-mapped on load
(copy-on-write, so callers may still modify their arrays), which makes a
second load take milliseconds whatever the size; the images, the bulk of the
shapes world, are then only read from disk where they are used. An ``.npz``
is a zip archive that has to be read, and checksummed, in full.

Writes are atomic: the folder is built under a temporary name in the same
parent and renamed into place, ``settings.json`` written last, so an
interrupted run never leaves a half-written entry behind. Processes that
build the same entry at once do not disturb each other: the first complete
entry stays, later writers discard their copies. An entry that is
corrupt anyway (a truncated or missing file, garbage) is rebuilt with a
warning.
"""

import hashlib
import json
import logging
import os
import pathlib
import shutil
import tempfile

import numpy as np

from minicap.atomic import current_umask, fsync_folder

log = logging.getLogger(__name__)

_SETTINGS_FILE = "settings.json"


def cache_dir():
    """The cache folder: ``$MINICAP_HOME`` if set, else ``~/.cache/minicap``."""
    home = os.environ.get("MINICAP_HOME")
    if home:
        return pathlib.Path(home).expanduser()
    return pathlib.Path.home() / ".cache" / "minicap"


def settings_hash(settings):
    """A short hex digest of a JSON-serialisable settings dict (key order ignored)."""
    try:
        text = json.dumps(settings, sort_keys=True)
    except TypeError as err:
        raise ValueError(f"cache settings must be JSON-serialisable (numbers, strings, lists): {err}") from None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(name, settings, version):
    """The folder where the data for ``name`` built with ``settings`` lives."""
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"cache name must be letters, digits, '-' or '_', got {name!r}")
    key = settings_hash({"version": version, "settings": settings})
    return cache_dir() / f"{name}-v{version}-{key}"


class _OtherSettings(Exception):
    """The entry was written for other settings (a hash collision, or a hand-edited folder)."""


def _plain_name(key):
    return isinstance(key, str) and bool(key) and all(c.isalnum() or c in "-_" for c in key)


def _load(path, expected, check=None):
    """The arrays in folder ``path``; raises if it is incomplete, for other settings, or fails ``check``."""
    stored = json.loads((path / _SETTINGS_FILE).read_text(encoding="utf-8"))
    if stored.get("settings_text") != expected:
        raise _OtherSettings()
    names = stored["arrays"]
    # a name like "../x" would read a file outside the entry
    if not (isinstance(names, list) and all(_plain_name(key) for key in names)):
        raise ValueError(f"its {_SETTINGS_FILE} lists array names that are not plain names: {names!r:.80}")
    arrays = {key: np.load(path / f"{key}.npy", mmap_mode="c", allow_pickle=False) for key in names}
    if check is not None:
        check(arrays)
    return arrays


_UNREADABLE = (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError, RecursionError)


def _read(path, expected, check=None):
    """The arrays in folder ``path``, or None (with a warning) if it is unusable."""
    try:
        return _load(path, expected, check)
    except _OtherSettings:
        log.warning("cache %s was written for other settings; rebuilding it", path)
        return None
    except _UNREADABLE as err:
        # EOFError: np.load on an empty .npy, the usual leftover of a power cut.
        log.warning("cache %s is unreadable (%s); rebuilding it", path, err)
        return None


def _complete(path, expected, check=None):
    """True if folder ``path`` holds a good entry for ``expected`` (no warning)."""
    try:
        _load(path, expected, check)
        return True
    except (_OtherSettings,) + _UNREADABLE:
        return False


def _sync(f):
    f.flush()
    os.fsync(f.fileno())


def _write(path, arrays, settings_text, check=None):
    """Write ``arrays`` into folder ``path`` atomically; False (with a warning) on failure.

    Several processes may build the same entry at once (two training runs
    started together): the first rename wins, and a later writer that finds
    a good entry in place keeps it and discards its own copy. Only an entry
    that is corrupt, or for other settings, is moved aside and replaced.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp"))
    except OSError as err:
        log.warning("cannot write the cache in %s (%s); set MINICAP_HOME to a writable folder", path.parent, err)
        return False
    try:
        # mkdtemp's folder is private (0700); an entry is as readable as its
        # files, so a cache shared by a group stays usable by the group.
        os.chmod(tmp, 0o777 & ~current_umask())
        # Every file is synced before the rename: otherwise a power cut can
        # leave the renamed folder holding empty files.
        for key, value in arrays.items():
            with open(tmp / f"{key}.npy", "wb") as f:
                np.save(f, value, allow_pickle=False)
                _sync(f)
        # settings.json last: its presence marks a complete entry.
        meta = {"settings_text": settings_text, "arrays": sorted(arrays)}
        with open(tmp / _SETTINGS_FILE, "w", encoding="utf-8") as f:
            json.dump(meta, f)
            _sync(f)
        fsync_folder(tmp)
        for _ in range(3):
            try:
                os.replace(tmp, path)  # rename(2) refuses to replace a non-empty folder
                break
            except OSError:
                if not path.is_dir():
                    raise
            if _complete(path, settings_text, check):
                return True  # another process wrote the same entry first: keep it
            # a corrupt entry, or one for other settings: move it aside, then retry
            stale = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name + ".", suffix=".stale"))
            try:
                os.replace(path, stale / "old")
            except FileNotFoundError:
                pass  # another process moved it first
            shutil.rmtree(stale, ignore_errors=True)
        else:
            raise OSError(f"{path} kept being replaced by other processes")
        fsync_folder(path.parent)
        return True
    except OSError as err:
        log.warning("cannot write the cache %s (%s); the data is returned uncached", path, err)
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_or_build(name, settings, build, version, check=None):
    """Load the arrays cached for ``(name, settings, version)``, or build and cache them.

    ``build()`` must return a dict of NumPy arrays (numbers or strings; no
    object arrays). A missing or corrupt entry is (re)built; an unwritable
    cache folder only costs the caching. Loaded arrays are memory-mapped
    copy-on-write: they read like ordinary arrays, and writing to one changes
    only the caller's copy.

    check: called with the loaded arrays; a ValueError from it (arrays of the wrong
    shape, dtype or values, from a hand-edited or damaged entry) rebuilds the entry with a
    warning, like a corrupt file.

    Returns ``(arrays, path, built)`` where ``built`` says whether ``build``
    ran.
    """
    path = cache_path(name, settings, version)
    settings_text = json.dumps({"version": version, "settings": settings}, sort_keys=True)
    if path.exists():
        arrays = _read(path, settings_text, check)
        if arrays is not None:
            return arrays, path, False
    arrays = build()
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.dtype == object:
            raise TypeError(f"cached value {key!r} must be a NumPy array of numbers or strings, got {type(value)}")
        if not _plain_name(key):
            raise ValueError(f"cached array names must be letters, digits, '-' or '_', got {key!r}")
    _write(path, arrays, settings_text, check)
    return arrays, path, True
