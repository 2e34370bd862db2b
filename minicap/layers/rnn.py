"""Vanilla RNN: one step, and a whole sequence with the fast batched projections."""

from ..backend import get_array_module
from ._checks import expect_rnn_weights, expect_shape, shape_of
from ._through_time import previous_states, project_inputs, projection_backward


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """next_h = tanh(x @ Wx + prev_h @ Wh + b).

    x: (N, D); prev_h: (N, H); Wx: (D, H); Wh: (H, H); b: (H,).
    Returns next_h (N, H) and a cache for ``rnn_step_backward``.
    """
    D, H = expect_rnn_weights(Wx, Wh, b)
    N, _ = expect_shape("x", x, ("N", "D"), (None, D), match=shape_of("Wx", Wx))
    expect_shape("prev_h", prev_h, ("N", "H"), (N, H), match=f"{shape_of('x', x)} and {shape_of('Wh', Wh)}")
    xp = get_array_module(x, prev_h, Wx, Wh, b)
    next_h = xp.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Gradients of one step: dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,).

    dnext_h: (N, H). tanh' = 1 - tanh^2 is read off the cached output, so the
    pre-activation is not stored.
    """
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h * next_h)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def _check_sequence(x, h0, Wx, Wh, b):
    D, H = expect_rnn_weights(Wx, Wh, b)
    N, T, _ = expect_shape("x", x, ("N", "T", "D"), (None, None, D), match=shape_of("Wx", Wx))
    expect_shape("h0", h0, ("N", "H"), (N, H), match=f"{shape_of('x', x)} and {shape_of('Wh', Wh)}")
    return N, T, H


def rnn_forward(x, h0, Wx, Wh, b):
    """h[:, t] = tanh(x[:, t] @ Wx + h[:, t-1] @ Wh + b), with h[:, -1] = h0.

    x: (N, T, D); h0: (N, H); Wx: (D, H); Wh: (H, H); b: (H,).
    Returns h (N, T, H) and a cache for ``rnn_backward``.
    """
    N, T, H = _check_sequence(x, h0, Wx, Wh, b)
    xp = get_array_module(x, h0, Wx, Wh, b)
    a = project_inputs(x, Wx, b)
    h = xp.empty((N, T, H), dtype=a.dtype)
    prev_h = h0
    for t in range(T):
        prev_h = xp.tanh(a[:, t] + prev_h @ Wh, out=h[:, t])
    return h, (x, h0, Wx, Wh, h)


def rnn_backward(dh, cache):
    """Gradients of ``rnn_forward``: dx (N, T, D), dh0 (N, H), dWx, dWh, db.

    dh: (N, T, H), the upstream gradient of every hidden state (from the output
    layer only; the gradient that flows back through time is added here).
    """
    x, h0, Wx, Wh, h = cache
    xp = get_array_module(dh)
    N, T, H = h.shape
    da = xp.empty_like(h)
    dprev_h = xp.zeros((N, H), dtype=h.dtype)
    for t in reversed(range(T)):
        xp.multiply(dh[:, t] + dprev_h, 1 - h[:, t] * h[:, t], out=da[:, t])
        dprev_h = da[:, t] @ Wh.T
    dx, dWx, dWh, db = projection_backward(x, previous_states(h0, h), da, Wx)
    return dx, dprev_h, dWx, dWh, db
