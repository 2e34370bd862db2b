"""Agreement with the official scorers of pycocoevalcap, where it is installed.

pycocoevalcap's Bleu, Cider (which is CIDEr-D) and Rouge are pure Python; only
its tokenizer, METEOR and SPICE need Java. The official scorers are fed our
tokenization of the captions (tokens joined by spaces), minicap the raw strings.
"""

import contextlib
import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("pycocoevalcap.bleu.bleu", reason="pycocoevalcap is not installed")

from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402
from pycocoevalcap.cider.cider import Cider  # noqa: E402
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402

from minicap.metrics import evaluate, tokenize  # noqa: E402

TOL = 1e-9


def official_scores(references, candidates):
    gts = {k: [" ".join(tokenize(c)) for c in refs] for k, refs in references.items()}
    res = {k: [" ".join(tokenize(c))] for k, c in candidates.items()}
    with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its counts
        bleu, _ = Bleu(4).compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    scores = {f"BLEU-{k}": float(v) for k, v in enumerate(bleu, start=1)}
    scores["CIDEr-D"] = float(cider)
    scores["ROUGE-L"] = float(rouge)
    return scores


def assert_agree(references, candidates):
    ours = evaluate(references, candidates)
    theirs = official_scores(references, candidates)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert abs(ours[key] - theirs[key]) <= TOL, (key, ours[key], theirs[key])


# Raw pieces with capitals, punctuation and clitics, so tokenization is exercised too;
# a small vocabulary makes shared n-grams (and so clipping and df > 1) common.
pieces = st.sampled_from(["a", "A", "dog", "Dog's", "cat", "on", "the", "The", "grass,", "red", "ball.",
                          "two", "men", "can't", "(big)", "black-and-white", "3.5", '"hi"', "--"])
raw_caption = st.lists(pieces, min_size=0, max_size=12).map(" ".join)
reference = raw_caption.filter(lambda text: tokenize(text))  # references need a word


@st.composite
def caption_sets(draw):
    n_images = draw(st.integers(1, 6))
    refs = {f"img{i}": draw(st.lists(reference, min_size=1, max_size=5)) for i in range(n_images)}
    cands = {f"img{i}": draw(raw_caption) for i in range(n_images)}
    return refs, cands


@settings(max_examples=150, deadline=None)
@given(caption_sets())
def test_random_caption_sets_agree(sets):
    assert_agree(*sets)


def test_larger_corpus_agrees():
    rnd = random.Random(0)
    vocab = [f"w{i}" for i in range(40)]

    def caption(lo):
        return " ".join(rnd.choice(vocab) for _ in range(rnd.randint(lo, 15)))

    refs = {i: [caption(1) for _ in range(5)] for i in range(200)}
    cands = {i: caption(0) for i in range(200)}
    assert_agree(refs, cands)


@pytest.mark.parametrize("references, candidates", [
    ({0: ["a b", "a b c d"]}, {0: "a b c"}),                        # closest length tie
    ({0: ["the cat", "the dog"]}, {0: "the the the"}),               # clipping
    ({0: ["a dog"], 1: ["a cat"]}, {0: "", 1: ""}),                  # empty candidates
    ({0: ["a b c"], 1: ["a b c"]}, {0: "a b c", 1: "a b c"}),        # every n-gram in every image
])
def test_edge_cases_agree(references, candidates):
    assert_agree(references, candidates)
