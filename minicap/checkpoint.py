"""Saving training state without losing work: atomic ``.npz`` files and deferred Ctrl-C.

``save_state`` / ``load_state`` store a nested dict whose leaves are NumPy arrays or
JSON values (numbers, strings, lists, None). Arrays become ``.npz`` entries named by their
``/``-joined path (``optim/W_embed/m``); everything else (step counts, learning rates,
histories, a generator state) goes into one JSON document kept as a 0-d unicode array
(``__json__``) in which each array is a reference ``{"__array__": name}``, so any string
can be a key and the file loads with ``allow_pickle=False``.

Writes go to a temporary file in the destination folder, are flushed to disk, then
renamed over the target with ``os.replace``: a crash or Ctrl-C mid-write leaves the
previous file untouched, never a half-written one. ``DeferredInterrupt`` holds a Ctrl-C
back until the training loop reaches a point where its state is consistent.
"""

import json
import math
import pathlib
import signal
import threading
import zipfile
import zlib

import numpy as np

from .atomic import atomic_open

__all__ = ["CheckpointError", "DeferredInterrupt", "save_npz_atomic", "load_npz", "save_state", "load_state",
           "check_npz_sizes"]

_JSON_KEY = "__json__"
_ARRAY_REF = "__array__"  # {"__array__": name} in the JSON part stands for the array stored as name


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, truncated, or of another kind."""


def save_npz_atomic(path, arrays):
    """Write ``arrays`` (name -> NumPy array) to ``path`` as an uncompressed ``.npz``, atomically.

    The parent folder is created if needed. Object arrays are refused, since they could only
    be read back with pickle. Returns the path written, as a ``pathlib.Path``.
    """
    path = pathlib.Path(path)
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.dtype.hasobject:
            raise TypeError(
                f"checkpoint entry {key!r} must be a NumPy array of numbers or strings, "
                f"got {type(value).__name__}" + (f" of dtype {value.dtype}" if isinstance(value, np.ndarray) else "")
            )
    with atomic_open(path) as f:
        np.savez(f, **arrays)
    return path


def load_npz(path):
    """Read every array of an ``.npz`` file into a dict, without pickle.

    Raises FileNotFoundError for a missing file and CheckpointError for one that is not a
    complete ``.npz`` archive (truncated, overwritten, or another format), or that would
    take more memory than the file can hold (``check_npz_sizes``).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        check_npz_sizes(path)
        with np.load(path, allow_pickle=False) as f:
            return {key: f[key] for key in f.files}
    except CheckpointError:
        raise
    # a damaged archive can also claim a newer zip version or an unknown compression
    # method (NotImplementedError from zipfile) or hold a corrupt deflate stream (zlib.error)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError, zlib.error) as err:
        raise CheckpointError(
            f"{path} is not a readable .npz checkpoint ({err}); it may be truncated or of another "
            "format: delete it or point to another checkpoint"
        ) from None


def check_npz_sizes(path):
    """Refuse an .npz whose arrays would need more memory than the file holds, before reading any.

    minicap writes .npz files uncompressed (``numpy.savez``), so every byte of every array
    is in the file. A compressed member can declare any size and inflate to it from a few
    kilobytes (a zip bomb), and an .npy header can declare a shape far larger than its
    member (NumPy allocates the declared shape before it reads): both are refused.
    """
    path = pathlib.Path(path)
    size = path.stat().st_size
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            # other (unknown) methods are left to zipfile, which refuses them when the entry is read
            compressed = info.compress_type in (zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
            if compressed or (info.compress_type == zipfile.ZIP_STORED and info.file_size > info.compress_size):
                raise CheckpointError(
                    f"{path}: its entry {info.filename!r} is compressed; minicap writes .npz files uncompressed "
                    "(numpy.savez), and a compressed entry can expand to any size, so it is refused; "
                    "re-save the arrays with numpy.savez")
            total += info.file_size
            if total > size:  # entries of a damaged or hostile zip can share the same bytes
                raise CheckpointError(f"{path}: its entries add up to more than the {size} bytes of the file")
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                needed = math.prod(shape) * dtype.itemsize
                if needed > info.file_size:
                    raise CheckpointError(
                        f"{path}: its entry {info.filename!r} declares a {dtype} array of shape {shape} "
                        f"({needed} bytes) but holds {info.file_size} bytes; the file is damaged")


def _plain(value):
    """JSON fallback: NumPy scalars become the Python numbers they hold."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a {type(value).__name__} cannot be stored in a checkpoint; use arrays, numbers, strings, lists or dicts")


def _split(tree, path, arrays):
    """The JSON part of ``tree``: each array is moved into ``arrays`` and replaced by a reference."""
    if isinstance(tree, np.ndarray):
        name = "/".join(path)
        if name in arrays or name == _JSON_KEY:
            raise ValueError(f"two checkpoint entries would both be stored as {name!r}; rename one")
        arrays[name] = tree
        return {_ARRAY_REF: name}
    if not isinstance(tree, dict):
        return tree
    out = {}
    for key, value in tree.items():
        if not isinstance(key, str) or key == _ARRAY_REF:
            raise ValueError(f"checkpoint keys must be strings other than {_ARRAY_REF!r}, got {key!r} "
                             f"in {'/'.join(path) or 'the top level'}")
        out[key] = _split(value, (*path, key), arrays)
    return out


def _join(tree, arrays, source):
    """Put the arrays back where ``_split`` left references."""
    if isinstance(tree, dict):
        if set(tree) == {_ARRAY_REF}:
            if tree[_ARRAY_REF] not in arrays:
                raise CheckpointError(f"{source} is incomplete: its entry {tree[_ARRAY_REF]!r} is missing")
            return arrays[tree[_ARRAY_REF]]
        return {key: _join(value, arrays, source) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_join(value, arrays, source) for value in tree]
    return tree


def save_state(path, state):
    """Write a nested dict (leaves: NumPy arrays or JSON values) to ``path`` atomically."""
    arrays = {}
    document = _split(state, (), arrays)
    arrays[_JSON_KEY] = np.array(json.dumps(document, default=_plain))
    return save_npz_atomic(path, arrays)


def is_solver_state(arrays):
    """Whether the arrays of an .npz were written by ``save_state`` (a solver checkpoint)."""
    return _JSON_KEY in arrays


def is_model_file(arrays):
    """Whether the arrays of an .npz look like a model file (``CaptioningRNN.save``)."""
    return "format" in arrays and "config" in arrays


def load_state(path):
    """The nested dict written by ``save_state`` (FileNotFoundError, CheckpointError otherwise)."""
    arrays = load_npz(path)
    if not is_solver_state(arrays):
        hint = ""
        if is_model_file(arrays):
            hint = (f"; it is a model file ({str(arrays['format'])}) written by model.save(): load it with "
                    "CaptioningRNN.load(path), and resume training from the checkpoint.npz a solver "
                    "with checkpoint_dir writes")
        raise CheckpointError(f"{path} was not written by minicap's save_state (it has no {_JSON_KEY!r} entry){hint}")
    try:
        document = json.loads(str(arrays.pop(_JSON_KEY)))
        return _join(document, arrays, path)
    except (ValueError, RecursionError) as err:  # RecursionError: JSON nested thousands deep
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"the JSON part of {path} is damaged ({err})") from None


class DeferredInterrupt:
    """Context manager: the first Ctrl-C only sets ``requested``; a second one raises at once.

    A loop checks ``requested`` where its state is consistent, so a single Ctrl-C never lands
    in the middle of a parameter update. Signal handlers can only be installed from the main
    thread; elsewhere Ctrl-C cannot reach the loop anyway, and nothing is installed.
    """

    def __enter__(self):
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not None:  # None: a handler not installed from Python, leave it be
                self._previous = previous
                signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
