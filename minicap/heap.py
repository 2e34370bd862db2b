"""Keep the memory a training step frees, for the next step (glibc's malloc on Linux).

Every training step allocates the same large temporaries again: at COCO sizes an
LSTM step's time-major buffers are (T, N, 4H) float32, 16 MiB each. NumPy gets
them from malloc, and glibc hands memory that large back to the kernel when it is
freed, either at once (blocks above its mmap threshold) or once the free space at
the top of the heap passes its trim threshold. The next step's arrays then get
fresh pages from the kernel, and every 4 KiB page costs a page fault the first
time it is written: 3,200 to 4,100 faults a step for the LSTM above.

glibc adjusts both thresholds by itself, so whether a step falls into this
depends on the order and sizes of its allocations: a small change to a layer can
tip it over. Measured on a two-core cloud machine (docs/performance.md), a COCO
LSTM step with 30 % padding took 194-198 ms with glibc's own thresholds and
152-162 ms with the ones below, while the same step without padding happened to
stay clear of it.

The image encoders (``minicap.encoders``) call it as well: their own buffers cover the
arrays of 1 MB and more, and the smaller ones faulted about 850 pages back in per
448x448 RegNet image.

``keep_freed_memory()`` raises both thresholds, so that freed blocks stay in the
process and the next step reuses them without faults: arrays up to
``MMAP_THRESHOLD`` come from the heap, and up to ``TRIM_THRESHOLD`` of free heap
is kept. The cost is that the process keeps its peak memory until it exits,
which is what a training run does anyway. It changes no result.

It only acts where it can: glibc (Linux, not Alpine's musl, macOS or Windows),
and not when the user has already tuned malloc through the environment
(``GLIBC_TUNABLES`` or ``MALLOC_*_`` variables), which wins.
"""

import ctypes
import os
import threading

# mallopt's parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# glibc's ceiling for the mmap threshold on 64-bit machines (32 MiB): larger arrays
# (a whole dataset, say) are still mapped, and returned, one by one.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024

_ENVIRONMENT = ("GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")

_lock = threading.Lock()
_state = {"done": False, "kept": False}


def keep_freed_memory():
    """Make glibc keep freed memory for reuse, once per process. Returns True if it does
    now (this call or an earlier one), False where it cannot or the environment decides."""
    with _lock:
        if not _state["done"]:
            _state["done"] = True
            _state["kept"] = _set_thresholds()
        return _state["kept"]


def _set_thresholds():
    if any(name in os.environ for name in _ENVIRONMENT):
        return False
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success. The mmap threshold first: setting it also stops
    # glibc from adjusting either threshold by itself.
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _glibc():
    """The C library, if it is glibc (which has gnu_get_libc_version and mallopt), else None."""
    try:
        # The symbols already loaded into this process, libc's among them: no search for
        # the library file (ctypes.util.find_library starts a subprocess on Linux).
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (an AttributeError says: not glibc)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return libc
