"""The fast version of ``layers.lstm``: same math, arranged for speed.

Pre-activations a (N, 4H) hold the gates side by side in the order i, f, o, g:
i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g);
c' = f * c + i * g, h' = o * tanh(c').

What differs from the course file (docs/kernels.md measures each):

- ``cell_forward`` / ``cell_backward`` do the gate arithmetic in place, with no
  temporaries: the three sigmoids are one tanh call, and the backward builds
  every product in its slot of da. They work on gate-major buffers, (4, N, H):
  gate k of every row is one contiguous (N, H) block. In the (N, 4H) layout
  the products give, a gate is a column block whose rows lie 4H apart, and
  NumPy's elementwise loops restart at every row of it: an LSTM cell on
  64 rows, H = 512, took 208 us forward and 281 us backward that way, against
  118 and 106 us gate-major, the transposing copies in and out included.
  The attention LSTM (``attention_lstm.py``) reuses the same cell.
- The sequence is the batched input projection (``embed_project.project_words``)
  plus the loop (``lstm_loop_forward``), whose buffers are time-major so that
  each step's slice is contiguous.
"""

from ..backend import get_array_module
from ..layers._checks import (
    check_lstm_step,
    check_sequence,
    expect_grad,
    expect_projected_inputs,
    expect_recurrent_weights,
    expect_shape,
    shape_of,
)
from ._through_time import batch_major, recurrent_weight_grad, states_buffer
from .embed_project import project_words, project_words_backward


def gate_major(a):
    """The (4, N, H) view of pre-activations or gates a (N, 4H): [k] is gate k of every row."""
    N, G = a.shape
    return a.reshape(N, 4, G // 4).transpose(1, 0, 2)


def cell_forward(xp, gates, prev_c, next_c, tanh_c):
    """Gate arithmetic of one step, in place and without temporaries.

    gates: (4, N, H) gate-major (each gates[k] a contiguous block, see the module
    docstring), holds the pre-activations a on entry and sigmoid(i, f, o),
    tanh(g) on return; prev_c: (N, H). Writes next_c and tanh_c = tanh(next_c)
    into the given (N, H) buffers; next_h is then o * tanh_c.
    """
    ifo, g = gates[:3], gates[3]
    # sigmoid(z) = (1 + tanh(z / 2)) / 2 cannot overflow (exp(-z) can, for
    # z << 0), and one tanh call covers all three sigmoid gates.
    ifo *= 0.5
    xp.tanh(ifo, out=ifo)
    ifo += 1.0
    ifo *= 0.5
    xp.tanh(g, out=g)
    i, f = gates[0], gates[1]
    xp.multiply(f, prev_c, out=next_c)
    xp.multiply(i, g, out=tanh_c)  # tanh_c holds i * g until the last line
    next_c += tanh_c
    xp.tanh(next_c, out=tanh_c)


def cell_backward(xp, dnext_h, dnext_c, gates, prev_c, tanh_c, da, dprev_c):
    """Backward of ``cell_forward``: writes d(loss)/da into ``da`` (4, N, H), gate-major
    like ``gates``, and dprev_c (N, H).

    dnext_h, dnext_c, prev_c, tanh_c: (N, H); gates: (4, N, H) as cached.
    With s = sigmoid(z), ds/dz = s (1 - s); with g = tanh(z), dg/dz = 1 - g^2.
    Every product is formed in place in its slot of ``da``; dprev_c may be the
    same buffer as dnext_c (the sequence backward reuses one), and doubles as
    the buffer for dc until its last line.
    """
    i, f, o, g = gates
    da_i, da_f, da_o, da_g = da
    # c' reaches the loss directly (dnext_c) and through h' = o * tanh(c'):
    # dc = dnext_c + dnext_h * o * (1 - tanh(c')^2), with da_g as scratch.
    xp.multiply(tanh_c, tanh_c, out=da_g)
    xp.subtract(1.0, da_g, out=da_g)
    da_g *= o
    da_g *= dnext_h
    dc = xp.add(dnext_c, da_g, out=dprev_c)
    # s (1 - s) of the three sigmoid gates in one pass, then each gate's factors.
    xp.subtract(1.0, gates[:3], out=da[:3])
    da[:3] *= gates[:3]
    da_i *= g
    da_i *= dc
    da_f *= prev_c
    da_f *= dc
    da_o *= tanh_c
    da_o *= dnext_h
    xp.multiply(g, g, out=da_g)
    xp.subtract(1.0, da_g, out=da_g)
    da_g *= i
    da_g *= dc
    dc *= f


def loop_cell_forward(xp, a, recurrent, gates, prev_c, next_c, tanh_c, next_h):
    """A sequence loop's cell for step t, on the loop's buffers.

    a, recurrent: (N, 4H), the input and the recurrent parts of the pre-activations;
    their sum is written gate-major into gates (4, N, H) (the transposing copy folded
    into an addition the step needs anyway), where ``cell_forward`` turns it into the
    gates. Writes next_c, tanh_c and next_h = o * tanh_c into their (N, H) slots.
    """
    xp.add(gate_major(recurrent), gate_major(a), out=gates)
    cell_forward(xp, gates, prev_c, next_c, tanh_c)
    xp.multiply(gates[2], tanh_c, out=next_h)


def loop_cell_backward(xp, dnext_h, dc, gates, prev_c, tanh_c, da_step, da):
    """Backward of ``loop_cell_forward``: d(loss)/da of step t into ``da`` (N, 4H), the
    layout the products after the loop read, through ``da_step`` (4, N, H) scratch.

    dnext_h: (N, H); dc: (N, H), dnext_c on entry and dprev_c on return (the loops keep one
    buffer for both); gates, prev_c, tanh_c: step t's, as the forward left them.
    """
    cell_backward(xp, dnext_h, dc, gates, prev_c, tanh_c, da_step, dc)
    gate_major(da)[...] = da_step


def step_forward(xp, a, prev_c):
    """One step's cell on its own buffers, from the pre-activations a (N, 4H).
    Returns next_h, next_c, tanh_c (N, H) each and the gates (4, N, H)."""
    gates = xp.ascontiguousarray(gate_major(a))
    next_c = xp.empty(prev_c.shape, dtype=gates.dtype)
    tanh_c = xp.empty(prev_c.shape, dtype=gates.dtype)
    cell_forward(xp, gates, prev_c, next_c, tanh_c)
    return gates[2] * tanh_c, next_c, tanh_c, gates


def step_backward(xp, dnext_h, dnext_c, gates, prev_c, tanh_c):
    """Backward of ``step_forward``: da (N, 4H) and dprev_c (N, H), in new arrays."""
    da = xp.empty_like(gates)
    dprev_c = xp.empty(prev_c.shape, dtype=gates.dtype)
    cell_backward(xp, dnext_h, dnext_c, gates, prev_c, tanh_c, da, dprev_c)
    _, N, H = gates.shape
    return da.transpose(1, 0, 2).reshape(N, 4 * H), dprev_c  # back to (N, 4H): a copy


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step on a = x @ Wx + prev_h @ Wh + b (gates i, f, o, g).

    x: (N, D); prev_h, prev_c: (N, H); Wx: (D, 4H); Wh: (H, 4H); b: (4H,).
    Returns next_h (N, H), next_c (N, H) and a cache for ``lstm_step_backward``.
    """
    check_lstm_step(x, prev_h, prev_c, Wx, Wh, b)
    xp = get_array_module(x, prev_h, prev_c, Wx, Wh, b)
    next_h, next_c, tanh_c, gates = step_forward(xp, x @ Wx + prev_h @ Wh + b, prev_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, gates, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients of one step: dx (N, D), dprev_h, dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).

    dnext_h, dnext_c: (N, H).
    """
    x, prev_h, prev_c, Wx, Wh, gates, tanh_c = cache
    expect_grad("dnext_h", dnext_h, prev_h.shape, "next_h")
    expect_grad("dnext_c", dnext_c, prev_c.shape, "next_c")
    da, dprev_c = step_backward(get_array_module(dnext_h, dnext_c), dnext_h, dnext_c, gates, prev_c, tanh_c)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """Run an LSTM over T steps from h0 and c0 = 0.

    x: (N, T, D), an array or the ``WordVectors`` of ``kernels.word_embedding_forward``;
    h0: (N, H); Wx: (D, 4H); Wh: (H, 4H); b: (4H,).
    Returns h (N, T, H) and a cache for ``lstm_backward``.
    """
    check_sequence(x, h0, Wx, Wh, b, gates=4)
    a, projection_cache = project_words(x, Wx, b)
    h, loop_cache = lstm_loop_forward(a, h0, Wh)
    return h, (projection_cache, loop_cache)


def lstm_backward(dh, cache):
    """Gradients of ``lstm_forward``: dx (N, T, D) (a ``WordGradients`` for a ``WordVectors``
    input), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).

    dh: (N, T, H), the upstream gradient of every hidden state. No gradient
    flows into c0, which is the constant 0.
    """
    projection_cache, loop_cache = cache
    da, dh0, dWh = lstm_loop_backward(dh, loop_cache)
    dx, dWx, db = project_words_backward(da, projection_cache)
    return dx, dh0, dWx, dWh, db


def lstm_loop_forward(a, h0, Wh):
    """The step-by-step part of ``lstm_forward``, on projected inputs.

    a: (T, N, 4H) time-major, a[t] = x[:, t] @ Wx + b; h0: (N, H); Wh: (H, 4H).
    Returns h (N, T, H) and a cache for ``lstm_loop_backward``. a is left as it is:
    each step writes a[t] + h @ Wh gate-major into a buffer of its own, (T, 4, N, H),
    where the cell turns it into the gates.
    """
    H = expect_recurrent_weights(Wh)
    N, _ = expect_shape("h0", h0, ("N", "H"), (None, H), match=shape_of("Wh", Wh))
    T = expect_projected_inputs(a, N, 4 * H, f"{shape_of('h0', h0)} and {shape_of('Wh', Wh)}, time-major")
    xp = get_array_module(a, h0, Wh)
    dtype = a.dtype
    gates = xp.empty((T, 4, N, H), dtype=dtype)  # gates[t, k] is gate k of step t, every row
    states = states_buffer(xp, h0, T, dtype)
    cells = xp.zeros((T + 1, N, H), dtype=dtype)  # [0] is c0 = 0, [t + 1] is c^(t)
    tanh_c = xp.empty((T, N, H), dtype=dtype)  # kept: the backward needs it at every step
    recurrent = xp.empty((N, 4 * H), dtype=dtype)
    for t in range(T):
        xp.matmul(states[t], Wh, out=recurrent)
        loop_cell_forward(xp, a[t], recurrent, gates[t], cells[t], cells[t + 1], tanh_c[t], states[t + 1])
    return batch_major(states[1:]), (Wh, states, cells, gates, tanh_c)


def lstm_loop_backward(dh, cache):
    """Gradients of ``lstm_loop_forward``: da (T, N, 4H) time-major, dh0 (N, H), dWh (H, 4H)."""
    Wh, states, cells, gates, tanh_c = cache
    T, N, H = tanh_c.shape
    expect_grad("dh", dh, (N, T, H), "h")
    xp = get_array_module(dh)
    da = xp.empty((T, N, 4 * H), dtype=gates.dtype)
    da_step = xp.empty((4, N, H), dtype=gates.dtype)  # one step's da, gate-major like the gates
    dprev_h = xp.zeros((N, H), dtype=gates.dtype)
    dprev_c = xp.zeros((N, H), dtype=gates.dtype)
    for t in reversed(range(T)):
        dprev_h += dh[:, t]  # now dnext_h of step t: from the output and from step t + 1
        loop_cell_backward(xp, dprev_h, dprev_c, gates[t], cells[t], tanh_c[t], da_step, da[t])
        xp.matmul(da[t], Wh.T, out=dprev_h)
    return da, dprev_h, recurrent_weight_grad(states[:-1], da)
