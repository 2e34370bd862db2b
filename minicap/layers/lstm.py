"""LSTM: one step, a whole sequence, and the gate arithmetic both share.

Pre-activations a (N, 4H) hold the gates side by side in the order i, f, o, g:
i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g);
c' = f * c + i * g, h' = o * tanh(c').
The attention LSTM (``attention_lstm.py``) reuses the same cell.
"""

from ..backend import get_array_module
from ._checks import expect_lstm_weights, expect_shape, shape_of
from ._through_time import previous_states, project_inputs, projection_backward


def cell_forward(xp, a, prev_c, gates, next_c):
    """Gate arithmetic of one step, written into the buffers ``gates`` and ``next_c``.

    a: (N, 4H) pre-activations; prev_c: (N, H); gates: (N, 4H) receives
    sigmoid(i, f, o) and tanh(g); next_c: (N, H). Returns tanh(next_c).
    """
    H = prev_c.shape[1]
    ifo = gates[:, : 3 * H]
    # sigmoid(z) = (1 + tanh(z / 2)) / 2 cannot overflow (exp(-z) can, for
    # z << 0), and one tanh call covers all three sigmoid gates.
    xp.tanh(a[:, : 3 * H] * 0.5, out=ifo)
    ifo += 1.0
    ifo *= 0.5
    xp.tanh(a[:, 3 * H :], out=gates[:, 3 * H :])
    i, f, g = gates[:, :H], gates[:, H : 2 * H], gates[:, 3 * H :]
    xp.multiply(f, prev_c, out=next_c)
    next_c += i * g
    return xp.tanh(next_c)


def cell_backward(xp, dnext_h, dnext_c, gates, prev_c, tanh_c, da):
    """Backward of ``cell_forward``: writes d(loss)/da into ``da`` (N, 4H), returns dprev_c.

    dnext_h, dnext_c, prev_c, tanh_c: (N, H); gates: (N, 4H) as cached.
    With s = sigmoid(z), ds/dz = s (1 - s); with g = tanh(z), dg/dz = 1 - g^2.
    """
    H = prev_c.shape[1]
    i, f, o, g = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
    # c' reaches the loss directly (dnext_c) and through h' = o * tanh(c').
    dc = dnext_c + dnext_h * o * (1 - tanh_c * tanh_c)
    xp.multiply(dc * g, i * (1 - i), out=da[:, :H])
    xp.multiply(dc * prev_c, f * (1 - f), out=da[:, H : 2 * H])
    xp.multiply(dnext_h * tanh_c, o * (1 - o), out=da[:, 2 * H : 3 * H])
    xp.multiply(dc * i, 1 - g * g, out=da[:, 3 * H :])
    return dc * f


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step on a = x @ Wx + prev_h @ Wh + b (gates i, f, o, g).

    x: (N, D); prev_h, prev_c: (N, H); Wx: (D, 4H); Wh: (H, 4H); b: (4H,).
    Returns next_h (N, H), next_c (N, H) and a cache for ``lstm_step_backward``.
    """
    D, H = expect_lstm_weights(Wx, Wh, b)
    N, _ = expect_shape("x", x, ("N", "D"), (None, D), match=shape_of("Wx", Wx))
    match = f"{shape_of('x', x)} and {shape_of('Wh', Wh)}"
    expect_shape("prev_h", prev_h, ("N", "H"), (N, H), match=match)
    expect_shape("prev_c", prev_c, ("N", "H"), (N, H), match=match)
    xp = get_array_module(x, prev_h, prev_c, Wx, Wh, b)
    a = x @ Wx + prev_h @ Wh + b
    gates = xp.empty_like(a)
    next_c = xp.empty((N, H), dtype=a.dtype)
    tanh_c = cell_forward(xp, a, prev_c, gates, next_c)
    next_h = gates[:, 2 * H : 3 * H] * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, gates, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients of one step: dx (N, D), dprev_h, dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).

    dnext_h, dnext_c: (N, H).
    """
    x, prev_h, prev_c, Wx, Wh, gates, tanh_c = cache
    xp = get_array_module(dnext_h, dnext_c)
    da = xp.empty_like(gates)
    dprev_c = cell_backward(xp, dnext_h, dnext_c, gates, prev_c, tanh_c, da)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """Run an LSTM over T steps from h0 and c0 = 0.

    x: (N, T, D); h0: (N, H); Wx: (D, 4H); Wh: (H, 4H); b: (4H,).
    Returns h (N, T, H) and a cache for ``lstm_backward``.
    """
    D, H = expect_lstm_weights(Wx, Wh, b)
    N, T, _ = expect_shape("x", x, ("N", "T", "D"), (None, None, D), match=shape_of("Wx", Wx))
    expect_shape("h0", h0, ("N", "H"), (N, H), match=f"{shape_of('x', x)} and {shape_of('Wh', Wh)}")
    xp = get_array_module(x, h0, Wx, Wh, b)
    xa = project_inputs(x, Wx, b)
    gates = xp.empty_like(xa)
    h = xp.empty((N, T, H), dtype=xa.dtype)
    c = xp.empty((N, T, H), dtype=xa.dtype)
    prev_h, prev_c = h0, xp.zeros((N, H), dtype=xa.dtype)
    for t in range(T):
        tanh_c = cell_forward(xp, xa[:, t] + prev_h @ Wh, prev_c, gates[:, t], c[:, t])
        prev_h = xp.multiply(gates[:, t, 2 * H : 3 * H], tanh_c, out=h[:, t])
        prev_c = c[:, t]
    # tanh(c) is not cached: the backward recomputes it for all steps in one call.
    return h, (x, h0, Wx, Wh, h, c, gates)


def lstm_backward(dh, cache):
    """Gradients of ``lstm_forward``: dx (N, T, D), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).

    dh: (N, T, H), the upstream gradient of every hidden state. No gradient
    flows into c0, which is the constant 0.
    """
    x, h0, Wx, Wh, h, c, gates = cache
    xp = get_array_module(dh)
    N, T, H = h.shape
    tanh_c = xp.tanh(c)
    da = xp.empty_like(gates)
    dprev_h = xp.zeros((N, H), dtype=h.dtype)
    dprev_c = xp.zeros((N, H), dtype=h.dtype)
    for t in reversed(range(T)):
        prev_c = c[:, t - 1] if t > 0 else xp.zeros((N, H), dtype=h.dtype)
        dprev_c = cell_backward(xp, dh[:, t] + dprev_h, dprev_c, gates[:, t], prev_c, tanh_c[:, t], da[:, t])
        dprev_h = da[:, t] @ Wh.T
    dx, dWx, dWh, db = projection_backward(x, previous_states(h0, h), da, Wx)
    return dx, dprev_h, dWx, dWh, db
