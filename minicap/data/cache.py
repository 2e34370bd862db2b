"""An on-disk cache of generated data, one ``.npz`` file per setting.

The file name carries a hash of every setting that shaped the data plus a
format version, so changing anything (a size, a seed, the extractor) misses
the cache instead of returning stale arrays. The settings are also stored
inside the file and compared on load, which guards against a hash collision
and a file copied under the wrong name.

Writes are atomic (a temporary file in the same folder, then ``os.replace``),
so an interrupted run never leaves a half-written cache behind; a file that is
corrupt anyway (truncated, overwritten) is rebuilt with a warning.
"""

import hashlib
import json
import logging
import os
import pathlib
import tempfile
import zipfile

import numpy as np

log = logging.getLogger(__name__)

_SETTINGS_KEY = "__settings__"


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
    """Where the data for ``name`` built with ``settings`` lives."""
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"cache name must be letters, digits, '-' or '_', got {name!r}")
    key = settings_hash({"version": version, "settings": settings})
    return cache_dir() / f"{name}-v{version}-{key}.npz"


def _read(path, expected):
    """The arrays in ``path``, or None (with a warning) if it is unusable."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        log.warning("cache file %s is unreadable (%s); rebuilding it", path, err)
        return None
    stored = arrays.pop(_SETTINGS_KEY, None)
    if stored is None or str(stored) != expected:
        log.warning("cache file %s was written for other settings; rebuilding it", path)
        return None
    return arrays


def _write(path, arrays, settings_text):
    """Write ``arrays`` to ``path`` atomically; False (with a warning) on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    except OSError as err:
        log.warning("cannot write the cache in %s (%s); set MINICAP_HOME to a writable folder", path.parent, err)
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **{_SETTINGS_KEY: np.asarray(settings_text)})
        os.replace(tmp, path)
        return True
    except OSError as err:
        log.warning("cannot write the cache file %s (%s); the data is returned uncached", path, err)
        return False
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_or_build(name, settings, build, version):
    """Load the arrays cached for ``(name, settings, version)``, or build and cache them.

    ``build()`` must return a dict of NumPy arrays (no object arrays: the
    cache is read with ``allow_pickle=False``). A missing or corrupt file is
    (re)built; an unwritable cache folder only costs the caching.

    Returns ``(arrays, path, built)`` where ``built`` says whether ``build``
    ran.
    """
    path = cache_path(name, settings, version)
    settings_text = json.dumps({"version": version, "settings": settings}, sort_keys=True)
    if path.exists():
        arrays = _read(path, settings_text)
        if arrays is not None:
            return arrays, path, False
    arrays = build()
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.dtype == object:
            raise TypeError(f"cached value {key!r} must be a NumPy array of numbers or strings, got {type(value)}")
    _write(path, arrays, settings_text)
    return arrays, path, True
