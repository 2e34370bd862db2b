"""Sampling and rendering shapes-world scenes, vectorised over scenes.

A scene is a 112x112 RGB image split into a 4x4 grid of 28x28 cells. It holds
one to three objects, each inside its own cell (so no two share a position),
drawn on a textured, noisy, low-saturation background. Every object lies
entirely inside its cell: its centre is jittered, but never far enough for a
pixel to cross the cell border. Position words and the attention grid
therefore agree exactly, and no position is ever borderline.

The symbolic record of a scene is an int32 array (3, F) with one row per
object slot and the fields named in ``OBJECT_FIELDS``:

    present  1 for an object, 0 for an empty slot (all other fields then 0)
    shape    index into SHAPES
    colour   index into COLOURS
    size     index into SIZES
    row, col the grid cell (0..3, top to bottom / left to right)
    x0, y0, x1, y1  the pixel bounding box, x1 and y1 exclusive

Occupied slots come first, in reading order (by row, then column).
"""

import numpy as np

from minicap.argcheck import check_int
from minicap.backend import to_numpy

IMAGE_SIZE = 112
GRID = 4
CELL = IMAGE_SIZE // GRID
MAX_OBJECTS = 3

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS = ("red", "yellow", "green", "cyan", "blue", "purple")
SIZES = ("small", "large")
# Hues spread around the colour wheel so no two names are confusable.
COLOUR_RGB = np.array(
    [[220, 45, 40], [225, 205, 35], [45, 175, 60], [40, 195, 205], [55, 85, 230], [165, 60, 210]],
    dtype=np.float32,
)

OBJECT_FIELDS = ("present", "shape", "colour", "size", "row", "col", "x0", "y0", "x1", "y1")
F = {name: i for i, name in enumerate(OBJECT_FIELDS)}

# Half-extent r of an object in pixels, and how far its centre may move from
# the cell centre: r + jitter stays below CELL / 2, keeping it in its cell.
_RADIUS = {0: (7.0, 7.5), 1: (10.5, 11.5)}
_JITTER = {0: 3.5, 1: 1.5}


def check_scene_records(objects, name="objects", single=False):
    """``objects`` as a NumPy int array (N, 3, F), or (3, F) for one scene with
    ``single=True``; a ValueError naming ``name`` and the expected shape otherwise.

    The truth and grounding checkers call this once, at the top, so that a wrong
    array (one slot per scene, a float array, missing fields) is refused with a
    clear message instead of failing deep in a loop or scoring garbage silently.
    NumPy and CuPy arrays and nested lists are accepted.
    """
    expected = f"(3, {len(F)})" if single else f"(N, 3, {len(F)})"
    rule = (f"{name} must be an int array {expected} of scene records: {MAX_OBJECTS} object slots of "
            f"{len(F)} fields ({', '.join(OBJECT_FIELDS)}){'' if single else ' per scene'}, "
            f"as load_shapes returns in data['<split>_objects']")
    try:
        arr = np.asarray(to_numpy(objects))
    except (TypeError, ValueError):  # ragged nested lists
        raise ValueError(f"{rule}; got a {type(objects).__name__} that is not a rectangular array") from None
    if arr.shape[-2:] != (MAX_OBJECTS, len(F)) or arr.ndim != (2 if single else 3):
        hint = "; pass one scene's record, objects[n]" if single and arr.ndim == 3 else ""
        raise ValueError(f"{rule}; got shape {arr.shape}{hint}")
    if not np.issubdtype(arr.dtype, np.integer):
        # Records that went through JSON or torch come back as floats: accept them when
        # every value is a whole number (an empty array has none to be wrong).
        whole = np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all() and (arr == np.round(arr)).all()
        if not whole:
            raise ValueError(f"{rule}; got dtype {arr.dtype} with values that are not whole numbers (NaN, "
                             "fractions); use the int32 records")
        arr = arr.astype(np.int64)
    return arr


def sample_scenes(num_scenes, rng):
    """Draw the symbolic content of ``num_scenes`` scenes.

    Returns ``(objects, geometry)``: objects int32 (N, 3, F) without boxes
    (filled in by ``render``), geometry float32 (N, 3, 3) holding each
    object's centre (x, y) in pixels and its half-extent r.
    """
    n = num_scenes
    count = rng.integers(1, MAX_OBJECTS + 1, size=n)
    present = np.arange(MAX_OBJECTS)[None, :] < count[:, None]
    cells = np.argsort(rng.random((n, GRID * GRID)), axis=1)[:, :MAX_OBJECTS]
    # Reading order for the objects, empty slots last.
    order = np.argsort(np.where(present, cells, GRID * GRID), axis=1)
    cells = np.take_along_axis(cells, order, axis=1)
    objects = np.zeros((n, MAX_OBJECTS, len(OBJECT_FIELDS)), dtype=np.int32)
    objects[..., F["present"]] = present
    objects[..., F["shape"]] = rng.integers(0, len(SHAPES), size=(n, MAX_OBJECTS))
    objects[..., F["colour"]] = rng.integers(0, len(COLOURS), size=(n, MAX_OBJECTS))
    objects[..., F["size"]] = rng.integers(0, len(SIZES), size=(n, MAX_OBJECTS))
    objects[..., F["row"]] = cells // GRID
    objects[..., F["col"]] = cells % GRID
    size = objects[..., F["size"]]
    lo = np.where(size == 1, _RADIUS[1][0], _RADIUS[0][0])
    hi = np.where(size == 1, _RADIUS[1][1], _RADIUS[0][1])
    radius = lo + (hi - lo) * rng.random((n, MAX_OBJECTS))
    jitter = np.where(size == 1, _JITTER[1], _JITTER[0])[..., None] * rng.uniform(-1, 1, (n, MAX_OBJECTS, 2))
    centre = (np.stack([objects[..., F["col"]], objects[..., F["row"]]], axis=-1) + 0.5) * CELL + jitter
    objects *= present[..., None]
    geometry = np.concatenate([centre, radius[..., None]], axis=-1).astype(np.float32) * present[..., None]
    return objects, geometry


def _shape_masks(shape, u, v, r):
    """Boolean masks (..., h, w) of each object's shape.

    u, v are pixel offsets from the object's centre (x right, y down) and r
    its half-extent; every shape fits inside the square [-r, r]^2.
    """
    au, av = np.abs(u), np.abs(v)
    masks = (
        u * u + v * v <= r * r,  # circle
        np.maximum(au, av) <= 0.8 * r,  # square
        (v <= 0.8 * r) & (au <= (v + r) / 1.8),  # triangle, apex up
        au + av <= r,  # diamond
        ((au <= 0.3 * r) & (av <= r)) | ((av <= 0.3 * r) & (au <= r)),  # cross
    )
    out = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    for index, mask in enumerate(masks):
        out |= (shape == index) & mask
    return out


def _interpolation_matrix(size_out, size_in):
    """(size_out, size_in) matrix for smooth 1-D linear upsampling."""
    pos = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, size_in - 2)
    frac = np.clip(pos - lo, 0.0, 1.0)
    m = np.zeros((size_out, size_in), dtype=np.float32)
    m[np.arange(size_out), lo] = 1.0 - frac
    m[np.arange(size_out), lo + 1] = frac
    return m


def _uniform_noise(rng, shape, amplitude):
    """float32 noise, uniform in [-amplitude, amplitude], from raw random bytes.

    Random bytes are far cheaper than normal draws, and the texture of the
    noise does not matter here: only that it is there and reproducible. The
    arithmetic is in place because these arrays are large.
    """
    noise = np.frombuffer(rng.bytes(int(np.prod(shape))), dtype=np.uint8).reshape(shape).astype(np.float32)
    noise -= 127.5
    noise *= amplitude / 127.5
    return noise


def _background(n, rng):
    """Textured, noisy, nearly grey backgrounds, float32 (N, 3, H, W) in 0..255.

    Three layers: a smooth blotchy texture, faint stripes of random angle and
    period (oriented edges that a gradient feature must learn to ignore), and
    per-pixel noise. The saturation stays low so objects keep their colour.
    """
    size = IMAGE_SIZE
    up = _interpolation_matrix(size, 8)
    blotches = up @ rng.normal(0.0, 22.0, (n, 8, 8)).astype(np.float32) @ up.T
    # sin(a x + b y + p) = sin(a x) cos(b y + p) + cos(a x) sin(b y + p):
    # stripes as a sum of two outer products, no (N, H, W) trigonometry.
    coord = np.arange(size, dtype=np.float32)
    angle = rng.uniform(0, np.pi, (n, 1))
    freq = 2 * np.pi / rng.uniform(5.0, 12.0, (n, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    amplitude = rng.uniform(0.0, 14.0, (n, 1, 1))
    ax = (freq * np.cos(angle) * coord).astype(np.float32)[:, None, :]
    by = (freq * np.sin(angle) * coord + phase).astype(np.float32)[:, :, None]
    stripes = amplitude.astype(np.float32) * (np.sin(ax) * np.cos(by) + np.cos(ax) * np.sin(by))
    grey = rng.uniform(70.0, 170.0, (n, 1, 1)).astype(np.float32) + blotches + stripes
    tint = rng.normal(0.0, 8.0, (n, 3, 1, 1)).astype(np.float32)
    image = _uniform_noise(rng, (n, 3, size, size), 12.0)
    image += grey[:, None]
    image += tint
    return image


def render(objects, geometry, rng):
    """Draw scenes; returns ``(images, objects)``.

    images: uint8 (N, 3, 112, 112) RGB. objects: a copy of ``objects`` with
    the pixel boxes (x0, y0, x1, y1) of the drawn objects filled in.
    """
    n = objects.shape[0]
    objects = objects.copy()
    image = _background(n, rng)
    # View the image as (N, channel, row, y-in-cell, col, x-in-cell) so each
    # object is drawn into its own 28x28 cell in one vectorised step per slot.
    cells = image.reshape(n, 3, GRID, CELL, GRID, CELL)
    local = np.arange(CELL, dtype=np.float32) + 0.5
    scenes = np.arange(n)
    for k in range(MAX_OBJECTS):
        obj = objects[:, k]
        row, col = obj[:, F["row"]], obj[:, F["col"]]
        cx, cy, r = (geometry[:, k, i][:, None, None] for i in range(3))
        u = (col[:, None, None] * CELL + local[None, None, :]) - cx
        v = (row[:, None, None] * CELL + local[None, :, None]) - cy
        mask = _shape_masks(obj[:, F["shape"], None, None], u, v, r) & (obj[:, F["present"], None, None] == 1)
        brightness = rng.uniform(0.8, 1.05, (n, 1, 1, 1)).astype(np.float32)
        colour = COLOUR_RGB[obj[:, F["colour"]]][:, :, None, None] * brightness
        paint = colour + _uniform_noise(rng, (n, 3, CELL, CELL), 16.0)
        patch = cells[scenes, :, row, :, col, :]  # (N, 3, CELL, CELL)
        cells[scenes, :, row, :, col, :] = np.where(mask[:, None], paint, patch)
        rows_hit, cols_hit = mask.any(axis=2), mask.any(axis=1)
        has = obj[:, F["present"]] == 1
        objects[:, k, F["y0"]] = np.where(has, row * CELL + np.argmax(rows_hit, axis=1), 0)
        objects[:, k, F["y1"]] = np.where(has, row * CELL + CELL - np.argmax(rows_hit[:, ::-1], axis=1), 0)
        objects[:, k, F["x0"]] = np.where(has, col * CELL + np.argmax(cols_hit, axis=1), 0)
        objects[:, k, F["x1"]] = np.where(has, col * CELL + CELL - np.argmax(cols_hit[:, ::-1], axis=1), 0)
    np.clip(image, 0.0, 255.0, out=image)
    image += 0.5  # so the truncating cast rounds to nearest
    return image.astype(np.uint8), objects


def generate_scenes(num_scenes, seed, stream=0, chunk=100):
    """Sample and render ``num_scenes`` scenes, deterministic for (seed, stream).

    Different streams (one per split) give independent scenes. Work is done
    in chunks of ``chunk`` scenes to bound memory; each chunk has its own
    generator, so whole chunks do not depend on ``num_scenes`` (the first
    100 of 1,000 scenes are the 100 scenes).

    Returns ``(images, objects)``: uint8 (N, 3, 112, 112), int32 (N, 3, F).
    """
    # a string or float seed would be hashed or truncated into some other stream,
    # and chunk < 1 renders nothing
    num_scenes = check_int("the number of scenes", num_scenes, low=0)
    seed, stream, chunk = check_int("seed", seed, low=0), check_int("stream", stream, low=0), check_int("chunk", chunk, low=1)
    images = np.zeros((num_scenes, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    objects = np.zeros((num_scenes, MAX_OBJECTS, len(OBJECT_FIELDS)), dtype=np.int32)
    for i, start in enumerate(range(0, num_scenes, chunk)):
        stop = min(start + chunk, num_scenes)
        rng = np.random.default_rng([seed, stream, i])
        objs, geometry = sample_scenes(stop - start, rng)
        images[start:stop], objects[start:stop] = render(objs, geometry, rng)
    return images, objects
