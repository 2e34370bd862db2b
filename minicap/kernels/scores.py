"""The fast version of ``layers.temporal_affine``: vocabulary scores computed only where they count.

Captions are padded to the longest one, so a COCO batch holds about 30 %
``<NULL>`` targets, and the loss masks them: their scores, their softmax and
their gradients are computed and then multiplied by zero. The biggest product
of a training step, hidden states (N*T, H) @ (H, V), and its two backward
products, are therefore a third larger than they need to be.

So, as with the embedding (``embedding.py``), the forward is deferred:
``temporal_affine_forward`` returns ``Scores``, standing for out = x @ w + b
(N, T, V), without computing it. The fast ``temporal_softmax_loss`` computes
only the kept rows (``kept_scores``) and returns their gradient as
``KeptRowGradients``, which ``temporal_affine_backward`` turns into dx (zero on
the masked rows, exactly as the full computation gives), dw and db from the
kept rows alone. Anything else that reads a ``Scores`` gets the full array
(``compute()``, indexing).
"""

from ..backend import add_at_distinct, get_array_module
from ..layers._checks import check_temporal_affine, expect_grad
from ..layers.affine import temporal_affine_backward as course_temporal_affine_backward


class Scores:
    """out = x @ w + b (N, T, V) for x (N, T, H), w (H, V), b (V,), not computed yet."""

    ndim = 3

    def __init__(self, x, w, b):
        self.x, self.w, self.b = x, w, b

    @property
    def shape(self):
        return tuple(self.x.shape[:2]) + (self.w.shape[1],)

    @property
    def dtype(self):
        return get_array_module(self.x, self.w).result_type(self.x.dtype, self.w.dtype)

    def compute(self):
        """The array itself, (N, T, V)."""
        N, T, H = self.x.shape
        return (self.x.reshape(N * T, H) @ self.w + self.b).reshape(self.shape)

    def __getitem__(self, key):
        return self.compute()[key]

    def kept_scores(self, kept):
        """(M, V) scores of the flat positions ``kept`` (M,) and the (M, H) rows of x they came from."""
        N, T, H = self.x.shape
        rows = self.x.reshape(N * T, H)
        if kept is not None:
            rows = rows[kept]
        return rows @ self.w + self.b, rows


class KeptRowGradients:
    """The gradient of ``Scores`` on the kept rows only (every other row's is zero):
    ``values`` (M, V) at the flat positions ``kept`` (M,), or at every position when
    ``kept`` is None; ``rows`` are the (M, H) inputs those scores came from."""

    def __init__(self, values, kept, rows, shape):
        self.values, self.kept, self.rows, self.shape = values, kept, rows, shape


def temporal_affine_forward(x, w, b):
    """x: (N, T, H); w: (H, V); b: (V,). Returns ``Scores`` standing for
    out[:, t] = x[:, t] @ w + b (N, T, V), and a cache."""
    check_temporal_affine(x, w, b)
    return Scores(x, w, b), (x, w)


def temporal_affine_backward(dout, cache):
    """dx (N, T, H), dw (H, V), db (V,) from dout (N, T, V) or ``KeptRowGradients``."""
    if not isinstance(dout, KeptRowGradients):
        return course_temporal_affine_backward(dout, cache)  # an ordinary gradient: the course's
    x, w = cache
    N, T, H = x.shape
    expect_grad("dout", dout, (N, T, w.shape[1]), "out")
    values, kept, rows = dout.values, dout.kept, dout.rows
    drows = values @ w.T
    if kept is None:
        dx = drows
    else:
        xp = get_array_module(values)
        dx = xp.zeros((N * T, H), dtype=drows.dtype)
        add_at_distinct(dx, kept, drows)  # kept positions are distinct
    return dx.reshape(N, T, H), rows.T @ values, values.sum(axis=0)
