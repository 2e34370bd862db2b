"""Numerical gradients by central differences, for checking backward passes.

For a scalar function f, the derivative along coordinate i is approximated by

    (f(x + h e_i) - f(x - h e_i)) / (2 h)

whose error is O(h^2). In float64 with h = 1e-5 a correct analytic gradient
usually agrees to 1e-7 relative error or better. ``rel_error`` is the worst
element, so entries close to zero can push a correct one to about 1e-5 (the
absolute error is then tiny); a wrong gradient is usually off by more than 1e-2.

All functions perturb ``x`` *in place* and restore it, so ``f`` may read ``x``
through a closure (a model's params dict, for instance). They work on NumPy
and CuPy arrays alike; on the GPU each probe costs a host sync, which is fine
for the small shapes gradient checks use.
"""

import itertools

from .backend import get_array_module


def eval_numerical_gradient(f, x, h=1e-5):
    """Gradient of a scalar function ``f(x)`` at ``x``, same shape as ``x``."""
    xp = get_array_module(x)
    grad = xp.zeros_like(x)
    for i in _indices(x):
        old = x[i].copy()
        x[i] = old + h
        fxph = float(f(x))
        x[i] = old - h
        fxmh = float(f(x))
        x[i] = old
        grad[i] = (fxph - fxmh) / (2 * h)
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Gradient of ``sum(f(x) * df)``: the vector-Jacobian product a backward computes.

    ``f`` returns an array and ``df`` is the upstream gradient of the same shape.
    """
    xp = get_array_module(x, df)
    grad = xp.zeros_like(x)
    for i in _indices(x):
        old = x[i].copy()
        x[i] = old + h
        pos = f(x).copy()
        x[i] = old - h
        neg = f(x).copy()
        x[i] = old
        grad[i] = xp.sum((pos - neg) * df) / (2 * h)
    return grad


def rel_error(x, y):
    """max |x - y| / max(1e-8, |x| + |y|), elementwise, as a Python float."""
    xp = get_array_module(x, y)
    x = xp.asarray(x, dtype=xp.float64)
    y = xp.asarray(y, dtype=xp.float64)
    return float(xp.max(xp.abs(x - y) / xp.maximum(1e-8, xp.abs(x) + xp.abs(y))))


def _indices(x):
    """Every multi-index of ``x`` in C order (works for 0-d arrays too)."""
    return itertools.product(*(range(n) for n in x.shape))
