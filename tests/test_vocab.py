"""The vocabulary: tokenisation, build, encode, decode (known values and properties)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicap.data.vocab import build_vocab, decode_captions, encode_captions, tokenize

WORDS = st.sampled_from(["a", "red", "circle", "above", "the", "blue", "square", "is", "there"])


def test_tokenize_lowercases_and_strips_punctuation():
    assert tokenize("A Red, circle! Top-left.") == ["a", "red", "circle", "top", "left"]
    assert tokenize("the man's   hat") == ["the", "mans", "hat"]
    assert tokenize("...") == []


def test_build_vocab_specials_first_then_by_frequency():
    w2i, i2w = build_vocab(["b a", "a c", "A b a", "d c"])
    assert i2w[:4] == ["<NULL>", "<START>", "<END>", "<UNK>"]
    assert i2w[4:] == ["a", "b", "c", "d"]  # a: 3, then b and c: 2 each (alphabetical), d: 1
    assert all(w2i[w] == i for i, w in enumerate(i2w))


def test_build_vocab_min_count_and_max_length():
    caps = ["x y z", "x y", "x"]
    _, i2w = build_vocab(caps, min_count=2)
    assert i2w[4:] == ["x", "y"]
    _, i2w = build_vocab(caps, max_length=1)
    assert i2w[4:] == ["x"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_build_vocab_rejects_bad_min_count(bad):
    with pytest.raises(ValueError, match="min_count"):
        build_vocab(["a"], min_count=bad)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="list of strings"):
        build_vocab("a red circle")
    with pytest.raises(ValueError, match="string"):
        build_vocab([3])
    w2i, _ = build_vocab(["a"])
    with pytest.raises(ValueError, match="max_length"):
        encode_captions(["a"], w2i, 0)
    with pytest.raises(ValueError, match="<START>"):
        encode_captions(["a"], {"<NULL>": 0, "a": 1}, 3)


def test_encode_known_values_truncation_and_unk():
    w2i, i2w = build_vocab(["red circle", "red square"])
    out = encode_captions(["red circle", "blue circle red square extra"], w2i, max_length=3)
    assert out.dtype == np.int32 and out.shape == (2, 5)
    r, c = w2i["red"], w2i["circle"]
    np.testing.assert_array_equal(out[0], [1, r, c, 2, 0])
    np.testing.assert_array_equal(out[1], [1, 3, c, r, 2])  # "blue" unknown, cut after 3 words


def test_decode_known_values():
    i2w = ["<NULL>", "<START>", "<END>", "<UNK>", "red", "circle"]
    assert decode_captions(np.array([1, 4, 5, 2, 4, 0]), i2w) == "red circle"
    assert decode_captions(np.array([[4, 0, 5, 2], [2, 4, 4, 4]]), i2w) == ["red circle", ""]
    assert decode_captions([[4, 3]], i2w) == ["red <UNK>"]


def test_decode_rejects_out_of_range_and_bad_shapes():
    i2w = ["<NULL>", "<START>", "<END>", "<UNK>", "red"]
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        decode_captions(np.array([1, 5]), i2w)
    with pytest.raises(ValueError, match="-1"):
        decode_captions(np.array([1, -1]), i2w)
    with pytest.raises(ValueError, match="shape"):
        decode_captions(np.zeros((1, 1, 1), dtype=int), i2w)
    with pytest.raises(ValueError, match="integer"):
        decode_captions(np.array([1.0, 2.0]), i2w)


def test_decode_accepts_device_arrays(xp):
    i2w = ["<NULL>", "<START>", "<END>", "<UNK>", "red"]
    assert decode_captions(xp.asarray([[1, 4, 2]]), i2w) == ["red"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(WORDS, min_size=0, max_size=8), min_size=1, max_size=6), st.integers(1, 10))
def test_encode_decode_round_trip(sentences, max_length):
    captions = [" ".join(s) for s in sentences]
    w2i, i2w = build_vocab(captions)
    ids = encode_captions(captions, w2i, max_length)
    assert ids.shape == (len(captions), max_length + 2)
    assert (ids[:, 0] == 1).all()
    assert ((ids == 2).sum(axis=1) == 1).all()
    assert decode_captions(ids, i2w) == [" ".join(s[:max_length]) for s in sentences]
    for row, s in zip(ids, sentences):  # padding after <END> only
        end = list(row).index(2)
        assert end == min(len(s), max_length) + 1
        assert (row[end + 1 :] == 0).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(WORDS, min_size=1, max_size=6), min_size=1, max_size=8), st.integers(1, 4))
def test_min_count_threshold_property(sentences, min_count):
    captions = [" ".join(s) for s in sentences]
    w2i, i2w = build_vocab(captions, min_count=min_count)
    counts = {}
    for s in sentences:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    assert set(i2w[4:]) == {w for w, c in counts.items() if c >= min_count}
    ids = encode_captions(captions, w2i, 8)
    n_unk = sum(1 for s in sentences for w in s if counts[w] < min_count)
    assert (ids == 3).sum() == n_unk


def test_tokenize_keeps_letters_and_digits_of_any_script():
    assert tokenize("A café with a naïve Zoë") == ["a", "café", "with", "a", "naïve", "zoë"]
    assert tokenize("Cafe\u0301 CAFÉ") == ["café", "café"]  # decomposed and precomposed: one word
    assert tokenize("Ein Hund läuft über die Straße.") == ["ein", "hund", "läuft", "über", "die", "straße"]
    assert tokenize("собака на траве, 2 кошки") == ["собака", "на", "траве", "2", "кошки"]
    assert tokenize("हिन्दी text") == ["हिन्दी", "text"]  # vowel signs are marks and stay in the word
    assert tokenize("x_y «quoted» a—b") == ["x", "y", "quoted", "a", "b"]  # "_" and non-ASCII punctuation separate
    assert tokenize("\u0301alone") == ["alone"]


@given(st.text(alphabet=st.characters(max_codepoint=127)))
@settings(max_examples=200, deadline=None)
def test_tokenize_ascii_is_unchanged(text):
    import re

    expected = [w for w in re.split(r"[^0-9a-z]+", re.sub(r"'", "", text.lower())) if w]
    assert tokenize(text) == expected
