"""The array backend: NumPy on the CPU, CuPy on CUDA.

This is the only module in minicap that imports CuPy, and it does so inside a
guard, so ``import minicap`` works on a machine that has never heard of CUDA.

Every layer asks its *inputs* which module to use::

    xp = get_array_module(x, w)     # numpy, or cupy if any argument lives on the GPU

There is no global "device" flag. Data moves between devices only where the
caller says so (``to_device``, ``to_numpy``), typically once per minibatch.
"""

import functools

import numpy as np

try:  # CuPy is optional: the import fails cleanly on machines without it.
    import cupy as _cupy
except Exception:  # ImportError, or a broken CUDA install raising something else
    _cupy = None

DEVICES = ("cpu", "cuda")


def _is_cupy_array(x):
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``.

    Non-array arguments (None, Python scalars) are ignored, so layers can pass
    everything they received.
    """
    if _cupy is not None and any(_is_cupy_array(a) for a in arrays):
        return _cupy
    return np


@functools.lru_cache(maxsize=1)
def gpu_available():
    """True when CuPy imports, a CUDA device is present and a tiny kernel runs.

    ``import cupy`` alone succeeds on machines with no GPU, so this really
    launches work on the device. The answer is cached for the process.
    """
    if _cupy is None:
        return False
    try:
        if _cupy.cuda.runtime.getDeviceCount() < 1:
            return False
        x = _cupy.arange(4, dtype=_cupy.float32)
        return float((x * 2).sum()) == 12.0
    except Exception:
        return False


def require_device(device):
    """Validate ``device`` and, for 'cuda', that a GPU really works; returns it.

    Raises ValueError for an unknown name and RuntimeError, with the fix, when
    'cuda' is asked for on a machine where it cannot run.
    """
    check_device(device)
    if device == "cuda" and _cupy is None:
        raise RuntimeError(
            "device 'cuda' was requested but no working CUDA device was found: CuPy is not installed; "
            "install the wheel matching your CUDA toolkit, e.g. pip install 'minicap[cuda12]' or "
            "'minicap[cuda13]', or use device 'cpu'"
        )
    if device == "cuda" and not gpu_available():
        raise RuntimeError(
            "device 'cuda' was requested but no working CUDA device was found "
            "(CuPy is installed, but a test kernel could not run); use device 'cpu'"
        )
    return device


def check_device(device):
    """Validate a device name and return it; raises ValueError otherwise."""
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return device


def device_of(x):
    """'cuda' for a CuPy array, 'cpu' for anything else."""
    return "cuda" if _is_cupy_array(x) else "cpu"


def to_device(x, device):
    """Copy an array, or every array inside a dict / list / tuple (named tuples
    included), to ``device``.

    Arrays already on the right device are returned as they are (no copy).
    Non-array leaves (strings, numbers, None) pass through unchanged.
    """
    require_device(device)
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a namedtuple takes its fields as arguments
        return type(x)(*(to_device(v, device) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, device) for v in x)
    if device == "cpu":
        if _is_cupy_array(x):
            return _cupy.asnumpy(x)
        return x
    if isinstance(x, np.ndarray):
        return _cupy.asarray(x)
    return x


def to_numpy(x):
    """A NumPy array (or dict / list of them) from any backend's arrays."""
    return to_device(x, "cpu")


def scatter_add(dst, idx, src):
    """``dst[idx] += src`` with repeated indices accumulated, in place.

    Plain fancy-index ``+=`` keeps only the last write for a repeated index,
    which silently loses gradient when a word id appears twice in a batch.
    ``add.at`` is the unbuffered version (NumPy, CuPy >= 12); older CuPy has
    ``cupyx.scatter_add``.
    """
    xp = get_array_module(dst)
    if hasattr(xp.add, "at"):
        xp.add.at(dst, idx, src)
    else:  # CuPy < 12
        import cupyx

        cupyx.scatter_add(dst, idx, src)
    return dst


def add_at_distinct(dst, idx, src):
    """``dst[idx] += src`` where ``idx`` never names the same position twice, in place.

    With no repeats, NumPy's plain fancy-index ``+=`` is exact, and much faster
    than ``add.at``, which handles one element at a time (3.5 ms against well
    under one for the kept rows of a padded COCO batch). On the GPU it stays
    ``scatter_add``: one kernel either way, and safe whatever the indices.
    """
    if get_array_module(dst) is np:
        dst[idx] += src
        return dst
    return scatter_add(dst, idx, src)


def scatter_rows(ids, rows, V, dtype):
    """(V, C) table whose row v is the sum of the rows of ``rows`` at ids == v.

    ids: (...) integer ids in [0, V); rows: (..., C), one row per id.

    On the GPU this is one ``scatter_add`` of every element, which CUDA does
    with atomic adds. NumPy's ``add.at`` handles one element at a time, which
    is slow for the (N*T, 4H) rows of the folded embedding
    (``layers/embed_project.py``): on the CPU the rows are summed per word after
    sorting them by id instead, two to three times faster (``_sum_rows_sorted``).
    """
    xp = get_array_module(rows)
    if xp is np:
        return _sum_rows_sorted(ids, rows, V, dtype)
    C = rows.shape[-1]
    table = xp.zeros((V, C), dtype=dtype)
    # One index per element, id * C + column, on the flattened table.
    # int64 first: ids * C overflows small integer id types (uint8, int16).
    flat_ids = (ids.reshape(-1, 1).astype(xp.int64) * C + xp.arange(C)).reshape(-1)
    scatter_add(table.reshape(V * C), flat_ids, rows.reshape(-1))
    return table


# A word with at least this many rows is summed as one block; see below.
_LONG_RUN = 16


def _sum_rows_sorted(ids, rows, V, dtype):
    """``scatter_rows`` for NumPy arrays, with whole-row operations only.

    After a stable sort by id, each word's rows sit together, in their original
    order (a "run"). Pass k then adds the k-th row of every run to its word's
    row of the table: one row per word, so no index repeats within a pass and
    plain fancy-index ``+=`` is safe. Runs of ``_LONG_RUN`` rows or more (the
    <START> token, <NULL> padding, "a") are summed as contiguous blocks
    instead, which keeps the number of passes below ``_LONG_RUN``.
    """
    flat = ids.reshape(-1)
    rows = rows.reshape(flat.size, rows.shape[-1])
    # order[j] is the row at sorted position j; the rows themselves are never
    # copied into sorted order, each pass gathers the ones it adds.
    order = np.argsort(flat, kind="stable")
    ids_sorted = flat[order]
    starts = np.flatnonzero(np.r_[True, ids_sorted[1:] != ids_sorted[:-1]])
    lengths = np.diff(np.r_[starts, flat.size])
    table = np.zeros((V, rows.shape[1]), dtype=dtype)
    long = lengths >= _LONG_RUN
    for start, length in zip(starts[long].tolist(), lengths[long].tolist()):
        rows[order[start : start + length]].sum(axis=0, out=table[ids_sorted[start]])
    starts, lengths = starts[~long], lengths[~long]
    for k in range(int(lengths.max(initial=0))):
        runs = starts[lengths > k]
        table[ids_sorted[runs]] += rows[order[runs + k]]
    return table
