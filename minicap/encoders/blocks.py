"""The residual bottleneck both networks are built from, computed in bands of rows.

MobileNet v2's inverted residual and RegNet-X's bottleneck are the same shape:

    out = act(post(mid(pre(x))) + shortcut(x))

with ``pre`` and ``post`` 1x1 convs, ``mid`` a k x k conv (depthwise or grouped, stride s,
padding p) and ``shortcut`` x itself, a strided 1x1 conv, or nothing. Output rows
r0 <= i < r1 need only input rows r0*s - p ... (r1-1)*s - p + k - 1 (1x1 convs look at
one row), so the block is computed in bands of output rows, each from a few rows of the
input. A band's maps stay in cache from ``pre`` to ``post``; the rows a band shares
with its neighbours (its "halo", k - s rows of ``pre``) are computed by both.

On one large image each thread takes a band of the whole block, so that the threads
meet once per block rather than once per conv (``workers`` is then a ``parallel.Team``:
every thread runs this code, and the output buffer is the one the first thread made);
a smaller image's blocks run whole, with BLAS's threads sharing their products (see
``parallel``).

The block's convs carry their biases as shifts (see ``ops``'s docstring): pre's and
mid's activations are then a single maximum (and minimum, for relu6) each, post and a
shortcut conv add nothing, and the block adds their shifts up at its end, once.

A strided depthwise ``mid`` (MobileNet v2's) reads its input split into column phases,
which ``pre`` writes directly (``_pre_in_phases``; see ``phases``): its taps then run
along whole rows. Measured on the 2-core AMD EPYC Zen 3, one thread, in one process
taking turns (best of 30, ms), MobileNet v2's four strided blocks on windows / on
phases: one 448x448 image 19.2 / 16.3, one 224x224 image 4.9 / 4.3, 16 images of
112x112 21.4 / 19.5.
"""

import copy
import math

import numpy as np

from minicap.backend import get_array_module
from minicap.encoders import parallel
from minicap.encoders.memory import empty
from minicap.encoders.ops import Depthwise, Pointwise, RowCache, activation_bounds, add_rows, negated, pad, shifted_activation
from minicap.encoders.phases import Phases

# Bands hold at most this many values of mid's input (2 MB of float32: about a core's
# L2 cache), and at least MIN_BAND_ROWS rows, so that the recomputed halo stays small.
BAND_VALUES = 1 << 19
MIN_BAND_ROWS = 8


class Bottleneck:
    """act(post(mid(pre(x))) + shortcut(x)) for x (N, H, W, C) -> (N, Ho, Wo, F).

    pre: a 1x1 conv, or None (then x goes straight to ``mid``). shortcut: None,
    "identity" or a strided 1x1 conv. activation: None or "relu".
    """

    def __init__(self, pre, mid, post, shortcut=None, activation=None):
        if not (isinstance(post, Pointwise) and post.stride == 1):
            raise ValueError(f"Bottleneck: post must be a 1x1 conv with stride 1, got {post!r}")
        self.activation = activation
        # The input is true; each conv reads the shift of the one before (ops._Conv.shifted).
        self.pre = None if pre is None else pre.shifted(None)
        self.mid = mid.shifted(None if pre is None else self.pre.shift)
        self.post = post.shifted(self.mid.shift)
        self.shortcut = shortcut
        shift = self.post.shift.astype(np.float64)
        if shortcut not in (None, "identity"):
            self.shortcut = shortcut.shifted(None)
            shift = shift + self.shortcut.shift
        # What the sum lacks, and the bounds of the activation after it.
        dtype = self.post.shift.dtype
        self._shift = RowCache(shift.astype(dtype))
        self._floor, self._ceiling = activation_bounds(shift, dtype)
        # A strided depthwise mid after a 1x1 pre reads its input split into column phases,
        # written so by pre (see ``phases``); width -> its ``Phases``.
        phased = isinstance(self.pre, Pointwise) and self.pre.stride == 1 and isinstance(mid, Depthwise)
        self._phases = {} if phased and 1 < mid.stride <= mid.kernel[1] else None

    def to(self, device):
        moved = copy.copy(self)
        moved.mid, moved.post = self.mid.to(device), self.post.to(device)
        if self.pre is not None:
            moved.pre = self.pre.to(device)
        if self.shortcut not in (None, "identity"):
            moved.shortcut = self.shortcut.to(device)
        moved._shift, moved._floor, moved._ceiling = (c.to(device) for c in (self._shift, self._floor, self._ceiling))
        if self._phases is not None:
            moved._phases = {}  # (layouts only, no arrays: used on the CPU alone)
        return moved

    def __call__(self, x, padded=False, workers=None):
        """``padded``: x already carries mid's zero border (only without ``pre``);
        ``workers``: threads to share the block of a single image (see ``parallel``)."""
        xp = get_array_module(x)
        mid = self.mid
        k, s, p = mid.kernel[0], mid.stride, mid.padding
        if self.pre is None and not padded:
            x, padded = parallel.shared(workers, lambda: pad(x, p)), True
        inside = x[:, p : x.shape[1] - p, p : x.shape[2] - p] if padded else x  # the unpadded map
        n, h, w, _ = inside.shape
        ho, wo, f = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, self.post.out_channels
        split = workers is not None and n == 1 and workers.bands_for(ho)
        # Bands small enough for mid's input to stay in cache (on the CPU), and one per thread when split.
        parts = math.ceil(n * (h + 2 * p) * (w + 2 * p) * mid.out_channels / BAND_VALUES)
        parts = max(1, min(parts, ho // MIN_BAND_ROWS)) if xp is np else 1
        if split:
            parts = max(parts, min(workers.threads, ho))
        if parts == 1:
            return self._finish(self._rows(x, inside, 0, ho), inside, 0, ho)
        bounds = [ho * i // parts for i in range(parts + 1)]
        out = parallel.shared(workers, lambda: empty((n, ho, wo, f), x.dtype, xp))

        def band(i):
            r0, r1 = bounds[i], bounds[i + 1]
            rows = out[:, r0:r1]
            # One image's band of rows is one block of memory: post writes it there, and the
            # block finishes it in place (several images' bands lie apart: computed, then copied).
            direct = rows.flags.c_contiguous
            y = self._finish(self._rows(x, inside, r0, r1, rows if direct else None), inside, r0, r1)
            if not direct:
                rows[...] = y

        if split:
            workers.map(band, range(parts))
        else:
            for i in range(parts):
                band(i)
        return out

    def _rows(self, x, inside, r0, r1, out=None):
        """post(mid(pre(x))) for output rows r0 <= i < r1, stored minus post's shift, written
        into ``out`` if given (see ``Pointwise._rows``)."""
        k, s, p = self.mid.kernel[0], self.mid.stride, self.mid.padding
        h = inside.shape[1]
        lo, hi = r0 * s - p, (r1 - 1) * s - p + k  # the band's input rows, in unpadded coordinates
        if self._phases is not None and get_array_module(x) is np:
            phases = self._phases_for(inside.shape[2])
            m = self.mid.from_phases(self._pre_in_phases(inside, lo, hi, phases), phases)
        else:
            if self.pre is None:
                band = x[:, lo + p : hi + p]
            else:  # pre writes its rows inside a zero border; keep border rows only past the image's edges
                band = self.pre(inside[:, max(lo, 0) : min(hi, h)], pad_out=p)
                band = band[:, p - max(0, -lo) : band.shape[1] - p + max(0, hi - h)]
            m = self.mid(band, padded=True)
        y = self.post._rows(m, 0, m.shape[1], out)  # post: a 1x1 conv, no padding
        return self.post.epilogue(y, y)

    def _phases_for(self, width):
        """mid's column phases for an input ``width`` pixels wide, made once per width."""
        phases = self._phases.get(width)
        if phases is None:
            phases = self._phases[width] = Phases(width, self.mid.kernel[1], self.mid.stride, self.mid.padding)
        return phases

    def _pre_in_phases(self, inside, lo, hi, phases):
        """pre's output for input rows lo <= r < hi (rows outside the image are padding), split
        into column phases: (N, hi - lo, slots, F), padding included.

        pre runs over the pixels in phase order, its border pixels too (from zeros), and the
        padding rows and slots are set afterwards, to the value a zero reads as (-shift).
        """
        n, h, _, c = inside.shape
        rows = hi - lo
        top, bottom = max(0, -lo), max(0, hi - h)
        xs = empty((n, rows, phases.slots, c), inside.dtype)
        xs[:, :top] = 0
        xs[:, rows - bottom :] = 0
        phases.gather(inside[:, max(lo, 0) : min(hi, h)], xs[:, top : rows - bottom])
        y = self.pre._rows(xs, 0, rows)
        self.pre.epilogue(y, y)
        border = negated(self.pre.shift)
        y[:, :top] = border
        y[:, rows - bottom :] = border
        for slot in phases.border:
            y[:, :, slot] = border
        return y

    def _finish(self, y, inside, r0, r1):
        """act(y + shortcut) for output rows r0 <= i < r1, in place in y."""
        s = self.mid.stride
        if self.shortcut == "identity":
            y += inside[:, r0:r1]
        elif self.shortcut is not None:
            y += self.shortcut(inside[:, r0 * s : (r1 - 1) * s + 1])
        # The true sum is y + shift: act(y + shift) = act'(y) + shift (ops.shifted_activation).
        if self.activation is not None:
            shifted_activation(y, y, self.activation, self._floor, self._ceiling)
        return add_rows(y, self._shift, y)
