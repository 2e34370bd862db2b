"""Scaled dot-product attention of a hidden state over a grid of projected features.

The image is a grid of L = Hs*Ws locations, each an H-vector (A, already
projected to the hidden size). The query prev_h scores every location,

    scores[l] = prev_h . A[:, l] / sqrt(H),   weights = softmax(scores),
    attn = sum over l of weights[l] * A[:, l].

Dividing by sqrt(H) keeps the scores' spread independent of H, so the softmax
does not saturate (and stop passing gradient) as the model grows.
"""

import math

from ..backend import get_array_module
from ._checks import check_attention, expect_grad


def softmax(scores):
    """Softmax over the last axis. Shifting every score by the row's maximum
    leaves the result unchanged and keeps exp from overflowing."""
    xp = get_array_module(scores)
    e = xp.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def dot_product_attention_forward(prev_h, A):
    """attn = sum over locations l of softmax_l(prev_h . A[:, :, l] / sqrt(H)) * A[:, :, l].

    prev_h: (N, H); A: (N, H, Hs, Ws), any grid. Returns attn (N, H), the
    weights attn_weights (N, Hs, Ws) and a cache for the backward.
    """
    N, H, Hs, Ws = check_attention(prev_h, A)
    # BEGIN SOLUTION
    A_flat = A.reshape(N, H, Hs * Ws)  # (N, H, L): one column per location
    scores = (prev_h[:, None, :] @ A_flat)[:, 0, :] * (1.0 / math.sqrt(H))  # (N, L)
    weights = softmax(scores)  # (N, L)
    attn = (A_flat @ weights[:, :, None])[:, :, 0]  # (N, H)
    attn_weights = weights.reshape(N, Hs, Ws)
    cache = (prev_h, A, weights)
    # END SOLUTION
    return attn, attn_weights, cache


def dot_product_attention_backward(dattn, cache):
    """Gradients dprev_h (N, H) and dA (N, H, Hs, Ws) from dattn (N, H).

    A receives gradient twice: as the values that are averaged (dattn times
    the weights) and as the keys that are scored (prev_h times dscores).
    """
    prev_h, A, weights = cache
    expect_grad("dattn", dattn, prev_h.shape, "attn")
    N, H = prev_h.shape
    # BEGIN SOLUTION
    A_flat = A.reshape(N, H, -1)
    # attn = A_flat @ weights: the values' gradient, and the weights' gradient
    dA_values = dattn[:, :, None] * weights[:, None, :]
    dweights = (dattn[:, None, :] @ A_flat)[:, 0, :]  # (N, L)
    # The softmax Jacobian is diag(w) - w w^T; applied to dweights it gives
    # w * (dweights - sum(w * dweights)). Then the 1/sqrt(H) of the scores.
    dscores = weights * (dweights - (weights * dweights).sum(axis=1, keepdims=True))
    dscores = dscores * (1.0 / math.sqrt(H))
    # scores = prev_h @ A_flat / sqrt(H): the query's gradient and the keys' gradient
    dprev_h = (A_flat @ dscores[:, :, None])[:, :, 0]
    dA_keys = prev_h[:, :, None] * dscores[:, None, :]
    dA = (dA_values + dA_keys).reshape(A.shape)
    # END SOLUTION
    return dprev_h, dA
