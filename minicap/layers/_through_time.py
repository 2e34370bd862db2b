"""The parts of a recurrent sequence that do not have to run step by step.

In a^(t) = x^(t) @ Wx + h^(t-1) @ Wh + b only the h @ Wh term depends on the
previous step. The input projection of all T steps is therefore one
(N*T, D) @ (D, .) product before the loop, and since Wx, Wh and b are shared by
every step, their gradients are sums over t that become one product each after
the loop, once the backward has kept every step's pre-activation gradient da^(t)
in an (N, T, .) buffer. A few large matrix products instead of T small ones are
what make the sequence functions fast; the loop keeps only what is sequential.
"""

from ..backend import get_array_module


def project_inputs(x, Wx, b):
    """x (N, T, D) @ Wx (D, G) + b (G,) for all steps at once: (N, T, G)."""
    N, T, D = x.shape
    return (x.reshape(N * T, D) @ Wx + b).reshape(N, T, Wx.shape[1])


def previous_states(h0, h):
    """(N, T, H) array whose step t is h^(t-1): h0 followed by h[:, :-1]."""
    xp = get_array_module(h0, h)
    return xp.concatenate([h0[:, None, :].astype(h.dtype, copy=False), h[:, :-1]], axis=1)


def projection_backward(x, h_prev, da, Wx):
    """Gradients of the batched projections from the buffer da (N, T, G).

    x (N, T, D): the inputs; h_prev (N, T, H): the state each step read.
    Returns dx (N, T, D), dWx (D, G), dWh (H, G), db (G,).
    """
    N, T, D = x.shape
    G = da.shape[2]
    da2 = da.reshape(N * T, G)
    dx = (da2 @ Wx.T).reshape(N, T, D)
    dWx = x.reshape(N * T, D).T @ da2
    dWh = h_prev.reshape(N * T, h_prev.shape[2]).T @ da2
    db = da2.sum(axis=0)
    return dx, dWx, dWh, db
