"""Attention for the fast kernels: ``layers.attention`` in the pieces the attention loop reuses.

The math is the course's (docs/layers.md); ``attend`` and ``scores_backward``
take the grid already flattened to (N, H, L) so that the loop in
``attention_lstm.py`` can call them every step on its buffers.

The image is a grid of L = Hs*Ws locations, each an H-vector (A, already
projected to the hidden size). The query prev_h scores every location,
scores = prev_h . A[:, :, l] / sqrt(H), a softmax over the L locations turns
the scores into weights, and the context is the weighted sum of the locations.
Dividing by sqrt(H) keeps the scores' spread independent of H, so the softmax
does not saturate (and stop passing gradient) as the model grows.
"""

import math

from ..backend import get_array_module
from ..layers._checks import check_attention, expect_grad


def softmax_rows(xp, scores):
    """Softmax over the last axis, shifted by the row maximum so exp cannot overflow."""
    e = xp.exp(scores - scores.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def attend(xp, prev_h, A_flat):
    """Context (N, H) and weights (N, L) for queries prev_h (N, H) over A_flat (N, H, L)."""
    scale = 1.0 / math.sqrt(A_flat.shape[1])
    scores = (prev_h[:, None, :] @ A_flat)[:, 0, :] * scale
    weights = softmax_rows(xp, scores)
    attn = (A_flat @ weights[:, :, None])[:, :, 0]
    return attn, weights


def scores_backward(dattn, A_flat, weights):
    """Gradient of the scaled scores (N, L) from dattn (N, H).

    The softmax Jacobian is diag(w) - w w^T, so applied to dw it gives
    w * (dw - sum(w * dw)); the 1/sqrt(H) scale is applied here as well.
    """
    dweights = (dattn[:, None, :] @ A_flat)[:, 0, :]
    dscores = dweights - (weights * dweights).sum(axis=1, keepdims=True)
    dscores *= weights
    dscores *= 1.0 / math.sqrt(A_flat.shape[1])
    return dscores


def dot_product_attention_forward(prev_h, A):
    """attn = sum over locations l of softmax_l(prev_h . A[:, :, l] / sqrt(H)) * A[:, :, l].

    prev_h: (N, H); A: (N, H, Hs, Ws), any grid. Returns attn (N, H), the
    weights attn_weights (N, Hs, Ws) and a cache for the backward.
    """
    N, H, Hs, Ws = check_attention(prev_h, A)
    xp = get_array_module(prev_h, A)
    attn, weights = attend(xp, prev_h, A.reshape(N, H, Hs * Ws))
    return attn, weights.reshape(N, Hs, Ws), (prev_h, A, weights)


def dot_product_attention_backward(dattn, cache):
    """Gradients dprev_h (N, H) and dA (N, H, Hs, Ws) from dattn (N, H).

    A receives gradient twice: as the values that are averaged (dattn times
    the weights) and as the keys that are scored (prev_h times dscores).
    """
    prev_h, A, weights = cache
    expect_grad("dattn", dattn, prev_h.shape, "attn")
    N, H = prev_h.shape
    A_flat = A.reshape(N, H, -1)
    dscores = scores_backward(dattn, A_flat, weights)
    dprev_h = (A_flat @ dscores[:, :, None])[:, :, 0]
    dA = dattn[:, :, None] * weights[:, None, :] + prev_h[:, :, None] * dscores[:, None, :]
    return dprev_h, dA.reshape(A.shape)
