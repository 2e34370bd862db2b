"""ROUGE-L as the COCO caption evaluation computes it.

ROUGE-L rewards the longest common subsequence (LCS) of words, in order but
not necessarily adjacent. Per image, with c the candidate and r_j its references:

    P = max_j LCS(c, r_j) / len(c)        R = max_j LCS(c, r_j) / len(r_j)

The two maxima are taken independently (they may come from different
references), then combined with beta = 1.2, which weighs recall more:

    F = (1 + beta**2) * P * R / (R + beta**2 * P)      (0 when P or R is 0)

The corpus score is the mean of F over images; it lies in [0, 1].
"""

from minicap.metrics.corpus import tokenize_corpus

BETA = 1.2


def lcs_length(a, b):
    """Length of the longest common subsequence of two token lists."""
    # One row of the classic dynamic programme, over the shorter list.
    if len(b) > len(a):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # row[j - 1] of the previous pass
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(above, row[j - 1])
            diagonal = above
    return row[-1]


def _image_rouge_l(references, candidate):
    if not candidate:
        return 0.0
    common = [lcs_length(candidate, reference) for reference in references]
    precision = max(lcs / len(candidate) for lcs in common)
    recall = max(lcs / len(reference) for lcs, reference in zip(common, references))
    if precision == 0.0 or recall == 0.0:
        return 0.0
    return (1 + BETA ** 2) * precision * recall / (recall + BETA ** 2 * precision)


def corpus_rouge_l(pairs):
    """Mean ROUGE-L F of tokenized ``(reference_token_lists, candidate_tokens)`` pairs."""
    return sum(_image_rouge_l(references, candidate) for references, candidate in pairs) / len(pairs)


def rouge_l(references, candidates):
    """ROUGE-L of raw caption strings (same dict inputs as ``bleu``); a float in [0, 1].

    Raises ValueError for malformed inputs (see ``tokenize_corpus``).
    """
    return corpus_rouge_l(tokenize_corpus(references, candidates))
