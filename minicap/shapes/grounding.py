"""Does attention look at what the caption names? The pointing game.

For every generated shape word whose noun phrase names exactly one object of
the scene (the size and colour words right before it count: "the large red
circle" in a scene with two circles may still name one), take the attention
map of the step that produced the word, find its peak cell, and map that cell
to the rectangle of image pixels it covers. It is a hit when the rectangle
overlaps the object's bounding box. In the shapes world every object lies
inside one cell of the 4x4 grid, so a hit means the peak is on the object's
own cell. Words that name no object, or several, are not eligible.

``span="phrase"`` is a looser variant: a hit when the peak of *any* step of
the noun phrase, from its article ("a", "the") to the shape word, is on the
object. An attention LSTM whose context only feeds its gates (the EECS 498
cell) tends to read an object once, at the first step of the phrase that
describes it, keep what it read in its memory, and look elsewhere while it
writes the remaining words; the strict score then misses grounding that is
really there (see docs/shapes.md for measured numbers).

The grounding score is hits / eligible words (NaN when nothing is eligible).
"""

import collections
import math

import numpy as np

from minicap.backend import to_numpy
from minicap.shapes.grammar import caption_word_lists
from minicap.shapes.scenes import COLOURS, F, IMAGE_SIZE, SHAPES, SIZES, check_scene_records

SPANS = ("word", "phrase")

Grounding = collections.namedtuple("Grounding", "score hits eligible")

_END = "<END>"


def _words(captions, idx_to_word):
    """Captions as lists of words, cut at <END>, from strings, word lists or int ids (N, T)."""
    array = np.asarray(to_numpy(captions)) if hasattr(captions, "ndim") else None  # NumPy or CuPy
    if array is not None and array.dtype.kind in "iu":
        if array.ndim != 2:
            raise ValueError(f"caption ids must be an int array (N, T), got {array.dtype} {array.shape}")
        if idx_to_word is None:
            raise ValueError("captions given as ids need idx_to_word to be read")
        from minicap.data.vocab import check_id_range  # lazily: minicap.data is the heavier package

        check_id_range(array, idx_to_word)
        # <NULL> and <START> stay in place as non-words, keeping word t aligned with attention step t.
        rows = [[idx_to_word[i] for i in row] for row in array.tolist()]
    else:  # strings or word lists; an array of strings or objects gives its elements
        rows = caption_word_lists(captions if array is None else array.tolist())
    return [row[: row.index(_END)] if _END in row else row for row in rows]


def _noun_phrase(words, t):
    """(first step, object attributes) of the noun phrase ending in shape word ``words[t]``."""
    shape = SHAPES.index(words[t])
    colour = size = None
    j = t - 1
    if j >= 0 and words[j] in COLOURS:
        colour = COLOURS.index(words[j])
        j -= 1
    if j >= 0 and words[j] in SIZES:
        size = SIZES.index(words[j])
        j -= 1
    start = j if j >= 0 and words[j] in ("a", "the") else j + 1
    return start, (shape, colour, size)


def _named_object(objs, attributes):
    """The one object with the given (shape, colour, size), None counting as any; else None."""
    shape, colour, size = attributes
    named = [obj for obj in objs
             if obj[F["shape"]] == shape
             and (colour is None or obj[F["colour"]] == colour)
             and (size is None or obj[F["size"]] == size)]
    return named[0] if len(named) == 1 else None


def _overlaps(peak, grid_shape, obj, image_size):
    rows, cols = grid_shape
    i, j = divmod(peak, cols)
    height, width = image_size
    y0, y1 = i * height / rows, (i + 1) * height / rows
    x0, x1 = j * width / cols, (j + 1) * width / cols
    return x0 < obj[F["x1"]] and obj[F["x0"]] < x1 and y0 < obj[F["y1"]] and obj[F["y0"]] < y1


def pointing_game(captions, attention, objects, idx_to_word=None, image_size=(IMAGE_SIZE, IMAGE_SIZE),
                  span="word"):
    """Score attention maps against the objects their shape words name.

    captions: N strings, N word lists, or int ids (N, T) with ``idx_to_word``
      (as returned by sampling: column t is the t-th generated word; text
      after ``<END>`` is ignored). Word t must line up with ``attention[:, t]``.
    attention: (N, T, Hs, Ws) weights, NumPy or CuPy; the step that produced
      word t attends with ``attention[n, t]``.
    objects: int array (N, 3, F), the scene records.
    span: "word" (the peak of the shape word's own step) or "phrase" (the
      peak of any step from the phrase's article to the shape word).

    Returns ``Grounding(score, hits, eligible)``. Raises ValueError, naming the
    argument, for inputs of the wrong kind or shape and for attention that is
    not finite.
    """
    if span not in SPANS:
        raise ValueError(f"span must be one of {SPANS}, got {span!r}")
    attention = np.asarray(to_numpy(attention))
    if attention.ndim != 4:
        raise ValueError(f"attention must be (N, T, Hs, Ws), got shape {attention.shape}")
    if attention.dtype.kind not in "biuf":
        raise ValueError(f"attention must be a numeric array (N, T, Hs, Ws), got dtype {attention.dtype}")
    # argmax over an all-NaN map returns cell 0, so a diverged model would still get a
    # grounding number (a hit for every object in the top-left cell).
    finite = np.isfinite(attention)
    if not finite.all():
        scenes = np.flatnonzero(~finite.reshape(len(attention), -1).all(axis=1))
        raise ValueError(
            f"attention holds {finite.size - np.count_nonzero(finite)} NaN or infinite values "
            f"(scenes {', '.join(map(str, scenes[:5]))}{' ...' if len(scenes) > 5 else ''}); "
            "the model has probably diverged, so its attention cannot be scored")
    words = _words(captions, idx_to_word)
    objects = check_scene_records(objects, "objects")
    if not len(words) == attention.shape[0] == len(objects):
        raise ValueError(
            f"captions ({len(words)}), attention ({attention.shape[0]}) and objects ({len(objects)}) "
            "must cover the same scenes"
        )
    n, steps, rows, cols = attention.shape
    peaks = attention.reshape(n, steps, rows * cols).argmax(axis=2)
    hits = eligible = 0
    for row, scene, peak in zip(words, objects.tolist(), peaks.tolist()):
        objs = [obj for obj in scene if obj[F["present"]]]
        for t, word in enumerate(row):
            if word not in SHAPES:
                continue
            if t >= steps:
                raise ValueError(f"a caption has a word at step {t} but attention has only {steps} steps")
            start, attributes = _noun_phrase(row, t)
            obj = _named_object(objs, attributes)
            if obj is None:
                continue
            eligible += 1
            steps_looked = range(start if span == "phrase" else t, t + 1)
            hits += any(_overlaps(peak[k], (rows, cols), obj, image_size) for k in steps_looked)
    score = hits / eligible if eligible else math.nan
    return Grounding(score, hits, eligible)


def grounding_score(captions, attention, objects, idx_to_word=None, image_size=(IMAGE_SIZE, IMAGE_SIZE),
                    span="word"):
    """The fraction of eligible shape words whose attention peak is on their object (see ``pointing_game``)."""
    return pointing_game(captions, attention, objects, idx_to_word, image_size, span).score
