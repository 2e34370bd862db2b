"""An independent, deliberately plain captioning forward pass for tests.

One image and one time step at a time, written straight from the equations
in docs/conventions.md with 1-D NumPy vectors, sharing no code with
minicap.layers or minicap.model. Slow, but obviously right.
"""

import math

import numpy as np


def _sigmoid(v):
    return np.array([1.0 / (1.0 + math.exp(-a)) for a in v])


def _softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def initial_state(params, cell_type, feature):
    """(h, c, A_locations) for one image; A_locations is (L, H) or None."""
    if cell_type == "attention":
        D = feature.shape[0]
        locs = feature.reshape(D, -1).T                       # (L, D)
        A = np.stack([loc @ params["W_proj"] + params["b_proj"] for loc in locs])
        h0 = A.mean(axis=0)
        return h0, h0.copy(), A
    h0 = feature @ params["W_proj"] + params["b_proj"]
    return h0, np.zeros_like(h0), None


def step(params, cell_type, word, h, c, A):
    """One step for one image: (scores (V,), h, c, attention weights (L,) or None)."""
    x = params["W_embed"][word]
    weights = None
    if cell_type == "rnn":
        h = np.tanh(x @ params["Wx"] + h @ params["Wh"] + params["b"])
    else:
        a = x @ params["Wx"] + h @ params["Wh"] + params["b"]
        if cell_type == "attention":
            H = h.shape[0]
            weights = _softmax(np.array([h @ loc for loc in A]) / math.sqrt(H))
            context = sum(w * loc for w, loc in zip(weights, A))
            a = a + context @ params["Wattn"]
        H = h.shape[0]
        i, f, o = _sigmoid(a[:H]), _sigmoid(a[H:2 * H]), _sigmoid(a[2 * H:3 * H])
        g = np.tanh(a[3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
    scores = h @ params["W_vocab"] + params["b_vocab"]
    return scores, h, c, weights


def caption_loss(params, cell_type, features, captions, null=0):
    """Sum over images and kept steps of -log p(target), divided by N."""
    N = features.shape[0]
    total = 0.0
    for n in range(N):
        h, c, A = initial_state(params, cell_type, features[n])
        for t in range(captions.shape[1] - 1):
            scores, h, c, _ = step(params, cell_type, captions[n, t], h, c, A)
            target = captions[n, t + 1]
            if target != null:
                total -= math.log(_softmax(scores)[target])
    return total / N


def log_probs_of_prefix(params, cell_type, feature, start, prefix):
    """log p(next word | <START> prefix) for one image, as a (V,) array."""
    h, c, A = initial_state(params, cell_type, feature)
    word = start
    for nxt in list(prefix) + [None]:
        scores, h, c, _ = step(params, cell_type, word, h, c, A)
        word = nxt
    return np.log(_softmax(scores))
