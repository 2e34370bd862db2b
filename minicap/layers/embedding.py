"""Word embedding: integer word ids to learned vectors by table lookup."""

from ..backend import scatter_rows
from ._checks import expect_ids_below, expect_int, expect_shape, shape_of


def word_embedding_forward(x, W):
    """out[n, t] = W[x[n, t]].

    x: (N, T) integer ids in [0, V); W: (V, W) one row per word.
    Returns out (N, T, W) and a cache. Ids are range-checked because CuPy would
    wrap an out-of-range id around instead of failing (one host sync on the GPU).
    """
    V, _ = expect_shape("W", W, ("V", "W"), (None, None))
    expect_shape("x", x, ("N", "T"), (None, None))
    expect_int("x", x, "word ids")
    expect_ids_below("x", x, V, shape_of("W", W))
    out = W[x]
    return out, (x, W.shape, W.dtype)


def word_embedding_backward(dout, cache):
    """dW (V, W): row v is the sum of dout over every (n, t) with x[n, t] == v.

    dout: (N, T, W). A word repeated in the batch must collect all its
    gradients, which ``dW[x] += dout`` would not do: it keeps one write per
    repeated index. ``scatter_rows`` adds every row.
    """
    x, shape, dtype = cache
    return scatter_rows(x, dout, shape[0], dtype)
