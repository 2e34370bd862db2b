"""A fixed, hand-made image encoder: oriented gradients and colour on a grid.

The image is split into a G x G grid of cells (G = 4 for 112x112 images, so a
cell is 28x28 pixels and holds at most one shapes-world object). Each cell is
described by three groups of channels:

- **oriented gradients** in each of S x S sub-cells (HOG-like). Gradients
  come from central differences in all three colour channels, combined into
  the colour structure tensor (Di Zenzo): ``J = sum_c [gx gx, gx gy; gx gy,
  gy gy]``, so an edge between two colours of equal brightness still counts.
  Its doubled-angle vector ``(u, v) = (Jxx - Jyy, 2 Jxy)`` points along
  twice the gradient orientation and has the edge energy as its length
  (``(u, v) = |g|^2 (cos 2t, sin 2t)`` at a plain edge). Eight orientation bins,
  22.5 degrees apart, are the half-wave rectified projections of ``(u, v)``
  on eight directions: ``relu(u cos 2c_k + v sin 2c_k)``, a cosine kernel over
  orientation instead of HOG's triangular one. A ninth channel is the total
  energy ``Jxx + Jyy``. Sub-cells keep the layout of edges inside a cell,
  which is what separates a square from a cross or a triangle from a diamond.
- **colour**: a hue histogram of K circular bins per cell. Each pixel's
  chroma vector ``(a, b) = (R - (G + B) / 2, sqrt(3) / 2 (G - B))`` (its angle
  is the hue) is weighted by ``relu(|ab| - floor) / |ab|``, so the nearly
  grey background hardly counts; the cell's mean vector is then binned by its
  angle, with its length as the vote.
- **coverage**: the mean of that colour weight in each sub-cell, i.e. how much
  of the sub-cell a coloured object covers, the size cue.

Every channel is a mean over pixels and is square-rooted at the end (the
"power normalisation" of HOG and Fisher-vector practice: it tames the heavy
tail of gradient energies). Standardisation to zero mean and unit variance
per channel, with statistics from the training split, is left to the caller
(``fit_standardizer`` / ``standardize``).

``spatial_features`` appends 2G one-hot "where am I" channels (row, column):
pooled features of a convolutional network carry position implicitly (padding
effects, large receptive fields); ours are strictly local, and an attention
model needs to know where it looked to say "in the top left corner".

Everything runs on NumPy or CuPy (the module comes from ``images``), in
batches to bound memory, with no Python loop over pixels. The pixel-level
work is kept to a few passes: rectified projections are pooled through the
identity ``relu(x) = (x + |x|) / 2``, so only u, v, |u|, |v|, |u + v|,
|u - v| and the energy are pooled per pixel, and everything else happens on
the pooled (N, C, G*S, G*S) arrays.
"""

import math

from minicap.backend import get_array_module

GRID = 4
SUBGRID = 4  # 7x7-pixel sub-cells: fine enough to tell small shapes apart
ORIENTATIONS = 8  # fixed by the construction: four directions of (u, v), both signs
HUE_BINS = 12
CHROMA_FLOOR = 40.0  # in 0..255 units: background tint plus noise stays below this
_BATCH = 16  # keeps temporaries small enough for the allocator to reuse (no fresh pages)


def feature_dims(grid=GRID, subgrid=SUBGRID, hue_bins=HUE_BINS):
    """Sizes of the channel groups of one cell: dict name -> count, in channel order."""
    per_sub = subgrid * subgrid
    return {"orientation": ORIENTATIONS * per_sub, "energy": per_sub, "hue": hue_bins, "coverage": per_sub}


def _check_images(images, grid, subgrid):
    if getattr(images, "ndim", None) != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be an array (N, 3, H, W), got shape {getattr(images, 'shape', None)}")
    if images.dtype.name != "uint8":
        raise ValueError(f"images must be uint8 RGB (0..255), got dtype {images.dtype}")
    step = grid * subgrid
    if images.shape[2] % step or images.shape[3] % step:
        raise ValueError(
            f"image height and width must be multiples of grid * subgrid = {step}, got {images.shape[2:]}; "
            "resize the images or change grid / subgrid"
        )


def _pool(x, cells):
    """Mean over square blocks: (N, C, H, W) -> (N, C, cells, cells)."""
    n, c, h, w = x.shape
    # Two single-axis sums: much faster in NumPy than one sum over axes (3, 5).
    x = x.reshape(n, c, cells, h // cells, w).sum(axis=3)
    x = x.reshape(n, c, cells, cells, w // cells).sum(axis=4)
    return x * (1.0 / ((h // cells) * (w // cells)))


def _to_cells(x, grid, subgrid):
    """(N, C, G*S, G*S) sub-cell values -> (N, C*S*S, G, G), sub-cells as channels."""
    n, c = x.shape[:2]
    x = x.reshape(n, c, grid, subgrid, grid, subgrid).transpose(0, 1, 3, 5, 2, 4)
    return x.reshape(n, c * subgrid * subgrid, grid, grid)


def _pixel_stats(img, xp):
    """Per-pixel quantities to pool, (N, 10, H, W): u, v, |u|, |v|, |u+v|, |u-v|, energy, a w, b w, w."""
    n, _, h, w = img.shape
    # empty + explicit zero borders: zeros_like of a large array gets fresh
    # (page-faulting) memory every batch, empty reuses the allocator's.
    gx = xp.empty_like(img)
    gy = xp.empty_like(img)
    xp.subtract(img[..., 2:], img[..., :-2], out=gx[..., 1:-1])
    xp.subtract(img[..., 2:, :], img[..., :-2, :], out=gy[..., 1:-1, :])
    gx[..., [0, -1]] = 0.0
    gy[..., [0, -1], :] = 0.0
    jxx = xp.einsum("nchw,nchw->nhw", gx, gx)
    jyy = xp.einsum("nchw,nchw->nhw", gy, gy)
    jxy = xp.einsum("nchw,nchw->nhw", gx, gy)
    out = xp.empty((n, 10, h, w), dtype=xp.float32)
    u = xp.subtract(jxx, jyy, out=out[:, 0])
    v = xp.multiply(jxy, 2.0, out=out[:, 1])
    xp.abs(u, out=out[:, 2])
    xp.abs(v, out=out[:, 3])
    xp.abs(u + v, out=out[:, 4])
    xp.abs(u - v, out=out[:, 5])
    xp.add(jxx, jyy, out=out[:, 6])
    r, g, b = img[:, 0], img[:, 1], img[:, 2]
    a = r - 0.5 * (g + b)
    bb = (0.5 * math.sqrt(3.0)) * (g - b)
    chroma = xp.sqrt(a * a + bb * bb)
    weight = xp.maximum(chroma - CHROMA_FLOOR, 0.0) / xp.maximum(chroma, 1.0)
    xp.multiply(a, weight, out=out[:, 7])
    xp.multiply(bb, weight, out=out[:, 8])
    out[:, 9] = weight
    return out


def _orientation_bins(pooled, xp):
    """Eight rectified projections of (u, v) from the pooled u, v, |u|, |v|, |u+v|, |u-v|.

    Bin k projects on angle 2c_k = 45k degrees; relu(x) = (x + |x|) / 2, and
    the projections at 45 and 135 degrees are (u + v) / sqrt2, (v - u) / sqrt2.
    """
    u, v, au, av, apv, amv = (pooled[:, i] for i in range(6))
    s = 0.5 * math.sqrt(0.5)
    return xp.stack(
        [0.5 * (au + u), s * (apv + u + v), 0.5 * (av + v), s * (amv + v - u),
         0.5 * (au - u), s * (apv - u - v), 0.5 * (av - v), s * (amv - v + u)],
        axis=1,
    )


def _hue_histogram(a, b, bins, xp):
    """Soft circular histogram of the angle of (a, b), weighted by its length: (N, G, G) -> (N, K, G, G)."""
    position = (xp.arctan2(b, a) % (2 * math.pi)) * (bins / (2 * math.pi))
    length = xp.sqrt(a * a + b * b)
    out = []
    for k in range(bins):
        dist = xp.abs(position - k)
        dist = xp.minimum(dist, bins - dist)
        out.append(length * xp.maximum(1.0 - dist, 0.0))
    return xp.stack(out, axis=1)


def _appearance_batch(images, grid, subgrid, hue_bins):
    xp = get_array_module(images)
    fine = grid * subgrid
    pooled = _pool(_pixel_stats(images.astype(xp.float32), xp), fine)  # (N, 10, G*S, G*S)
    scale = 1.0 / (255.0 * 255.0)
    orientation = _to_cells(_orientation_bins(pooled, xp), grid, subgrid) * scale
    energy = _to_cells(pooled[:, 6:7], grid, subgrid) * scale
    colour = _pool(pooled[:, 7:9], grid) * (1.0 / 255.0)
    hue = _hue_histogram(colour[:, 0], colour[:, 1], hue_bins, xp)
    coverage = _to_cells(pooled[:, 9:10], grid, subgrid)
    features = xp.concatenate([orientation, energy, hue, coverage], axis=1)
    return xp.sqrt(xp.maximum(features, 0.0))  # rounding can leave a relu at -1e-9


def appearance_features(images, grid=GRID, subgrid=SUBGRID, hue_bins=HUE_BINS):
    """Oriented-gradient, energy, hue and coverage features per grid cell.

    images: uint8 (N, 3, H, W). Returns float32 (N, D, G, G) on the images'
    device, D = 8*S*S + S*S + K + S*S (128 + 16 + 12 + 16 = 172 for
    the defaults), channels in the order of ``feature_dims``.
    """
    _check_images(images, grid, subgrid)
    for name, value in (("grid", grid), ("subgrid", subgrid), ("hue_bins", hue_bins)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    xp = get_array_module(images)
    dim = sum(feature_dims(grid, subgrid, hue_bins).values())
    out = xp.zeros((images.shape[0], dim, grid, grid), dtype=xp.float32)
    for start in range(0, images.shape[0], _BATCH):
        batch = images[start:start + _BATCH]
        out[start:start + batch.shape[0]] = _appearance_batch(batch, grid, subgrid, hue_bins)
    return out


def position_channels(n, grid, xp):
    """One-hot row and column of every cell: float32 (N, 2G, G, G)."""
    eye = xp.eye(grid, dtype=xp.float32)
    rows = xp.broadcast_to(eye[:, :, None], (grid, grid, grid))  # channel r is 1 on grid row r
    cols = xp.broadcast_to(eye[:, None, :], (grid, grid, grid))
    both = xp.concatenate([rows, cols], axis=0)
    return xp.ascontiguousarray(xp.broadcast_to(both[None], (n, 2 * grid, grid, grid)))


def spatial_features(appearance):
    """Appearance features plus position channels: (N, D, G, G) -> (N, D + 2G, G, G)."""
    xp = get_array_module(appearance)
    n, _, grid, _ = appearance.shape
    return xp.concatenate([appearance, position_channels(n, grid, xp)], axis=1)


def global_features(appearance):
    """The mean over grid cells (average pooling, as for CNN features): (N, D, G, G) -> (N, D)."""
    return appearance.mean(axis=(2, 3))


def fit_standardizer(features):
    """Per-channel mean and std, float32 (D,), over every axis but axis 1.

    Two passes in float64: the mean, then the mean square of the centred values.
    The one-pass E[x^2] - E[x]^2 leaves rounding noise of about 1e-4 |x| for float32
    features, which made a channel that is constant over a small training split look
    like one with a tiny spread, and standardising divided by that noise (values
    up to 36,000 with one training scene). Constant channels get std 1 instead of 0,
    so standardising never divides by zero. The second pass works through blocks of
    rows, so the float64 copy stays small whatever N is.
    """
    xp = get_array_module(features)
    if features.ndim < 2 or features.shape[0] == 0:
        raise ValueError(f"need features (N, D, ...) with N >= 1 to fit a standardizer, got shape {features.shape}")
    count = features.size // features.shape[1]
    other_axes = (0,) + tuple(range(2, features.ndim))
    mean = features.sum(axis=other_axes, dtype=xp.float64) / count
    centre = mean.reshape((1, -1) + (1,) * (features.ndim - 2))
    squares = xp.zeros_like(mean)
    rows = max(1, (1 << 22) // max(1, features[0].size))  # about 32 MB of float64 per block
    for start in range(0, features.shape[0], rows):
        block = features[start : start + rows].astype(xp.float64) - centre
        squares += (block * block).sum(axis=other_axes)
    std = xp.sqrt(squares / count)
    std = xp.where(std > 1e-6, std, 1.0)
    return mean.astype(xp.float32), std.astype(xp.float32)


def standardize(features, mean, std):
    """(features - mean) / std per channel (axis 1); keeps the features' dtype."""
    if mean.shape != (features.shape[1],) or std.shape != mean.shape:
        raise ValueError(f"mean and std must have shape ({features.shape[1]},), got {mean.shape} and {std.shape}")
    shape = (1, -1) + (1,) * (features.ndim - 2)
    out = features - mean.reshape(shape).astype(features.dtype)
    out /= std.reshape(shape).astype(features.dtype)
    return out
