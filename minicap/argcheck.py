"""Checks for integer and real arguments, with one wording for every module.

``check_int`` and ``check_real`` return the value as a Python ``int`` or ``float``,
so what a caller stores (and may write to JSON) is never a NumPy scalar. Both
accept NumPy scalars (``np.int64`` from an array, ``np.float32`` from a config)
and refuse ``bool``: Python counts True as 1, and ``batch_size=True`` would
silently mean a batch of one. A string, a bool or a value out of range is a
``ValueError`` that names the argument and shows the value::

    >>> check_int("batch_size", 0, low=1)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be a positive integer, got 0
    >>> check_real("lr_decay", 0.9, low=0, low_open=True)
    0.9
"""

import math
import numbers

import numpy as np


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def check_int(name, value, low=0, *, none_ok=False):
    """``value`` as a Python int >= ``low``; with ``none_ok``, None is returned as None."""
    if value is None and none_ok:
        return None
    if _is_bool(value) or not isinstance(value, numbers.Integral) or value < low:
        kind = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {kind}{' or None' if none_ok else ''}, got {value!r}")
    return int(value)


def check_real(name, value, low=None, high=None, *, low_open=False, high_open=False, finite=True, none_ok=False):
    """``value`` as a Python float within the bounds given; NaN is always refused.

    low, high: None for no bound; ``low_open``/``high_open`` make that bound
    strict (> low, < high). ``finite=False`` lets +-inf through when the bounds
    allow it (e.g. a clipping norm of inf, which clips nothing).
    """
    if value is None and none_ok:
        return None
    ok = not _is_bool(value) and isinstance(value, numbers.Real) and not math.isnan(value)
    ok = ok and (math.isfinite(value) or not finite)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        if low is not None and high is not None:
            bounds = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            bounds = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            bounds = f" {'<' if high_open else '<='} {high:g}"
        else:
            bounds = ""
        kind = f"a {'finite ' if finite else ''}number{bounds}"
        raise ValueError(f"{name} must be {kind}{' or None' if none_ok else ''}, got {value!r}")
    return float(value)
