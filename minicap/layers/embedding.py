"""Word embedding: integer word ids to learned vectors by table lookup."""

from ..backend import get_array_module, scatter_add
from ._checks import expect_grad, expect_ids_below, expect_int, expect_shape, shape_of


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
    # BEGIN SOLUTION
    out = W[x]
    cache = (x, W)
    # END SOLUTION
    return out, cache


def word_embedding_backward(dout, cache):
    """dW (V, W): row v is the sum of dout[n, t] over every (n, t) with x[n, t] == v.

    dout: (N, T, W). A word that appears twice in the batch must collect both
    gradients. ``dW[x] += dout`` would not: with a repeated index it keeps one
    write. ``scatter_add`` (``np.add.at``) adds every one.
    """
    x, W = cache
    expect_grad("dout", dout, x.shape + (W.shape[1],), "out")
    # BEGIN SOLUTION
    xp = get_array_module(dout)
    dW = xp.zeros(W.shape, dtype=W.dtype)
    scatter_add(dW, x, dout)
    # END SOLUTION
    return dW
