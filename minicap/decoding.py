"""Turning a trained ``CaptioningRNN`` into captions: greedy and beam search.

Both decoders run on the model's device and compute one step for the whole
batch at once (for beam search: all beams of all images at once). The only
host transfer per step is one boolean, "has every caption ended?", which lets
decoding stop early.

Output layout (both decoders): (N, max_length) integer ids, column 0 is the
first generated word, ``<END>`` is kept, ``<NULL>`` fills the rest. Neither
decoder ever generates ``<NULL>``, ``<START>`` or an id that no word has: their
scores are set to minus infinity at every step, so the probabilities are those
of the other words, renormalised.

A step runs the model's own layer functions (``model.layers()``): with
``impl="reference"`` a student's word embedding, step function, attention and
affine layer are what decode.
"""

from collections import namedtuple

import numpy as np

from .argcheck import check_int, check_real
from .backend import get_array_module

BeamResult = namedtuple("BeamResult", ["captions", "nbest", "scores"])
BeamResult.__doc__ = """Beam search output.

captions: (N, max_length) the best caption per image (the ``sample`` layout).
nbest:    (N, K, max_length) every final beam, best first.
scores:   (N, K) their scores (summed log-probabilities, divided by
          length ** length_penalty when length_penalty > 0), best first.
"""


def _step(model, words, h, c, A):
    """One decoding step: scores (N, V), the next (h, c), attention weights or None."""
    p, cell = model.params, model.cell
    L = model.layers()
    step_forward = cell.functions(L)[2]
    x, _ = L.word_embedding_forward(words[:, None], p["W_embed"])
    x = x[:, 0]
    weights = None
    if cell.attention:
        attn, weights, _ = L.dot_product_attention_forward(h, A)
        h, c, _ = step_forward(x, h, c, attn, p["Wx"], p["Wh"], p["Wattn"], p["b"])
    elif cell.memory:
        h, c, _ = step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
    else:
        h, _ = step_forward(x, h, p["Wx"], p["Wh"], p["b"])
    scores, _ = L.affine_forward(h, p["W_vocab"], p["b_vocab"])
    # <NULL> and <START> are never words of a caption: a barely trained model can
    # still rank them first, and decode_captions would then drop them from the text
    # (shifting every later word off its attention step). Ids without a word (a
    # vocabulary with gaps) have no text at all. Masking them here, in the one
    # step both decoders share, keeps beam 1 == greedy.
    scores[:, model.never_generated()] = -np.inf
    return scores, h, c, weights


def _check_length(max_length):
    return check_int("max_length", max_length, low=1)


def _check_beam(beam_size, length_penalty):
    """(beam_size as an int, length_penalty as a float); a penalty of 0 ranks by the plain sum of log p."""
    return check_int("beam_size", beam_size, low=1), check_real("length_penalty", length_penalty, low=0)


def greedy(model, features, max_length=30):
    """Greedy decoding: the most likely word at every step.

    Returns (captions (N, max_length), attention (N, max_length, Hs, Ws) or None).
    """
    max_length = _check_length(max_length)
    null, start, end = model.decoding_ids()
    xp = get_array_module(features)
    N = features.shape[0]
    captions = xp.full((N, max_length), null, dtype=xp.int64)
    attention = None
    if model.cell.attention:
        attention = xp.zeros((N, max_length) + features.shape[2:], dtype=model.dtype)
    h, c, A = model.initial_state(features)
    words = xp.full(N, start, dtype=xp.int64)
    done = xp.zeros(N, dtype=bool)
    for t in range(max_length):
        scores, h, c, weights = _step(model, words, h, c, A)
        words = scores.argmax(axis=1)
        # rows that already ended keep writing <NULL>; a row's own <END> is kept
        captions[:, t] = xp.where(done, null, words)
        if weights is not None:
            attention[:, t] = xp.where(done[:, None, None], 0, weights)
        done = done | (words == end)
        if bool(done.all()):  # the one host sync per step
            break
    return captions, attention


def teacher_forced_attention(model, features, captions):
    """Attention weights (N, T, Hs, Ws) when the model reads ``captions``
    (N, T), which start with the first generated word (no <START>)."""
    _, start, _ = model.decoding_ids()
    xp = get_array_module(features)
    N, T = captions.shape
    attention = xp.zeros((N, T) + features.shape[2:], dtype=model.dtype)
    h, c, A = model.initial_state(features)
    words = xp.full(N, start, dtype=xp.int64)
    for t in range(T):
        _, h, c, attention[:, t] = _step(model, words, h, c, A)
        words = captions[:, t]
    return attention


def _log_softmax(scores):
    shifted = scores - scores.max(axis=1, keepdims=True)
    xp = get_array_module(scores)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def _top_k(xp, values, k):
    """Indices of the k largest entries of each row, largest first; ties go
    to the lower index, as with argmax (this is what makes beam 1 == greedy)."""
    if xp is np:
        order = np.argsort(-values, axis=1, kind="stable")
    else:  # CuPy's sort is stable
        order = xp.argsort(-values, axis=1)
    return order[:, :k]


def beam_search(model, features, beam_size=3, max_length=30, length_penalty=0.0):
    """Batched beam search over images and beams.

    Every step scores all K beams of all N images as one (N*K, V) batch. A
    beam that has produced ``<END>`` is finished: it is kept with its score,
    never expanded (its only continuation is ``<NULL>`` at no cost), and
    competes with the growing beams for the K slots.

    Candidates are ranked by sum(log p) / length ** length_penalty, with the
    length counting generated words including ``<END>``; 0 (the default)
    ranks by the plain sum. With beam_size=1 this is exactly greedy decoding.
    """
    max_length = _check_length(max_length)
    K, length_penalty = _check_beam(beam_size, length_penalty)
    null, start, end = model.decoding_ids()
    xp = get_array_module(features)
    N, V = features.shape[0], model.vocab_size
    rows = xp.arange(N)[:, None]

    h, c, A = model.initial_state(features)
    # every image starts with K copies of one state; only beam 0 is live at first
    h = xp.repeat(h, K, axis=0)
    c = None if c is None else xp.repeat(c, K, axis=0)
    A = None if A is None else xp.repeat(A, K, axis=0)
    logp = xp.full((N, K), -np.inf, dtype=np.float64)
    logp[:, 0] = 0.0
    lengths = xp.zeros((N, K), dtype=np.float64)
    finished = xp.zeros((N, K), dtype=bool)
    tokens = xp.full((N, K, max_length), null, dtype=xp.int64)
    words = xp.full(N * K, start, dtype=xp.int64)
    # a finished beam's only continuation: <NULL>, adding nothing to its score
    frozen = xp.full(V, -np.inf, dtype=np.float64)
    frozen[null] = 0.0

    for t in range(max_length):
        scores, h, c, _ = _step(model, words, h, c, A)
        step_logp = _log_softmax(scores.astype(np.float64)).reshape(N, K, V)
        step_logp = xp.where(finished[:, :, None], frozen, step_logp)
        total = logp[:, :, None] + step_logp                                # (N, K, V)
        new_len = lengths + xp.where(finished, 0.0, 1.0)                     # (N, K)
        rank = total / new_len[:, :, None] ** length_penalty if length_penalty else total
        best = _top_k(xp, rank.reshape(N, K * V), K)                         # (N, K)
        parent, word = best // V, best % V

        logp = total.reshape(N, K * V)[rows, best]
        lengths = new_len[rows, parent]
        was_finished = finished[rows, parent]
        tokens = tokens[rows, parent]
        tokens[:, :, t] = xp.where(was_finished, null, word)
        finished = was_finished | (word == end)

        flat_parent = (rows * K + parent).reshape(-1)
        h = h[flat_parent]
        c = None if c is None else c[flat_parent]
        words = word.reshape(-1)
        if bool(finished.all()):  # the one host sync per step
            break

    final = logp / lengths ** length_penalty if length_penalty else logp
    order = _top_k(xp, final, K)
    nbest = tokens[rows, order]
    return BeamResult(captions=nbest[:, 0], nbest=nbest, scores=final[rows, order])
