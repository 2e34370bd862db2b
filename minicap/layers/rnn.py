"""Vanilla RNN: one step, and a whole sequence as a loop over the step.

    next_h = tanh(x @ Wx + prev_h @ Wh + b)

The sequence runs the step T times, feeding each step's output to the next;
its backward runs the step backward in reverse order. The weights are shared
by every step, so their gradients are the sums of the steps' gradients.
(``minicap.kernels.rnn`` computes the same thing with the T input products
batched into one: docs/kernels.md.)
"""

from ..backend import get_array_module
from ._checks import check_rnn_step, check_sequence, expect_grad


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """next_h = tanh(x @ Wx + prev_h @ Wh + b).

    x: (N, D); prev_h: (N, H); Wx: (D, H); Wh: (H, H); b: (H,).
    Returns next_h (N, H) and a cache for ``rnn_step_backward``.
    """
    check_rnn_step(x, prev_h, Wx, Wh, b)
    xp = get_array_module(x, prev_h, Wx, Wh, b)
    # BEGIN SOLUTION
    next_h = xp.tanh(x @ Wx + prev_h @ Wh + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    # END SOLUTION
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    """Gradients of one step: dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,).

    dnext_h: (N, H), the gradient of the loss with respect to next_h.
    """
    x, prev_h, Wx, Wh, next_h = cache
    expect_grad("dnext_h", dnext_h, next_h.shape, "next_h")
    # BEGIN SOLUTION
    # tanh'(a) = 1 - tanh(a)^2, read off the cached output next_h = tanh(a).
    da = dnext_h * (1 - next_h ** 2)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    # END SOLUTION
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    """h[:, t] = tanh(x[:, t] @ Wx + h[:, t-1] @ Wh + b), with h[:, -1] = h0.

    x: (N, T, D); h0: (N, H); Wx: (D, H); Wh: (H, H); b: (H,).
    Returns h (N, T, H) and a cache for ``rnn_backward``.
    """
    N, T, D, H = check_sequence(x, h0, Wx, Wh, b, gates=1)
    xp = get_array_module(x, h0, Wx, Wh, b)
    # BEGIN SOLUTION
    hs, step_caches = [], []
    prev_h = h0
    for t in range(T):
        prev_h, step_cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        hs.append(prev_h)
        step_caches.append(step_cache)
    h = xp.stack(hs, axis=1)
    cache = step_caches
    # END SOLUTION
    return h, cache


def rnn_backward(dh, cache):
    """Gradients of ``rnn_forward``: dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).

    dh: (N, T, H), the gradient of every hidden state from the layer above (the
    vocabulary scores). h[:, t] also feeds step t + 1; that gradient, dprev_h,
    is the one that flows back through time, and the two add up.
    """
    step_caches = cache
    h0 = step_caches[0][1]  # prev_h of the first step
    N, H = h0.shape
    expect_grad("dh", dh, (N, len(step_caches), H), "h")
    xp = get_array_module(dh)
    # BEGIN SOLUTION
    T = len(step_caches)
    dxs = [None] * T
    dprev_h = xp.zeros_like(h0)
    dWx, dWh, db = 0, 0, 0
    for t in reversed(range(T)):
        dxs[t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev_h, step_caches[t])
        # every step used the same weights: their gradients add up
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    dx = xp.stack(dxs, axis=1)
    dh0 = dprev_h
    # END SOLUTION
    return dx, dh0, dWx, dWh, db
