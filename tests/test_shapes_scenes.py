"""Scene sampling and rendering: determinism, layout, records that match the pixels."""

import numpy as np
import pytest

from minicap.shapes.scenes import (CELL, COLOURS, F, GRID, IMAGE_SIZE, MAX_OBJECTS, OBJECT_FIELDS, SHAPES, SIZES,
                                   generate_scenes)


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(150, seed=5)


def test_deterministic_for_seed_and_stream():
    a_im, a_ob = generate_scenes(12, seed=1)
    b_im, b_ob = generate_scenes(12, seed=1)
    np.testing.assert_array_equal(a_im, b_im)
    np.testing.assert_array_equal(a_ob, b_ob)
    for other in (generate_scenes(12, seed=2), generate_scenes(12, seed=1, stream=1)):
        assert not np.array_equal(a_im, other[0])


def test_whole_chunks_do_not_depend_on_count():
    small = generate_scenes(20, seed=3, chunk=10)
    large = generate_scenes(35, seed=3, chunk=10)
    np.testing.assert_array_equal(small[0], large[0][:20])
    np.testing.assert_array_equal(small[1], large[1][:20])


def test_shapes_dtypes_and_ranges(scenes):
    images, objects = scenes
    assert images.dtype == np.uint8 and images.shape == (150, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert objects.dtype == np.int32 and objects.shape == (150, MAX_OBJECTS, len(OBJECT_FIELDS))
    present = objects[..., F["present"]]
    count = present.sum(axis=1)
    assert count.min() == 1 and count.max() == 3 and set(count) == {1, 2, 3}
    # occupied slots first, empty slots all zero
    assert (np.diff(present, axis=1) <= 0).all()
    assert (objects[present == 0] == 0).all()
    obj = objects[present == 1]
    for field, values in (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES)):
        assert set(obj[:, F[field]]) == set(range(len(values)))  # every value shows up in 150 scenes
    assert obj[:, F["row"]].max() == GRID - 1 and obj[:, F["col"]].min() == 0


def test_distinct_cells_in_reading_order(scenes):
    _, objects = scenes
    for scene in objects:
        cells = [o[F["row"]] * GRID + o[F["col"]] for o in scene if o[F["present"]]]
        assert cells == sorted(set(cells))


def test_boxes_inside_cells_and_sizes_differ(scenes):
    _, objects = scenes
    obj = objects[objects[..., F["present"]] == 1]
    x0, y0, x1, y1 = (obj[:, F[k]] for k in ("x0", "y0", "x1", "y1"))
    assert (x0 >= obj[:, F["col"]] * CELL).all() and (x1 <= (obj[:, F["col"]] + 1) * CELL).all()
    assert (y0 >= obj[:, F["row"]] * CELL).all() and (y1 <= (obj[:, F["row"]] + 1) * CELL).all()
    extent = np.maximum(x1 - x0, y1 - y0)
    small, large = extent[obj[:, F["size"]] == 0], extent[obj[:, F["size"]] == 1]
    assert small.max() < large.min()  # the two sizes never overlap


def test_records_match_the_pixels(scenes):
    """Strongly coloured pixels are exactly the objects: their boxes equal the records'.

    The background is nearly grey (chroma well under 70) and every painted
    object is strongly coloured, so thresholding chroma finds the objects
    independently of the renderer's masks.
    """
    images, objects = scenes
    x = images.astype(int)
    coloured = (x.max(axis=1) - x.min(axis=1)) > 70
    for n in range(len(images)):
        expected = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
        for o in objects[n]:
            if o[F["present"]]:
                ys, xs = np.nonzero(coloured[n, o[F["y0"]]:o[F["y1"]], o[F["x0"]]:o[F["x1"]]])
                assert (ys.min(), xs.min()) == (0, 0)
                assert (ys.max() + 1, xs.max() + 1) == (o[F["y1"]] - o[F["y0"]], o[F["x1"]] - o[F["x0"]])
                expected[o[F["y0"]]:o[F["y1"]], o[F["x0"]]:o[F["x1"]]] = True
        assert not (coloured[n] & ~expected).any()  # nothing coloured outside the boxes


def test_object_colour_is_its_name():
    """The mean colour inside an object's box is closest to its own colour's hue."""
    images, objects = generate_scenes(60, seed=9)
    hues = {"red": 0, "yellow": 60, "green": 120, "cyan": 180, "blue": 230, "purple": 285}
    for n in range(len(images)):
        for o in objects[n]:
            if not o[F["present"]]:
                continue
            patch = images[n, :, o[F["y0"]]:o[F["y1"]], o[F["x0"]]:o[F["x1"]]].reshape(3, -1).astype(float)
            chroma = patch.max(axis=0) - patch.min(axis=0)
            r, g, b = patch[:, chroma > 70].mean(axis=1)
            hue = np.degrees(np.arctan2(np.sqrt(3) * (g - b), 2 * r - g - b)) % 360
            dist = {name: min(abs(hue - h), 360 - abs(hue - h)) for name, h in hues.items()}
            assert min(dist, key=dist.get) == COLOURS[o[F["colour"]]]


def test_textured_background_is_not_flat(scenes):
    images, objects = scenes
    empty = np.ones((len(images), GRID, GRID), dtype=bool)
    for n, scene in enumerate(objects):
        for o in scene:
            if o[F["present"]]:
                empty[n, o[F["row"]], o[F["col"]]] = False
    cells = images.reshape(len(images), 3, GRID, CELL, GRID, CELL).transpose(0, 2, 4, 1, 3, 5).astype(float)
    spread = cells.reshape(len(images), GRID, GRID, -1).std(axis=-1)[empty]
    assert spread.min() > 3.0  # every empty cell carries noise and texture


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_count_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="number of scenes"):
        generate_scenes(bad, seed=0)


def test_zero_scenes():
    images, objects = generate_scenes(0, seed=0)
    assert images.shape == (0, 3, IMAGE_SIZE, IMAGE_SIZE) and objects.shape == (0, MAX_OBJECTS, len(OBJECT_FIELDS))


@pytest.mark.parametrize("kwargs, match", [
    ({"chunk": -1}, "chunk must be a positive integer, got -1"),  # rendered nothing: all-zero images
    ({"chunk": 0}, "chunk must be a positive integer, got 0"),
    ({"chunk": 2.5}, "chunk must be a positive integer"),
    ({"seed": "1"}, "seed must be an integer >= 0, got '1'"),  # hashed into some other stream
    ({"seed": True}, "seed must be an integer >= 0, got True"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"seed": 1.5}, "seed must be an integer >= 0"),
    ({"stream": -2}, "stream must be an integer >= 0, got -2"),
])
def test_bad_seed_stream_chunk_are_clear_errors(kwargs, match):
    args = {"num_scenes": 3, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate_scenes(**args)


def test_numpy_integer_arguments_match_python_ints():
    a = generate_scenes(np.int64(3), seed=np.int32(4), stream=np.uint8(1), chunk=np.int64(2))
    b = generate_scenes(3, seed=4, stream=1, chunk=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
