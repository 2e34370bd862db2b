"""The pointing game on hand-made attention maps."""

import math

import numpy as np
import pytest

from minicap.shapes.grounding import grounding_score, pointing_game
from scene_records import make_scene


SCENE = make_scene(("large", "red", "circle", 0, 0), ("small", "blue", "circle", 2, 3),
                   ("small", "blue", "square", 3, 1))


def peaked(steps, cells, grid=4, peak=0.9):
    """Attention (1, T, grid, grid): step t peaks on cell cells[t] = (row, col)."""
    att = np.full((1, steps, grid, grid), (1 - peak) / (grid * grid - 1))
    for t, (r, c) in enumerate(cells):
        att[0, t, r, c] = peak
    return att


def test_peak_on_the_named_object_is_a_hit():
    words = "a large red circle above a blue square".split()
    cells = [(1, 1)] * 3 + [(0, 0)] + [(1, 1)] * 3 + [(3, 1)]
    result = pointing_game([words], peaked(8, cells), SCENE[None])
    assert result == (1.0, 2, 2)


def test_peak_elsewhere_is_a_miss():
    words = "a large red circle above a blue square".split()
    cells = [(0, 0)] * 3 + [(2, 3)] + [(0, 0)] * 3 + [(3, 2)]  # the wrong circle; the cell next to the square
    result = pointing_game([words], peaked(8, cells), SCENE[None])
    assert result == (0.0, 0, 2)


def test_only_words_naming_one_object_count():
    att = peaked(3, [(2, 3)] * 3)
    assert pointing_game(["a circle"], att, SCENE[None]).eligible == 0  # two circles
    assert math.isnan(grounding_score(["a circle"], att, SCENE[None]))
    assert pointing_game(["a blue circle"], att, SCENE[None]) == (1.0, 1, 1)  # colour disambiguates
    assert pointing_game(["a small circle"], att, SCENE[None]) == (1.0, 1, 1)  # so does size
    assert pointing_game(["a green circle"], att, SCENE[None]).eligible == 0  # names nothing
    assert pointing_game(["a triangle"], att, SCENE[None]).eligible == 0


def test_words_after_end_are_ignored_and_ids_are_read():
    idx_to_word = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "red", "circle", "blue", "square"]
    ids = np.array([[4, 5, 6, 2, 4, 8, 0]])  # "a red circle <END> a square"
    att = peaked(7, [(0, 0)] * 5 + [(1, 1)] + [(0, 0)])
    assert pointing_game(ids, att, SCENE[None], idx_to_word) == (1.0, 1, 1)
    with pytest.raises(ValueError, match="idx_to_word"):
        pointing_game(ids, att, SCENE[None])


def test_device_arrays_are_accepted(xp):
    idx_to_word = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "red", "circle"]
    ids = xp.asarray([[4, 5, 6, 2]])
    att = xp.asarray(peaked(4, [(0, 0)] * 4))
    assert grounding_score(ids, att, SCENE[None], idx_to_word) == 1.0


def test_coarser_and_finer_grids_map_to_pixels():
    # a 2x2 grid: cell (0, 0) covers pixels 0..56, where the red circle (6..22) is
    assert pointing_game(["a red circle"], peaked(3, [(0, 0)] * 3, grid=2), SCENE[None]).score == 1.0
    assert pointing_game(["a red circle"], peaked(3, [(1, 1)] * 3, grid=2), SCENE[None]).score == 0.0
    # a 7x7 grid (16-pixel cells): cell (1, 1) covers 16..32, overlapping the box 6..22
    assert pointing_game(["a red circle"], peaked(3, [(1, 1)] * 3, grid=7), SCENE[None]).score == 1.0
    assert pointing_game(["a red circle"], peaked(3, [(2, 2)] * 3, grid=7), SCENE[None]).score == 0.0


def test_scores_average_over_scenes():
    scenes = np.stack([SCENE, SCENE])
    att = np.concatenate([peaked(3, [(0, 0)] * 3), peaked(3, [(3, 3)] * 3)])
    assert pointing_game(["a red circle", "a red circle"], att, scenes) == (0.5, 1, 2)


def test_bad_inputs_are_clear_errors():
    att = peaked(3, [(0, 0)] * 3)
    with pytest.raises(ValueError, match=r"\(N, T, Hs, Ws\)"):
        pointing_game(["a red circle"], att[0], SCENE[None])
    with pytest.raises(ValueError, match="same scenes"):
        pointing_game(["a red circle", "a red circle"], att, SCENE[None])
    with pytest.raises(ValueError, match="only 2 steps"):
        pointing_game(["a red circle"], att[:, :2], SCENE[None])
    with pytest.raises(ValueError, match=r"caption 0 must be a string or a list of word strings, but its word 0 "
                                         r"is int 1; decode word ids to text first"):
        pointing_game([[1, 2]], att, SCENE[None])


@pytest.mark.parametrize("captions, message", [
    ([None], r"^caption 0 must be a string or a list of word strings, got NoneType None$"),
    (["a red circle", 3], r"^caption 1 must be a string or a list of word strings, got int 3$"),
    ([b"a red circle"], r"^caption 0 must be .* got bytes b'a red circle'$"),
    ("a red circle", r"got a single string; wrap it in a list"),
    (7, r"^captions must be a list of caption strings, got int$"),
])
def test_captions_of_the_wrong_kind_are_refused_up_front(captions, message):
    # Before: None gave "TypeError: 'NoneType' object is not iterable" from inside _words.
    n = len(captions) if isinstance(captions, list) else 1
    with pytest.raises(ValueError, match=message):
        pointing_game(captions, np.concatenate([peaked(3, [(0, 0)] * 3)] * n), np.stack([SCENE] * n))


@pytest.mark.parametrize("objects, got", [
    (SCENE, r"got shape \(3, 10\)"),                          # one scene without the N axis
    (SCENE[None, 0], r"got shape \(1, 10\)"),                 # (N, F): one slot per scene
    (SCENE[None, :, :6], r"got shape \(1, 3, 6\)"),           # fields missing
    (SCENE[None, :2], r"got shape \(1, 2, 10\)"),             # slots missing
    (np.full((1, 3, 10), 0.5), r"got dtype float64 with values that are not whole numbers"),
    ([[[1, 2], [3]]], r"got a list that is not a rectangular array"),
])
def test_scene_records_of_the_wrong_shape_are_refused(objects, got):
    # Before: IndexError / TypeError from inside the scoring loop.
    with pytest.raises(ValueError, match=r"^objects must be an int array \(N, 3, 10\) of scene records: 3 object "
                                         r"slots of 10 fields \(present, shape, colour, size, row, col, x0, y0, x1, "
                                         r"y1\) per scene, as load_shapes returns in data\['<split>_objects'\]; "
                       + got):
        pointing_game(["a red circle"], peaked(3, [(0, 0)] * 3), objects)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_attention_that_is_not_finite_is_refused(bad):
    # Before: argmax of an all-NaN map is cell 0, so a diverged model still got a score
    # (here a hit: the large red circle is in the top-left cell).
    att = np.concatenate([peaked(3, [(0, 0)] * 3)] * 3)
    att[1] = bad  # 3 steps x 16 cells
    att[2, 0, 1, 1] = bad  # and one more
    with pytest.raises(ValueError, match=r"^attention holds 49 NaN or infinite values \(scenes 1, 2\); the model "
                                         r"has probably diverged, so its attention cannot be scored$"):
        pointing_game(["a large red circle"] * 3, att, np.stack([SCENE] * 3))
    with pytest.raises(ValueError, match="numeric"):
        pointing_game(["a circle"], att[:1].astype(object), SCENE[None])


def test_phrase_span_counts_a_look_anywhere_in_the_noun_phrase():
    words = "there is a large red circle above a blue square".split()
    # the circle is looked at on "a" (step 2) only, the square on "blue" (step 8) only
    cells = [(1, 1)] * 2 + [(0, 0)] + [(1, 1)] * 5 + [(3, 1)] + [(1, 1)]
    att = peaked(10, cells)
    assert pointing_game([words], att, SCENE[None]) == (0.0, 0, 2)
    assert pointing_game([words], att, SCENE[None], span="phrase") == (1.0, 2, 2)
    # a look before the phrase (step 1, "is") does not count
    cells = [(1, 1), (0, 0)] + [(1, 1)] * 8
    assert pointing_game([words], peaked(10, cells), SCENE[None], span="phrase").hits == 0
    with pytest.raises(ValueError, match="span"):
        pointing_game([words], att, SCENE[None], span="sentence")
