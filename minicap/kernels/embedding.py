"""The fast version of ``layers.embedding``: same math, arranged for speed.

Two tricks, both measured in docs/kernels.md:

1. **The lookup is deferred.** ``word_embedding_forward`` returns a
   ``WordVectors``: the ids and the table, x = W[ids] not yet gathered. When the
   next layer is a sequence kernel, it multiplies x by its Wx first, and
   W[ids] @ Wx can be computed as (W @ Wx)[ids], which is cheaper whenever the
   vocabulary is smaller than the batch's word count (``embed_project.py``).
   The sequence kernel's backward then hands back the gradient already summed
   per word (``WordGradients``), which is dW itself.
2. **The backward sums rows per word after a sort** (``backend.scatter_rows``)
   instead of NumPy's element-by-element ``add.at``.

A ``WordVectors`` behaves like the array it stands for where the rest of the
model reads it (``shape``, ``dtype``, indexing, ``lookup()``).
"""

from ..backend import scatter_rows
from ..layers._checks import expect_grad, expect_ids_below, expect_int, expect_shape, shape_of


class WordVectors:
    """x = W[ids] (N, T, W), not gathered yet: ids (N, T), W (V, W)."""

    ndim = 3

    def __init__(self, ids, W):
        self.ids, self.W = ids, W

    @property
    def shape(self):
        return tuple(self.ids.shape) + (self.W.shape[1],)

    @property
    def dtype(self):
        return self.W.dtype

    def lookup(self):
        """The array x = W[ids] itself, (N, T, W)."""
        return self.W[self.ids]

    def __getitem__(self, key):
        return self.lookup()[key]


class WordGradients:
    """The gradient of a ``WordVectors`` already summed per word: a (V, W) table,
    which is exactly dW of the embedding."""

    def __init__(self, table):
        self.table = table


def word_embedding_forward(x, W):
    """x: (N, T) integer ids in [0, V); W: (V, W). Returns a ``WordVectors``
    standing for out = W[x] (N, T, W), and a cache."""
    V, _ = expect_shape("W", W, ("V", "W"), (None, None))
    expect_shape("x", x, ("N", "T"), (None, None))
    expect_int("x", x, "word ids")
    expect_ids_below("x", x, V, shape_of("W", W))
    return WordVectors(x, W), (x, W)


def word_embedding_backward(dout, cache):
    """dW (V, W) from dout (N, T, W), or from a ``WordGradients`` (already dW)."""
    x, W = cache
    if isinstance(dout, WordGradients):
        expect_grad("dout", dout.table, W.shape, "W (summed per word)")
        return dout.table
    expect_grad("dout", dout, x.shape + (W.shape[1],), "out")
    return scatter_rows(x, dout, W.shape[0], W.dtype)
