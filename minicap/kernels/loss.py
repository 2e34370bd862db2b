"""The fast version of ``layers.temporal_softmax_loss``: same math, arranged for speed.

One (N*T, V) buffer serves as the shifted scores, their exponentials and dx in
turn, and the one-hot part of the gradient is a scatter of N*T values instead
of an (N*T, V) comparison. Given the deferred ``Scores`` of
``kernels.temporal_affine_forward``, only the rows whose target is kept are
scored at all (``scores.py``)."""

from ..backend import add_at_distinct, get_array_module
from ..layers._checks import check_softmax_loss
from .scores import KeptRowGradients, Scores


def temporal_softmax_loss(x, y, mask):
    """loss = -(1/N) * sum over (n, t) with mask[n, t] of log softmax(x[n, t])[y[n, t]].

    x: (N, T, V) scores; y: (N, T) target ids in [0, V); mask: (N, T) bool (or
    0/1 integers), False where the target is ``<NULL>`` padding.
    Returns (loss, dx): loss is a 0-d array of x's dtype on x's device (no host
    sync; ``float(loss)`` works on both backends), dx (N, T, V).
    Dividing by N, not by the number of kept tokens, is the courses' convention:
    a batch of long captions weighs more than one of short captions.
    """
    N, T, V = check_softmax_loss(x, y, mask)
    xp = get_array_module(y, mask)
    keep = mask.reshape(N * T) != 0
    targets = y.reshape(N * T)
    if isinstance(x, Scores):
        # Only the kept rows are scored; the masked ones would get a zero gradient anyway.
        kept = xp.flatnonzero(keep)  # one sync (a data-dependent size), like the model's trimming
        if kept.size == keep.size:
            kept = None  # every row is kept: score x as it is, no gather
        rows, inputs = x.kept_scores(kept)
        loss, drows = _loss_rows(xp, rows, targets if kept is None else targets[kept], None, N)
        return loss, KeptRowGradients(drows, kept, inputs, (N, T, V))
    loss, drows = _loss_rows(xp, x.reshape(N * T, V).copy(), targets, keep, N)
    return loss, drows.reshape(N, T, V)


def _loss_rows(xp, e, targets, keep, N):
    """The loss and its gradient for the score rows ``e`` (M, V), which are overwritten
    (they become the gradient); keep (M,) marks the rows that count, None for all."""
    M, V = e.shape
    dtype = e.dtype
    # One (M, V) buffer serves as the shifted scores, then their exponentials,
    # then the gradient: the softmax and its gradient are formed in place.
    # log p_y = s_y - log(sum exp(s)) with s = x - max(x): no exp overflow,
    # and no log(0) when p_y underflows (log of the softmax would give -inf).
    e -= e.max(axis=1, keepdims=True)
    s_y = xp.take_along_axis(e, targets[:, None], axis=1)[:, 0]
    xp.exp(e, out=e)
    z = e.sum(axis=1)
    log_p = s_y - xp.log(z)
    # where() rather than boolean indexing keeps the shapes static (boolean
    # indexing is data-dependent and syncs on the GPU).
    kept_log_p = -log_p if keep is None else xp.where(keep, -log_p, 0)
    loss = kept_log_p.sum() / N  # not -(sum): an all-masked batch gives 0.0, not -0.0

    # d(-log p_y)/dx = (p - onehot(y)) * scale, scale = 1/N on kept rows and 0 on
    # masked ones. p * scale = e * (scale / z) is one pass over the buffer; the
    # one-hot part touches one element per row, so it is a scatter of M values
    # (no index repeats) instead of an (M, V) comparison.
    if keep is None:
        scale = xp.full(M, 1.0 / N, dtype=dtype)
    else:
        scale = xp.where(keep, 1.0 / N, 0.0).astype(dtype)
    e *= (scale / z)[:, None]
    # One element per row: no position repeats.
    add_at_distinct(e, (xp.arange(M), targets), -scale)
    return xp.asarray(loss, dtype=dtype), e
