"""CIDEr-D, the consensus metric the COCO evaluation reports as "CIDEr".

Every caption becomes, for each order k = 1..4, a TF-IDF vector over k-grams:

    w(g) = count of g in the caption * (log N - log max(1, df(g)))

where N is the number of images evaluated and df(g) the number of images whose
*reference set* contains g (computed from the evaluated references only, so
the score of one image depends on the rest of the set). An n-gram found in
every image's references weighs 0; one found in none weighs log N.

The candidate c of an image is compared with each of its references r:

    sim_k(c, r) = sum over g of min(w_c(g), w_r(g)) * w_r(g) / (|w_c| |w_r|)
                  * exp(-(len(c) - len(r))**2 / (2 * 6**2))

The min() clips the candidate's weights so repeating a word cannot raise the
score, and the Gaussian (sigma 6 words) penalises length differences: these
two are the "-D" in CIDEr-D. The image's score is 10 times the mean over the
four orders of sim_k averaged over its references; the corpus score is the
mean over images. A candidate identical to its only reference scores 10 when
it has at least four words and, at every order, an n-gram that some other
image's references lack; a set of one image always scores 0 (log N = 0).
"""

import math
from collections import Counter

from minicap.metrics.corpus import ngram_counts, tokenize_corpus

ORDERS = 4
SIGMA = 6.0


def _tfidf(counts, length, idf, unseen_idf):
    """Per-order weight dicts, their Euclidean norms and the length, for one caption."""
    vectors = [{} for _ in range(ORDERS)]
    for gram, count in counts.items():
        vectors[len(gram) - 1][gram] = count * idf.get(gram, unseen_idf)
    norms = [math.sqrt(sum(w * w for w in v.values())) for v in vectors]
    return vectors, norms, length


def _similarity(candidate, reference):
    """Mean over the orders of the clipped, length-penalised cosine; a float."""
    (c_vectors, c_norms, c_len), (r_vectors, r_norms, r_len) = candidate, reference
    penalty = math.exp(-((c_len - r_len) ** 2) / (2.0 * SIGMA ** 2))
    total = 0.0
    for c_vec, r_vec, c_norm, r_norm in zip(c_vectors, r_vectors, c_norms, r_norms):
        # A zero norm means every weight is 0, so the dot product is 0 as well.
        if c_norm == 0.0 or r_norm == 0.0:
            continue
        dot = sum(min(w, r_vec[g]) * r_vec[g] for g, w in c_vec.items() if g in r_vec)
        total += dot / (c_norm * r_norm) * penalty
    return total / ORDERS


def corpus_cider_d_per_image(pairs):
    """CIDEr-D of every ``(reference_token_lists, candidate_tokens)`` pair, in order."""
    reference_counts = [[ngram_counts(r, ORDERS) for r in references] for references, _ in pairs]
    doc_freq = Counter()
    for counts in reference_counts:
        doc_freq.update(set().union(*counts))
    log_images = math.log(len(pairs))
    # Reference n-grams have df >= 1; an n-gram in no reference is treated as df 1,
    # so its idf is log N (passed to _tfidf as unseen_idf).
    idf = {gram: log_images - math.log(df) for gram, df in doc_freq.items()}

    scores = []
    for (references, candidate), counts in zip(pairs, reference_counts):
        c = _tfidf(ngram_counts(candidate, ORDERS), len(candidate), idf, log_images)
        similarity = sum(
            _similarity(c, _tfidf(r_counts, len(r), idf, log_images)) for r, r_counts in zip(references, counts))
        scores.append(10.0 * similarity / len(references))
    return scores


def corpus_cider_d(pairs):
    """Corpus CIDEr-D (mean over images) of tokenized pairs."""
    scores = corpus_cider_d_per_image(pairs)
    return sum(scores) / len(scores)


def cider_d(references, candidates):
    """CIDEr-D of raw caption strings (same dict inputs as ``bleu``); a float >= 0.

    Raises ValueError for malformed inputs (see ``tokenize_corpus``).
    """
    return corpus_cider_d(tokenize_corpus(references, candidates))
