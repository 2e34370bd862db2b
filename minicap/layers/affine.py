"""Affine (fully connected) layers: one vector per example, or one per time step.

``affine`` maps image features to the initial hidden state; ``temporal_affine``
maps every hidden state of a caption to vocabulary scores. Weights are stored
(in, out), so the forward is a single ``x @ w + b``.
"""

import math

from ._checks import check_temporal_affine, expect_grad, expect_shape, shape_of


def affine_forward(x, w, b):
    """out = x.reshape(N, D) @ w + b.

    x: (N, d_1, ..., d_k) with D = d_1 * ... * d_k; w: (D, M); b: (M,).
    Returns out (N, M) and a cache for ``affine_backward``.
    """
    D, M = expect_shape("w", w, ("D", "M"), (None, None))
    expect_shape("b", b, ("M",), (M,), match=shape_of("w", w))
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) < 1 or math.prod(shape[1:]) != D:
        raise ValueError(
            f"x must have shape (N, d_1, ..., d_k) with d_1 * ... * d_k = D = {D} "
            f"to match {shape_of('w', w)}, got {shape}"
        )
    # BEGIN SOLUTION
    out = x.reshape(x.shape[0], D) @ w + b
    cache = (x, w)
    # END SOLUTION
    return out, cache


def affine_backward(dout, cache):
    """Gradients of ``affine_forward``: dx (shape of x), dw (D, M), db (M,).

    dout: (N, M). With X = x.reshape(N, D): dX = dout @ w.T, dw = X.T @ dout,
    db = sum of dout over the batch.
    """
    x, w = cache
    expect_grad("dout", dout, (x.shape[0], w.shape[1]), "out")
    # BEGIN SOLUTION
    X = x.reshape(x.shape[0], w.shape[0])
    dx = (dout @ w.T).reshape(x.shape)
    dw = X.T @ dout
    db = dout.sum(axis=0)
    # END SOLUTION
    return dx, dw, db


def temporal_affine_forward(x, w, b):
    """out[:, t] = x[:, t] @ w + b for every t, as one matrix product.

    x: (N, T, H); w: (H, V); b: (V,). Returns out (N, T, V) and a cache.
    (H and V are the model's use: hidden states to vocabulary scores.)
    """
    N, T, H, V = check_temporal_affine(x, w, b)
    # BEGIN SOLUTION
    out = (x.reshape(N * T, H) @ w + b).reshape(N, T, V)
    cache = (x, w)
    # END SOLUTION
    return out, cache


def temporal_affine_backward(dout, cache):
    """Gradients of ``temporal_affine_forward``: dx (N, T, H), dw (H, V), db (V,).

    dout: (N, T, V). The T steps share w, so their gradients add up; flattening
    (N, T) into N*T rows turns that sum into one matrix product.
    """
    x, w = cache
    N, T, H = x.shape
    V = w.shape[1]
    expect_grad("dout", dout, (N, T, V), "out")
    # BEGIN SOLUTION
    dout2 = dout.reshape(N * T, V)
    dx = (dout2 @ w.T).reshape(N, T, H)
    dw = x.reshape(N * T, H).T @ dout2
    db = dout2.sum(axis=0)
    # END SOLUTION
    return dx, dw, db
