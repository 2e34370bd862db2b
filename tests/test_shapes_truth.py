"""The caption grammar and the truth checker: references are true, wrong facts are caught."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicap.shapes.grammar import (MAX_WORDS, POSITIONS, RELATIONS, GrammarError, parse, references,
                                    references_for_scenes, vocabulary_words)
from minicap.shapes.scenes import COLOURS, F, OBJECT_FIELDS, SHAPES, SIZES, sample_scenes
from minicap.shapes.truth import explain, is_true, truth_score
from scene_records import make_scene


# a large red circle top left (0, 0), a small blue square bottom right (3, 3),
# a small red triangle in the middle (1, 2)
SCENE = make_scene(("large", "red", "circle", 0, 0), ("small", "red", "triangle", 1, 2),
                   ("small", "blue", "square", 3, 3))


@pytest.fixture(scope="module")
def random_scenes():
    objects, _ = sample_scenes(2000, np.random.default_rng(11))
    return objects


def test_every_reference_is_true(random_scenes):
    refs = references_for_scenes(random_scenes, 5, seed=3)
    captions = [c for scene in refs for c in scene]
    scenes = np.repeat(random_scenes, 5, axis=0)
    reasons = [explain(c, s) for c, s in zip(captions, scenes)]
    assert [(c, r) for c, r in zip(captions, reasons) if r is not None] == []
    assert truth_score(captions[:500], scenes[:500]) == 1.0


def test_references_are_varied_short_and_in_the_vocabulary(random_scenes):
    refs = references_for_scenes(random_scenes[:500], 7, seed=4)
    vocab = set(vocabulary_words())
    assert all(len(scene) == 7 for scene in refs)
    assert np.mean([len(set(scene[:5])) == 5 for scene in refs]) > 0.95
    lengths = [len(c.split()) for scene in refs for c in scene]
    assert max(lengths) <= MAX_WORDS and min(lengths) >= 3
    assert {w for scene in refs for c in scene for w in c.split()} <= vocab
    starts = {c.split()[0] for scene in refs for c in scene}
    assert starts == {"a", "there", "the"}
    text = " ".join(c for scene in refs for c in scene)
    for phrase in RELATIONS + POSITIONS + (" and ",):
        assert phrase in text  # every construction is used


def test_first_reference_is_the_canonical_description():
    refs = references(SCENE, 5, np.random.default_rng(0))
    assert refs[0] == "a large red circle in the top left corner"


def test_parse_known_structures():
    c = parse("a large red circle above a small blue square")
    assert [(m.size, m.colour, m.shape, m.definite) for m in c.mentions] == [
        (SIZES.index("large"), COLOURS.index("red"), SHAPES.index("circle"), False),
        (SIZES.index("small"), COLOURS.index("blue"), SHAPES.index("square"), False)]
    assert c.relations == ((0, RELATIONS.index("above"), 1),)
    assert [m.word for m in c.mentions] == [3, 8]  # token indices of the shape words
    c = parse("there is a green triangle in the top left corner")
    assert c.mentions[0].position == POSITIONS.index("in the top left corner") and c.mentions[0].size is None
    c = parse("the cross is to the right of the blue diamond")
    assert all(m.definite for m in c.mentions) and c.relations == ((0, 3, 1),)
    c = parse("a circle and a square at the bottom and a cross")
    assert len(c.mentions) == 3 and c.mentions[1].position == POSITIONS.index("at the bottom")


@pytest.mark.parametrize("caption", [
    "", "a", "a red", "a large red", "red circle", "a circle above", "a circle above the square",
    "the circle", "the circle is", "the circle is above a square", "there is", "there a circle",
    "a circle in the top", "a circle in the left corner", "a circle at the middle", "a circle and",
    "a circle a square", "a red large circle", "a circle on the top", "a circle in the top left corner above a square",
    "a circle .", "a circle <END>",
])
def test_ungrammatical_captions_are_false(caption):
    with pytest.raises(GrammarError):
        parse(caption)
    reason = explain(caption, SCENE)
    assert reason.startswith("ungrammatical")


@pytest.mark.parametrize("caption", [
    "a large red circle in the top left corner",
    "a circle in the top left corner",
    "there is a small blue square in the bottom right corner",
    "a red triangle in the middle",
    "a red circle above a blue square",
    "a red circle to the left of a red triangle",
    "a blue square to the right of a triangle",
    "a red triangle below a circle",
    "the circle is above the triangle",
    "the red triangle is in the middle",
    "the square is in the bottom right corner",
    "a red circle and a red triangle",
    "a circle and a triangle and a square",
    "there is a small red triangle",
])
def test_true_captions(caption):
    assert explain(caption, SCENE) is None


@pytest.mark.parametrize("caption, reason", [
    ("a large blue circle in the top left corner", "no large blue circle"),            # colour
    ("a small red circle", "no small red circle"),                                     # size
    ("a large red diamond", "no large red diamond"),                                   # shape
    ("a large red circle at the bottom", "is not at the bottom"),                      # position
    ("a red triangle in the top left corner", "(it is in the middle)"),                # position, with where
    ("a blue square above a red circle", "is not above"),                              # relation
    ("the circle is below the square", "is not below"),                                # definite relation
    ("a red circle to the right of a triangle", "is not to the right of"),             # relation
    ("the small shape", "ungrammatical"),
    ("a red circle and a red circle", "distinct objects"),                             # needs two circles
    ("a circle and a triangle and a square and a circle", "distinct objects"),
])
def test_false_captions_say_why(caption, reason):
    why = explain(caption, SCENE)
    assert why is not None and reason in why
    assert not is_true(caption, SCENE)


def test_definite_needs_a_unique_object():
    two_circles = make_scene(("large", "red", "circle", 0, 0), ("small", "red", "circle", 3, 0),
                             ("small", "blue", "square", 3, 3))
    assert "ambiguous: 2 objects" in explain("the circle is above the square", two_circles)
    assert "ambiguous" in explain("the red circle is on the left", two_circles)
    assert explain("the large circle is above the square", two_circles) is None
    assert explain("a circle above a square", two_circles) is None  # indefinites need no uniqueness


def test_relations_are_read_off_the_grid():
    scene = make_scene(("large", "red", "circle", 1, 1), ("small", "blue", "square", 1, 2))
    assert is_true("a red circle to the left of a blue square", scene)
    assert not is_true("a red circle above a blue square", scene)  # same row: neither above nor below
    assert not is_true("a red circle below a blue square", scene)


def test_truth_score_counts_and_validates():
    caps = ["a large red circle in the top left corner", "a green cross", "nonsense words", "a red circle"]
    assert truth_score(caps, np.stack([SCENE] * 4)) == 0.5
    with pytest.raises(ValueError, match="one caption per scene"):
        truth_score(caps, np.stack([SCENE] * 3))
    with pytest.raises(ValueError, match="at least one"):
        truth_score([], np.zeros((0, 3, len(OBJECT_FIELDS))))
    with pytest.raises(ValueError, match=r"^scene must be an int array \(3, 10\) of scene records: .*"
                                         r"got shape \(3, 4\)$"):
        explain("a circle", np.zeros((3, 4), dtype=np.int32))


RECORD_RULE = (r"must be an int array \(N, 3, 10\) of scene records: 3 object slots of 10 fields \(present, "
               r"shape, colour, size, row, col, x0, y0, x1, y1\) per scene, as load_shapes returns in "
               r"data\['<split>_objects'\]; ")


@pytest.mark.parametrize("captions, message", [
    ([None, "a red circle"], r"^caption 0 must be a string or a list of word strings, got NoneType None$"),
    (["a red circle", 3.5], r"^caption 1 must be a string or a list of word strings, got float 3.5$"),
    (["a red circle", ["a", 4]], r"^caption 1 must be a string or a list of word strings, but its word 1 is "
                                 r"int 4; decode word ids to text first$"),
    ("a red circle", r"^captions must be a list of caption strings, got a single string; wrap it in a list$"),
    (None, r"^captions must be a list of caption strings, got NoneType$"),
    (np.array([[4, 5], [4, 6]]), r"^captions are word ids \(an int array \(2, 2\)\); pass idx_to_word "
                                 r"\(e.g. data\['idx_to_word'\]\) or decode them first with "
                                 r"minicap.data.decode_captions$"),
    (np.ones((2, 2)), r"^captions must be caption strings, word lists or int word ids \(N, T\), "
                      r"got a float64 array \(2, 2\)$"),
])
def test_truth_score_refuses_captions_of_the_wrong_kind(captions, message):
    # Before: None failed with a TypeError inside the parser, and an id array scored
    # 0.0 silently (each row read as an ungrammatical list of ints).
    with pytest.raises(ValueError, match=message):
        truth_score(captions, np.stack([SCENE] * 2))


def test_truth_score_reads_ids_with_idx_to_word():
    idx_to_word = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "red", "circle", "green", "cross"]
    ids = np.array([[1, 4, 5, 6, 2, 0], [1, 4, 7, 8, 2, 0], [1, 4, 6, 2, 4, 8]])  # true, false, true
    assert truth_score(ids, np.stack([SCENE] * 3), idx_to_word) == 2 / 3
    # The same captions as strings and as numpy strings score the same.
    assert truth_score(np.array(["a red circle", "a green cross", "a circle"]), np.stack([SCENE] * 3)) == 2 / 3
    with pytest.raises(ValueError, match=r"caption ids must be an int array \(N, T\), got shape \(6,\)"):
        truth_score(ids[0], np.stack([SCENE] * 3), idx_to_word)


@pytest.mark.parametrize("objects, got", [
    (SCENE, r"got shape \(3, 10\)$"),                  # one scene without the N axis
    (np.stack([SCENE] * 2)[:, 0], r"got shape \(2, 10\)$"),          # (N, F): one slot per scene
    (np.stack([SCENE] * 2)[:, :, :5], r"got shape \(2, 3, 5\)$"),    # fields missing
    (np.full((2, 3, 10), np.nan), r"got dtype float64 with values that are not whole numbers \(NaN, fractions\); use the int32 records$"),
    (np.full((2, 3, 10), 0.5), r"got dtype float64 with values that are not whole numbers"),
])
def test_truth_score_refuses_scene_records_of_the_wrong_shape(objects, got):
    # Before: "TypeError: object of type 'int' has no len()" for (N, F), and the NaN
    # array scored 0.0 silently.
    with pytest.raises(ValueError, match="^objects " + RECORD_RULE + got):
        truth_score(["a red circle"] * 2, objects)


def test_explain_refuses_bad_inputs_by_name():
    with pytest.raises(ValueError, match=r"^caption must be a string or a list of word strings, got NoneType None$"):
        explain(None, SCENE)
    with pytest.raises(ValueError, match=r"^scene must be an int array \(3, 10\) .* got shape \(1, 3, 10\); "
                                         r"pass one scene's record, objects\[n\]$"):
        explain("a red circle", SCENE[None])
    with pytest.raises(ValueError, match=r"^caption must be .* got int 7$"):
        is_true(7, SCENE)


# Mutations: change one stated fact of a true reference to one no object in the scene has.

@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(["colour", "shape", "position"]))
def test_mutated_references_become_false(seed, kind):
    rng = np.random.default_rng(seed)
    objects, _ = sample_scenes(1, rng)
    scene = objects[0]
    caption = references(scene, 5, rng)[0]  # "a SIZE COLOUR SHAPE POSITION"
    words = caption.split()
    objs = scene[scene[:, F["present"]] == 1]
    if kind == "colour":
        unused = [c for i, c in enumerate(COLOURS) if i not in objs[:, F["colour"]]]
        words[2] = unused[rng.integers(len(unused))]
    elif kind == "shape":
        unused = [s for i, s in enumerate(SHAPES) if i not in objs[:, F["shape"]]]
        words[3] = unused[rng.integers(len(unused))]
    else:
        # a position where no object with these attributes lies
        same = objs[(objs[:, F["shape"]] == SHAPES.index(words[3])) & (objs[:, F["colour"]] == COLOURS.index(words[2]))
                    & (objs[:, F["size"]] == SIZES.index(words[1]))]
        taken = {_position_of(o) for o in same}
        free = [p for p in POSITIONS if p not in taken]
        words = words[:4] + free[rng.integers(len(free))].split()
    assert not is_true(" ".join(words), scene)


def _position_of(obj):
    """Position phrase of a record, written out independently of the grammar module."""
    r, c = obj[F["row"]], obj[F["col"]]
    vertical = {0: "top", 3: "bottom"}.get(r)
    horizontal = {0: "left", 3: "right"}.get(c)
    if vertical and horizontal:
        return f"in the {vertical} {horizontal} corner"
    if vertical:
        return f"at the {vertical}"
    if horizontal:
        return f"on the {horizontal}"
    return "in the middle"


def test_position_words_match_an_independent_reading(random_scenes):
    refs = references_for_scenes(random_scenes[:300], 1, seed=0)
    for scene, (caption,) in zip(random_scenes[:300], refs):
        assert caption.endswith(_position_of(scene[0]))


def test_records_and_captions_that_went_through_json_or_pandas_are_read():
    # Whole-number float records (a JSON or torch round trip) and an object array of
    # caption strings (a pandas column) mean the same as the int records and a list.
    captions = ["a large red circle in the top left corner", "a green cross", "nonsense words", "a red circle"]
    objects = np.stack([SCENE] * 4)
    assert truth_score(captions, objects) == 0.5
    assert truth_score(np.array(captions, dtype=object), objects.astype(np.float64)) == 0.5
