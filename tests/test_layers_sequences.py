"""The fast sequence functions against a plain loop of the step functions.

rnn_forward, lstm_forward and attention_forward batch the input projection and
the weight gradients; the loops below chain the readable step functions
instead, forward and backward, so both paths must agree on every output and
every gradient, over random shapes.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicap.backend import to_numpy
from minicap.layers import (
    attention_backward,
    attention_forward,
    attention_lstm_step_backward,
    attention_lstm_step_forward,
    dot_product_attention_backward,
    dot_product_attention_forward,
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
)
from test_layers_cases import CASES, to_xp

CASE = {c.name: c for c in CASES}
shapes = st.fixed_dictionaries({
    "N": st.integers(1, 3), "T": st.integers(1, 4), "D": st.integers(1, 4), "H": st.integers(1, 4),
    "Hs": st.integers(1, 3), "Ws": st.integers(1, 3),
})
examples = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _setup(name, xp, d, seed):
    rng = np.random.default_rng(seed)
    args = to_xp(xp, CASE[name].inputs(rng, d))
    dh = xp.asarray(rng.standard_normal((d["N"], d["T"], d["H"])))
    return args, dh


def _assert_all_close(fast, slow):
    assert len(fast) == len(slow)
    for k, (a, b) in enumerate(zip(fast, slow)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-10, atol=1e-12, err_msg=f"result {k}")


@examples
@given(d=shapes, seed=st.integers(0, 2**32 - 1))
def test_rnn_forward_backward_equal_step_loop(xp, d, seed):
    (x, h0, Wx, Wh, b), dh = _setup("rnn", xp, d, seed)
    T = d["T"]
    h, cache = rnn_forward(x, h0, Wx, Wh, b)
    fast = rnn_backward(dh, cache)

    prev_h, steps, hs = h0, [], []
    for t in range(T):
        prev_h, step_cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        hs.append(prev_h)
        steps.append(step_cache)
    dx, dWx, dWh, db = [xp.zeros_like(a) for a in (x, Wx, Wh, b)]
    dprev_h = xp.zeros_like(h0)
    for t in reversed(range(T)):
        dx_t, dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev_h, steps[t])
        dx[:, t] = dx_t
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    _assert_all_close((h,), (xp.stack(hs, axis=1),))
    _assert_all_close(fast, (dx, dprev_h, dWx, dWh, db))


@examples
@given(d=shapes, seed=st.integers(0, 2**32 - 1))
def test_lstm_forward_backward_equal_step_loop(xp, d, seed):
    (x, h0, Wx, Wh, b), dh = _setup("lstm", xp, d, seed)
    T = d["T"]
    h, cache = lstm_forward(x, h0, Wx, Wh, b)
    fast = lstm_backward(dh, cache)

    prev_h, prev_c, steps, hs = h0, xp.zeros_like(h0), [], []
    for t in range(T):
        prev_h, prev_c, step_cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        hs.append(prev_h)
        steps.append(step_cache)
    dx, dWx, dWh, db = [xp.zeros_like(a) for a in (x, Wx, Wh, b)]
    dprev_h, dprev_c = xp.zeros_like(h0), xp.zeros_like(h0)
    for t in reversed(range(T)):
        dx_t, dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, steps[t])
        dx[:, t] = dx_t
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    _assert_all_close((h,), (xp.stack(hs, axis=1),))
    _assert_all_close(fast, (dx, dprev_h, dWx, dWh, db))


@examples
@given(d=shapes, seed=st.integers(0, 2**32 - 1))
def test_attention_forward_backward_equal_step_loop(xp, d, seed):
    (x, A, Wx, Wh, Wattn, b), dh = _setup("attention", xp, d, seed)
    N, T, H = d["N"], d["T"], d["H"]
    h, cache = attention_forward(x, A, Wx, Wh, Wattn, b)
    fast = attention_backward(dh, cache)

    h0 = A.reshape(N, H, -1).mean(axis=2)
    prev_h, prev_c, steps, hs = h0, h0, [], []
    for t in range(T):
        attn, _, attn_cache = dot_product_attention_forward(prev_h, A)
        prev_h, prev_c, step_cache = attention_lstm_step_forward(x[:, t], prev_h, prev_c, attn, Wx, Wh, Wattn, b)
        hs.append(prev_h)
        steps.append((step_cache, attn_cache))
    dx, dA, dWx, dWh, dWattn, db = [xp.zeros_like(a) for a in (x, A, Wx, Wh, Wattn, b)]
    dprev_h, dprev_c = xp.zeros_like(h0), xp.zeros_like(h0)
    for t in reversed(range(T)):
        step_cache, attn_cache = steps[t]
        dx_t, dh_rec, dprev_c, dattn, dWx_t, dWh_t, dWattn_t, db_t = attention_lstm_step_backward(
            dh[:, t] + dprev_h, dprev_c, step_cache)
        dh_query, dA_t = dot_product_attention_backward(dattn, attn_cache)
        dprev_h = dh_rec + dh_query
        dx[:, t] = dx_t
        dA, dWx, dWh, dWattn, db = dA + dA_t, dWx + dWx_t, dWh + dWh_t, dWattn + dWattn_t, db + db_t
    # h0 and c0 are both the mean of A over its L locations.
    L = A.shape[2] * A.shape[3]
    dA = dA + ((dprev_h + dprev_c) / L)[:, :, None, None]
    _assert_all_close((h,), (xp.stack(hs, axis=1),))
    _assert_all_close(fast, (dx, dA, dWx, dWh, dWattn, db))
