"""Oracle tests: minicap's layers against the same equations written with torch
ops and differentiated by torch autograd (skipped when torch is not installed).

The equations below are written out with torch ops rather than taken from
``nn.LSTM``, whose gate order (i, f, g, o) differs from ours (i, f, o, g).
"""

import math

import numpy as np
import pytest

from minicap.layers import (
    attention_backward,
    attention_forward,
    dot_product_attention_backward,
    dot_product_attention_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
    temporal_softmax_loss,
)
from test_layers_cases import CASES

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
CASE = {c.name: c for c in CASES}
DIMS = {"N": 3, "T": 5, "D": 4, "H": 6, "Hs": 3, "Ws": 2}


def _leaves(arrays):
    return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]


def _torch_grads(output, upstream, leaves):
    (output * torch.tensor(upstream)).sum().backward()
    return [leaf.grad.numpy() for leaf in leaves]


def _compare(ours, theirs):
    for k, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"result {k}")


def _torch_lstm_cell(a, c):
    i, f, o, g = a.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def test_rnn_matches_torch(rng):
    args = CASE["rnn"].inputs(rng, DIMS)
    h, cache = rnn_forward(*args)
    dh = rng.standard_normal(h.shape)
    x, h0, Wx, Wh, b = leaves = _leaves(args)
    prev, hs = h0, []
    for t in range(x.shape[1]):
        prev = torch.tanh(x[:, t] @ Wx + prev @ Wh + b)
        hs.append(prev)
    out = torch.stack(hs, dim=1)
    _compare([h], [out.detach().numpy()])
    _compare(rnn_backward(dh, cache), _torch_grads(out, dh, leaves))


def test_lstm_matches_torch(rng):
    args = CASE["lstm"].inputs(rng, DIMS)
    h, cache = lstm_forward(*args)
    dh = rng.standard_normal(h.shape)
    x, h0, Wx, Wh, b = leaves = _leaves(args)
    prev_h, prev_c, hs = h0, torch.zeros_like(h0), []
    for t in range(x.shape[1]):
        prev_h, prev_c = _torch_lstm_cell(x[:, t] @ Wx + prev_h @ Wh + b, prev_c)
        hs.append(prev_h)
    out = torch.stack(hs, dim=1)
    _compare([h], [out.detach().numpy()])
    _compare(lstm_backward(dh, cache), _torch_grads(out, dh, leaves))


def _torch_attend(prev_h, A_flat):
    scores = torch.einsum("nh,nhl->nl", prev_h, A_flat) / math.sqrt(A_flat.shape[1])
    weights = torch.softmax(scores, dim=1)
    return torch.einsum("nl,nhl->nh", weights, A_flat), weights


def test_dot_product_attention_matches_torch(rng):
    prev_h_np, A_np = CASE["dot_product_attention"].inputs(rng, DIMS)
    attn, weights, cache = dot_product_attention_forward(prev_h_np, A_np)
    dattn = rng.standard_normal(attn.shape)
    prev_h, A = leaves = _leaves([prev_h_np, A_np])
    t_attn, t_weights = _torch_attend(prev_h, A.reshape(A.shape[0], A.shape[1], -1))
    _compare([attn, weights.reshape(t_weights.shape)], [t_attn.detach().numpy(), t_weights.detach().numpy()])
    _compare(dot_product_attention_backward(dattn, cache), _torch_grads(t_attn, dattn, leaves))


def test_attention_lstm_matches_torch(rng):
    args = CASE["attention"].inputs(rng, DIMS)
    h, cache = attention_forward(*args)
    dh = rng.standard_normal(h.shape)
    x, A, Wx, Wh, Wattn, b = leaves = _leaves(args)
    A_flat = A.reshape(A.shape[0], A.shape[1], -1)
    prev_h = prev_c = A_flat.mean(dim=2)
    hs = []
    for t in range(x.shape[1]):
        attn, _ = _torch_attend(prev_h, A_flat)
        prev_h, prev_c = _torch_lstm_cell(x[:, t] @ Wx + prev_h @ Wh + attn @ Wattn + b, prev_c)
        hs.append(prev_h)
    out = torch.stack(hs, dim=1)
    _compare([h], [out.detach().numpy()])
    _compare(attention_backward(dh, cache), _torch_grads(out, dh, leaves))


def test_temporal_softmax_loss_matches_torch(rng):
    N, T, V = 4, 5, 7
    x_np = rng.standard_normal((N, T, V)) * 3
    y_np = rng.integers(0, V, size=(N, T))
    mask_np = rng.random((N, T)) < 0.6
    mask_np[1] = False
    loss, dx = temporal_softmax_loss(x_np, y_np, mask_np)
    (x,) = leaves = _leaves([x_np])
    per_step = torch.nn.functional.cross_entropy(x.reshape(N * T, V), torch.tensor(y_np.reshape(-1)), reduction="none")
    t_loss = (per_step * torch.tensor(mask_np.reshape(-1), dtype=torch.float64)).sum() / N
    _compare([loss], [t_loss.detach().numpy()])
    _compare([dx], _torch_grads(t_loss, 1.0, leaves))
