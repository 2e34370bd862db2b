"""The caption loss: softmax cross-entropy at every kept time step."""

from ..backend import get_array_module
from ._checks import check_softmax_loss


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
    xp = get_array_module(x, y, mask)
    # BEGIN SOLUTION
    scores = x.reshape(N * T, V)
    targets = y.reshape(N * T)
    keep = mask.reshape(N * T).astype(x.dtype)  # 1.0 where the target counts, 0.0 on padding
    # log softmax, shifted by the row maximum: the same values, but exp cannot
    # overflow, and log p stays finite when p itself would underflow to 0.
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    log_p_target = xp.take_along_axis(log_probs, targets[:, None], axis=1)[:, 0]
    loss = (keep * -log_p_target).sum() / N
    # d(-log softmax(s)[y]) / ds = softmax(s) - onehot(y), kept rows only, divided by N.
    one_hot = xp.arange(V) == targets[:, None]
    dx = (xp.exp(log_probs) - one_hot) * (keep / N)[:, None]
    # END SOLUTION
    return xp.asarray(loss, dtype=x.dtype), dx.reshape(N, T, V)
