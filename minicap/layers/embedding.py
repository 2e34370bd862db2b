"""Word embedding: integer word ids to learned vectors by table lookup."""

from ..backend import get_array_module, scatter_add
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
    gradients, which ``dW[x] += dout`` would not do (it keeps one write per
    repeated index); ``scatter_add`` is the unbuffered, accumulating version.

    The scatter runs on the flattened table with one index per element,
    x * W + column, rather than one per row: NumPy's ``add.at`` has a fast
    loop for 1-d operands that is about three times faster than its row-wise
    path, and the sums are the same, added in the same order.
    """
    x, shape, dtype = cache
    return scatter_rows(x, dout, shape[0], dtype)


def scatter_rows(ids, rows, V, dtype):
    """(V, C) table whose row v is the sum of the rows of ``rows`` at ids == v.

    ids: (...) integer ids in [0, V); rows: (..., C), one row per id.
    """
    xp = get_array_module(rows)
    C = rows.shape[-1]
    table = xp.zeros((V, C), dtype=dtype)
    # int64 first: ids * C overflows small integer id types (uint8, int16).
    flat_ids = (ids.reshape(-1, 1).astype(xp.int64) * C + xp.arange(C)).reshape(-1)
    scatter_add(table.reshape(V * C), flat_ids, rows.reshape(-1))
    return table
