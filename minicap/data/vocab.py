"""The caption vocabulary: raw strings to integer ids and back.

Ids 0..3 are always the special tokens ``<NULL>`` (padding), ``<START>``,
``<END>`` and ``<UNK>`` (a word below the count threshold), as in both
published COCO vocabularies. Real words follow, most frequent first (ties in
alphabetical order), so a vocabulary is a deterministic function of its
captions.

Tokenisation is deliberately simple: lowercase, apostrophes dropped inside
words ("man's" -> "mans"), and every other character that is not a letter or
digit separates words ("top-left." -> "top", "left"). Letters and digits of
any script count ("café" and "naïve" are one word each; "_" separates, as in
ASCII), and the combining accents of a word stay in it (text is NFC
normalised first, so "e" plus a combining acute and "é" give the same word).
"""

import collections
import re
import unicodedata

import numpy as np

from minicap.backend import to_numpy

NULL, START, END, UNK = "<NULL>", "<START>", "<END>", "<UNK>"
SPECIAL_TOKENS = (NULL, START, END, UNK)
NULL_ID, START_ID, END_ID, UNK_ID = range(4)

_APOSTROPHES = re.compile(r"['\u2019]")
_ASCII_SEPARATORS = re.compile(r"[^0-9a-z]+")


def tokenize(caption):
    """Split one raw caption into lowercase words with punctuation removed.

    A word is a run of letters and digits of any script (with the combining
    marks that follow them); everything else separates words.
    """
    if not isinstance(caption, str):
        raise ValueError(f"a caption must be a string, got {type(caption).__name__}: {caption!r}")
    text = _APOSTROPHES.sub("", caption.lower())
    if text.isascii():  # nearly every caption: one regex split
        return [w for w in _ASCII_SEPARATORS.split(text) if w]
    out, word = [], []
    for ch in unicodedata.normalize("NFC", text):
        # A combining mark (Devanagari vowel signs, accents NFC cannot fold)
        # belongs to the word before it; a lone one separates.
        if ch.isalnum() or (word and unicodedata.category(ch).startswith("M")):
            word.append(ch)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out


def _check_captions(captions):
    if isinstance(captions, str):
        raise ValueError("captions must be a list of strings, not one string; wrap it in a list")
    return list(captions)


def build_vocab(captions, min_count=1, max_length=None):
    """Build a vocabulary from raw caption strings.

    Words are counted after tokenisation (and after truncation to
    ``max_length`` words when given, so a word seen only beyond the cut is not
    in the vocabulary). Words seen fewer than ``min_count`` times are left out;
    ``encode_captions`` maps them to ``<UNK>``.

    Returns ``(word_to_idx, idx_to_word)``: a dict and its inverse list, with
    the four special tokens at ids 0..3.
    """
    captions = _check_captions(captions)
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
    _check_max_length(max_length, allow_none=True)
    counts = collections.Counter()
    for caption in captions:
        counts.update(tokenize(caption)[:max_length])
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    idx_to_word = list(SPECIAL_TOKENS) + words
    word_to_idx = {w: i for i, w in enumerate(idx_to_word)}
    return word_to_idx, idx_to_word


def _check_max_length(max_length, allow_none=False):
    if max_length is None and allow_none:
        return
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
        raise ValueError(f"max_length must be an integer >= 1, got {max_length!r}")


def encode_captions(captions, word_to_idx, max_length):
    """Encode raw captions as ids: ``<START>`` w1 .. wk ``<END>`` ``<NULL>``...

    Captions longer than ``max_length`` words are truncated (their ``<END>``
    is kept). Unknown words become ``<UNK>``.

    Returns int32 (M, max_length + 2).
    """
    captions = _check_captions(captions)
    _check_max_length(max_length)
    for i, token in enumerate(SPECIAL_TOKENS):
        if word_to_idx.get(token) != i:
            raise ValueError(
                f"word_to_idx must map {token!r} to {i} (got {word_to_idx.get(token)!r}); "
                "build it with minicap.data.build_vocab"
            )
    out = np.full((len(captions), max_length + 2), NULL_ID, dtype=np.int32)
    for row, caption in enumerate(captions):
        ids = [word_to_idx.get(w, UNK_ID) for w in tokenize(caption)[:max_length]]
        out[row, 0] = START_ID
        out[row, 1 : len(ids) + 1] = ids
        out[row, len(ids) + 1] = END_ID
    return out


def _decode_row(row, idx_to_word):
    words = []
    for i in row:
        if i == END_ID:
            break
        if i not in (NULL_ID, START_ID):
            words.append(idx_to_word[i])
    return " ".join(words)


def check_id_range(ids, idx_to_word):
    """Raise ValueError unless every id of the int array ``ids`` indexes ``idx_to_word``."""
    if ids.size and (ids.min() < 0 or ids.max() >= len(idx_to_word)):
        raise ValueError(
            f"caption ids must lie in [0, {len(idx_to_word)}) for this vocabulary, "
            f"got values from {ids.min()} to {ids.max()}; was it encoded with another vocabulary?"
        )


def decode_captions(captions, idx_to_word):
    """Turn caption ids back into text.

    ``<NULL>`` and ``<START>`` are skipped, decoding stops at the first
    ``<END>``, and neither appears in the text. A 1-D array (T,) gives one
    string, a 2-D array (N, T) a list of N strings. NumPy or CuPy arrays (or
    nested lists) are accepted.
    """
    ids = np.asarray(to_numpy(captions))
    if ids.ndim not in (1, 2):
        raise ValueError(f"captions must be 1-D (T,) or 2-D (N, T) ids, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"captions must hold integer word ids, got dtype {ids.dtype}")
    check_id_range(ids, idx_to_word)
    ids = ids.astype(np.int64)
    if ids.ndim == 1:
        return _decode_row(ids.tolist(), idx_to_word)
    return [_decode_row(row, idx_to_word) for row in ids.tolist()]
