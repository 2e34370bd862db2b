"""Corpus BLEU-1..n as the COCO caption evaluation computes it.

For each order k, counts are summed over all images before dividing
(corpus level, not a mean of per-image scores):

    matches_k = sum over images, over candidate k-grams g of
                min(count of g in the candidate, max count of g in any one reference)
    guesses_k = sum over images of max(0, len(candidate) - k + 1)
    p_k       = (matches_k + 1e-15) / (guesses_k + 1e-9)
    BLEU-n    = (p_1 * ... * p_n) ** (1 / n) * BP

The brevity penalty compares the total candidate length c with the total
effective reference length r, where each image contributes the length of its
reference *closest* to the candidate's length (ties go to the shorter one):

    BP = exp(1 - r / c) if c < r else 1      (with the same 1e-15 / 1e-9 guards)

The two tiny constants are the official code's; there is no other smoothing, so
a corpus without a single matching 4-gram gets a BLEU-4 near 0 (not exactly 0).
"""

import math
from collections import Counter

from minicap.metrics.corpus import ngram_counts, tokenize_corpus

# The official evaluation's guards against 0/0; they also set the value of an
# order with no matches, (0 + 1e-15) / (guesses + 1e-9), so they are part of the metric.
_TINY = 1e-15
_SMALL = 1e-9


def _closest_length(reference_lengths, candidate_length):
    return min(reference_lengths, key=lambda length: (abs(length - candidate_length), length))


def corpus_bleu(pairs, n=4):
    """BLEU-1..n of tokenized ``(reference_token_lists, candidate_tokens)`` pairs."""
    matches = [0] * n
    guesses = [0] * n
    candidate_total = 0
    reference_total = 0
    for references, candidate in pairs:
        # Clipping uses the largest count in any single reference, not the sum.
        max_reference = Counter()
        for reference in references:
            max_reference |= ngram_counts(reference, n)
        for gram, count in ngram_counts(candidate, n).items():
            matches[len(gram) - 1] += min(count, max_reference[gram])
        for k in range(1, n + 1):
            guesses[k - 1] += max(0, len(candidate) - k + 1)
        candidate_total += len(candidate)
        reference_total += _closest_length([len(r) for r in references], len(candidate))

    scores = []
    product = 1.0
    for k in range(n):
        product *= (matches[k] + _TINY) / (guesses[k] + _SMALL)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (candidate_total + _TINY) / (reference_total + _SMALL)
    if ratio < 1.0:
        penalty = math.exp(1.0 - 1.0 / ratio)
        scores = [s * penalty for s in scores]
    return scores


def bleu(references, candidates, n=4):
    """Corpus BLEU-1..n of raw caption strings; returns ``[BLEU-1, ..., BLEU-n]``.

    ``references``: image key -> list of reference strings; ``candidates``: the
    same keys -> one string. Both are tokenized with ``minicap.metrics.tokenize``.
    Raises ValueError for malformed inputs (see ``tokenize_corpus``) or n < 1.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer (the highest n-gram order), got {n!r}")
    return corpus_bleu(tokenize_corpus(references, candidates), n)
