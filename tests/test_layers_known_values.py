"""Forward values computed independently: plain Python loops over scalars with
``math``, or small closed forms. Nothing here reuses minicap's arithmetic."""

import math

import numpy as np
import pytest

from minicap.backend import to_numpy
from minicap.layers import (
    affine_forward,
    attention_forward,
    dot_product_attention_forward,
    lstm_step_forward,
    rnn_step_forward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_forward,
)


def _dot(row, W, k):
    """sum_j row[j] * W[j][k] with Python floats."""
    return sum(float(row[j]) * float(W[j][k]) for j in range(len(row)))


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_affine_flattens_trailing_axes(xp, rng):
    x = rng.standard_normal((2, 3, 2))
    w = rng.standard_normal((6, 4))
    b = rng.standard_normal(4)
    out, _ = affine_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b))
    for n in range(2):
        flat = [x[n, i, j] for i in range(3) for j in range(2)]  # C order
        for m in range(4):
            assert to_numpy(out)[n, m] == pytest.approx(_dot(flat, w, m) + b[m], rel=1e-12)


def test_temporal_affine_per_step(xp, rng):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    out = to_numpy(temporal_affine_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b))[0])
    for n in range(2):
        for t in range(3):
            for v in range(5):
                assert out[n, t, v] == pytest.approx(_dot(x[n, t], w, v) + b[v], rel=1e-12)


def test_word_embedding_looks_up_rows(xp, rng):
    W = rng.standard_normal((5, 3))
    ids = np.array([[4, 0, 4], [2, 2, 1]])
    out = to_numpy(word_embedding_forward(xp.asarray(ids), xp.asarray(W))[0])
    for n in range(2):
        for t in range(3):
            assert list(out[n, t]) == list(W[ids[n, t]])


def test_rnn_step_elementwise(xp, rng):
    N, D, H = 2, 3, 4
    x, h, Wx, Wh, b = (rng.standard_normal(s) for s in [(N, D), (N, H), (D, H), (H, H), (H,)])
    out = to_numpy(rnn_step_forward(*(xp.asarray(a) for a in (x, h, Wx, Wh, b)))[0])
    for n in range(N):
        for k in range(H):
            expected = math.tanh(_dot(x[n], Wx, k) + _dot(h[n], Wh, k) + b[k])
            assert out[n, k] == pytest.approx(expected, rel=1e-12)


def test_lstm_step_elementwise_gate_order_ifog(xp, rng):
    N, D, H = 2, 3, 2
    x, h, c = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    Wx, Wh, b = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    next_h, next_c, _ = lstm_step_forward(*(xp.asarray(a) for a in (x, h, c, Wx, Wh, b)))
    next_h, next_c = to_numpy(next_h), to_numpy(next_c)
    for n in range(N):
        for k in range(H):
            a = [_dot(x[n], Wx, g * H + k) + _dot(h[n], Wh, g * H + k) + b[g * H + k] for g in range(4)]
            i, f, o, g = _sigmoid(a[0]), _sigmoid(a[1]), _sigmoid(a[2]), math.tanh(a[3])
            c_new = f * c[n, k] + i * g
            assert next_c[n, k] == pytest.approx(c_new, rel=1e-12)
            assert next_h[n, k] == pytest.approx(o * math.tanh(c_new), rel=1e-12)


def test_lstm_step_saturates_without_overflow(xp):
    # Pre-activations of +-1000: exp(1000) overflows, a stable sigmoid must not.
    # With a = +1000 everywhere, i = f = o = 1 and g = 1, so c' = c + 1, h' = tanh(c + 1).
    x = xp.ones((1, 1), dtype=xp.float32)
    Wx = xp.full((1, 4), 1000.0, dtype=xp.float32)
    zeros = xp.zeros((1, 1), dtype=xp.float32)
    c = xp.full((1, 1), 0.5, dtype=xp.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        h1, c1, _ = lstm_step_forward(x, zeros, c, Wx, xp.zeros((1, 4), xp.float32), xp.zeros(4, xp.float32))
        h2, c2, _ = lstm_step_forward(-x, zeros, c, Wx, xp.zeros((1, 4), xp.float32), xp.zeros(4, xp.float32))
    assert float(c1[0, 0]) == pytest.approx(1.5) and float(h1[0, 0]) == pytest.approx(math.tanh(1.5))
    # a = -1000: i = f = o = 0, g = -1: everything is forgotten.
    assert float(c2[0, 0]) == 0.0 and float(h2[0, 0]) == 0.0


def test_attention_with_large_scores_does_not_overflow(xp):
    # Scores in the thousands (float32 exp overflows past 88): the softmax must shift
    # by the row maximum. prev_h = 30 * ones(4) scores location 0 (A = 30) at
    # 30 * 30 * 4 / sqrt(4) = 1800 and location 1 (A = 0) at 0, so the weights are
    # exactly one-hot on location 0 (exp(-1800) is 0 in float32).
    H = 4
    prev_h = xp.full((1, H), 30.0, dtype=xp.float32)
    A = xp.stack([xp.full((H,), 30.0), xp.zeros((H,))], axis=1).astype(xp.float32).reshape(1, H, 1, 2)
    with np.errstate(over="raise", invalid="raise"):
        attn, weights, _ = dot_product_attention_forward(prev_h, A)
    np.testing.assert_array_equal(to_numpy(weights).reshape(-1), [1.0, 0.0])
    np.testing.assert_allclose(to_numpy(attn), np.full((1, H), 30.0), rtol=1e-6)


def test_dot_product_attention_loops(xp, rng):
    N, H, Hs, Ws = 2, 3, 2, 3
    prev_h, A = rng.standard_normal((N, H)), rng.standard_normal((N, H, Hs, Ws))
    attn, weights, _ = dot_product_attention_forward(xp.asarray(prev_h), xp.asarray(A))
    attn, weights = to_numpy(attn), to_numpy(weights)
    for n in range(N):
        locs = [(r, s) for r in range(Hs) for s in range(Ws)]
        scores = [sum(prev_h[n, k] * A[n, k, r, s] for k in range(H)) / math.sqrt(H) for r, s in locs]
        total = sum(math.exp(z) for z in scores)
        for (r, s), z in zip(locs, scores):
            assert weights[n, r, s] == pytest.approx(math.exp(z) / total, rel=1e-12)
        for k in range(H):
            context = sum(math.exp(z) / total * A[n, k, r, s] for (r, s), z in zip(locs, scores))
            assert attn[n, k] == pytest.approx(context, rel=1e-12)


def test_attention_over_identical_locations_is_that_location(xp, rng):
    # Every location holds the same vector: the weights are uniform (1/L) and
    # the context is the vector itself, whatever the query.
    v = rng.standard_normal((1, 4, 1, 1))
    A = np.broadcast_to(v, (1, 4, 3, 2)).copy()
    attn, weights, _ = dot_product_attention_forward(xp.asarray(rng.standard_normal((1, 4))), xp.asarray(A))
    np.testing.assert_allclose(to_numpy(weights), np.full((1, 3, 2), 1 / 6), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(attn), v[:, :, 0, 0], rtol=1e-12)


def test_attention_forward_first_step_starts_from_mean_of_A(xp, rng):
    # One step, zero weights except the bias: a = b for every gate, so with
    # c0 = mean(A), c1 = sigmoid(b_f) * mean(A) + sigmoid(b_i) * tanh(b_g).
    N, D, H = 2, 3, 2
    A = rng.standard_normal((N, H, 2, 3))
    b = rng.standard_normal(4 * H)
    x = rng.standard_normal((N, 1, D))
    h, _ = attention_forward(*(xp.asarray(a) for a in (
        x, A, np.zeros((D, 4 * H)), np.zeros((H, 4 * H)), np.zeros((H, 4 * H)), b)))
    h = to_numpy(h)
    for n in range(N):
        for k in range(H):
            mean = sum(A[n, k].ravel()) / 6
            c1 = _sigmoid(b[H + k]) * mean + _sigmoid(b[k]) * math.tanh(b[3 * H + k])
            assert h[n, 0, k] == pytest.approx(_sigmoid(b[2 * H + k]) * math.tanh(c1), rel=1e-12)


def test_softmax_loss_loops(xp, rng):
    N, T, V = 2, 3, 4
    x = rng.standard_normal((N, T, V))
    y = rng.integers(0, V, size=(N, T))
    mask = np.array([[True, False, True], [True, True, False]])
    loss, dx = temporal_softmax_loss(xp.asarray(x), xp.asarray(y), xp.asarray(mask))
    expected_loss = 0.0
    expected_dx = np.zeros((N, T, V))
    for n in range(N):
        for t in range(T):
            if not mask[n, t]:
                continue
            z = sum(math.exp(v) for v in x[n, t])
            expected_loss -= math.log(math.exp(x[n, t, y[n, t]]) / z) / N
            for v in range(V):
                expected_dx[n, t, v] = (math.exp(x[n, t, v]) / z - (v == y[n, t])) / N
    assert float(loss) == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(to_numpy(dx), expected_dx, rtol=1e-10, atol=1e-15)


def test_softmax_loss_uniform_scores_is_kept_count_log_v_over_n(xp):
    N, T, V = 4, 5, 7
    mask = np.zeros((N, T), dtype=bool)
    mask[:, :3] = True
    loss, _ = temporal_softmax_loss(xp.zeros((N, T, V), dtype=xp.float32),
                                    xp.zeros((N, T), dtype=xp.int64), xp.asarray(mask))
    assert float(loss) == pytest.approx(3 * N * math.log(V) / N, rel=1e-6)


def test_softmax_loss_extreme_scores_stay_finite(xp):
    # Scores 0 and 1e4 in float32: naive exp overflows, naive log(softmax) is log(0).
    x = xp.asarray(np.array([[[0.0, 1e4]]], dtype=np.float32))
    mask = xp.ones((1, 1), dtype=bool)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        wrong, dx = temporal_softmax_loss(x, xp.zeros((1, 1), dtype=xp.int64), mask)
        right, _ = temporal_softmax_loss(x, xp.ones((1, 1), dtype=xp.int64), mask)
    assert float(wrong) == pytest.approx(1e4) and float(right) == 0.0
    np.testing.assert_array_equal(to_numpy(dx), [[[-1.0, 1.0]]])
