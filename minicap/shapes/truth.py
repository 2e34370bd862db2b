"""Whether a caption is true of its scene: the "truth" score.

A caption is true when it parses under the shapes-world grammar and there is
a way to assign objects of the scene to its noun phrases such that

- each phrase's object has every stated size, colour and shape;
- distinct phrases get distinct objects (``a red circle and a red circle``
  needs two red circles);
- a definite phrase ("the red circle") has exactly one object in the whole
  scene with its stated attributes, and gets that one;
- every stated position and relation holds (cells of the 4x4 grid, see
  ``minicap.shapes.grammar.position_index`` and ``relation_holds``).

``why_false`` names the first thing that fails, for debugging and for the
docs; ``truth_score`` is the fraction of captions with nothing failing, an
ungrammatical caption counting as false.
"""

import itertools

import numpy as np

from minicap.backend import to_numpy
from minicap.shapes.grammar import (POSITIONS, RELATIONS, GrammarError, caption_word_lists, caption_words, parse,
                                    position_index, relation_holds)
from minicap.shapes.scenes import F, check_scene_records


def _present(scene):
    """The present objects of one checked scene record, as lists of ints."""
    return [row for row in scene.tolist() if row[F["present"]]]


def _caption_list(captions, idx_to_word):
    """N captions as word lists, from strings, word lists or int ids (N, T) with ``idx_to_word``."""
    if hasattr(captions, "ndim"):  # NumPy or CuPy
        array = np.asarray(to_numpy(captions))
        if array.dtype.kind in "iu":
            if idx_to_word is None:
                raise ValueError(
                    f"captions are word ids (an int array {array.shape}); pass idx_to_word "
                    "(e.g. data['idx_to_word']) or decode them first with minicap.data.decode_captions")
            from minicap.data.vocab import decode_captions  # lazily: minicap.data is the heavier package

            if array.ndim != 2:
                raise ValueError(f"caption ids must be an int array (N, T), got shape {array.shape}")
            captions = decode_captions(array, idx_to_word)
        elif array.dtype.kind in "fcb":  # numbers that are not ids; strings and objects are checked below
            raise ValueError(f"captions must be caption strings, word lists or int word ids (N, T), "
                             f"got a {array.dtype} array {array.shape}")
        else:  # an array of strings or of objects (e.g. a pandas column): each caption is checked below
            captions = array.tolist()
    return caption_word_lists(captions)


def _has_attributes(obj, mention):
    return (obj[F["shape"]] == mention.shape
            and (mention.colour is None or obj[F["colour"]] == mention.colour)
            and (mention.size is None or obj[F["size"]] == mention.size))


def _where(obj):
    return POSITIONS[position_index(obj[F["row"]], obj[F["col"]])]


def _check_mentions(mentions, objs):
    """Candidate objects per mention, or the reason one has none."""
    candidates = []
    for m in mentions:
        named = [i for i, obj in enumerate(objs) if _has_attributes(obj, m)]
        phrase = m.text()
        if not named:
            return None, f"there is no {phrase.split(' ', 1)[1]} in the scene"
        if m.definite and len(named) > 1:
            return None, f"'{phrase}' is ambiguous: {len(named)} objects match"
        if m.position is not None:
            placed = [i for i in named if position_index(objs[i][F["row"]], objs[i][F["col"]]) == m.position]
            if not placed:
                where = ", ".join(sorted({_where(objs[i]) for i in named}))
                return None, f"{phrase} is not {POSITIONS[m.position]} (it is {where})"
            named = placed
        candidates.append(named)
    return candidates, None


def _assignments(candidates, count):
    """Injective choices of one candidate object per mention."""
    for chosen in itertools.permutations(range(count), len(candidates)):
        if all(c in cands for c, cands in zip(chosen, candidates)):
            yield chosen


def explain(caption, scene):
    """None if ``caption`` is true of ``scene`` (int array (3, F)), else why not (a string).

    ``caption`` is a string or a list of words. Raises ValueError when either
    is of the wrong kind or shape.
    """
    words = caption_words(caption, "caption")
    return _explain(words, _present(check_scene_records(scene, "scene", single=True)))


def _explain(words, objs):
    """``explain`` for checked inputs: a word list and the present objects."""
    try:
        parsed = parse(words)
    except GrammarError as err:
        return f"ungrammatical: {err}"
    candidates, reason = _check_mentions(parsed.mentions, objs)
    if reason:
        return reason
    if len(parsed.mentions) > len(objs):
        return f"the caption needs {len(parsed.mentions)} distinct objects but the scene has {len(objs)}"
    for chosen in _assignments(candidates, len(objs)):
        if all(relation_holds(r, objs[chosen[i]], objs[chosen[j]]) for i, r, j in parsed.relations):
            return None
    for i, r, j in parsed.relations:
        a, b = parsed.mentions[i], parsed.mentions[j]
        if not any(relation_holds(r, objs[x], objs[y]) for x in candidates[i] for y in candidates[j] if x != y):
            return f"{a.text()} is not {RELATIONS[r]} {b.text()}"
    return "no choice of distinct objects makes every part of the caption true at once"


def is_true(caption, scene):
    """Whether ``caption`` is grammatical and true of ``scene``."""
    return explain(caption, scene) is None


def truth_score(captions, objects, idx_to_word=None):
    """Fraction of captions that are grammatical and true of their scenes.

    captions: N strings, N word lists, or int word ids (N, T) with
    ``idx_to_word`` (read as ``minicap.data.decode_captions`` does: up to
    ``<END>``, without ``<NULL>`` and ``<START>``); objects: int array
    (N, 3, F), the scene records from ``load_shapes`` (e.g.
    ``data["test_objects"]``). Raises ValueError, naming the argument (and the
    caption's index), for inputs of the wrong kind or shape.
    """
    # Checked once, here: a bad caption or record must not fail deep in the parser
    # or the loop, nor count silently as a false caption.
    captions = _caption_list(captions, idx_to_word)
    objects = check_scene_records(objects, "objects")
    if len(captions) != len(objects):
        raise ValueError(f"got {len(captions)} captions for {len(objects)} scenes; pass one caption per scene")
    if not captions:
        raise ValueError("truth_score needs at least one caption")
    return sum(_explain(c, _present(s)) is None for c, s in zip(captions, objects)) / len(captions)
