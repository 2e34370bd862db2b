"""The fast version of ``layers.temporal_softmax_loss``: same math, arranged for speed.

One (N*T, V) buffer serves as the shifted scores, their exponentials and dx in
turn, and the one-hot part of the gradient is a scatter of N*T values instead
of an (N*T, V) comparison."""

from ..backend import get_array_module, scatter_add
from ..layers._checks import expect_float, expect_ids_below, expect_int, expect_shape, shape_of


def temporal_softmax_loss(x, y, mask):
    """loss = -(1/N) * sum over (n, t) with mask[n, t] of log softmax(x[n, t])[y[n, t]].

    x: (N, T, V) scores; y: (N, T) target ids in [0, V); mask: (N, T) bool (or
    0/1 integers), False where the target is ``<NULL>`` padding.
    Returns (loss, dx): loss is a 0-d array of x's dtype on x's device (no host
    sync; ``float(loss)`` works on both backends), dx (N, T, V).
    Dividing by N, not by the number of kept tokens, is the courses' convention:
    a batch of long captions weighs more than one of short captions.
    """
    N, T, V = expect_shape("x", x, ("N", "T", "V"), (None, None, None))
    expect_float("x", x)
    match = shape_of("x", x)
    expect_shape("y", y, ("N", "T"), (N, T), match=match)
    expect_int("y", y, "target ids")
    expect_shape("mask", mask, ("N", "T"), (N, T), match=match)
    if mask.dtype.kind not in "biu":
        raise ValueError(f"mask must be boolean (e.g. captions_out != NULL), got dtype {mask.dtype}")
    expect_ids_below("y", y, V, match)
    xp = get_array_module(x, y, mask)

    rows = x.reshape(N * T, V)
    y_flat = y.reshape(N * T)
    keep = mask.reshape(N * T) != 0
    # One (N*T, V) buffer serves as the shifted scores, then their exponentials,
    # then dx: the softmax and its gradient are formed in place.
    # log p_y = s_y - log(sum exp(s)) with s = x - max(x): no exp overflow,
    # and no log(0) when p_y underflows (log of the softmax would give -inf).
    e = rows - rows.max(axis=1, keepdims=True)
    s_y = xp.take_along_axis(e, y_flat[:, None], axis=1)[:, 0]
    xp.exp(e, out=e)
    z = e.sum(axis=1)
    log_p = s_y - xp.log(z)
    # where() rather than boolean indexing keeps the shapes static (boolean
    # indexing is data-dependent and syncs on the GPU).
    loss = xp.where(keep, -log_p, 0).sum() / N  # not -(sum): an all-masked batch gives 0.0, not -0.0

    # d(-log p_y)/dx = (p - onehot(y)) * scale, scale = 1/N on kept rows and 0 on
    # masked ones. p * scale = e * (scale / z) is one pass over the buffer; the
    # one-hot part touches one element per row, so it is a scatter of N*T values
    # (no index repeats) instead of a (N*T, V) comparison.
    scale = xp.where(keep, 1.0 / N, 0.0).astype(x.dtype)
    dx = e
    dx *= (scale / z)[:, None]
    # int64 first: an unsigned y (uint64) plus the signed arange would promote to float64.
    scatter_add(dx.reshape(N * T * V), xp.arange(N * T) * V + y_flat.astype(xp.int64), -scale)
    return xp.asarray(loss, dtype=x.dtype), dx.reshape(N, T, V)
