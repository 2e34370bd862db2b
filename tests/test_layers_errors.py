"""Bad inputs fail early with a ValueError that names the argument and the expected shape."""

import re

import numpy as np
import pytest

from minicap.kernels import attention_loop_forward, lstm_loop_forward, rnn_loop_forward
from minicap.layers import (
    affine_forward,
    attention_forward,
    attention_lstm_step_forward,
    dot_product_attention_forward,
    lstm_forward,
    lstm_step_forward,
    rnn_forward,
    rnn_step_forward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_forward,
)
from test_layers_cases import CASE_IDS, CASES

N, T, D, H = 2, 5, 4, 3
z = np.zeros


def _raises(fn, *args, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        fn(*args)


def test_rnn_forward_messages():
    x, h0, Wx, Wh, b = z((N, T, D)), z((N, H)), z((D, H)), z((H, H)), z(H)
    _raises(rnn_forward, z((N, T, D + 1)), h0, Wx, Wh, b,
            match="x must have shape (N, T, D) = (N, T, 4) to match Wx (4, 3), got (2, 5, 5)")
    _raises(rnn_forward, z((N, D)), h0, Wx, Wh, b, match="x must have shape (N, T, D)")
    _raises(rnn_forward, x, z((N + 1, H)), Wx, Wh, b,
            match="h0 must have shape (N, H) = (2, 3) to match x (2, 5, 4) and Wh (3, 3), got (3, 3)")
    _raises(rnn_forward, x, h0, z((D, H + 1)), Wh, b, match="Wx must have shape (D, H) = (D, 3)")
    _raises(rnn_forward, x, h0, Wx, z((H, H + 1)), b, match="Wh must be square, shape (H, H), got (3, 4)")
    _raises(rnn_forward, x, h0, Wx, Wh, z(H + 1), match="b must have shape (H,) = (3,) to match Wh (3, 3), got (4,)")
    _raises(rnn_forward, [[[0.0]]], h0, Wx, Wh, b, match="x must be an array of shape (N, T, D)")


def test_lstm_forward_messages():
    x, h0, Wx, Wh, b = z((N, T, D)), z((N, H)), z((D, 4 * H)), z((H, 4 * H)), z(4 * H)
    _raises(lstm_forward, z((N, T, 3)), h0, Wx, Wh, b,
            match="x must have shape (N, T, D) = (N, T, 4) to match Wx (4, 12), got (2, 5, 3)")
    _raises(lstm_forward, x, h0, Wx, z((H, 10)), b, match="Wh must have shape (H, 4H)")
    _raises(lstm_forward, x, h0, z((D, 8)), Wh, b, match="Wx must have shape (D, 4H) = (D, 12) to match Wh (3, 12)")
    _raises(lstm_forward, x, z((N, H + 1)), Wx, Wh, b, match="h0 must have shape (N, H) = (2, 3)")
    _raises(lstm_forward, x, h0, Wx, Wh, z((1, 4 * H)), match="b must have shape (4H,) = (12,) to match Wh (3, 12), got (1, 12)")


def test_attention_forward_messages():
    x, A = z((N, T, D)), z((N, H, 2, 3))
    Wx, Wh, Wattn, b = z((D, 4 * H)), z((H, 4 * H)), z((H, 4 * H)), z(4 * H)
    _raises(attention_forward, x, z((N, H + 1, 2, 3)), Wx, Wh, Wattn, b,
            match="A must have shape (N, H, Hs, Ws) = (2, 3, Hs, Ws) to match x (2, 5, 4) and Wh (3, 12), got (2, 4, 2, 3)")
    _raises(attention_forward, x, z((N, H, 6)), Wx, Wh, Wattn, b, match="A must have shape (N, H, Hs, Ws)")
    _raises(attention_forward, x, A, Wx, Wh, z((H, 4 * H + 4)), b, match="Wattn must have shape (H, 4H) = (3, 12)")


def test_loop_messages():
    # The loops take projected inputs a (T, N, G), time-major; (N, T, G) is the usual slip.
    h0, Wh_rnn, Wh, Wattn, A = z((N, H)), z((H, H)), z((H, 4 * H)), z((H, 4 * H)), z((N, H, 2, 3))
    _raises(rnn_loop_forward, z((N, T, H)), h0, Wh_rnn,
            match="a must have shape (T, N, G) = (T, 2, 3) to match h0 (2, 3) and Wh (3, 3), time-major, got (2, 5, 3)")
    _raises(rnn_loop_forward, z((T, N, H)), z((N, H + 1)), Wh_rnn, match="h0 must have shape (N, H) = (N, 3)")
    _raises(rnn_loop_forward, z((T, N, H)), h0, z((H, H + 1)), match="Wh must be square, shape (H, H), got (3, 4)")
    _raises(lstm_loop_forward, z((N, T, 4 * H)), h0, Wh,
            match="a must have shape (T, N, G) = (T, 2, 12) to match h0 (2, 3) and Wh (3, 12), time-major, got (2, 5, 12)")
    _raises(lstm_loop_forward, z((T, N, 4 * H)), h0, z((H, H)), match="Wh must have shape (H, 4H)")
    _raises(attention_loop_forward, z((N, T, 4 * H)), A, Wh, Wattn,
            match="a must have shape (T, N, G) = (T, 2, 12) to match A (2, 3, 2, 3) and Wh (3, 12), time-major")
    _raises(attention_loop_forward, z((T, N, 4 * H)), A, Wh, z((H, H)), match="Wattn must have shape (H, 4H) = (3, 12)")
    _raises(attention_loop_forward, z((T, N, 4 * H)), z((N, H + 1, 2, 3)), Wh, Wattn,
            match="A must have shape (N, H, Hs, Ws) = (N, 3, Hs, Ws) to match Wh (3, 12)")


def test_step_function_messages():
    _raises(rnn_step_forward, z((N, D)), z((N + 1, H)), z((D, H)), z((H, H)), z(H), match="prev_h must have shape (N, H) = (2, 3)")
    args = [z((N, D)), z((N, H)), z((N, H)), z((D, 4 * H)), z((H, 4 * H)), z(4 * H)]
    _raises(lstm_step_forward, *args[:2], z((N, H + 1)), *args[3:], match="prev_c must have shape (N, H) = (2, 3)")
    _raises(attention_lstm_step_forward, *args[:3], z((N, 1)), args[3], args[4], args[4], args[5],
            match="attn must have shape (N, H) = (2, 3)")
    _raises(dot_product_attention_forward, z((N, H + 1)), z((N, H, 2, 2)),
            match="prev_h must have shape (N, H) = (2, 3) to match A (2, 3, 2, 2), got (2, 4)")


def test_affine_messages():
    _raises(affine_forward, z((N, 2, 3)), z((5, H)), z(H),
            match="x must have shape (N, d_1, ..., d_k) with d_1 * ... * d_k = D = 5 to match w (5, 3), got (2, 2, 3)")
    _raises(affine_forward, z((N, 6)), z((6, H)), z(H + 1), match="b must have shape (M,) = (3,)")
    _raises(temporal_affine_forward, z((N, T)), z((T, H)), z(H), match="x must have shape (N, T, H) = (N, T, 5)")


def test_embedding_messages():
    W = z((4, 3))
    _raises(word_embedding_forward, np.array([[0, 4]]), W,
            match="x must hold ids in [0, 4) to match W (4, 3), got values in [0, 4]")
    _raises(word_embedding_forward, np.array([[-1, 2]]), W, match="got values in [-1, 2]")
    _raises(word_embedding_forward, np.array([[0.0, 1.0]]), W, match="x must hold integer word ids, got dtype float64")
    _raises(word_embedding_forward, np.array([0, 1]), W, match="x must have shape (N, T), got (2,)")


def test_loss_messages():
    x, y, mask = z((N, T, 6)), np.zeros((N, T), dtype=np.int64), np.ones((N, T), dtype=bool)
    _raises(temporal_softmax_loss, z((N, T)), y, mask, match="x must have shape (N, T, V), got (2, 5)")
    _raises(temporal_softmax_loss, x, y[:, :-1], mask,
            match="y must have shape (N, T) = (2, 5) to match x (2, 5, 6), got (2, 4)")
    _raises(temporal_softmax_loss, x, y, mask[:1], match="mask must have shape (N, T) = (2, 5)")
    _raises(temporal_softmax_loss, x, y + 6, mask, match="y must hold ids in [0, 6) to match x (2, 5, 6), got values in [6, 6]")
    _raises(temporal_softmax_loss, x, y.astype(float), mask, match="y must hold integer target ids")
    _raises(temporal_softmax_loss, x, y, mask.astype(np.float32), match="mask must be boolean")
    _raises(temporal_softmax_loss, np.zeros((N, T, 6), dtype=np.int64), y, mask, match="x must be a float array")


def test_loss_accepts_integer_mask():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N, T, 6)), rng.integers(0, 6, (N, T))
    mask = rng.random((N, T)) < 0.5
    assert float(temporal_softmax_loss(x, y, mask.astype(np.int32))[0]) == float(temporal_softmax_loss(x, y, mask)[0])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint64, np.int32])
def test_loss_accepts_any_integer_target_type(dtype):
    # An unsigned y once promoted the one-hot index to float64 and crashed in add.at.
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N, T, 6)), rng.integers(0, 6, (N, T))
    mask = rng.random((N, T)) < 0.7
    loss, dx = temporal_softmax_loss(x, y, mask)
    loss_t, dx_t = temporal_softmax_loss(x, y.astype(dtype), mask)
    assert float(loss_t) == float(loss)
    np.testing.assert_array_equal(dx_t, dx)


def test_fully_masked_batch_has_a_zero_loss_and_gradient():
    x, y = np.ones((N, T, 6)), np.zeros((N, T), dtype=np.int64)
    loss, dx = temporal_softmax_loss(x, y, np.zeros((N, T), dtype=bool))
    assert float(loss) == 0.0 and not np.signbit(loss)  # printed as 0.0, not -0.0
    assert not dx.any()


# --- upstream gradients: a backward refuses a dout of the wrong shape -----------

def _wrong_shapes(shape):
    """Shapes a slip could give instead of ``shape``: axes swapped, a size-1 axis that
    would broadcast, one axis too few, a scalar."""
    wrong = [shape[::-1], shape[:-1], ()]
    if len(shape) >= 2:
        wrong.append((1,) + shape[1:])
        wrong.append(shape[:-1] + (1,))
    return [w for w in wrong if w != shape]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_backward_refuses_an_upstream_gradient_of_another_shape(case, rng):
    outs, cache = case.run(*case.inputs(rng, {"N": 2, "T": 3, "H": 4}))
    for k, out in enumerate(outs):
        for shape in _wrong_shapes(tuple(out.shape)):
            douts = [np.ones_like(o) for o in outs]
            douts[k] = np.ones(shape)
            with pytest.raises(ValueError, match=r"must have shape .*the shape of .* got"):
                case.back(tuple(douts), cache)


def test_upstream_gradient_message_names_both_shapes():
    x, w, b = np.zeros((3, 5, 4)), np.zeros((4, 6)), np.zeros(6)
    _, cache = temporal_affine_forward(x, w, b)
    from minicap.layers import temporal_affine_backward
    _raises(temporal_affine_backward, np.zeros((5, 3, 6)), cache,
            match="dout must have shape (3, 5, 6), the shape of out from the forward, got (5, 3, 6)")
