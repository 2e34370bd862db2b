"""Vanilla RNN: one step, and a whole sequence with the fast batched projections.

The sequence functions are two parts: the input projection of every step at
once (``_through_time.project_inputs``) and the loop that has to run step by
step (``rnn_loop_forward``). The model calls the loop directly, on inputs it
projects itself (``embed_project.py``).
"""

from ..backend import get_array_module
from ._checks import (
    expect_projected_inputs,
    expect_rnn_recurrent_weights,
    expect_rnn_weights,
    expect_shape,
    shape_of,
)
from ._through_time import (
    batch_major,
    project_inputs,
    projection_backward,
    recurrent_weight_grad,
    states_buffer,
    time_major,
)


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
    _check_sequence(x, h0, Wx, Wh, b)
    x_tm = time_major(x)
    h, loop_cache = rnn_loop_forward(project_inputs(x_tm, Wx, b), h0, Wh)
    return h, (x_tm, Wx, loop_cache)


def rnn_backward(dh, cache):
    """Gradients of ``rnn_forward``: dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).

    dh: (N, T, H), the upstream gradient of every hidden state (from the output
    layer only; the gradient that flows back through time is added here).
    """
    x_tm, Wx, loop_cache = cache
    da, dh0, dWh = rnn_loop_backward(dh, loop_cache)
    dx, dWx, db = projection_backward(x_tm, da, Wx)
    return dx, dh0, dWx, dWh, db


def rnn_loop_forward(a, h0, Wh):
    """The step-by-step part of ``rnn_forward``, on projected inputs.

    a: (T, N, H) time-major, a[t] = x[:, t] @ Wx + b; h0: (N, H); Wh: (H, H).
    Returns h (N, T, H) and a cache for ``rnn_loop_backward``.
    """
    H = expect_rnn_recurrent_weights(Wh)
    N, _ = expect_shape("h0", h0, ("N", "H"), (None, H), match=shape_of("Wh", Wh))
    T = expect_projected_inputs(a, N, H, f"{shape_of('h0', h0)} and {shape_of('Wh', Wh)}, time-major")
    xp = get_array_module(a, h0, Wh)
    states = states_buffer(xp, h0, T, a.dtype)
    for t in range(T):
        # h^(t) = tanh(h^(t-1) @ Wh + a[t]), computed in its slot of the state buffer.
        h = xp.matmul(states[t], Wh, out=states[t + 1])
        h += a[t]
        xp.tanh(h, out=h)
    return batch_major(states[1:]), (Wh, states)


def rnn_loop_backward(dh, cache):
    """Gradients of ``rnn_loop_forward``: da (T, N, H) time-major, dh0 (N, H), dWh (H, H)."""
    Wh, states = cache
    xp = get_array_module(dh)
    T, N, H = states.shape[0] - 1, states.shape[1], states.shape[2]
    da = xp.empty((T, N, H), dtype=states.dtype)
    dprev_h = xp.zeros((N, H), dtype=states.dtype)
    for t in reversed(range(T)):
        h = states[t + 1]
        # da = (dh_t + dprev_h) * (1 - h^2), built in da[t] without temporaries.
        xp.multiply(h, h, out=da[t])
        xp.subtract(1.0, da[t], out=da[t])
        dprev_h += dh[:, t]
        da[t] *= dprev_h
        xp.matmul(da[t], Wh.T, out=dprev_h)
    return da, dprev_h, recurrent_weight_grad(states[:-1], da)
