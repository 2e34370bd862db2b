"""The residual bottleneck both networks are built from, computed band by band of output rows.

MobileNet v2's inverted residual and RegNet-X's bottleneck are the same shape:

    out = act(post(mid(pre(x))) + shortcut(x))

with ``pre`` and ``post`` 1x1 convs, ``mid`` a k x k conv (depthwise or grouped, stride s,
padding p) and ``shortcut`` x itself, a strided 1x1 conv, or nothing. Output rows
r0 <= i < r1 need only input rows r0*s - p ... (r1-1)*s - p + k - 1 (1x1 convs look at
one row), so a block can be computed in bands of rows, each from a few rows of its
input: a band's maps stay in cache from ``pre`` to ``post``, and on one image each
thread takes a band of the whole block, so that the threads meet once per block
rather than once per conv. The rows a band shares with its neighbours (its "halo",
k - s rows of ``pre``) are computed by both.
"""

import math

import numpy as np

from minicap.backend import get_array_module
from minicap.encoders import parallel
from minicap.encoders.ops import ACTIVATIONS, pad

# A block of one image is split into bands (one per thread) only when its output has
# at least this many values: below it the hand-over (about 60 us) and the halo rows
# cost more than the second thread saves.
BAND_MIN_OUTPUTS = 1 << 16
# Bands hold at most this many values of mid's input (2 MB of float32: about a core's
# L2 cache), and at least MIN_BAND_ROWS rows, so that the recomputed halo stays small.
BAND_VALUES = 1 << 19
MIN_BAND_ROWS = 8


def bottleneck(x, pre, mid, post, shortcut=None, activation=None, padded=False, workers=None):
    """act(post(mid(pre(x))) + shortcut(x)) for x (N, H, W, C) -> (N, Ho, Wo, F).

    pre: a 1x1 conv, or None (then x goes straight to ``mid``; ``padded`` says x already
    carries mid's zero border). shortcut: None, "identity" or a strided 1x1 conv.
    workers: split one image's block into bands of rows, one per thread (see ``parallel``).
    """
    xp = get_array_module(x)
    k, s, p = mid.kernel[0], mid.stride, mid.padding
    h = x.shape[1] - (2 * p if padded else 0)  # unpadded input rows
    ho = (h + 2 * p - k) // s + 1
    n = x.shape[0]
    if pre is None and not padded:
        x, padded = pad(x, p), True
    inside = x[:, p : p + h, p : x.shape[2] - p] if padded else x  # what the shortcut reads

    def rows(r0, r1):
        lo, hi = r0 * s - p, (r1 - 1) * s - p + k  # the band's input rows, in unpadded coordinates
        if pre is None:
            band = x[:, lo + p : hi + p]
        else:  # pre writes its rows inside a zero border; keep border rows only past the image's edges
            band = pre(inside[:, max(lo, 0) : min(hi, h)], pad_out=p)
            band = band[:, p - max(0, -lo) : band.shape[1] - p + max(0, hi - h)]
        y = post(mid(band, padded=True))
        if shortcut == "identity":
            y += inside[:, r0:r1]
        elif shortcut is not None:
            y += shortcut(inside[:, r0 * s : (r1 - 1) * s + 1])
        return ACTIVATIONS[activation](y, inplace=True)

    wo = (inside.shape[2] + 2 * p - k) // s + 1
    f = post.out_channels
    # Bands small enough for mid's input to stay in cache, at least MIN_BAND_ROWS rows each
    # (a band recomputes k - s rows of pre), and one per thread for a large single image.
    parts = math.ceil(n * (h + 2 * p) * inside.shape[2] * mid.out_channels / BAND_VALUES)
    parts = max(1, min(parts, ho // MIN_BAND_ROWS)) if xp is np else 1  # a GPU has no such cache to fit
    split = workers is not None and workers.threads > 1 and n == 1 and n * ho * wo * f >= BAND_MIN_OUTPUTS
    if split:
        parts = max(parts, min(workers.threads, ho))
    if parts == 1:
        return rows(0, ho)
    bounds = [ho * i // parts for i in range(parts + 1)]
    out = xp.empty((n, ho, wo, f), x.dtype)

    def fill(i):
        out[:, bounds[i] : bounds[i + 1]] = rows(bounds[i], bounds[i + 1])

    if split:
        workers.map(fill, range(parts))
    else:
        for i in range(parts):
            fill(i)
    return out
