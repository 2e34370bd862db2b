"""The word embedding and a cell's input projection, as one layer (a fast kernel).

This is the fast version of ``layers.word_embedding_forward`` followed by the
input side of ``layers.rnn_forward`` / ``lstm_forward`` / ``attention_forward``:
same math, arranged for speed.

The model feeds word ids to its cell through two linear maps: the embedding
x = W_embed[ids] and the cell's input projection a = x @ Wx + b. Applied in the
other order, they are a lookup in a projected table:

    W_embed[ids] @ Wx + b  ==  (W_embed @ Wx + b)[ids]

Projecting the table costs V * W * G multiply-adds; projecting the looked-up
vectors costs N * T * W * G. Whichever of V (words in the vocabulary) and N * T
(words in the batch) is smaller wins: a COCO batch of 128 captions has 2048
words against a vocabulary of 1004, and the shapes world's vocabulary is tiny.

The backward is the same identity read backwards. Every position holding word
v sends its da to row v of the table, so the positions are first summed per
word (a scatter-add into dtable, (V, G)), and then

    dWx = W_embed.T @ dtable,   dW_embed = dtable @ Wx.T,   db = sum of dtable's rows

instead of dx = da @ Wx.T, dWx = x.T @ da and a scatter of dx. Both routes give
the same gradients up to float rounding (tests/test_embed_project.py).

The output is time-major, (T, N, G): it is the buffer the sequence loops
(``rnn_loop_forward``, ``lstm_loop_forward``, ``attention_loop_forward``) take.
``project_words`` is how the sequence kernels reach it: given the
``WordVectors`` of ``kernels.word_embedding_forward``, they project through here.
"""

from ..backend import get_array_module, scatter_rows
from ..layers._checks import expect_grad, expect_ids_below, expect_int, expect_shape, shape_of
from ._through_time import project_inputs, projection_backward, time_major
from .embedding import WordGradients, WordVectors


def embed_project_forward(ids, W_embed, Wx, b, fold=None):
    """a[t, n] = W_embed[ids[n, t]] @ Wx + b.

    ids: (N, T) integer word ids in [0, V); W_embed: (V, W); Wx: (W, G); b: (G,).
    fold: project the table (True) or the looked-up vectors (False); by default
    whichever needs fewer multiply-adds (V < N * T folds).
    Returns a (T, N, G), time-major, and a cache for ``embed_project_backward``.
    """
    V, W = expect_shape("W_embed", W_embed, ("V", "W"), (None, None))
    _, G = expect_shape("Wx", Wx, ("W", "G"), (W, None), match=shape_of("W_embed", W_embed))
    expect_shape("b", b, ("G",), (G,), match=shape_of("Wx", Wx))
    N, T = expect_shape("ids", ids, ("N", "T"), (None, None))
    expect_int("ids", ids, "word ids")
    expect_ids_below("ids", ids, V, shape_of("W_embed", W_embed))
    if fold is None:
        fold = V < N * T
    ids_tm = ids.T  # (T, N): position [t, n] of the output reads word ids[n, t]
    if fold:
        table = W_embed @ Wx
        table += b
        a = table[ids_tm]
    else:
        xp = get_array_module(ids, W_embed, Wx, b)
        a = project_inputs(xp.ascontiguousarray(W_embed[ids_tm]), Wx, b)
    return a, (ids_tm, W_embed, Wx, bool(fold))


def embed_project_backward(da, cache):
    """Gradients of ``embed_project_forward``: dW_embed (V, W), dWx (W, G), db (G,).

    da: (T, N, G), time-major like the forward's output. The ids get no gradient.
    """
    ids_tm, W_embed, Wx, fold = cache
    expect_grad("da", da, ids_tm.shape + (Wx.shape[1],), "a (time-major)")
    V = W_embed.shape[0]
    if fold:
        dtable = scatter_rows(ids_tm, da, V, W_embed.dtype)  # (V, G): da summed per word
        return dtable @ Wx.T, W_embed.T @ dtable, dtable.sum(axis=0)
    xp = get_array_module(da)
    x_tm = xp.ascontiguousarray(W_embed[ids_tm])  # looked up again rather than cached
    dx, dWx, db = projection_backward(x_tm, da, Wx)
    # dx is a (N, T, W) view of a time-major array; the scatter wants ids in the same order.
    dW_embed = scatter_rows(ids_tm, dx.transpose(1, 0, 2), V, W_embed.dtype)
    return dW_embed, dWx, db


def project_words(x, Wx, b):
    """a = x @ Wx + b for every step, time-major (T, N, G), and a cache.

    x: (N, T, W) an array, or a ``WordVectors`` (ids and table): then the
    projection goes through ``embed_project_forward``, which may fold the
    table. This is the one place the sequence kernels read their input.
    """
    if isinstance(x, WordVectors):
        a, cache = embed_project_forward(x.ids, x.W, Wx, b)
        return a, ("words", cache)
    x_tm = time_major(x)
    return project_inputs(x_tm, Wx, b), ("array", (x_tm, Wx))


def project_words_backward(da, cache):
    """Gradients of ``project_words``: dx, dWx, db from da (T, N, G).

    dx is (N, T, W) for an array input, and a ``WordGradients`` (the gradient
    summed per word, i.e. the embedding's dW) for a ``WordVectors`` input.
    """
    kind, inner = cache
    if kind == "words":
        dW_embed, dWx, db = embed_project_backward(da, inner)
        return WordGradients(dW_embed), dWx, db
    x_tm, Wx = inner
    return projection_backward(x_tm, da, Wx)
