"""Read ``torch.save`` files without PyTorch, and without trusting them.

A ``torch.save`` file is a pickle in which every tensor is a call to a
rebuild function (``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)``) and every storage is a *persistent id* naming a block of raw
bytes kept outside the pickle. Two containers exist:

- the zip format (torch >= 1.6): ``<name>/data.pkl`` holds the pickle,
  ``<name>/data/<key>`` the bytes of each storage and ``<name>/byteorder``
  (when present) their byte order;
- the legacy format: a sequence of pickles (magic number, protocol version,
  system info, the object, the list of storage keys), then each storage as an
  int64 element count and its little-endian bytes.

Unpickling runs whatever the pickle names, so ``pickle.load`` on a file from
the internet is arbitrary code execution. Here the unpickler's ``find_class``
answers only from a fixed table (our own tensor-rebuild functions, markers
for the storage and dtype names, ``collections.OrderedDict``, ``set`` and
``frozenset``); anything else raises ``UnsafePickleError`` before it is
imported, let alone called.

Tensors come back as NumPy arrays that are views into their storage, so
strides, offsets and storages shared between tensors are kept: two tensors
saved from one storage share memory here too.
"""

import collections
import io
import os
import pathlib
import pickle
import sys
import zipfile

import numpy as np

from minicap.data.errors import DataError, UnsafePickleError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class _DType:
    """A torch dtype: how its bytes are stored and what NumPy dtype we return."""

    __slots__ = ("name", "stored", "result")

    def __init__(self, name, stored, result=None):
        self.name = name
        self.stored = np.dtype(stored)
        self.result = np.dtype(result or stored)

    def __setstate__(self, state):
        raise DataError("the pickle tries to modify a dtype marker")


# bfloat16 has no NumPy dtype: its bytes are the top half of a float32, so it
# is widened to float32 (exactly, no rounding).
_DTYPES = {
    d.name: d
    for d in [
        _DType("float32", "float32"),
        _DType("float64", "float64"),
        _DType("float16", "float16"),
        _DType("bfloat16", "uint16", "float32"),
        _DType("complex64", "complex64"),
        _DType("complex128", "complex128"),
        _DType("uint8", "uint8"),
        _DType("int8", "int8"),
        _DType("int16", "int16"),
        _DType("int32", "int32"),
        _DType("int64", "int64"),
        _DType("uint16", "uint16"),
        _DType("uint32", "uint32"),
        _DType("uint64", "uint64"),
        _DType("bool", "bool"),
    ]
}

_STORAGE_CLASSES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "ByteStorage": "uint8",
    "CharStorage": "int8",
    "ShortStorage": "int16",
    "IntStorage": "int32",
    "LongStorage": "int64",
    "BoolStorage": "bool",
}


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co. (``dtype`` None: untyped bytes)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def __setstate__(self, state):
        raise DataError("the pickle tries to modify a storage type")


class _Storage:
    """One block of raw bytes and the typed arrays that tensors view it through.

    ``raw`` is allocated when the pickle first names the storage and filled
    after the pickle is read (the legacy format stores the bytes after the
    object), so tensors are built as views before the values arrive.
    """

    __slots__ = ("key", "dtype", "unit", "raw", "widened")

    def __init__(self, key, dtype, numel):
        self.key = key
        self.dtype = dtype
        self.unit = 1 if dtype is None else dtype.stored.itemsize
        self.raw = np.empty(numel * self.unit, dtype=np.uint8)
        self.widened = None  # the float32 copy of a bfloat16 storage

    def __setstate__(self, state):
        raise DataError("the pickle tries to modify a storage")

    def typed(self, dtype):
        """The storage as a flat array of ``dtype.result`` (shared by all its tensors)."""
        if self.dtype is None:  # untyped storage: its first tensor fixes the element type
            self.dtype = dtype
        elif self.dtype is not dtype:
            raise DataError(
                f"storage {self.key!r} is used both as {self.dtype.name} and as {dtype.name}; "
                "reinterpreting a storage as another dtype is not supported"
            )
        if self.raw.size % dtype.stored.itemsize:
            raise DataError(f"storage {self.key!r} holds {self.raw.size} bytes, not a whole number of {dtype.name}")
        if dtype.result != dtype.stored:
            if self.widened is None:
                self.widened = np.empty(self.raw.size // dtype.stored.itemsize, dtype=dtype.result)
            return self.widened
        return self.raw.view(dtype.stored)

    def finish(self, swap):
        """Put the filled bytes in native order and widen bfloat16 to float32."""
        if self.dtype is None:
            return
        values = self.raw.view(self.dtype.stored)
        if swap and self.dtype.stored.itemsize > 1:
            values.byteswap(inplace=True)
        if self.widened is not None:
            self.widened[...] = (values.astype(np.uint32) << 16).view(np.float32)


def _is_index(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _as_array(storage, dtype, offset, size, stride):
    """The NumPy view that ``torch`` would rebuild from these arguments."""
    if not isinstance(storage, _Storage):
        raise DataError(f"a tensor is rebuilt from {type(storage).__name__}, not from a storage")
    if not (
        _is_index(offset)
        and isinstance(size, (tuple, list))
        and isinstance(stride, (tuple, list))
        and len(size) == len(stride)
        and all(_is_index(n) for n in size)
        and all(_is_index(s) for s in stride)
    ):
        raise DataError(f"malformed tensor: offset {offset!r}, size {size!r}, stride {stride!r}")
    flat = storage.typed(dtype)
    if 0 in size:
        return np.empty(tuple(size), dtype=flat.dtype)
    # The last element a view touches must lie inside the storage, or as_strided
    # would read memory that is not ours.
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.size:
        raise DataError(
            f"a tensor of size {tuple(size)}, stride {tuple(stride)} at offset {offset} reaches past the end "
            f"of storage {storage.key!r} ({flat.size} elements)"
        )
    strides = tuple(s * flat.itemsize for s in stride)
    return np.lib.stride_tricks.as_strided(flat[offset:], shape=tuple(size), strides=strides)


def _rebuild_tensor(storage, offset, size, stride):
    if not isinstance(storage, _Storage) or storage.dtype is None:
        raise DataError("a typed tensor is rebuilt from something that is not a typed storage")
    return _as_array(storage, storage.dtype, offset, size, stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    if not isinstance(dtype, _DType):
        raise DataError(f"a tensor names {dtype!r} as its dtype")
    return _as_array(storage, dtype, offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    # An nn.Parameter is its data; requires_grad and hooks mean nothing in NumPy.
    if not isinstance(data, np.ndarray):
        raise DataError(f"a parameter wraps {type(data).__name__}, not a tensor")
    return data


class _Reader:
    """An allow-listed callable as the pickle sees it.

    The pickle never gets the function itself: a BUILD opcode on a plain
    function would set its attributes (``__defaults__``, ``__code__``'s
    neighbours) for the rest of the process, and a function could be handed
    back as data.
    """

    __slots__ = ("_function",)

    def __init__(self, function):
        self._function = function

    def __call__(self, *args):
        return self._function(*args)

    def __setstate__(self, state):
        raise DataError("the pickle tries to modify a reader function")


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor"): _Reader(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _Reader(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_tensor_v3"): _Reader(_rebuild_tensor_v3),
    ("torch._utils", "_rebuild_parameter"): _Reader(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Reader(_rebuild_parameter),
    ("torch.storage", "UntypedStorage"): _StorageType(None),
    ("torch", "UntypedStorage"): _StorageType(None),
    # The classes themselves, not wrappers: a pickle cannot change a built-in
    # type (BUILD on one fails), and _check_result refuses one returned as data.
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}
_ALLOWED.update({("torch", cls): _StorageType(_DTYPES[name]) for cls, name in _STORAGE_CLASSES.items()})
_ALLOWED.update({("torch", name): dtype for name, dtype in _DTYPES.items()})

_NOT_DATA = (_Reader, _StorageType, _DType, _Storage, type)


def _check_result(obj):
    """Refuse a loaded object that holds one of the reader's own markers or classes instead of data."""
    seen, todo = set(), [obj]
    while todo:
        item = todo.pop()
        if isinstance(item, _NOT_DATA):
            if isinstance(item, _DType):
                what = f"the dtype torch.{item.name}"
            elif isinstance(item, _Reader):
                what = f"the function {item._function.__name__}"
            elif isinstance(item, _StorageType):
                what = "a storage type"
            elif isinstance(item, _Storage):
                what = f"the bare storage {item.key!r} (raw bytes without a tensor's dtype, shape and strides)"
            else:
                what = f"the class {item.__name__}"
            raise DataError(
                f"the pickle returns {what} itself as a value; only tensors, numbers, strings and containers "
                "of them can be read"
            )
        if isinstance(item, (dict, list, tuple, set, frozenset)) and id(item) not in seen:
            # Only the pickle's own containers go into `seen` (pickles can be cyclic): they
            # stay alive, so their ids cannot be reused by another object during the walk.
            seen.add(id(item))
            if isinstance(item, dict):
                todo.extend(item.keys())
                todo.extend(item.values())
            else:
                todo.extend(item)
    return obj


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that can build tensors and plain containers, and nothing else."""

    def __init__(self, file, storages=None):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        # Protocol-2 pickles written by Python 3 spell builtins the Python 2 way.
        module = "builtins" if module == "__builtin__" else module
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(
                f"the pickle asks for {module}.{name}, which is not on the reader's short list; nothing was run. "
                "Only dense tensors, storages and plain containers (dict, list, OrderedDict, set) can be read"
            ) from None

    def persistent_load(self, pid):
        if self._storages is None:
            raise DataError("a storage appears where the torch file format has none")
        return self._storages.get(pid)


class _StorageTable:
    """The storages named by a pickle, keyed by their id, sized before allocation.

    ``check_size(key, nbytes)`` refuses one storage; ``limit`` (the file's size) bounds
    them all together, since every stored byte must come from the file: many storages
    that each fit the file could otherwise add up to any size.
    """

    def __init__(self, check_size, limit):
        self._check_size = check_size
        self._limit = limit
        self._total = 0
        self.by_key = {}

    def get(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise DataError(f"unexpected persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid[:5]  # location (cpu, cuda:0) is ignored: all goes to NumPy
        if len(pid) == 6 and pid[5] is not None:
            raise DataError("storage views (files from torch < 1.0) are not supported; re-save the file with a recent torch")
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and _is_index(numel)):
            raise DataError(f"malformed storage id {pid!r:.80}")
        storage = self.by_key.get(key)
        if storage is None:
            unit = 1 if storage_type.dtype is None else storage_type.dtype.stored.itemsize
            self._check_size(key, numel * unit)
            self._total += numel * unit
            if self._total > self._limit:
                raise DataError(f"its storages add up to more than the {self._limit} bytes of the whole file "
                                f"(at storage {key!r}); it is damaged or hostile")
            storage = self.by_key[key] = _Storage(key, storage_type.dtype, numel)
        elif storage.raw.size != numel * storage.unit:
            raise DataError(f"storage {key!r} is declared with two different sizes")
        return storage


def read_torch_file(path):
    """Load a ``torch.save`` file (zip or legacy format) into NumPy, safely and without torch.

    Tensors and ``nn.Parameter`` objects become NumPy arrays with the saved
    shape, strides and offset, as views into their storage: tensors that
    shared a storage when saved share memory. Containers come back as they
    were saved (dict, OrderedDict, list, tuple, set, str, numbers).

    dtypes: float32/64, float16, complex64/128, uint8/16/32/64, int8/16/32/64
    and bool map to the NumPy dtype of the same name; bfloat16 is widened
    exactly to float32. The device a tensor was saved from is ignored and
    ``requires_grad`` is dropped.

    Raises ``FileNotFoundError`` for a missing file, ``UnsafePickleError`` if
    the pickle asks for anything but tensors and plain containers (nothing it
    asked for is imported or run), and ``DataError`` for anything that is not
    an intact torch file (random bytes, truncation, a foreign zip). Every
    message names the file.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a file written by torch.save; pass the file itself")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a file written by torch.save)")
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if head == b"PK\x03\x04" or _has_zip_directory(path):
            return _read_zip(path)
        return _read_legacy(path)
    except DataError as err:
        raise type(err)(f"{path}: {err}") from None


def _has_zip_directory(path):
    try:
        return zipfile.is_zipfile(path)
    except Exception:  # is_zipfile lets BadZipFile escape for some damaged directories
        return True


def _unpickle(file, storages):
    """One restricted ``load``; any failure of a hostile or damaged pickle becomes a DataError."""
    try:
        return _check_result(_SafeUnpickler(file, storages).load())
    except DataError:
        raise
    except Exception as err:  # a damaged pickle can raise almost anything from inside the unpickler
        raise DataError(f"the pickle inside is damaged or truncated ({type(err).__name__}: {err})") from None


def _read_zip(path):
    size = os.path.getsize(path)
    try:
        archive = zipfile.ZipFile(path)
    except Exception as err:  # a damaged directory raises BadZipFile, UnicodeDecodeError, struct.error, ...
        raise DataError(
            f"it looks like a zip archive but cannot be opened ({type(err).__name__}: {err}): "
            "the file is truncated or damaged; download it again"
        ) from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            if any(n.endswith("/constants.pkl") for n in names):
                raise DataError("this is a TorchScript archive (torch.jit.save), not a torch.save file")
            raise DataError("it is a zip archive but not a torch.save file (no single '<name>/data.pkl' inside)")
        prefix = pickles[0][: -len("data.pkl")]
        _refuse_compressed(archive, pickles[0])
        try:
            byteorder = "little"
            if prefix + "byteorder" in names:
                _refuse_compressed(archive, prefix + "byteorder")
                byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace")
            if byteorder not in ("little", "big"):
                raise DataError(f"its byteorder record says {byteorder!r:.20}, expected 'little' or 'big'")

            def check_size(key, nbytes):
                name = f"{prefix}data/{key}"
                if name not in names:
                    raise DataError(f"storage {key!r} is named in the pickle but {name} is missing from the archive")
                info = _refuse_compressed(archive, name)
                if info.file_size != nbytes:
                    raise DataError(f"{name} holds {info.file_size} bytes, the pickle expects {nbytes}")
                if nbytes > size:
                    raise DataError(f"{name} claims {nbytes} bytes, more than the whole file ({size})")

            storages = _StorageTable(check_size, size)
            obj = _unpickle(io.BytesIO(archive.read(pickles[0])), storages)
            for key, storage in storages.by_key.items():
                with archive.open(f"{prefix}data/{key}") as src:
                    _read_exact(src, storage.raw)
        except DataError:
            raise
        except Exception as err:  # a damaged entry raises BadZipFile (bad CRC), zlib.error, EOFError, ...
            raise DataError(f"the archive is damaged ({type(err).__name__}: {err}); download it again") from None
    for storage in storages.by_key.values():
        storage.finish(swap=byteorder != sys.byteorder)
    return obj


def _refuse_compressed(archive, name):
    """The ``ZipInfo`` of ``name``, refused unless stored uncompressed, as torch.save writes every entry.

    A deflated entry can declare any size and inflate to it from a few kilobytes (a zip
    bomb), so its declared size says nothing about what the file holds; a stored entry's
    bytes are all in the file, so the file's size bounds it.
    """
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED or info.file_size > info.compress_size:
        raise DataError(
            f"{name} is compressed, which torch.save never does: a compressed entry can expand to any size, "
            "so it is refused; re-save the object with torch.save (or unzip and re-zip it with `zip -0`)"
        )
    return info


# Bytes read per call: ZipExtFile.readinto reads into a temporary bytes object and copies,
# so one call for a whole storage would hold it twice.
_CHUNK = 1 << 20


def _read_exact(src, out):
    view = memoryview(out).cast("B")
    done = 0
    while done < len(view):
        n = src.readinto(view[done : done + _CHUNK])
        if not n:
            raise DataError(f"a storage ends after {done} of its {len(view)} bytes: the file is truncated; download it again")
        done += n


def _read_legacy(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        try:
            magic = _unpickle(f, None)
        except UnsafePickleError:
            raise
        except DataError:
            magic = None
        if magic != LEGACY_MAGIC:
            raise DataError("not a torch.save file: neither a zip archive nor the legacy format (bad magic number)")
        protocol = _unpickle(f, None)
        if protocol != LEGACY_PROTOCOL:
            raise DataError(f"legacy torch format protocol {protocol!r:.20} is not supported (only {LEGACY_PROTOCOL})")
        if not isinstance(_unpickle(f, None), dict):
            raise DataError("the system-info record of the legacy format is missing")

        def check_size(key, nbytes):
            if nbytes > size:
                raise DataError(f"storage {key!r} claims {nbytes} bytes, more than the whole file ({size})")

        storages = _StorageTable(check_size, size)
        obj = _unpickle(f, storages)
        keys = _unpickle(f, None)
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise DataError("the list of storage keys after the object is malformed")
        for key in keys:
            storage = storages.by_key.get(key)
            if storage is None:
                raise DataError(f"storage {key!r} is listed but no tensor uses it")
            header = f.read(8)
            if len(header) < 8:
                raise DataError("the file ends before all storages were read: it is truncated; download it again")
            count = int.from_bytes(header, "little", signed=True)
            if count * storage.unit != storage.raw.size:
                raise DataError(f"storage {key!r} holds {count} elements, the pickle expects {storage.raw.size // storage.unit}")
            _read_exact(f, storage.raw)
        missing = storages.by_key.keys() - set(keys)
        if missing:
            raise DataError(f"storages {sorted(missing)[:3]} are used by tensors but not stored in the file")
    for storage in storages.by_key.values():
        storage.finish(swap=sys.byteorder != "little")
    return obj
