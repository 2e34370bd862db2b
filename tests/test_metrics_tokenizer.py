"""The PTB-style tokenizer: documented cases, invariants, errors."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minicap.metrics import tokenize
from minicap.metrics.tokenizer import DROPPED

# Expected outputs written from the PTB tokenizer's documented behaviour
# (lowercase, punctuation dropped, clitics split and kept, brackets escaped).
CASES = [
    ("A man riding a horse.", ["a", "man", "riding", "a", "horse"]),
    ("A DOG, a cat; and a bird!", ["a", "dog", "a", "cat", "and", "a", "bird"]),
    ("The dog's ball", ["the", "dog", "'s", "ball"]),
    ("dogs' bowls", ["dogs", "bowls"]),
    ("I can't see it.", ["i", "ca", "n't", "see", "it"]),
    ("They don't, he won't", ["they", "do", "n't", "he", "wo", "n't"]),
    ("I'm sure they're here, we've seen it, you'll see, he'd go",
     ["i", "'m", "sure", "they", "'re", "here", "we", "'ve", "seen", "it", "you", "'ll", "see", "he", "'d", "go"]),
    ("You cannot park here", ["you", "can", "not", "park", "here"]),
    ("A black-and-white photo", ["a", "black-and-white", "photo"]),
    ("3.5 feet, 1,000 birds at 10:30", ["3.5", "feet", "1,000", "birds", "at", "10:30"]),
    ("A U.S. flag at 5 a.m.", ["a", "u.s.", "flag", "at", "5", "a.m."]),
    ("It is 5 o'clock", ["it", "is", "5", "o'clock"]),
    ("A man (in red) with a hat [sic] {x}",
     ["a", "man", "-lrb-", "in", "red", "-rrb-", "with", "a", "hat", "-lsb-", "sic", "-rsb-", "-lcb-", "x", "-rcb-"]),
    ('A sign that says "stop"', ["a", "sign", "that", "says", "stop"]),
    ("A sign that says `stop'", ["a", "sign", "that", "says", "stop"]),
    ("Wait... what -- a dog - here?!", ["wait", "what", "a", "dog", "here"]),
    ("It costs $5 & 50% off #1", ["it", "costs", "$", "5", "&", "50", "%", "off", "#", "1"]),
    ("The man\u2019s \u201cbest\u201d hat\u2014really\u2026", ["the", "man", "'s", "best", "hat", "really"]),
    ("", []),
    ("  .  ,  ", []),
]


@pytest.mark.parametrize("caption, expected", CASES)
def test_documented_cases(caption, expected):
    assert tokenize(caption) == expected


def test_pretokenized_text_passes_through():
    # Output of the Java tokenizer for "A man's hat (red) can't fit." joined by spaces.
    tokens = ["a", "man", "'s", "hat", "-lrb-", "red", "-rrb-", "ca", "n't", "fit"]
    assert tokenize(" ".join(tokens)) == tokens


# Text made of the characters the rules care about, so hypothesis explores clitics,
# separators between digits, brackets, quotes and dashes in every combination.
caption_text = st.text(alphabet="abnstdAZ019 .,:;'-()[]{}/&$\"!?`_\u2019\u201c\u2014\u2026", max_size=40)


@settings(max_examples=300, deadline=None)
@given(caption_text)
@example("b-n't")  # a clitic after a separator must not leave the stem "b-" behind
@example("x's'd isn't's")
def test_tokenizing_twice_changes_nothing(text):
    tokens = tokenize(text)
    assert tokenize(" ".join(tokens)) == tokens


@settings(max_examples=200, deadline=None)
@given(caption_text)
def test_tokens_are_lowercase_words_without_dropped_punctuation(text):
    for token in tokenize(text):
        assert token and token == token.lower()
        assert not any(ch.isspace() for ch in token)
        assert token not in DROPPED


@pytest.mark.parametrize("bad", [None, 3, ["a dog"], b"a dog"])
def test_non_string_is_rejected(bad):
    with pytest.raises(ValueError, match="caption must be a string"):
        tokenize(bad)
