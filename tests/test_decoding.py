"""Greedy sampling and beam search against independent step-by-step decoders."""

import itertools
import math

import numpy as np
import pytest

from minicap import CaptioningRNN
from minicap.backend import to_device, to_numpy

import reference_captioner as ref

CELLS = ["rnn", "lstm", "attention"]
VOCAB = {"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3, "a": 4, "b": 5, "c": 6}
NULL, START, END = 0, 1, 2


def model_and_features(cell, rng, N=4, grid=(2, 3), scale=2.0):
    m = CaptioningRNN(VOCAB, input_dim=4, wordvec_dim=5, hidden_dim=6, cell_type=cell, dtype=np.float64, seed=3)
    for v in m.params.values():  # larger weights: peaked, varied predictions
        v += scale * rng.standard_normal(v.shape) / math.sqrt(v.shape[0])
    shape = (N, 4) + (grid if cell == "attention" else ())
    return m, rng.standard_normal(shape)


def word_log_probs(m, feature, prefix):
    """The reference's log p(next word), with <NULL> and <START> excluded and
    the other words renormalised: the decoders never generate those two."""
    logp = ref.log_probs_of_prefix(m.params, m.cell_type, feature, START, prefix)
    logp[[NULL, START]] = -np.inf
    return logp - np.log(np.exp(logp).sum())


def reference_greedy(m, features, max_length):
    out = np.full((features.shape[0], max_length), NULL)
    for n in range(features.shape[0]):
        prefix = []
        for t in range(max_length):
            word = int(np.argmax(word_log_probs(m, features[n], prefix)))
            out[n, t] = word
            prefix.append(word)
            if word == END:
                break
    return out


@pytest.mark.parametrize("cell", CELLS)
def test_greedy_matches_reference_and_pads_after_end(cell, rng):
    m, features = model_and_features(cell, rng, N=6)
    captions = m.sample(features, max_length=7)
    assert captions.shape == (6, 7) and captions.dtype.kind == "i"
    np.testing.assert_array_equal(captions, reference_greedy(m, features, 7))
    for row in captions:
        ends = np.flatnonzero(row == END)
        if ends.size:
            assert not row[ends[0] + 1:].any(), "only <NULL> after <END>"


def test_greedy_stops_when_every_row_ended():
    m = CaptioningRNN(VOCAB, input_dim=4, wordvec_dim=3, hidden_dim=5, cell_type="lstm")
    m.params["b_vocab"][END] = 100.0  # every row ends at once
    captions = m.sample(np.ones((3, 4), np.float32), max_length=5)
    np.testing.assert_array_equal(captions[:, 0], END)
    np.testing.assert_array_equal(captions[:, 1:], NULL)


def test_attention_weights_of_each_generated_word(rng):
    m, features = model_and_features("attention", rng, N=3, grid=(3, 2))
    captions, weights = m.sample(features, max_length=6, return_attention=True)
    assert weights.shape == (3, 6, 3, 2)
    generated = np.ones_like(captions, dtype=bool)
    for n, row in enumerate(captions):  # steps up to and including <END>
        ends = np.flatnonzero(row == END)
        if ends.size:
            generated[n, ends[0] + 1:] = False
    sums = weights.sum(axis=(2, 3))
    np.testing.assert_allclose(sums[generated], 1.0, atol=1e-12)
    assert not sums[~generated].any()
    with pytest.raises(ValueError, match="attention"):
        model_and_features("lstm", rng)[0].sample(np.ones((1, 4)), return_attention=True)


@pytest.mark.parametrize("cell", CELLS)
def test_beam_of_one_is_greedy(cell, rng):
    m, features = model_and_features(cell, rng, N=8)
    np.testing.assert_array_equal(m.beam_search(features, beam_size=1, max_length=9), m.sample(features, max_length=9))


def exhaustive_best(m, feature, max_length, length_penalty=0.0):
    """Score every caption the decoder can produce (stopping at <END> or at
    max_length) and return the best (score, tokens)."""
    V = m.vocab_size
    best = (-np.inf, None)
    for L in range(1, max_length + 1):
        for seq in itertools.product(range(V), repeat=L):
            if END in seq[:-1] or (L < max_length and seq[-1] != END) or NULL in seq or START in seq:
                continue  # not a complete caption of length L
            logp = sum(word_log_probs(m, feature, seq[:t])[seq[t]] for t in range(L))
            score = logp / L ** length_penalty
            if score > best[0]:
                best = (score, seq)
    return best


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_finds_exhaustive_best(cell, length_penalty, rng):
    m, features = model_and_features(cell, rng, N=2, scale=1.0)
    max_length = 3
    # V ** 2 beams hold every prefix of length 2, so nothing can be pruned
    result = m.beam_search(features, beam_size=m.vocab_size ** 2, max_length=max_length,
                           length_penalty=length_penalty, return_all=True)
    for n in range(2):
        score, seq = exhaustive_best(m, features[n], max_length, length_penalty)
        expected = np.full(max_length, NULL)
        expected[:len(seq)] = seq
        np.testing.assert_array_equal(result.captions[n], expected)
        assert abs(float(result.scores[n, 0]) - score) < 1e-9


@pytest.mark.parametrize("cell", CELLS)
def test_decoders_never_generate_null_or_start(cell, rng):
    # weights that rank <NULL> and <START> above every real word, as a barely
    # trained model can: the decoders must still write only real words
    m, features = model_and_features(cell, rng, N=5)
    m.params["b_vocab"][[NULL, START]] += 50.0
    unmasked = ref.log_probs_of_prefix(m.params, cell, features[0], START, [])
    assert int(np.argmax(unmasked)) in (NULL, START)  # the weights do favour them
    greedy = m.sample(features, max_length=6)
    result = m.beam_search(features, beam_size=3, max_length=6, return_all=True)
    for captions in (greedy, result.nbest.reshape(-1, 6)):
        for row in captions:
            ends = np.flatnonzero(row == END)
            words = row[:ends[0] + 1] if ends.size else row
            assert NULL not in words and START not in words, row
    np.testing.assert_array_equal(greedy, reference_greedy(m, features, 6))
    np.testing.assert_array_equal(m.beam_search(features, beam_size=1, max_length=6), greedy)


def test_beam_nbest_sorted_and_finished_beams_frozen(rng):
    m, features = model_and_features("lstm", rng, N=3)
    result = m.beam_search(features, beam_size=4, max_length=6, return_all=True)
    assert result.nbest.shape == (3, 4, 6) and result.scores.shape == (3, 4)
    assert np.all(np.diff(result.scores, axis=1) <= 0)
    np.testing.assert_array_equal(result.captions, result.nbest[:, 0])
    for beam in result.nbest.reshape(-1, 6):
        ends = np.flatnonzero(beam == END)
        if ends.size:
            assert not beam[ends[0] + 1:].any()


def test_beam_bad_arguments(rng):
    m, features = model_and_features("rnn", rng)
    for kwargs in ({"beam_size": 0}, {"max_length": 0}, {"max_length": True}, {"length_penalty": -1.0}):
        (name,) = kwargs
        with pytest.raises(ValueError, match=f"{name} must be"):
            m.beam_search(features, **kwargs)


@pytest.mark.parametrize("cell", CELLS)
def test_decoding_same_on_every_backend(cell, xp, rng):
    if xp is np:
        pytest.skip("NumPy decoding is the reference here: only the CuPy instance compares anything")
    device = "cuda"
    m, features = model_and_features(cell, rng)
    greedy, beams = m.sample(features, 6), m.beam_search(features, 3, 6)
    m.to(device)
    f = to_device(features, device)
    np.testing.assert_array_equal(to_numpy(m.sample(f, 6)), greedy)
    np.testing.assert_array_equal(to_numpy(m.beam_search(f, 3, 6)), beams)


def test_attention_for_greedy_captions_matches_sampling(rng):
    m, features = model_and_features("attention", rng, N=3)
    captions, weights = m.sample(features, max_length=5, return_attention=True)
    replay = m.attention_for(features, captions)
    generated = weights.sum(axis=(2, 3)) > 0
    np.testing.assert_allclose(replay[generated], weights[generated], atol=1e-12)
