"""Hand-made scene records for the truth and grounding tests."""

import numpy as np

from minicap.shapes.scenes import COLOURS, F, OBJECT_FIELDS, SHAPES, SIZES


def make_scene(*objs):
    """A scene record from (size, colour, shape, row, col) tuples, by name.

    Each object's bounding box is a 16-pixel square well inside its 28-pixel
    grid cell, so the cell a box overlaps is always the object's own.
    """
    scene = np.zeros((3, len(OBJECT_FIELDS)), dtype=np.int32)
    for k, (size, colour, shape, row, col) in enumerate(objs):
        scene[k, [F["present"], F["size"], F["colour"], F["shape"], F["row"], F["col"]]] = (
            1, SIZES.index(size), COLOURS.index(colour), SHAPES.index(shape), row, col)
        scene[k, [F["x0"], F["y0"], F["x1"], F["y1"]]] = (col * 28 + 6, row * 28 + 6, col * 28 + 22, row * 28 + 22)
    return scene
