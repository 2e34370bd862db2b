"""LSTM: one step, and a whole sequence as a loop over the step.

The pre-activation a = x @ Wx + prev_h @ Wh + b (N, 4H) holds four blocks of
H columns side by side, in the order i, f, o, g:

    i = sigmoid(a_i)    input gate: how much of the candidate g to write
    f = sigmoid(a_f)    forget gate: how much of the old cell to keep
    o = sigmoid(a_o)    output gate: how much of the cell to show
    g = tanh(a_g)       candidate values
    next_c = f * prev_c + i * g
    next_h = o * tanh(next_c)

The sequence starts from h0 and c0 = 0. (``minicap.kernels.lstm`` computes the
same thing in place and with batched products: docs/kernels.md.)
"""

from ..backend import get_array_module
from ._checks import check_lstm_step, check_sequence, expect_grad


def sigmoid(x):
    """1 / (1 + exp(-x)), computed as (1 + tanh(x / 2)) / 2.

    The two are the same function, but exp(-x) overflows (with a warning) for
    x below about -710 in float64 (-88 in float32); tanh never does.
    """
    xp = get_array_module(x)
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step on a = x @ Wx + prev_h @ Wh + b (gates i, f, o, g).

    x: (N, D); prev_h, prev_c: (N, H); Wx: (D, 4H); Wh: (H, 4H); b: (4H,).
    Returns next_h (N, H), next_c (N, H) and a cache for ``lstm_step_backward``.
    """
    N, D, H = check_lstm_step(x, prev_h, prev_c, Wx, Wh, b)
    xp = get_array_module(x, prev_h, prev_c, Wx, Wh, b)
    # BEGIN SOLUTION
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    o = sigmoid(a[:, 2 * H : 3 * H])
    g = xp.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    tanh_c = xp.tanh(next_c)
    next_h = o * tanh_c
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)
    # END SOLUTION
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients of one step: dx (N, D), dprev_h, dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).

    dnext_h, dnext_c: (N, H), the gradients of the loss with respect to next_h and next_c.
    """
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    expect_grad("dnext_h", dnext_h, prev_h.shape, "next_h")
    expect_grad("dnext_c", dnext_c, prev_c.shape, "next_c")
    xp = get_array_module(dnext_h, dnext_c)
    # BEGIN SOLUTION
    # next_c reaches the loss directly (dnext_c) and through next_h = o * tanh(next_c).
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    # next_c = f * prev_c + i * g
    di = dc * g
    df = dc * prev_c
    dg = dc * i
    dprev_c = dc * f
    do = dnext_h * tanh_c
    # Back through the nonlinearities: sigmoid' = s * (1 - s), tanh' = 1 - tanh^2.
    da_i = di * i * (1 - i)
    da_f = df * f * (1 - f)
    da_o = do * o * (1 - o)
    da_g = dg * (1 - g ** 2)
    da = xp.concatenate([da_i, da_f, da_o, da_g], axis=1)
    # a = x @ Wx + prev_h @ Wh + b
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    # END SOLUTION
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    """Run an LSTM over T steps from h0 and c0 = 0.

    x: (N, T, D); h0: (N, H); Wx: (D, 4H); Wh: (H, 4H); b: (4H,).
    Returns h (N, T, H) and a cache for ``lstm_backward``.
    """
    N, T, D, H = check_sequence(x, h0, Wx, Wh, b, gates=4)
    xp = get_array_module(x, h0, Wx, Wh, b)
    # BEGIN SOLUTION
    hs, step_caches = [], []
    prev_h, prev_c = h0, xp.zeros_like(h0)
    for t in range(T):
        prev_h, prev_c, step_cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        hs.append(prev_h)
        step_caches.append(step_cache)
    h = xp.stack(hs, axis=1)
    cache = step_caches
    # END SOLUTION
    return h, cache


def lstm_backward(dh, cache):
    """Gradients of ``lstm_forward``: dx (N, T, D), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).

    dh: (N, T, H), the gradient of every hidden state from the layer above.
    The gradients that flow back through time, into prev_h and prev_c of each
    step, are added here. No gradient flows into c0, which is the constant 0.
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
    dprev_c = xp.zeros_like(h0)
    dWx, dWh, db = 0, 0, 0
    for t in reversed(range(T)):
        dxs[t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t] + dprev_h, dprev_c, step_caches[t])
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    dx = xp.stack(dxs, axis=1)
    dh0 = dprev_h
    # END SOLUTION
    return dx, dh0, dWx, dWh, db
