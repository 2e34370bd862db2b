"""BLEU, CIDEr-D, ROUGE-L and evaluate(): hand-worked examples, properties, errors.

Expected values are computed in the tests from counts worked out by hand in the
comments, never copied from the code under test. BLEU's official 1e-15 / 1e-9
guards move results by about 1e-10, hence the 1e-9 tolerance.
"""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicap.metrics import bleu, cider_d, evaluate, rouge_l
from minicap.metrics.rouge import lcs_length

TOL = 1e-9


# ---------------------------------------------------------------- BLEU

def test_bleu_worked_example_one_image():
    refs = {"img": ["the cat is on the mat", "there is a cat on the mat"]}
    cand = {"img": "the cat the cat on the mat"}
    # 1-grams of the candidate: the x3, cat x2, on, mat (7). Clipped by the largest
    # count in one reference: the -> 2 (ref 1), cat -> 1, on -> 1, mat -> 1: 5 / 7.
    # 2-grams: the cat x2 (clip 1), cat the (0), cat on (1), on the (1), the mat (1): 4 / 6.
    # 3-grams: the cat the, cat the cat, the cat on (0), cat on the (1), on the mat (1): 2 / 5.
    # 4-grams: only "cat on the mat" matches (ref 2): 1 / 4.
    # Lengths: candidate 7, closest reference 7, so no brevity penalty.
    p = [5 / 7, 4 / 6, 2 / 5, 1 / 4]
    expected = [math.prod(p[:k]) ** (1 / k) for k in range(1, 5)]
    got = bleu(refs, cand)
    assert len(got) == 4
    for g, e in zip(got, expected):
        assert abs(g - e) < TOL


def test_bleu_sums_counts_over_images_and_applies_brevity_penalty():
    refs = {1: ["a b c d"], 2: ["x y"]}
    cand = {1: "a b", 2: "x z w"}
    # 1-grams: image 1 matches 2 of 2, image 2 matches 1 of 3 -> corpus 3 / 5
    # (the mean of per-image precisions would be 2/3). 2-grams: "a b" matches,
    # "x z" and "z w" do not -> 1 / 3. Lengths: c = 2 + 3 = 5, r = 4 + 2 = 6,
    # so BP = exp(1 - 6/5).
    bp = math.exp(1 - 6 / 5)
    b1, b2 = bleu(refs, cand, n=2)
    assert abs(b1 - 3 / 5 * bp) < TOL
    assert abs(b2 - math.sqrt(3 / 5 * 1 / 3) * bp) < TOL


def test_bleu_clips_by_the_largest_count_in_one_reference():
    # "the" occurs once in each reference: clipped to 1, not 2 (the sum). 1 / 3.
    # Candidate length 3, closest reference length 2: no penalty.
    (b1,) = bleu({0: ["the cat", "the dog"]}, {0: "the the the"}, n=1)
    assert abs(b1 - 1 / 3) < TOL


def test_bleu_effective_length_is_the_closest_reference():
    # Candidate of 4 words, references of 1 and 5 words: the closest is 5, so
    # BP = exp(1 - 5/4) (the shortest, 1, would give no penalty). All 4 words match.
    (b1,) = bleu({0: ["a", "a b c d e"]}, {0: "a b c d"}, n=1)
    assert abs(b1 - math.exp(1 - 5 / 4)) < TOL


def test_bleu_closest_length_ties_go_to_the_shorter_reference():
    # Candidate of 3 words, references of 2 and 4: a tie, resolved to 2, so no
    # penalty; resolving to 4 would give exp(1 - 4/3) ~ 0.72.
    (b1,) = bleu({0: ["a b", "a b c d"]}, {0: "a b c"}, n=1)
    assert abs(b1 - 1.0) < TOL


def test_bleu_of_short_candidates_uses_the_official_guard_values():
    # No candidate has 4 words: 0 matches of 0 guesses gives p_4 = 1e-15 / 1e-9 = 1e-6,
    # so BLEU-4 = (1 * 1 * 1 * 1e-6) ** (1/4) ~ 0.0316, not 0 (the official behaviour).
    scores = bleu({0: ["a b c"]}, {0: "a b c"})
    assert all(abs(s - 1.0) < TOL for s in scores[:3])
    assert abs(scores[3] - 1e-6 ** 0.25) < 1e-6


def test_bleu_4_of_short_candidates_is_below_the_guard_value_unless_perfect():
    # Two-word candidates matched perfectly: p_1 = p_2 = 1, and p_3 = p_4 = 1e-6 (no
    # 3- or 4-grams), so BLEU-4 = (1e-12) ** (1/4) = 1e-3, not 1e-6 ** 0.25 = 0.0316.
    assert abs(bleu({1: ["a dog"], 2: ["a cat"]}, {1: "a dog", 2: "a cat"})[3] - 1e-3) < 1e-9
    # Three words, 2 of 3 unigrams, 1 of 2 bigrams, 0 of 1 trigram matched ("a dog
    # sat" against "a dog ran"): p_3 = 1e-15 / 1 and p_4 = 1e-6, so
    # BLEU-4 = (2/3 * 1/2 * 1e-15 * 1e-6) ** (1/4) ~ 4.3e-6, far below 0.0316.
    b4 = bleu({0: ["a dog ran"]}, {0: "a dog sat"})[3]
    assert abs(b4 - (2 / 3 * 1 / 2 * 1e-15 * 1e-6) ** 0.25) < 1e-12


@pytest.mark.parametrize("n", [0, -1, 2.0, True, "4"])
def test_bleu_rejects_bad_order(n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        bleu({0: ["a b"]}, {0: "a b"}, n=n)


# ---------------------------------------------------------------- CIDEr-D

def test_cider_d_worked_example_two_images():
    refs = {1: ["a b"], 2: ["c d"]}
    cand = {1: "a b", 2: "c e"}
    # Every reference n-gram occurs in one image's references (df 1) and the unseen
    # "e", "c e" get df max(1, 0) = 1, so every weight is tf * log 2 =: w.
    # Image 1: unigrams {a: w, b: w} equal the reference's: cosine 1; bigram "a b": 1;
    #   no 3- or 4-grams: 0. Score 10 * (1 + 1 + 0 + 0) / 4 = 5.
    # Image 2: unigrams {c: w, e: w} . {c: w, d: w} = w^2 over (sqrt(2) w)^2 -> 1/2;
    #   bigram "c e" vs "c d": 0. Score 10 * (1/2) / 4 = 1.25. Equal lengths: no penalty.
    assert abs(cider_d(refs, cand) - (5 + 1.25) / 2) < TOL


def test_cider_d_document_frequency_comes_from_the_evaluated_references():
    refs = {1: ["a dog"], 2: ["a cat"], 3: ["one bird"]}
    cand = {1: "a dog", 2: "the cat", 3: "one bird"}
    # N = 3. "a" is in 2 images' references: idf log 3 - log 2 =: alpha; every
    # other n-gram (seen in one image, or unseen like "the") gets log 3 =: beta.
    # Images 1 and 3 repeat their reference: unigram and bigram cosines 1 -> 5 each.
    # Image 2: candidate {the: beta, cat: beta}, reference {a: alpha, cat: beta};
    # dot = beta^2, norms sqrt(2) beta and sqrt(alpha^2 + beta^2); bigrams do not match.
    alpha = math.log(3) - math.log(2)
    beta = math.log(3)
    cos1 = beta ** 2 / (math.sqrt(2) * beta * math.sqrt(alpha ** 2 + beta ** 2))
    expected = (5 + 10 * cos1 / 4 + 5) / 3
    assert abs(cider_d(refs, cand) - expected) < TOL


def test_cider_d_document_frequency_ignores_the_candidates():
    refs = {1: ["a b"], 2: ["c d"], 3: ["e f"]}
    cand = {1: "a b", 2: "c a", 3: "e a"}
    # "a" is in one image's references, so df 1 and weight log 3 like every other
    # n-gram here (counting the candidates would make its df 3 and its weight 0).
    # Image 1: identical to its reference: 10 * (1 + 1) / 4 = 5.
    # Images 2 and 3: one shared word of two, equal weights: unigram cosine 1/2,
    # no shared bigram: 10 * (1/2) / 4 = 1.25 each.
    assert abs(cider_d(refs, cand) - (5 + 1.25 + 1.25) / 3) < TOL


def test_cider_d_clips_repeated_words_and_penalises_length():
    refs = {1: ["dog"], 2: ["cat"]}
    cand = {1: "dog dog", 2: "cat"}
    # Weights are tf * log 2 =: w. Image 1: candidate {dog: 2w}, reference {dog: w}:
    # clipped dot min(2w, w) * w = w^2 over norms 2w * w -> 1/2 (1 without clipping);
    # the bigram "dog dog" meets an empty reference: 0. Length 2 vs 1: exp(-1 / 72).
    # Image 2: unigram cosine 1, nothing else: 10 / 4.
    image1 = 10 * (0.5 * math.exp(-1 / 72)) / 4
    assert abs(cider_d(refs, cand) - (image1 + 2.5) / 2) < TOL


def test_cider_d_averages_over_references():
    refs = {1: ["a b c d", "w x y z"], 2: ["e f g h"]}
    cand = {1: "a b c d", 2: "e f g h"}
    # N = 2 and no n-gram is shared between images, so every weight is tf * log 2.
    # Image 1: identical to its first reference (1 at all four orders), disjoint from
    # the second (0): 10 * (4 + 0) / 4 / 2 = 5. Image 2: identical to its only one: 10.
    assert abs(cider_d(refs, cand) - (5 + 10) / 2) < TOL


# ---------------------------------------------------------------- ROUGE-L

def test_rouge_l_worked_example_takes_max_precision_and_recall_independently():
    cand = "the cat sat on the mat"                       # 6 words
    r1 = "the cat on mat"                                 # LCS "the cat on mat" = 4
    r2 = "the cat sat on a big soft mat near the door"    # 11 words, LCS "the cat sat on mat" = 5
    # Max precision comes from r2 (5/6), max recall from r1 (4/4 = 1).
    p, r, beta2 = 5 / 6, 1.0, 1.2 ** 2
    expected = (1 + beta2) * p * r / (r + beta2 * p)
    assert abs(rouge_l({0: [r1, r2]}, {0: cand}) - expected) < TOL


def test_rouge_l_is_the_mean_over_images():
    # Image 0 is a perfect match (F = 1); image 1 shares nothing (F = 0).
    assert abs(rouge_l({0: ["a b"], 1: ["c d"]}, {0: "a b", 1: "e f"}) - 0.5) < TOL


def _lcs_brute_force(a, b):
    # Independent definition: the longest subsequence of a (by bitmask) that is also
    # a subsequence of b.
    def is_subsequence(s, t):
        it = iter(t)
        return all(x in it for x in s)

    best = 0
    for mask in range(1 << len(a)):
        s = [a[i] for i in range(len(a)) if mask >> i & 1]
        if len(s) > best and is_subsequence(s, b):
            best = len(s)
    return best


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("abc"), max_size=8), st.lists(st.sampled_from("abc"), max_size=8))
def test_lcs_length_matches_brute_force(a, b):
    assert lcs_length(a, b) == _lcs_brute_force(a, b)
    assert lcs_length(b, a) == lcs_length(a, b)


# ---------------------------------------------------------------- properties

words = st.sampled_from(["a", "dog", "cat", "on", "the", "grass", "red", "ball", "two", "men"])
caption = st.lists(words, min_size=1, max_size=10).map(" ".join)
candidate = st.lists(words, min_size=0, max_size=10).map(" ".join)


@st.composite
def caption_sets(draw, min_images=1, max_images=5):
    n_images = draw(st.integers(min_images, max_images))
    refs = {i: draw(st.lists(caption, min_size=1, max_size=4)) for i in range(n_images)}
    cands = {i: draw(candidate) for i in range(n_images)}
    return refs, cands


@settings(max_examples=100, deadline=None)
@given(caption_sets())
def test_scores_lie_in_their_ranges(sets):
    refs, cands = sets
    scores = evaluate(refs, cands)
    for k in range(1, 5):
        assert 0.0 <= scores[f"BLEU-{k}"] <= 1.0
    assert 0.0 <= scores["ROUGE-L"] <= 1.0
    assert 0.0 <= scores["CIDEr-D"] <= 10.0 + TOL


@settings(max_examples=50, deadline=None)
@given(caption_sets(min_images=1, max_images=1))
def test_one_image_always_scores_cider_d_zero(sets):
    # log N = log 1 = 0 zeroes every weight.
    assert cider_d(*sets) == 0.0


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 5), st.integers(4, 9), st.randoms(use_true_random=False))
def test_candidate_equal_to_its_single_reference_scores_cider_d_ten(n_images, length, rnd):
    # Distinct words per image, so every n-gram has df 1 < N and a positive weight;
    # at least four words, so all four orders contribute a cosine of 1.
    refs, cands = {}, {}
    for i in range(n_images):
        text = " ".join(f"w{i}_{rnd.randrange(3)}" for _ in range(length))
        refs[f"img{i}"], cands[f"img{i}"] = [text], text
    assert abs(cider_d(refs, cands) - 10.0) < TOL


@settings(max_examples=50, deadline=None)
@given(caption_sets(min_images=2))
def test_perfect_candidates_score_one_on_rouge_l_and_bleu_1(sets):
    refs, _ = sets
    cands = {k: v[0] for k, v in refs.items()}
    scores = evaluate(refs, cands)
    assert abs(scores["ROUGE-L"] - 1.0) < TOL
    assert abs(scores["BLEU-1"] - 1.0) < TOL


@settings(max_examples=50, deadline=None)
@given(caption_sets())
def test_evaluate_agrees_with_the_single_metrics_and_ignores_key_order(sets):
    refs, cands = sets
    scores = evaluate(refs, cands)
    assert list(scores) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D", "ROUGE-L"]
    assert [scores[f"BLEU-{k}"] for k in range(1, 5)] == bleu(refs, cands)
    assert scores["CIDEr-D"] == cider_d(refs, cands)
    assert scores["ROUGE-L"] == rouge_l(refs, cands)
    reversed_refs = dict(reversed(list(refs.items())))
    for key, value in evaluate(reversed_refs, cands).items():
        assert abs(value - scores[key]) < 1e-12


def test_captions_are_tokenized_before_scoring():
    plain = evaluate({0: ["a dog 's ball", "the dog"]}, {0: "a dog 's ball"})
    messy = evaluate({0: ["A Dog's ball.", "The dog!"]}, {0: "A dog's ball"})
    assert messy == plain


# The official numbers below were recorded from pycocoevalcap 1.2 (its PTBTokenizer,
# which runs stanford-corenlp-3.4.1.jar under Java 17, then Bleu(4), Cider() and
# Rouge()) on exactly these captions; Java keeps <UNK> as one token "<unk>" and
# "bike.A" as one token "bike.a".
UNK_REFS = {1: ["a man riding a <UNK> on a street"], 2: ["a cat sitting on a couch"]}
UNK_CANDS = {1: "a <UNK> on a road", 2: "a dog on a bed"}
UNK_OFFICIAL = {
    "BLEU-1": 0.46922403213110286, "BLEU-2": 0.3965666871715147, "BLEU-3": 0.3275400947707425,
    "BLEU-4": 0.2770153958005089, "CIDEr-D": 1.778882318803592, "ROUGE-L": 0.5637279614862994,
}
MIXED_REFS = {
    1: ["A man riding a <UNK> on a street.", "a man on a <UNK> in the city", "A person rides a bike.A car is behind."],
    2: ["a cat sitting on a couch", "A cat.It sits on a <UNK> sofa"],
    3: ["two dogs play in the grass", "Two dogs.They are playing on grass"],
}
MIXED_CANDS = {1: "a man riding a <UNK> on a road", 2: "a <UNK> cat on a couch", 3: "two dogs.they play on the grass"}
MIXED_OFFICIAL = {
    "BLEU-1": 0.949999999905, "BLEU-2": 0.7840318119978144, "BLEU-3": 0.6410573164709261,
    "BLEU-4": 0.556338957581802, "CIDEr-D": 2.581128208996405, "ROUGE-L": 0.7916666666666666,
}


@pytest.mark.parametrize("refs, cands, official", [
    (UNK_REFS, UNK_CANDS, UNK_OFFICIAL), (MIXED_REFS, MIXED_CANDS, MIXED_OFFICIAL),
])
def test_unk_and_glued_words_score_as_the_official_evaluation(refs, cands, official):
    scores = evaluate(refs, cands)
    assert scores.keys() == official.keys()
    for key, value in official.items():
        assert abs(scores[key] - value) < 1e-12, key


def test_unk_counts_as_one_word():
    # <UNK> must score exactly like any other word that appears nowhere else. Split
    # into "< unk >" it would count as 3 unigram and 2 bigram matches (BLEU-1 0.5374
    # instead of 0.4692 on this set).
    with_unk = evaluate(UNK_REFS, UNK_CANDS)
    renamed = evaluate({k: [c.replace("<UNK>", "bicycle") for c in v] for k, v in UNK_REFS.items()},
                       {k: c.replace("<UNK>", "bicycle") for k, c in UNK_CANDS.items()})
    assert with_unk == renamed
    # By hand, BLEU-1: the candidates have 5 + 5 words; clipped matches are a x2,
    # <unk>, on (4) and a x2, on (3): 7 / 10. Candidate length c = 10 is below the
    # reference length r = 8 + 6 = 14, so the brevity penalty is exp(1 - 14/10).
    assert abs(with_unk["BLEU-1"] - 7 / 10 * math.exp(1 - 14 / 10)) < TOL


def test_empty_candidate_scores_zero():
    scores = evaluate({0: ["a dog"], 1: ["a cat"]}, {0: "", 1: "..."})
    assert all(value < 1e-5 for value in scores.values())


# ---------------------------------------------------------------- errors

GOOD_REFS = {"a": ["a dog"], "b": ["a cat"]}
GOOD_CANDS = {"a": "a dog", "b": "a cat"}


@pytest.mark.parametrize("refs, cands, message", [
    ({"a": ["a dog"]}, GOOD_CANDS, r"same keys.*without references: 'b'"),
    (GOOD_REFS, {"a": "a dog"}, r"same keys.*no candidate for 1 image\(s\): 'b'"),
    ({}, {}, "no images"),
    ([["a dog"]], GOOD_CANDS, "references must be a dict"),
    (GOOD_REFS, ["a dog", "a cat"], "candidates must be a dict"),
    (GOOD_REFS, {"a": ["a dog"], "b": "a cat"}, r"candidate for image 'a' must be exactly one caption string"),
    (GOOD_REFS, {"a": ["x", "y"], "b": "a cat"}, "exactly one caption string, got a list of 2"),
    (GOOD_REFS, {"a": None, "b": "a cat"}, "candidate for image 'a' must be a caption string"),
    ({"a": "a dog", "b": ["a cat"]}, GOOD_CANDS, "got a single string; wrap it in a list"),
    ({"a": [], "b": ["a cat"]}, GOOD_CANDS, "'a' is an empty list"),
    ({"a": {"a dog"}, "b": ["a cat"]}, GOOD_CANDS, "must be a list of caption strings, got set"),
    ({"a": ["a dog", 7], "b": ["a cat"]}, GOOD_CANDS, "reference 1 of image 'a' must be a caption string"),
    ({"a": ["a dog", " . "], "b": ["a cat"]}, GOOD_CANDS, "reference 1 of image 'a' has no words"),
])
@pytest.mark.parametrize("metric", [evaluate, bleu, cider_d, rouge_l])
def test_malformed_inputs_raise_clear_errors(metric, refs, cands, message):
    with pytest.raises(ValueError, match=message):
        metric(refs, cands)


def test_long_key_lists_are_shortened_in_messages():
    refs = {i: ["a dog"] for i in range(10)}
    with pytest.raises(ValueError, match="no candidate for 10 image\\(s\\): 0, 1, 2 and 7 more"):
        evaluate(refs, {})
