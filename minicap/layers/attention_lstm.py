"""The attention LSTM: an LSTM whose pre-activation also reads an attention context.

a = x @ Wx + prev_h @ Wh + attn @ Wattn + b, then the LSTM cell of ``lstm.py``.
Over a sequence, step t attends with h^(t-1), and the state starts from
h0 = c0 = mean of A over the locations: the average image feature is the
natural "nothing looked at yet" summary, and it is learned through A's projection.
"""

from ..backend import get_array_module
from ._checks import expect_lstm_weights, expect_shape, shape_of
from ._through_time import previous_states, project_inputs, projection_backward
from .attention import attend, scores_backward
from .lstm import cell_backward, cell_forward


def attention_lstm_step_forward(x, prev_h, prev_c, attn, Wx, Wh, Wattn, b):
    """One attention LSTM step on a = x @ Wx + prev_h @ Wh + attn @ Wattn + b.

    x: (N, D); prev_h, prev_c, attn: (N, H); Wx: (D, 4H); Wh, Wattn: (H, 4H);
    b: (4H,). Returns next_h (N, H), next_c (N, H) and a cache.
    """
    D, H = expect_lstm_weights(Wx, Wh, b, Wattn)
    N, _ = expect_shape("x", x, ("N", "D"), (None, D), match=shape_of("Wx", Wx))
    match = f"{shape_of('x', x)} and {shape_of('Wh', Wh)}"
    for name, arr in (("prev_h", prev_h), ("prev_c", prev_c), ("attn", attn)):
        expect_shape(name, arr, ("N", "H"), (N, H), match=match)
    xp = get_array_module(x, prev_h, prev_c, attn, Wx, Wh, Wattn, b)
    a = x @ Wx + prev_h @ Wh + attn @ Wattn + b
    gates = xp.empty_like(a)
    next_c = xp.empty((N, H), dtype=a.dtype)
    tanh_c = cell_forward(xp, a, prev_c, gates, next_c)
    next_h = gates[:, 2 * H : 3 * H] * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, attn, Wx, Wh, Wattn, gates, tanh_c)


def attention_lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients of one step, in the forward's order:
    dx (N, D), dprev_h, dprev_c, dattn (N, H), dWx (D, 4H), dWh, dWattn (H, 4H), db (4H,).
    """
    x, prev_h, prev_c, attn, Wx, Wh, Wattn, gates, tanh_c = cache
    xp = get_array_module(dnext_h, dnext_c)
    da = xp.empty_like(gates)
    dprev_c = cell_backward(xp, dnext_h, dnext_c, gates, prev_c, tanh_c, da)
    return (da @ Wx.T, da @ Wh.T, dprev_c, da @ Wattn.T,
            x.T @ da, prev_h.T @ da, attn.T @ da, da.sum(axis=0))


def attention_forward(x, A, Wx, Wh, Wattn, b):
    """Run the attention LSTM over T steps, starting from h0 = c0 = mean of A.

    x: (N, T, D); A: (N, H, Hs, Ws) projected features; Wx: (D, 4H);
    Wh, Wattn: (H, 4H); b: (4H,). Returns h (N, T, H) and a cache.
    """
    D, H = expect_lstm_weights(Wx, Wh, b, Wattn)
    N, T, _ = expect_shape("x", x, ("N", "T", "D"), (None, None, D), match=shape_of("Wx", Wx))
    expect_shape("A", A, ("N", "H", "Hs", "Ws"), (N, H, None, None),
                 match=f"{shape_of('x', x)} and {shape_of('Wh', Wh)}")
    xp = get_array_module(x, A, Wx, Wh, Wattn, b)
    A_flat = A.reshape(N, H, -1)
    xa = project_inputs(x, Wx, b)
    gates = xp.empty_like(xa)
    h = xp.empty((N, T, H), dtype=xa.dtype)
    c = xp.empty((N, T, H), dtype=xa.dtype)
    attn = xp.empty((N, T, H), dtype=xa.dtype)
    weights = xp.empty((N, T, A_flat.shape[2]), dtype=xa.dtype)
    h0 = A_flat.mean(axis=2)
    prev_h, prev_c = h0, h0
    for t in range(T):
        attn[:, t], weights[:, t] = attend(xp, prev_h, A_flat)
        a = xa[:, t] + prev_h @ Wh + attn[:, t] @ Wattn
        tanh_c = cell_forward(xp, a, prev_c, gates[:, t], c[:, t])
        prev_h = xp.multiply(gates[:, t, 2 * H : 3 * H], tanh_c, out=h[:, t])
        prev_c = c[:, t]
    return h, (x, A, Wx, Wh, Wattn, h0, h, c, gates, attn, weights)


def attention_backward(dh, cache):
    """Gradients of ``attention_forward``: dx (N, T, D), dA (N, H, Hs, Ws),
    dWx (D, 4H), dWh (H, 4H), dWattn (H, 4H), db (4H,).

    dh: (N, T, H). A is reached three ways: as the keys and values of every
    step's attention, and through h0 = c0 = mean(A). The per-step attention
    gradients are kept in buffers and turned into dA by two batched products
    after the loop, like the weight gradients.
    """
    x, A, Wx, Wh, Wattn, h0, h, c, gates, attn, weights = cache
    xp = get_array_module(dh)
    N, T, H = h.shape
    A_flat = A.reshape(N, H, -1)
    h_prev = previous_states(h0, h)
    tanh_c = xp.tanh(c)
    da = xp.empty_like(gates)
    dattn = xp.empty_like(attn)
    dscores = xp.empty_like(weights)
    dprev_h = xp.zeros((N, H), dtype=h.dtype)
    dprev_c = xp.zeros((N, H), dtype=h.dtype)
    for t in reversed(range(T)):
        prev_c = c[:, t - 1] if t > 0 else h0
        dprev_c = cell_backward(xp, dh[:, t] + dprev_h, dprev_c, gates[:, t], prev_c, tanh_c[:, t], da[:, t])
        dattn[:, t] = da[:, t] @ Wattn.T
        dscores[:, t] = scores_backward(dattn[:, t], A_flat, weights[:, t])
        # prev_h was both the recurrent input and the attention query.
        dprev_h = da[:, t] @ Wh.T + (A_flat @ dscores[:, t, :, None])[:, :, 0]
    dx, dWx, dWh, db = projection_backward(x, h_prev, da, Wx)
    L = A_flat.shape[2]
    dWattn = attn.reshape(N * T, H).T @ da.reshape(N * T, 4 * H)
    # Sum over t of the value term dattn_t w_t^T and the key term h_{t-1} dscores_t^T,
    # each one batched (H, T) @ (T, L) product per example.
    dA = dattn.transpose(0, 2, 1) @ weights + h_prev.transpose(0, 2, 1) @ dscores
    # h0 = c0 = mean over the L locations spreads their gradient evenly.
    dA += ((dprev_h + dprev_c) * (1.0 / L))[:, :, None]
    return dx, dA.reshape(A.shape), dWx, dWh, dWattn, db
