"""Edge cases of the fast paths of issue 9 (docs/performance.md).

The sorted row sums of the embedding backward, the in-place softmax gradient
and the time-major buffers of the sequences each have a way to go wrong that
the general layer tests would not single out; each case is checked here against
a plain loop written in the test.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicap.kernels import (
    lstm_backward,
    lstm_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)
from minicap.backend import _LONG_RUN, scatter_rows


def test_embedding_backward_small_integer_ids_do_not_overflow(rng):
    # uint8 ids: the GPU path's flat index ids * W would wrap around at 256 without
    # its int64 cast, and the CPU path sorts and indexes with them.
    V, W = 250, 300
    x = np.array([[249, 3, 249], [0, 200, 3]], dtype=np.uint8)
    table = rng.standard_normal((V, W))
    _, cache = word_embedding_forward(x, table)
    dout = rng.standard_normal((2, 3, W))
    expected = np.zeros((V, W))
    for n in range(2):
        for t in range(3):
            expected[x[n, t]] += dout[n, t]
    np.testing.assert_allclose(word_embedding_backward(dout, cache), expected, rtol=1e-12, atol=1e-12)


def test_embedding_backward_accepts_a_transposed_upstream_gradient(rng):
    # The sequences hand back dx as a (N, T, W) view of a time-major array.
    x = rng.integers(0, 5, size=(3, 4))
    table = rng.standard_normal((5, 6))
    _, cache = word_embedding_forward(x, table)
    dout_tm = rng.standard_normal((4, 3, 6))
    dout = dout_tm.transpose(1, 0, 2)
    expected = np.zeros((5, 6))
    for n in range(3):
        for t in range(4):
            expected[x[n, t]] += dout[n, t]
    np.testing.assert_allclose(word_embedding_backward(dout, cache), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("repeats", [1, 2, _LONG_RUN - 1, _LONG_RUN, 3 * _LONG_RUN + 1])
def test_row_sums_by_id_match_a_plain_loop(rng, repeats):
    # The CPU sum sorts the ids and adds one row per word per pass, except for
    # words with _LONG_RUN rows or more, which are summed as a block: check
    # both sides of that threshold, mixed with single and absent words.
    V, C = 9, 5
    ids = np.concatenate([np.full(repeats, 4), [0, 7, 7, 2], np.full(repeats, 8)])
    ids = rng.permutation(ids).reshape(1, -1)
    rows = rng.standard_normal((1, ids.shape[1], C))
    expected = np.zeros((V, C))
    for i, row in zip(ids[0], rows[0]):
        expected[i] += row
    table = scatter_rows(ids, rows, V, np.float64)
    np.testing.assert_allclose(table, expected, rtol=1e-12, atol=1e-12)
    assert not table[[1, 3, 5, 6]].any()  # absent words get zero rows


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 4 * _LONG_RUN), V=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_row_sums_by_id_equal_add_at(n, V, seed):
    # A few words over up to 64 positions: runs on both sides of _LONG_RUN.
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(n, 1))
    rows = rng.standard_normal((n, 1, 3))
    expected = np.zeros((V, 3))
    np.add.at(expected, ids[:, 0], rows[:, 0])
    np.testing.assert_allclose(scatter_rows(ids, rows, V, np.float64), expected, rtol=1e-12, atol=1e-12)


def test_row_sums_by_id_keep_the_dtype_and_allow_no_ids(rng):
    ids = rng.integers(0, 4, size=(3, 6))
    rows = rng.standard_normal((3, 6, 2)).astype(np.float32)
    assert scatter_rows(ids, rows, 4, np.float32).dtype == np.float32
    empty = scatter_rows(np.zeros((0, 3), dtype=np.int64), np.zeros((0, 3, 2)), 4, np.float64)
    np.testing.assert_array_equal(empty, np.zeros((4, 2)))


def test_softmax_loss_gradient_rows_against_a_plain_loop(rng):
    N, T, V = 3, 4, 7
    x = rng.standard_normal((N, T, V)) * 5
    y = rng.integers(0, V, size=(N, T))
    mask = rng.random((N, T)) < 0.6
    x_before = x.copy()
    loss, dx = temporal_softmax_loss(x, y, mask)
    expected_loss, expected_dx = 0.0, np.zeros_like(x)
    for n in range(N):
        for t in range(T):
            if mask[n, t]:
                p = np.exp(x[n, t] - x[n, t].max())
                p /= p.sum()
                expected_loss -= np.log(p[y[n, t]]) / N
                expected_dx[n, t] = p / N
                expected_dx[n, t, y[n, t]] -= 1.0 / N
    np.testing.assert_allclose(float(loss), expected_loss, rtol=1e-12)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(x, x_before)  # the scores are not used as the buffer


def test_lstm_time_major_buffers_keep_the_public_layout_and_a_pure_backward(rng):
    # h is a (N, T, H) view of the cached time-major state buffer; the backward
    # reads the cache in place and must leave it as it was.
    N, T, D, H = 2, 3, 4, 5
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    Wx, Wh, b = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    h, cache = lstm_forward(x, h0, Wx, Wh, b)
    assert h.shape == (N, T, H)
    dh = rng.standard_normal((N, T, H))
    first = lstm_backward(dh, cache)
    second = lstm_backward(dh, cache)
    for a, b_ in zip(first, second):
        np.testing.assert_array_equal(a, b_)
    h_again, _ = lstm_forward(x, h0, Wx, Wh, b)
    np.testing.assert_array_equal(h, h_again)
