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
           "check_model_arrays", "check_training_state", "check_npz_sizes"]

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


def check_model_arrays(arrays, source):
    """Check a model file's stored sizes against its arrays before the model is built.

    The constructor allocates parameters from the config's sizes, so a config that says
    ``hidden_dim=10**7`` in a file of kilobytes would cost terabytes before any shape is
    compared: every size is compared with the stored arrays' shapes first (W_embed (V, W),
    W_proj (D, H), Wx (W, G), Wh (H, G), W_vocab (H, V), G a multiple of H: the cell's gates;
    taken from the file, so that any registered cell's file is checked the same way).
    Every parameter must be a real floating-point array of finite values: a NaN-filled
    model would caption every image with nothing and score zeros without an error.
    Raises ``CheckpointError`` naming ``source``.
    """
    try:
        config = json.loads(str(arrays["config"]))
    except (ValueError, RecursionError) as err:  # RecursionError: JSON nested thousands deep
        raise CheckpointError(f"{source} has an unreadable model config: {err}") from None
    if not isinstance(config, dict) or not isinstance(config.get("word_to_idx"), dict):
        raise CheckpointError(f"{source} has an unreadable model config: it is not a dict with a word_to_idx dict")
    for key, value in arrays.items():
        if not key.startswith("param/"):
            continue
        value = np.asarray(value)
        if value.dtype.kind != "f":
            raise CheckpointError(f"{source}: parameter {key[6:]!r} has dtype {value.dtype}; parameters are real "
                                  "floating-point arrays, so the file is damaged or was not written by minicap")
        bad = value.size - int(np.count_nonzero(np.isfinite(value)))
        if bad:
            raise CheckpointError(f"{source}: parameter {key[6:]!r} holds {bad} NaN or infinite values of "
                                  f"{value.size}: the run diverged or the file is damaged; use an earlier "
                                  "checkpoint or train again with a lower learning rate")
    sizes = {}
    for letter, field in (("D", "input_dim"), ("W", "wordvec_dim"), ("H", "hidden_dim")):
        value = config.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckpointError(f"{source} has an unreadable model config: {field} is {value!r:.40}, "
                                  "not a whole number >= 1")
        sizes[letter] = value
    stored = {}
    for name in ("W_embed", "W_proj", "Wx", "Wh", "W_vocab"):
        value = arrays.get(f"param/{name}")
        if value is None:
            raise CheckpointError(f"{source} is missing parameter {name!r}")
        if np.ndim(value) != 2:
            raise CheckpointError(f"{source}: parameter {name!r} has shape {np.shape(value)}, expected a matrix")
        stored[name] = np.shape(value)
    V, G = stored["W_embed"][0], stored["Wh"][1]
    D, W, H = sizes["D"], sizes["W"], sizes["H"]
    # Wh before Wx: G is read from Wh, so a misshaped Wh is named as itself
    expected = {"W_embed": (V, W), "W_proj": (D, H), "Wh": (H, G), "Wx": (W, G), "W_vocab": (H, V)}
    for name, shape in expected.items():
        if stored[name] != shape:
            raise CheckpointError(
                f"{source}: parameter {name!r} has shape {stored[name]}, but the config's sizes "
                f"(input_dim {D}, wordvec_dim {W}, hidden_dim {H}, vocabulary {V}) make it {shape}; "
                "the file is damaged or was edited")
    if G % H:
        raise CheckpointError(f"{source}: parameter 'Wh' has {G} columns, not a whole number of gates of "
                              f"hidden_dim {H}; the file is damaged or was edited")
    ids = [i for i in config["word_to_idx"].values() if isinstance(i, int) and not isinstance(i, bool)]
    if len(config["word_to_idx"]) > V or any(i >= V for i in ids):
        raise CheckpointError(f"{source}: its vocabulary has {len(config['word_to_idx'])} words with ids up to "
                              f"{max(ids, default=0)}, but W_embed has {V} rows; the file is damaged or was edited")


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


def _is_count(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 0


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_training_state(state, path):
    """Check the fields of a solver checkpoint (``load_state`` output) before a solver uses them.

    A hand-edited or damaged checkpoint whose JSON part still parses can hold a string
    where a count belongs, a row order that is not a permutation of the training rows,
    or a negative position: each would surface later as an error from deep inside the
    training loop, or silently train on the wrong rows. Raises ``CheckpointError``
    naming ``path`` and the field.
    """
    def refuse(field, expected):
        value = state.get(field)
        shown = f"an array {value.dtype} {value.shape}" if isinstance(value, np.ndarray) else f"{value!r:.60}"
        raise CheckpointError(f"{path} is damaged or was edited: its {field!r} is {shown}, expected {expected}; "
                              "resume from an intact checkpoint, or start the run again (--overwrite)")

    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is damaged: it does not hold a training state")
    for field in ("epoch", "iteration", "position"):
        if not _is_count(state.get(field)):
            refuse(field, "a whole number >= 0")
    for field in ("loss_history", "val_loss_history"):
        value = state.get(field)
        if not (isinstance(value, list) and all(_is_number(x) for x in value)):
            refuse(field, "a list of numbers")
    if not isinstance(state.get("metrics_history"), list):
        refuse("metrics_history", "a list")
    if not (state.get("best_val") is None or _is_number(state.get("best_val"))):
        refuse("best_val", "a number or null")
    if not (state.get("best_epoch") is None or _is_count(state.get("best_epoch"))):
        refuse("best_epoch", "a whole number >= 0 or null")
    best = state.get("best_params")
    if not (best is None or (isinstance(best, dict) and all(isinstance(v, np.ndarray) for v in best.values()))):
        refuse("best_params", "null or a dict of arrays")
    if not (isinstance(state.get("optim"), dict) and all(isinstance(c, dict) for c in state["optim"].values())):
        refuse("optim", "a dict of one optimizer state (a dict) per parameter")
    settings = state.get("settings")
    num_train = settings.get("num_train") if isinstance(settings, dict) else None
    order, position = state.get("order"), state["position"]
    if order is None:
        if position != 0:
            refuse("position", "0 between epochs (the checkpoint has no row order)")
    else:
        n = num_train if _is_count(num_train) else (len(order) if isinstance(order, np.ndarray) else 0)
        if not (isinstance(order, np.ndarray) and order.shape == (n,) and order.dtype.kind in "iu"
                and np.array_equal(np.sort(order), np.arange(n))):
            refuse("order", f"a permutation of the {n} training rows")
        if position > n:
            refuse("position", f"at most the {n} rows of the epoch's order")
    try:  # the generator refuses a malformed state, with messages that name no file
        np.random.default_rng().bit_generator.state = state.get("rng_state")
    except (TypeError, ValueError, KeyError) as err:
        refuse("rng_state", f"the state of a PCG64 generator ({err})")


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
