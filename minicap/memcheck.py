"""Will it fit? Sizes compared with the machine's free memory before anything is allocated.

A mistyped count (``--num-train 99999999999``, ``--hidden-dim 100000000``) would otherwise
run until NumPy's allocation fails deep inside, or the system starts swapping. The
estimates here are lower bounds of what the step needs (the arrays it must hold at once),
so a refusal is always right; a step that passes can still run out of memory, which the
command line reports in one line too.
"""

import os

__all__ = ["NotEnoughMemoryError", "available_bytes", "check_size", "describe_bytes"]


class NotEnoughMemoryError(MemoryError):
    """The step would need more memory than the machine has free."""


def available_bytes():
    """Memory available to a new allocation (Linux: MemAvailable), or None where it cannot be told."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not on Windows or macOS
        return None


def describe_bytes(nbytes):
    """1536 -> '1.5 KB' (powers of 1024)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if nbytes < 1024 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def check_size(name, value, cost, what, available=None):
    """Raise NotEnoughMemoryError when ``what`` with ``name`` = ``value`` cannot fit in memory.

    cost(v): at least how many bytes the step needs when ``name`` is v (growing with v).
    The message says how much it needs, how much is free, and the largest ``name`` that
    fits. available: the free bytes; None asks the system (when it cannot tell, nothing
    is refused).
    """
    available = available_bytes() if available is None else available
    if available is None or cost(value) <= available:
        return
    low, high = 0, value  # cost(low) fits (0: nothing), cost(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) <= available else (low, middle)
    fits = f"{name} {low} is about the most that fits" if low else f"it does not fit even with {name} 1"
    raise NotEnoughMemoryError(
        f"{what} with {name} {value} needs at least {describe_bytes(cost(value))} of memory, but this "
        f"machine has {describe_bytes(available)} free; {fits}")
