"""The caption dicts every metric takes: checking, tokenizing, counting n-grams.

All metrics take the COCO evaluation's inputs, as plain dicts of raw strings:

- ``references``: image key -> list of reference caption strings (at least one);
- ``candidates``: the same keys -> one generated caption string.

``tokenize_corpus`` validates both, tokenizes every caption once and returns
the pairs in the order of ``references``' keys, so each metric iterates the
images in the same, deterministic order. ``ngram_counts`` is the bag of
n-grams that BLEU and CIDEr-D both compare.
"""

from collections import Counter
from collections.abc import Mapping

from minicap.metrics.tokenizer import tokenize


def _short(keys, limit=3):
    shown = ", ".join(repr(k) for k in list(keys)[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _check_keys(references, candidates):
    for name, value in (("references", references), ("candidates", candidates)):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a dict mapping image keys to captions, got {type(value).__name__}")
    if not references:
        raise ValueError("references is empty: there are no images to evaluate")
    missing = [k for k in references if k not in candidates]
    extra = [k for k in candidates if k not in references]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no candidate for {len(missing)} image(s): {_short(missing)}")
        if extra:
            parts.append(f"{len(extra)} candidate(s) without references: {_short(extra)}")
        raise ValueError("references and candidates must have the same keys; " + "; ".join(parts))


def _candidate_tokens(key, caption):
    if isinstance(caption, (list, tuple)):
        raise ValueError(
            f"candidate for image {key!r} must be exactly one caption string, got a "
            f"{type(caption).__name__} of {len(caption)}; pass the string itself")
    if not isinstance(caption, str):
        raise ValueError(f"candidate for image {key!r} must be a caption string, got {type(caption).__name__}")
    return tokenize(caption)


def _reference_tokens(key, captions):
    if isinstance(captions, str):
        raise ValueError(
            f"references for image {key!r} must be a list of caption strings, got a single string; "
            "wrap it in a list")
    if not isinstance(captions, (list, tuple)):
        raise ValueError(
            f"references for image {key!r} must be a list of caption strings, got {type(captions).__name__}")
    if not captions:
        raise ValueError(f"references for image {key!r} is an empty list; every image needs at least one")
    token_lists = []
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise ValueError(
                f"reference {i} of image {key!r} must be a caption string, got {type(caption).__name__}")
        tokens = tokenize(caption)
        # An empty reference is a data error (a stray "." or ""), not a caption to compare against.
        if not tokens:
            raise ValueError(
                f"reference {i} of image {key!r} has no words after tokenization ({caption!r}); remove it")
        token_lists.append(tokens)
    return token_lists


def tokenize_corpus(references, candidates):
    """Validate the two dicts and tokenize them.

    Returns a list with one ``(reference_token_lists, candidate_tokens)`` pair
    per image, in the order of ``references``. Raises ValueError, saying which
    image and which caption, when the keys differ, a candidate is not exactly one
    string, a reference list is empty or not a list of strings, or a reference
    has no words. An empty candidate is allowed: it scores 0 on every metric.
    """
    _check_keys(references, candidates)
    return [(_reference_tokens(k, references[k]), _candidate_tokens(k, candidates[k])) for k in references]


def ngram_counts(tokens, n):
    """Count every k-gram of ``tokens`` for k = 1..n, keyed by tuples of tokens.

    ``ngram_counts(["a", "a"], 2) == Counter({("a",): 2, ("a", "a"): 1})``
    """
    return Counter(tuple(tokens[i:i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1))
