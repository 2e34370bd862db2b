"""All the Java-free COCO caption metrics in one call."""

from minicap.metrics.bleu import corpus_bleu
from minicap.metrics.cider import corpus_cider_d
from minicap.metrics.corpus import tokenize_corpus
from minicap.metrics.rouge import corpus_rouge_l


def evaluate(references, candidates):
    """Score generated captions against references, as the COCO evaluation does.

    ``references``: image key -> list of reference caption strings (at least one);
    ``candidates``: the same keys -> one generated caption string. Captions are
    tokenized once with ``minicap.metrics.tokenize``. Returns a dict with the keys
    "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D", "ROUGE-L" (plain floats;
    papers print them times 100, except CIDEr-D which is usually shown as is or
    times 100 too). Raises ValueError, naming the image, for malformed inputs.
    """
    pairs = tokenize_corpus(references, candidates)
    scores = {f"BLEU-{k}": value for k, value in enumerate(corpus_bleu(pairs, 4), start=1)}
    scores["CIDEr-D"] = corpus_cider_d(pairs)
    scores["ROUGE-L"] = corpus_rouge_l(pairs)
    return scores
