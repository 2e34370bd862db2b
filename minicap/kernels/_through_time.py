"""The parts of a recurrent sequence that do not have to run step by step.

In a^(t) = x^(t) @ Wx + h^(t-1) @ Wh + b only the h @ Wh term depends on the
previous step. The input projection of all T steps is therefore one
(T*N, D) @ (D, .) product before the loop, and since Wx, Wh and b are shared by
every step, their gradients are sums over t that become one product each after
the loop, once the backward has kept every step's pre-activation gradient da^(t)
in a buffer. A few large matrix products instead of T small ones are what make
the sequence functions fast; the loop keeps only what is sequential.

The sequence functions keep their buffers time-major, (T, N, .), so that the
slice a loop step reads or writes, ``buf[t]``, is one contiguous (N, .) block:
matrix products and ``out=`` arguments take it as it is, with no copy. The
public arrays stay (N, T, .): ``batch_major`` returns a transposed view.
"""

from ..backend import get_array_module


def time_major(x):
    """A contiguous (T, N, D) copy of x (N, T, D)."""
    xp = get_array_module(x)
    return xp.ascontiguousarray(x.transpose(1, 0, 2))


def batch_major(buf):
    """The (N, T, .) view of a time-major buffer (T, N, .); no copy."""
    return buf.transpose(1, 0, 2)


def project_inputs(x_tm, Wx, b):
    """x_tm (T, N, D) @ Wx (D, G) + b (G,) for all steps at once: (T, N, G)."""
    T, N, D = x_tm.shape
    out = x_tm.reshape(T * N, D) @ Wx
    out += b
    return out.reshape(T, N, Wx.shape[1])


def states_buffer(xp, h0, T, dtype):
    """(T + 1, N, H) buffer of hidden states: [0] is h0, [t + 1] will be h^(t).

    Slot t is then both the state step t reads and, after the loop, row block t
    of the (T*N, H) matrix of previous states that dWh needs: no concatenation.
    """
    N, H = h0.shape
    states = xp.empty((T + 1, N, H), dtype=dtype)
    states[0] = h0
    return states


def projection_backward(x_tm, da, Wx):
    """Gradients of ``project_inputs`` from the time-major buffer da (T, N, G).

    x_tm (T, N, D): the inputs. Returns dx (N, T, D) (a view of a time-major
    array), dWx (D, G), db (G,).
    """
    T, N, D = x_tm.shape
    G = da.shape[2]
    da2 = da.reshape(T * N, G)
    dx = (da2 @ Wx.T).reshape(T, N, D)
    dWx = x_tm.reshape(T * N, D).T @ da2
    db = da2.sum(axis=0)
    return batch_major(dx), dWx, db


def recurrent_weight_grad(h_prev, da):
    """dWh (K, G) = sum over t of h_prev[t].T @ da[t], as one product.

    h_prev (T, N, K): what multiplied Wh at each step, K = H; for the attention
    LSTM it is [h, attn] side by side, K = 2H, and the result is [dWh; dWattn].
    da (T, N, G).
    """
    T, N, K = h_prev.shape
    return h_prev.reshape(T * N, K).T @ da.reshape(T * N, da.shape[2])
