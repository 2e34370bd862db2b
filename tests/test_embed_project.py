"""The fused embedding + input projection (minicap/kernels/embed_project.py).

Its gradient checks are in the shared layer cases (both routes); here: the two
routes agree with each other and with the two public layers they replace, the
default route is the cheaper one, and bad inputs are refused with a message.
"""

import numpy as np
import pytest

from minicap.kernels import embed_project_backward, embed_project_forward
from minicap.layers import lstm_backward, lstm_forward, word_embedding_backward, word_embedding_forward


def _inputs(rng, N=3, T=4, V=6, W=5, G=8, dtype=np.float64):
    ids = rng.integers(0, V, size=(N, T))
    ids[0, :2] = ids[-1, -1]  # a word repeated across rows and columns
    return (ids, rng.standard_normal((V, W)).astype(dtype), rng.standard_normal((W, G)).astype(dtype),
            rng.standard_normal(G).astype(dtype))


@pytest.mark.parametrize("fold", [True, False])
def test_equals_embedding_then_projection(xp, rng, fold):
    ids, W_embed, Wx, b = (xp.asarray(a) for a in _inputs(rng))
    a, cache = embed_project_forward(ids, W_embed, Wx, b, fold=fold)
    # The two layers it replaces, written out: x = W_embed[ids], a = x @ Wx + b, time-major.
    x, embed_cache = word_embedding_forward(ids, W_embed)
    expected = (x @ Wx + b).transpose(1, 0, 2)
    assert a.shape == expected.shape
    xp.testing.assert_allclose(a, expected, rtol=1e-12, atol=1e-12)

    da = xp.asarray(rng.standard_normal(a.shape))
    dW_embed, dWx, db = embed_project_backward(da, cache)
    da_bm = da.transpose(1, 0, 2)  # (N, T, G)
    dx = da_bm @ Wx.T
    xp.testing.assert_allclose(dW_embed, word_embedding_backward(dx, embed_cache), rtol=1e-12, atol=1e-12)
    xp.testing.assert_allclose(dWx, x.reshape(-1, x.shape[2]).T @ da_bm.reshape(-1, da.shape[2]),
                               rtol=1e-12, atol=1e-12)
    xp.testing.assert_allclose(db, da.sum(axis=(0, 1)), rtol=1e-12, atol=1e-12)


def test_routes_agree_in_float32(rng):
    ids, W_embed, Wx, b = _inputs(rng, N=16, T=12, V=40, W=32, G=64, dtype=np.float32)
    da = rng.standard_normal((12, 16, 64)).astype(np.float32)
    a_fold, cache_fold = embed_project_forward(ids, W_embed, Wx, b, fold=True)
    a_plain, cache_plain = embed_project_forward(ids, W_embed, Wx, b, fold=False)
    assert a_fold.dtype == a_plain.dtype == np.float32
    np.testing.assert_allclose(a_fold, a_plain, rtol=1e-5, atol=1e-5)
    for g_fold, g_plain in zip(embed_project_backward(da, cache_fold), embed_project_backward(da, cache_plain)):
        assert g_fold.dtype == np.float32
        np.testing.assert_allclose(g_fold, g_plain, rtol=1e-4, atol=1e-4)


def test_fold_and_loop_equal_the_course_layers(rng):
    # The fast kernels run embed_project + lstm_loop; the course path is
    # word_embedding + lstm_forward. Same gradients for every parameter.
    from minicap.kernels import lstm_loop_backward, lstm_loop_forward

    N, T, V, W, H = 3, 5, 7, 4, 3
    ids, W_embed, Wx, b = _inputs(rng, N, T, V, W, 4 * H)
    h0 = rng.standard_normal((N, H))
    Wh = rng.standard_normal((H, 4 * H)) / 2
    dh = rng.standard_normal((N, T, H))

    x, embed_cache = word_embedding_forward(ids, W_embed)
    h_ref, cache_ref = lstm_forward(x, h0, Wx, Wh, b)
    dx, dh0_ref, dWx_ref, dWh_ref, db_ref = lstm_backward(dh, cache_ref)
    dW_embed_ref = word_embedding_backward(dx, embed_cache)

    a, cache_a = embed_project_forward(ids, W_embed, Wx, b)
    h, cache_h = lstm_loop_forward(a, h0, Wh)
    da, dh0, dWh = lstm_loop_backward(dh, cache_h)
    dW_embed, dWx, db = embed_project_backward(da, cache_a)
    for got, want in ((h, h_ref), (dh0, dh0_ref), (dWh, dWh_ref), (dW_embed, dW_embed_ref), (dWx, dWx_ref),
                      (db, db_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_default_route_is_the_cheaper_one(rng):
    ids, W_embed, Wx, b = _inputs(rng, N=3, T=4, V=6)  # 6 words in the table, 12 in the batch
    assert embed_project_forward(ids, W_embed, Wx, b)[1][-1] is True
    ids, W_embed, Wx, b = _inputs(rng, N=1, T=4, V=6)  # 4 words in the batch
    assert embed_project_forward(ids, W_embed, Wx, b)[1][-1] is False


@pytest.mark.parametrize("loop", ["lstm", "attention"])
def test_loop_forward_leaves_its_input_alone(rng, loop):
    from minicap.kernels import attention_loop_forward, lstm_loop_forward

    a = rng.standard_normal((4, 2, 12))
    before = a.copy()
    if loop == "lstm":
        lstm_loop_forward(a, np.zeros((2, 3)), rng.standard_normal((3, 12)))
    else:
        attention_loop_forward(a, rng.standard_normal((2, 3, 2, 2)), *rng.standard_normal((2, 3, 12)))
    np.testing.assert_array_equal(a, before)  # the gates live in a buffer of their own


@pytest.mark.parametrize("change, message", [
    (lambda ids, E, Wx, b: (ids + 6, E, Wx, b), r"ids must hold ids in \[0, 6\)"),
    (lambda ids, E, Wx, b: (ids.astype(float), E, Wx, b), "ids must hold integer word ids"),
    (lambda ids, E, Wx, b: (ids, E, Wx[:-1], b), r"Wx must have shape \(W, G\) = \(5, G\)"),
    (lambda ids, E, Wx, b: (ids, E, Wx, b[:-1]), r"b must have shape \(G,\) = \(8,\)"),
    (lambda ids, E, Wx, b: (ids[0], E, Wx, b), r"ids must have shape \(N, T\)"),
])
def test_bad_inputs_are_named(rng, change, message):
    with pytest.raises(ValueError, match=message):
        embed_project_forward(*change(*_inputs(rng)))
