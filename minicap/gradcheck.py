"""Numerical gradients by central differences, for checking backward passes.

For a scalar function f, the derivative along coordinate i is approximated by

    (f(x + h e_i) - f(x - h e_i)) / (2 h)

whose error is O(h^2). In float64 with h = 1e-5 a correct analytic gradient
usually agrees to 1e-7 relative error or better. ``rel_error`` is the worst
element, so entries close to zero can push a correct one to about 1e-5 (the
absolute error is then tiny); a wrong gradient is usually off by more than 1e-2.

All functions perturb ``x`` *in place* and restore it, so ``f`` may read ``x``
through a closure (a model's params dict, for instance); the entry is
restored even when ``f`` raises. They work on NumPy and CuPy arrays alike; on
the GPU each probe costs a host sync, which is fine for the small shapes
gradient checks use.

``x`` must be a real floating-point array: an integer array cannot hold
``x + h`` (the probe would be truncated and the "gradient" garbage), so it is
refused with a TypeError, as is a complex one. float64 is what the checks are
calibrated for; a float32 or float16 ``x`` gives a RuntimeWarning, because
rounding ``x + h`` to float32 alone costs about 1e-2 relative error.
"""

import itertools
import warnings

from .backend import get_array_module


def eval_numerical_gradient(f, x, h=1e-5):
    """Gradient of a scalar function ``f(x)`` at ``x``, same shape as ``x``."""
    _check_input(x, h)
    xp = get_array_module(x)
    grad = xp.zeros_like(x)
    for i in _indices(x):
        old = x[i].copy()
        try:
            x[i] = old + h
            fxph = float(f(x))
            x[i] = old - h
            fxmh = float(f(x))
        finally:
            x[i] = old
        grad[i] = (fxph - fxmh) / (2 * h)
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Gradient of ``sum(f(x) * df)``: the vector-Jacobian product a backward computes.

    ``f`` returns an array and ``df`` is the upstream gradient of the same shape.
    """
    _check_input(x, h)
    xp = get_array_module(x, df)
    grad = xp.zeros_like(x)
    for k, i in enumerate(_indices(x)):
        old = x[i].copy()
        try:
            x[i] = old + h
            pos = f(x).copy()
            x[i] = old - h
            neg = f(x).copy()
        finally:
            x[i] = old
        # f(x) has one shape: checked at the first element, before it can broadcast into a wrong answer
        if k == 0 and pos.shape != getattr(df, "shape", ()):
            raise ValueError(f"df must have the shape of f(x), {pos.shape}, got {getattr(df, 'shape', ())}")
        grad[i] = xp.sum((pos - neg) * df) / (2 * h)
    return grad


def rel_error(x, y):
    """max |x - y| / max(1e-8, |x| + |y|), elementwise, as a Python float.

    ``x`` and ``y`` must have the same shape: broadcasting a (3, 1) gradient
    against a (3,) one would compare the wrong entries and can report 0.0.
    Complex arrays are refused (their imaginary parts would be dropped). Two
    empty arrays have no error: 0.0.
    """
    xp = get_array_module(x, y)
    x, y = xp.asarray(x), xp.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"rel_error compares arrays of the same shape, got {x.shape} and {y.shape}")
    if x.dtype.kind == "c" or y.dtype.kind == "c":
        raise TypeError(f"rel_error takes real arrays, got dtypes {x.dtype} and {y.dtype}")
    if x.size == 0:
        return 0.0
    x = x.astype(xp.float64, copy=False)
    y = y.astype(xp.float64, copy=False)
    return float(xp.max(xp.abs(x - y) / xp.maximum(1e-8, xp.abs(x) + xp.abs(y))))


def _check_input(x, h):
    """Refuse what central differences cannot probe; warn where they are imprecise."""
    if not (h > 0):
        raise ValueError(f"the step h must be a positive number, got {h!r}")
    kind = getattr(getattr(x, "dtype", None), "kind", None)
    if kind is None:
        raise TypeError(f"x must be a NumPy or CuPy array (it is perturbed in place), got {type(x).__name__}")
    if kind != "f":
        raise TypeError(
            f"x must be a real floating-point array to be perturbed by h={h}, got dtype {x.dtype}; "
            "check gradients in float64 (x.astype(np.float64))")
    if x.dtype.itemsize < 8:
        warnings.warn(
            f"numerical gradient of a {x.dtype} array: rounding x + h to {x.dtype} alone costs about 1e-2 "
            "relative error; check gradients in float64", RuntimeWarning, stacklevel=3)


def _indices(x):
    """Every multi-index of ``x`` in C order (works for 0-d arrays too)."""
    return itertools.product(*(range(n) for n in x.shape))
