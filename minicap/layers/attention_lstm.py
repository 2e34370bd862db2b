"""The attention LSTM: an LSTM whose input is the word vector and an attention context.

    attn = dot_product_attention(prev_h, A)
    a = x @ Wx + prev_h @ Wh + attn @ Wattn + b,   then the LSTM gates of ``lstm.py``

Since x @ Wx + attn @ Wattn = [x, attn] @ [Wx; Wattn], one step is exactly an
LSTM step on the word vector and the context side by side, and that is how it
is written here. Over a sequence, step t attends with h^(t-1), and the state
starts from h0 = c0 = mean of A over the locations: the average image feature
is the natural "nothing looked at yet" summary, and it is learned through A's
projection. (``minicap.kernels.attention_lstm`` computes the same thing with
batched products: docs/kernels.md.)
"""

from ..backend import get_array_module
from . import attention, lstm  # their functions are looked up at each call: yours, once you replace them
from ._checks import check_attention_sequence, check_lstm_step, expect_grad


def attention_lstm_step_forward(x, prev_h, prev_c, attn, Wx, Wh, Wattn, b):
    """One attention LSTM step on a = x @ Wx + prev_h @ Wh + attn @ Wattn + b.

    x: (N, D); prev_h, prev_c, attn: (N, H); Wx: (D, 4H); Wh, Wattn: (H, 4H);
    b: (4H,). Returns next_h (N, H), next_c (N, H) and a cache.
    """
    N, D, H = check_lstm_step(x, prev_h, prev_c, Wx, Wh, b, attn, Wattn)
    xp = get_array_module(x, prev_h, prev_c, attn, Wx, Wh, Wattn, b)
    # BEGIN SOLUTION
    x_attn = xp.concatenate([x, attn], axis=1)  # (N, D + H)
    W_x_attn = xp.concatenate([Wx, Wattn], axis=0)  # (D + H, 4H)
    next_h, next_c, lstm_cache = lstm.lstm_step_forward(x_attn, prev_h, prev_c, W_x_attn, Wh, b)
    cache = (D, lstm_cache)
    # END SOLUTION
    return next_h, next_c, cache


def attention_lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients of one step, in the forward's order:
    dx (N, D), dprev_h, dprev_c, dattn (N, H), dWx (D, 4H), dWh, dWattn (H, 4H), db (4H,).
    """
    D, lstm_cache = cache
    # BEGIN SOLUTION
    dx_attn, dprev_h, dprev_c, dW_x_attn, dWh, db = lstm.lstm_step_backward(dnext_h, dnext_c, lstm_cache)
    dx, dattn = dx_attn[:, :D], dx_attn[:, D:]
    dWx, dWattn = dW_x_attn[:D], dW_x_attn[D:]
    # END SOLUTION
    return dx, dprev_h, dprev_c, dattn, dWx, dWh, dWattn, db


def attention_forward(x, A, Wx, Wh, Wattn, b):
    """Run the attention LSTM over T steps, starting from h0 = c0 = mean of A.

    x: (N, T, D); A: (N, H, Hs, Ws) projected features; Wx: (D, 4H);
    Wh, Wattn: (H, 4H); b: (4H,). Returns h (N, T, H) and a cache.
    """
    N, T, D, H = check_attention_sequence(x, A, Wx, Wh, Wattn, b)
    xp = get_array_module(x, A, Wx, Wh, Wattn, b)
    # BEGIN SOLUTION
    h0 = A.mean(axis=(2, 3))
    prev_h, prev_c = h0, h0
    hs, step_caches = [], []
    for t in range(T):
        attn, _, attn_cache = attention.dot_product_attention_forward(prev_h, A)
        prev_h, prev_c, step_cache = attention_lstm_step_forward(x[:, t], prev_h, prev_c, attn, Wx, Wh, Wattn, b)
        hs.append(prev_h)
        step_caches.append((attn_cache, step_cache))
    h = xp.stack(hs, axis=1)
    cache = (A, step_caches)
    # END SOLUTION
    return h, cache


def attention_backward(dh, cache):
    """Gradients of ``attention_forward``: dx (N, T, D), dA (N, H, Hs, Ws),
    dWx (D, 4H), dWh (H, 4H), dWattn (H, 4H), db (4H,).

    dh: (N, T, H). A is reached three ways: as the keys and the values of every
    step's attention, and through h0 = c0 = mean(A).
    """
    A, step_caches = cache
    N, H, Hs, Ws = A.shape
    expect_grad("dh", dh, (N, len(step_caches), H), "h")
    xp = get_array_module(dh)
    # BEGIN SOLUTION
    T = len(step_caches)
    dxs = [None] * T
    dA = xp.zeros_like(A)
    dprev_h = xp.zeros((N, H), dtype=A.dtype)
    dprev_c = xp.zeros((N, H), dtype=A.dtype)
    dWx, dWh, dWattn, db = 0, 0, 0, 0
    for t in reversed(range(T)):
        attn_cache, step_cache = step_caches[t]
        dxs[t], dprev_h, dprev_c, dattn, dWx_t, dWh_t, dWattn_t, db_t = attention_lstm_step_backward(
            dh[:, t] + dprev_h, dprev_c, step_cache)
        dquery, dA_t = attention.dot_product_attention_backward(dattn, attn_cache)
        dprev_h = dprev_h + dquery  # prev_h was both the recurrent input and the attention query
        dA = dA + dA_t
        dWx, dWh, dWattn, db = dWx + dWx_t, dWh + dWh_t, dWattn + dWattn_t, db + db_t
    # h0 = c0 = mean of A over its Hs * Ws locations spreads their gradients evenly.
    dA = dA + (dprev_h + dprev_c)[:, :, None, None] * (1.0 / (Hs * Ws))
    dx = xp.stack(dxs, axis=1)
    # END SOLUTION
    return dx, dA, dWx, dWh, dWattn, db
