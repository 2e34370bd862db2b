"""The fast version of ``layers.rnn_forward`` / ``rnn_backward``: same math, arranged for speed.

The sequence is two parts: the input projection of every step at once, one
(T*N, D) @ (D, H) product (``embed_project.project_words``), and the loop that
has to run step by step (``rnn_loop_forward``), which keeps its states in one
time-major buffer and works in place. The step functions have no faster
arrangement: ``minicap.kernels`` uses the course's ``rnn_step_forward``.
"""

from ..backend import get_array_module
from ..layers._checks import (
    check_sequence,
    expect_grad,
    expect_projected_inputs,
    expect_rnn_recurrent_weights,
    expect_shape,
    shape_of,
)
from ._through_time import batch_major, recurrent_weight_grad, states_buffer
from .embed_project import project_words, project_words_backward


def rnn_forward(x, h0, Wx, Wh, b):
    """h[:, t] = tanh(x[:, t] @ Wx + h[:, t-1] @ Wh + b), with h[:, -1] = h0.

    x: (N, T, D), an array or the ``WordVectors`` of ``kernels.word_embedding_forward``;
    h0: (N, H); Wx: (D, H); Wh: (H, H); b: (H,).
    Returns h (N, T, H) and a cache for ``rnn_backward``.
    """
    check_sequence(x, h0, Wx, Wh, b, gates=1)
    a, projection_cache = project_words(x, Wx, b)
    h, loop_cache = rnn_loop_forward(a, h0, Wh)
    return h, (projection_cache, loop_cache)


def rnn_backward(dh, cache):
    """Gradients of ``rnn_forward``: dx (N, T, D) (a ``WordGradients`` for a ``WordVectors``
    input), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).

    dh: (N, T, H), the upstream gradient of every hidden state (from the output
    layer only; the gradient that flows back through time is added here).
    """
    projection_cache, loop_cache = cache
    da, dh0, dWh = rnn_loop_backward(dh, loop_cache)
    dx, dWx, db = project_words_backward(da, projection_cache)
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
    T, N, H = states.shape[0] - 1, states.shape[1], states.shape[2]
    expect_grad("dh", dh, (N, T, H), "h")
    xp = get_array_module(dh)
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
