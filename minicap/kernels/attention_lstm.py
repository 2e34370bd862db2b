"""The fast version of ``layers.attention_lstm``: same math, arranged for speed.

a = x @ Wx + prev_h @ Wh + attn @ Wattn + b, then the LSTM cell of ``lstm.py``.
Over a sequence, step t attends with h^(t-1), and the state starts from
h0 = c0 = mean of A over the locations: the average image feature is the
natural "nothing looked at yet" summary, and it is learned through A's projection.

As in ``lstm.py``, the sequence is the batched input projection plus the loop
(``attention_loop_forward``), with the in-place cell of ``lstm.py``; the loop
also computes prev_h @ Wh + attn @ Wattn as one product, and turns the
per-step attention gradients into dA with two batched products at the end.
"""

from ..backend import get_array_module
from ..layers._checks import (
    check_attention_sequence,
    check_lstm_step,
    expect_grad,
    expect_projected_inputs,
    expect_recurrent_weights,
    expect_shape,
    shape_of,
)
from ._through_time import batch_major, recurrent_weight_grad
from .attention import attend, scores_backward
from .embed_project import project_words, project_words_backward
from .lstm import loop_cell_backward, loop_cell_forward, step_backward, step_forward


def attention_lstm_step_forward(x, prev_h, prev_c, attn, Wx, Wh, Wattn, b):
    """One attention LSTM step on a = x @ Wx + prev_h @ Wh + attn @ Wattn + b.

    x: (N, D); prev_h, prev_c, attn: (N, H); Wx: (D, 4H); Wh, Wattn: (H, 4H);
    b: (4H,). Returns next_h (N, H), next_c (N, H) and a cache.
    """
    check_lstm_step(x, prev_h, prev_c, Wx, Wh, b, attn, Wattn)
    xp = get_array_module(x, prev_h, prev_c, attn, Wx, Wh, Wattn, b)
    next_h, next_c, tanh_c, gates = step_forward(xp, x @ Wx + prev_h @ Wh + attn @ Wattn + b, prev_c)
    return next_h, next_c, (x, prev_h, prev_c, attn, Wx, Wh, Wattn, gates, tanh_c)


def attention_lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients of one step, in the forward's order:
    dx (N, D), dprev_h, dprev_c, dattn (N, H), dWx (D, 4H), dWh, dWattn (H, 4H), db (4H,).
    """
    x, prev_h, prev_c, attn, Wx, Wh, Wattn, gates, tanh_c = cache
    expect_grad("dnext_h", dnext_h, prev_h.shape, "next_h")
    expect_grad("dnext_c", dnext_c, prev_c.shape, "next_c")
    da, dprev_c = step_backward(get_array_module(dnext_h, dnext_c), dnext_h, dnext_c, gates, prev_c, tanh_c)
    return (da @ Wx.T, da @ Wh.T, dprev_c, da @ Wattn.T,
            x.T @ da, prev_h.T @ da, attn.T @ da, da.sum(axis=0))


def attention_forward(x, A, Wx, Wh, Wattn, b):
    """Run the attention LSTM over T steps, starting from h0 = c0 = mean of A.

    x: (N, T, D); A: (N, H, Hs, Ws) projected features; Wx: (D, 4H);
    Wh, Wattn: (H, 4H); b: (4H,). Returns h (N, T, H) and a cache.
    """
    check_attention_sequence(x, A, Wx, Wh, Wattn, b)
    a, projection_cache = project_words(x, Wx, b)
    h, loop_cache = attention_loop_forward(a, A, Wh, Wattn)
    return h, (projection_cache, loop_cache)


def attention_backward(dh, cache):
    """Gradients of ``attention_forward``: dx (N, T, D), dA (N, H, Hs, Ws),
    dWx (D, 4H), dWh (H, 4H), dWattn (H, 4H), db (4H,).

    dh: (N, T, H).
    """
    projection_cache, loop_cache = cache
    da, dA, dWh, dWattn = attention_loop_backward(dh, loop_cache)
    dx, dWx, db = project_words_backward(da, projection_cache)
    return dx, dA, dWx, dWh, dWattn, db


def attention_loop_forward(a, A, Wh, Wattn):
    """The step-by-step part of ``attention_forward``, on projected inputs.

    a: (T, N, 4H) time-major, a[t] = x[:, t] @ Wx + b; A: (N, H, Hs, Ws);
    Wh, Wattn: (H, 4H). Returns h (N, T, H) and a cache; a is left as it is, and
    the gates are kept gate-major, (T, 4, N, H), as in ``lstm_loop_forward``.

    prev_h @ Wh + attn @ Wattn is computed as one product [prev_h, attn] @ [Wh; Wattn]:
    each step writes its query and its context side by side in a (N, 2H) slot.
    """
    H = expect_recurrent_weights(Wh)
    expect_shape("Wattn", Wattn, ("H", "4H"), (H, 4 * H), match=shape_of("Wh", Wh))
    N, _, _, _ = expect_shape("A", A, ("N", "H", "Hs", "Ws"), (None, H, None, None), match=shape_of("Wh", Wh))
    T = expect_projected_inputs(a, N, 4 * H, f"{shape_of('A', A)} and {shape_of('Wh', Wh)}, time-major")
    xp = get_array_module(a, A, Wh, Wattn)
    dtype = a.dtype
    A_flat = A.reshape(N, H, -1)
    W_ha = xp.concatenate([Wh, Wattn]).astype(dtype, copy=False)  # (2H, 4H)
    h0 = A_flat.mean(axis=2).astype(dtype, copy=False)
    gates = xp.empty((T, 4, N, H), dtype=dtype)  # gates[t, k] is gate k of step t, every row
    # ha[t] = [h^(t-1), attn^(t)]; the context half of the last slot stays unused.
    ha = xp.empty((T + 1, N, 2 * H), dtype=dtype)
    ha[0, :, :H] = h0
    cells = xp.empty((T + 1, N, H), dtype=dtype)  # [0] is c0 = h0, [t + 1] is c^(t)
    cells[0] = h0
    tanh_c = xp.empty((T, N, H), dtype=dtype)
    weights = xp.empty((T, N, A_flat.shape[2]), dtype=dtype)
    recurrent = xp.empty((N, 4 * H), dtype=dtype)
    for t in range(T):
        ha[t, :, H:], weights[t] = attend(xp, ha[t, :, :H], A_flat)
        xp.matmul(ha[t], W_ha, out=recurrent)
        loop_cell_forward(xp, a[t], recurrent, gates[t], cells[t], cells[t + 1], tanh_c[t], ha[t + 1, :, :H])
    h = batch_major(ha[1:, :, :H])
    return h, (A, W_ha, ha, cells, gates, tanh_c, weights)


def attention_loop_backward(dh, cache):
    """Gradients of ``attention_loop_forward``: da (T, N, 4H) time-major,
    dA (N, H, Hs, Ws), dWh (H, 4H), dWattn (H, 4H).

    A is reached three ways: as the keys and values of every step's attention,
    and through h0 = c0 = mean(A). The per-step attention gradients are kept in
    buffers and turned into dA by two batched products after the loop, like
    the weight gradients.
    """
    A, W_ha, ha, cells, gates, tanh_c, weights = cache
    T, N, H = tanh_c.shape
    expect_grad("dh", dh, (N, T, H), "h")
    xp = get_array_module(dh)
    A_flat = A.reshape(N, H, -1)
    L = A_flat.shape[2]
    da = xp.empty((T, N, 4 * H), dtype=gates.dtype)
    dha = xp.empty((T, N, 2 * H), dtype=gates.dtype)  # [d prev_h through Wh, d attn]
    dscores = xp.empty_like(weights)
    da_step = xp.empty((4, N, H), dtype=gates.dtype)  # one step's da, gate-major like the gates
    dprev_h = xp.zeros((N, H), dtype=gates.dtype)
    dprev_c = xp.zeros((N, H), dtype=gates.dtype)
    for t in reversed(range(T)):
        dprev_h += dh[:, t]  # now dnext_h of step t: from the output and from step t + 1
        loop_cell_backward(xp, dprev_h, dprev_c, gates[t], cells[t], tanh_c[t], da_step, da[t])
        xp.matmul(da[t], W_ha.T, out=dha[t])
        dscores[t] = scores_backward(dha[t, :, H:], A_flat, weights[t])
        # prev_h was both the recurrent input and the attention query.
        xp.add(dha[t, :, :H], (A_flat @ dscores[t][:, :, None])[:, :, 0], out=dprev_h)
    dW_ha = recurrent_weight_grad(ha[:-1], da)
    # Sum over t of the value term dattn_t w_t^T and the key term h_{t-1} dscores_t^T,
    # each one batched (H, T) @ (T, L) product per example.
    dattn, h_prev = dha[:, :, H:], ha[:-1, :, :H]
    dA = dattn.transpose(1, 2, 0) @ weights.transpose(1, 0, 2)
    dA += h_prev.transpose(1, 2, 0) @ dscores.transpose(1, 0, 2)
    # h0 = c0 = mean over the L locations spreads their gradient evenly.
    dA += ((dprev_h + dprev_c) * (1.0 / L))[:, :, None]
    return da, dA.reshape(A.shape), dW_ha[:H], dW_ha[H:]
