"""The caption grammar of the shapes world: generating references and parsing.

The language, as a grammar over lowercase words (``[x]`` optional, ``x*``
repeated)::

    caption   := ["there" "is"] indef ("and" indef)*
               | "the" np "is" (position | relation "the" np)
    indef     := "a" np [position | relation "a" np]
    np        := [size] [colour] shape
    position  := "in" "the" ("top" | "bottom") ("left" | "right") "corner"
               | "at" "the" ("top" | "bottom") | "on" "the" ("left" | "right")
               | "in" "the" "middle"
    relation  := "above" | "below" | "to" "the" ("left" | "right") "of"

Meaning, checked by ``minicap.shapes.truth``: every noun phrase names an
object with all the stated attributes, distinct indefinite phrases name
distinct objects, a definite phrase ("the red circle") needs exactly one
object with its attributes, and positions and relations are read off the
4x4 grid of cells (see ``position_index`` and ``RELATIONS``).

``parse`` turns a caption into a ``Caption`` (its noun phrases and the
facts stated about them); ``references`` writes true captions for a scene.
"""

import dataclasses

import numpy as np

from minicap.shapes.scenes import COLOURS, F, GRID, SHAPES, SIZES

POSITIONS = (
    "in the top left corner",
    "at the top",
    "in the top right corner",
    "on the left",
    "in the middle",
    "on the right",
    "in the bottom left corner",
    "at the bottom",
    "in the bottom right corner",
)
RELATIONS = ("above", "below", "to the left of", "to the right of")
MAX_WORDS = 12  # the longest caption ``references`` writes, in words


def position_index(row, col):
    """Index into POSITIONS of a grid cell: the outer ring of cells is split
    into corners and edges, the four inner cells are "the middle"."""
    vertical = 0 if row == 0 else 2 if row == GRID - 1 else 1
    horizontal = 0 if col == 0 else 2 if col == GRID - 1 else 1
    return 3 * vertical + horizontal


def relation_holds(relation, a, b):
    """Whether ``a RELATION b`` for two object records (rows of a scene array)."""
    if relation == 0:
        return a[F["row"]] < b[F["row"]]
    if relation == 1:
        return a[F["row"]] > b[F["row"]]
    if relation == 2:
        return a[F["col"]] < b[F["col"]]
    return a[F["col"]] > b[F["col"]]


@dataclasses.dataclass(frozen=True)
class Mention:
    """A noun phrase: the attributes it states (None when unstated)."""

    shape: int
    colour: int | None = None
    size: int | None = None
    definite: bool = False
    position: int | None = None  # index into POSITIONS
    word: int = -1  # token index of the shape word in the caption

    def text(self):
        words = ["the" if self.definite else "a"]
        if self.size is not None:
            words.append(SIZES[self.size])
        if self.colour is not None:
            words.append(COLOURS[self.colour])
        words.append(SHAPES[self.shape])
        return " ".join(words)


@dataclasses.dataclass(frozen=True)
class Caption:
    """A parsed caption: its mentions and the relations (i, relation, j) between them."""

    mentions: tuple
    relations: tuple = ()


class GrammarError(ValueError):
    """A caption that is not in the shapes-world language."""


class _Parser:
    def __init__(self, words):
        self.words = list(words)
        self.i = 0

    def peek(self, offset=0):
        j = self.i + offset
        return self.words[j] if j < len(self.words) else None

    def fail(self, expected):
        got = repr(self.peek()) if self.peek() is not None else "the end"
        raise GrammarError(f"expected {expected} at word {self.i + 1}, got {got}")

    def expect(self, *words):
        for word in words:
            if self.peek() != word:
                self.fail(repr(word))
            self.i += 1

    def accept(self, word):
        if self.peek() == word:
            self.i += 1
            return True
        return False

    def noun_phrase(self, definite):
        size = colour = None
        if self.peek() in SIZES:
            size = SIZES.index(self.peek())
            self.i += 1
        if self.peek() in COLOURS:
            colour = COLOURS.index(self.peek())
            self.i += 1
        if self.peek() not in SHAPES:
            self.fail("a shape word (" + ", ".join(SHAPES) + ")")
        mention = Mention(SHAPES.index(self.peek()), colour, size, definite, word=self.i)
        self.i += 1
        return mention

    def position(self):
        """A position phrase at the cursor, or None if none starts here."""
        for index, phrase in enumerate(POSITIONS):
            words = phrase.split()
            if self.words[self.i:self.i + len(words)] == words:
                self.i += len(words)
                return index
        return None

    def relation(self):
        for index, phrase in enumerate(RELATIONS):
            words = phrase.split()
            if self.words[self.i:self.i + len(words)] == words:
                self.i += len(words)
                return index
        return None

    def indefinite(self, mentions, relations):
        self.expect("a")
        first = self.noun_phrase(definite=False)
        position = self.position()
        mentions.append(dataclasses.replace(first, position=position))
        if position is None:
            relation = self.relation()
            if relation is not None:
                self.expect("a")
                mentions.append(self.noun_phrase(definite=False))
                relations.append((len(mentions) - 2, relation, len(mentions) - 1))

    def caption(self):
        mentions, relations = [], []
        if self.accept("the"):
            first = self.noun_phrase(definite=True)
            self.expect("is")
            position = self.position()
            if position is not None:
                mentions.append(dataclasses.replace(first, position=position))
            else:
                relation = self.relation()
                if relation is None:
                    self.fail("a position or a relation")
                self.expect("the")
                mentions += [first, self.noun_phrase(definite=True)]
                relations.append((0, relation, 1))
        else:
            if self.accept("there"):
                self.expect("is")
            self.indefinite(mentions, relations)
            while self.accept("and"):
                self.indefinite(mentions, relations)
        if self.peek() is not None:
            self.fail("the end of the caption")
        return Caption(tuple(mentions), tuple(relations))


def caption_words(caption, name="a caption"):
    """The words of ``caption``, a string or a list (or tuple) of word strings.

    Raises ValueError, naming the caption as ``name`` ("caption 3"), for anything
    else: None, a number, word ids, bytes. Those would otherwise fail deep inside
    the parser, or parse as an unrelated "caption".
    """
    if isinstance(caption, str):
        return caption.split()
    if isinstance(caption, (list, tuple)):
        bad = [(j, w) for j, w in enumerate(caption) if not isinstance(w, str)]
        if not bad:
            return list(caption)
        j, w = bad[0]
        raise ValueError(f"{name} must be a string or a list of word strings, but its word {j} is "
                         f"{type(w).__name__} {w!r:.40}; decode word ids to text first")
    raise ValueError(f"{name} must be a string or a list of word strings, got {type(caption).__name__} {caption!r:.60}")


def caption_word_lists(captions):
    """The word lists of N captions, each a string or a list of word strings (see ``caption_words``).

    captions: a list, tuple or other iterable of captions (an array of strings or of
    objects, e.g. a pandas column, gives its elements). A single string is refused
    rather than read as a list of one-letter captions.
    """
    if isinstance(captions, str):
        raise ValueError("captions must be a list of caption strings, got a single string; wrap it in a list")
    try:
        captions = list(captions)
    except TypeError:
        raise ValueError(f"captions must be a list of caption strings, got {type(captions).__name__}") from None
    return [caption_words(c, f"caption {i}") for i, c in enumerate(captions)]


def parse(caption):
    """Parse a caption (a string, or a list of words) into a ``Caption``.

    Raises ``GrammarError`` (a ValueError) saying where it went wrong, and a
    plain ValueError when ``caption`` is not a string or a list of strings.
    """
    return _Parser(caption_words(caption)).caption()


# ---- reference generation -------------------------------------------------

def _np(obj, definite=False, size=True, colour=True):
    words = ["the" if definite else "a"]
    if size:
        words.append(SIZES[obj[F["size"]]])
    if colour:
        words.append(COLOURS[obj[F["colour"]]])
    words.append(SHAPES[obj[F["shape"]]])
    return " ".join(words)


def _position(obj):
    return POSITIONS[position_index(obj[F["row"]], obj[F["col"]])]


def _matches(obj, other, size, colour):
    return (other[F["shape"]] == obj[F["shape"]]
            and (not size or other[F["size"]] == obj[F["size"]])
            and (not colour or other[F["colour"]] == obj[F["colour"]]))


def _unique_np(obj, objs):
    """The shortest definite phrase naming only ``obj``, or None if even the full one is shared."""
    for size, colour in ((False, True), (True, False), (True, True)):
        if sum(_matches(obj, other, size, colour) for other in objs) == 1:
            return _np(obj, definite=True, size=size, colour=colour)
    return None


def _modifiers(rng):
    """Which modifiers a varied indefinite phrase keeps: mostly both."""
    return [(True, True), (True, True), (False, True), (True, False)][rng.integers(4)]


def _relation_phrase(a, b, rng):
    true = [r for r in range(len(RELATIONS)) if relation_holds(r, a, b)]
    return RELATIONS[true[rng.integers(len(true))]]


def _templates(objs, rng):
    """Candidate captions of each template for one scene, in template order."""
    first = objs[0]
    other = objs[rng.integers(len(objs))]
    out = [
        f"{_np(first)} {_position(first)}",
        f"there is {_np(other)} {_position(other)}",
    ]
    if len(objs) >= 2:
        i, j = rng.choice(len(objs), size=2, replace=False)
        a, b = objs[i], objs[j]
        out.append(f"{_np(a, False, *_modifiers(rng))} {_relation_phrase(a, b, rng)} {_np(b, False, *_modifiers(rng))}")
        i, j = sorted(rng.choice(len(objs), size=2, replace=False))
        out.append(f"{_np(objs[i])} and {_np(objs[j])}")
        a, b = objs[i], objs[j]
        the_a, the_b = _unique_np(a, objs), _unique_np(b, objs)
        if the_a and the_b:
            out.append(f"{the_a} is {_relation_phrase(a, b, rng)} {the_b}")
        else:
            out.append(f"there is {_np(a, False, *_modifiers(rng))} {_position(a)}")
    else:
        out.append(f"{_np(first, size=False)} {_position(first)}")
        out.append(f"there is {_np(first)}")
        out.append(f"{_unique_np(first, objs)} is {_position(first)}")
    return out


def references(scene, count, rng):
    """``count`` true captions of one scene (an int array (3, F)).

    The first always names the first object in reading order with all its
    attributes and its position ("a large red circle in the top left
    corner"): a consistent phrasing the model can learn to produce. The rest
    cycle through the other templates (a relation, a pair, a definite
    description, "there is ..."), with varied modifiers and objects.
    """
    objs = [obj for obj in scene if obj[F["present"]]]
    if not objs:
        raise ValueError("a scene needs at least one object to be described")
    out = _templates(objs, rng)[:count]
    while len(out) < count:  # later rounds redraw the varied templates only
        out += _templates(objs, rng)[1 : count - len(out) + 1]
    return out


def vocabulary_words():
    """Every word the grammar can use, sorted."""
    words = {"a", "the", "there", "is", "and", *SIZES, *COLOURS, *SHAPES}
    for phrase in POSITIONS + RELATIONS:
        words.update(phrase.split())
    return sorted(words)


def references_for_scenes(objects, count, seed):
    """``count`` references for each of N scenes (int array (N, 3, F)): a list of N lists."""
    rng = np.random.default_rng(seed)
    return [references(scene, count, rng) for scene in objects.tolist()]
