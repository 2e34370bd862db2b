"""Inference building blocks of the image encoders: convolutions, folded batch norm, activations.

Forward only, on NumPy or CuPy alike: every function takes its array module from
its inputs. Feature maps are channel-last, NHWC: (N, H, W, C), with F output
channels; weights arrive in torchvision's (F, C // groups, KH, KW) layout and are
rearranged once, when a layer is built.

Why channel-last: a pixel's C values are contiguous, so

- a 1x1 convolution is one plain matrix product, (N*H*W, C) @ (C, F), on the
  array as it lies (no copy);
- a depthwise 3x3 convolution with stride 1 is a sum over 9 taps, each a
  shifted slice whose image rows of W*C values are contiguous, weighted per
  channel by the filter repeated along the row;
- the receptive field of a k x k convolution is k runs of k*C contiguous values
  (im2col copies long runs, not single pixels).

Each formulation is chosen from the layer's shape (see ``Depthwise``), or, where the
faster one depends on the CPU, timed on the first call at each shape (``Grouped``).
Every conv ends with an "epilogue" (bias and activation; inside a block, the activation
alone, see below), writing, when the next layer is a padded 3x3 convolution, straight
into the inside of that layer's bordered input buffer (so padding costs no extra pass
over the data).

At inference batch norm is an affine map per channel with fixed statistics, so it
folds into the convolution before it (see ``fold_batch_norm``): every conv-BN pair
of the networks runs as a single convolution with a bias.

Inside a residual block (``blocks.Bottleneck``) the convs' biases are not added at all,
but carried along as *shifts* (``_Conv.shifted``): a conv may store its output as
``true - shift`` for a constant per-channel ``shift``. Two facts make that exact:

- a convolution is linear, so a shifted input only adds a constant to the output:
  conv(z + s) = conv(z) + conv(s), where conv(s) of a constant map is a vector per
  output channel (``_response``), as long as the padding border holds -s (so that the
  true input there is still zero: ``padded_buffer``'s ``border``);
- relu(y + b) = max(y, -b) + b and relu6(y + b) = min(max(y, -b), 6 - b) + b.

So a conv whose input carries shift s computes y = conv(z) and stores max(y, -beta)
(or nothing more, without activation), with beta = bias + conv(s): its output carries
shift beta, and the block adds its last shift once, at its end. Against adding the
bias and then clipping, that saves a pass per relu and per conv without activation
(the block's last conv and its shortcut conv): a maximum against a row of Wo*F values
runs at the speed of an add (51 us for 1.8 MB on the 2-core AMD EPYC Zen 3), where
NumPy's clip with array bounds takes 470 us, and a clip with scalar bounds 75 us.
The shifts stay inside a block: carried from block to block they add up along the
residual path (to 160 in RegNet's last stage, where the features are mostly below
that), and float32 keeps about 7 digits of the stored value, not of the true one.
"""

import copy
import math
import numbers

import numpy as np

from minicap.backend import get_array_module, to_device
from minicap.encoders import formulations, parallel
from minicap.encoders.memory import empty



def _check_conv_args(x, w, b, stride, padding, groups):
    if x.ndim != 4:
        raise ValueError(f"conv2d: x must be (N, H, W, C), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"conv2d: x must be floating point, got {x.dtype}; convert it first, e.g. x.astype(np.float32)")
    if w.ndim != 4:
        raise ValueError(f"conv2d: w must be (F, C // groups, KH, KW), got shape {w.shape}")
    for name, value, low in (("stride", stride, 1), ("padding", padding, 0), ("groups", groups, 1)):
        if not (isinstance(value, numbers.Integral) and value >= low):
            kind = "a positive" if low else "a non-negative"
            raise ValueError(f"conv2d: {name} must be {kind} int, got {value!r}")
    c, f = x.shape[3], w.shape[0]
    if c % groups or f % groups:
        raise ValueError(f"conv2d: {groups} groups must divide both the {c} input and {f} output channels")
    if w.shape[1] != c // groups:
        raise ValueError(
            f"conv2d: w has {w.shape[1]} input channels per filter, but x has {c} channels in "
            f"{groups} group(s), so it needs {c // groups}"
        )
    if b is not None and b.shape != (f,):
        raise ValueError(f"conv2d: b must have shape ({f},), got {b.shape}")
    kh, kw = w.shape[2:]
    h, wd = x.shape[1] + 2 * padding, x.shape[2] + 2 * padding
    if kh > h or kw > wd:
        raise ValueError(f"conv2d: a {kh}x{kw} kernel does not fit the padded {h}x{wd} input")


def conv2d(x, w, b=None, stride=1, padding=0, groups=1):
    """2-D convolution (cross-correlation, as in every deep learning library), channel-last.

    x: (N, H, W, C); w: (F, C // groups, KH, KW) (torchvision's layout); b: (F,) or None.
    Returns (N, Ho, Wo, F) in x's dtype, Ho = (H + 2 * padding - KH) // stride + 1, likewise Wo:

        out[n, i, j, f] = b[f] + sum_{c, p, q} w[f, c, p, q] * xpad[n, i*stride + p, j*stride + q, g(f) * C/groups + c]

    where xpad is x zero-padded by ``padding`` on each side and g(f) = f // (F / groups)
    is the group of filter f. Rearranges w on every call: layers that run many times
    build their conv once with ``make_conv``.
    """
    _check_conv_args(x, w, b, stride, padding, groups)
    xp = get_array_module(x, w, b)
    if b is None:
        b = xp.zeros(w.shape[0], x.dtype)
    return make_conv(w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False), stride, padding, groups)(x)


def make_conv(w, b, stride=1, padding=0, groups=1, activation=None):
    """The conv layer for torchvision-layout weights w (F, C // groups, KH, KW) and bias b (F,),
    in the formulation that suits its shape: ``Pointwise`` (1x1), ``Depthwise`` (one filter
    per channel) or ``Grouped`` (anything else, grouped or not)."""
    f, cg, kh, kw = w.shape
    if (kh, kw) == (1, 1) and padding == 0 and groups == 1:
        return Pointwise(w[:, :, 0, 0].T.copy(), b, stride, activation)
    if cg == 1 and groups == f:
        return Depthwise(w[:, 0].transpose(1, 2, 0).copy(), b, stride, padding, activation)
    # (F, Cg, KH, KW) -> (G, KH * KW * Cg, F/G): row (p, q, c) matches a receptive field laid out channel-last.
    wg = w.reshape(groups, f // groups, cg, kh, kw).transpose(0, 3, 4, 2, 1).reshape(groups, kh * kw * cg, f // groups)
    return Grouped(wg.copy(), b, (kh, kw), stride, padding, activation)


def relu(x, inplace=False):
    """max(x, 0), elementwise; ``inplace`` overwrites x (only for arrays nobody else holds)."""
    # As a clip to [0, inf]: NumPy 2.4's maximum against a scalar takes a slow loop (150 us
    # for 1.6 MB of float32 on the 2-core AMD EPYC) where clip with both bounds runs at memory
    # speed (46 us). Both keep NaN, as torch's ReLU does.
    return get_array_module(x).clip(x, 0, math.inf, out=x if inplace else None)


def relu6(x, inplace=False):
    """min(max(x, 0), 6), elementwise: MobileNet's bounded ReLU; ``inplace`` as for ``relu``."""
    return get_array_module(x).clip(x, 0, 6, out=x if inplace else None)


ACTIVATIONS = {None: lambda x, inplace=False: x, "relu": relu, "relu6": relu6}


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")


def padded_buffer(shape, pad, dtype, xp, border=None):
    """An (N, H + 2 pad, W + 2 pad, C) array whose border of width ``pad`` is zero, or the
    per-channel values ``border`` (C,), and whose inside is uninitialised.

    Filling only the border, not the whole buffer, saves a pass: the inside is written next.
    """
    n, h, w, c = shape
    out = empty((n, h + 2 * pad, w + 2 * pad, c), dtype, xp)
    if pad:
        value = 0 if border is None else border
        out[:, :pad] = value
        out[:, h + pad :] = value
        out[:, pad : h + pad, :pad] = value
        out[:, pad : h + pad, w + pad :] = value
    return out


def pad(x, padding, border=None):
    """x (N, H, W, C) padded by ``padding`` on all four sides of every image, with zeros
    or the per-channel values ``border`` (C,)."""
    if not padding:
        return x
    out = padded_buffer(x.shape, padding, x.dtype, get_array_module(x), border)
    out[:, padding:-padding, padding:-padding] = x
    return out


def negated(shift):
    """The border a map stored as ``true - shift`` needs for a zero true border: -shift (None: zero)."""
    return None if shift is None else -shift


class RowCache:
    """A per-channel vector (F,) repeated along image rows of Wo pixels, (Wo*F,), made once per Wo.

    NumPy's loops then run along whole rows of Wo*F values instead of restarting every F
    values (64 channels: 62 us instead of 88 us for an add over 1.6 MB).
    """

    def __init__(self, vector):
        self.vector = vector
        self._rows = {}

    def __call__(self, wo):
        row = self._rows.get(wo)
        if row is None:
            row = self._rows[wo] = get_array_module(self.vector).tile(self.vector, wo)
        return row

    def to(self, device):
        return RowCache(to_device(self.vector, device))


def add_rows(y, vector, out):
    """out = y + vector (F,) for y and out (N, h, Wo, F), with ``vector`` a ``RowCache``; out may be y.

    Added as a row of Wo*F values to each image row when the rows of y and out lie
    contiguously, else per pixel. Returns out.
    """
    xp = get_array_module(y)
    rows_y, rows_out = _image_rows(y), _image_rows(out)
    if rows_y is None or rows_out is None:
        xp.add(y, vector.vector, out=out)
    else:
        xp.add(rows_y, vector(y.shape[2]), out=rows_out)
    return out


def activation_bounds(shift, dtype):
    """The bounds of relu and relu6 for values stored as ``true - shift`` (float64 (F,)):
    ``RowCache``s of -shift and 6 - shift, in ``dtype``, for ``shifted_activation``."""
    return RowCache((-shift).astype(dtype)), RowCache((6 - shift).astype(dtype))


def shifted_activation(y, out, activation, floor, ceiling=None):
    """out = the activation of y + beta, stored minus beta (see the module's docstring); out may be y.

    y, out: (N, h, Wo, F); floor, ceiling: ``RowCache`` of -beta and 6 - beta (the bounds
    of relu and relu6 in the stored values). Without activation only a copy remains (none
    when out is y). Returns out.
    """
    xp = get_array_module(y)
    if activation is None:
        if out is not y:
            out[...] = y
        return out
    rows_y, rows_out = _image_rows(y), _image_rows(out)
    if rows_y is None or rows_out is None:  # not whole rows: per pixel, the same bounds
        xp.maximum(y, floor.vector, out=out)
        if activation == "relu6":
            xp.minimum(out, ceiling.vector, out=out)
        return out
    wo = y.shape[2]
    xp.maximum(rows_y, floor(wo), out=rows_out)
    if activation == "relu6":
        xp.minimum(rows_out, ceiling(wo), out=rows_out)
    return out


def windows(x, kh, kw, stride):
    """All receptive fields of padded x (N, H, W, C) as a view (N, Ho, Wo, KH, KW, C): no data moves.

    windows[n, i, j, p, q, c] = x[n, i*stride + p, j*stride + q, c], Ho = (H - KH) // stride + 1, likewise Wo.
    """
    xp = get_array_module(x)
    n, h, w, c = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    sn, sh, sw, sc = x.strides
    return xp.lib.stride_tricks.as_strided(x, (n, ho, wo, kh, kw, c), (sn, stride * sh, stride * sw, sh, sw, sc))


class _Conv:
    """What the three formulations share: padding, the bias-and-activation pass, bands, device moves.

    ``layer(x, padded=False, pad_out=0, workers=None)`` maps x (N, H, W, C) to (N, Ho, Wo, F).
    ``padded``: x already carries this layer's border (written by the layer before).
    ``pad_out``: return the output inside a border of that width, which is what a
    following padded conv reads; writing there directly is the copy that padding would
    cost anyway, merged with the bias pass. ``workers`` (``parallel.Workers``): split a
    large output into bands of rows computed by several threads.
    Subclasses define ``_rows(x, r0, r1)``: output rows r0 <= i < r1, before bias and
    activation, and ``_response(s)``: what the conv without bias gives for a map whose
    every pixel is s (C,), an (F,) vector.

    A layer made by ``make_conv`` reads and writes true values. ``shifted(in_shift)`` gives
    the same layer for an input stored as ``true - in_shift``, whose output is stored as
    ``true - shift`` (see the module's docstring).
    """

    def __init__(self, weight, bias, stride, padding, activation):
        _check_activation(activation)
        self.weight, self.bias = weight, bias
        self.stride, self.padding, self.activation = stride, padding, activation
        self.in_shift = self.shift = None  # true values in and out
        self._bias_rows = RowCache(bias)

    def shifted(self, in_shift):
        """This layer for input stored as ``true - in_shift`` (C,) (None: true values), with its
        output stored as ``true - shift``: ``shift`` = bias + the conv of the constant in_shift."""
        moved = copy.copy(self)
        beta = np.asarray(self.bias, np.float64)
        if in_shift is not None:
            beta = beta + self._response(np.asarray(in_shift, np.float64))
        dtype = self.bias.dtype
        moved.in_shift = None if in_shift is None else np.asarray(in_shift, dtype)
        moved.shift = beta.astype(dtype)
        moved._floor, moved._ceiling = activation_bounds(beta, dtype)
        return moved

    def to(self, device):
        """The same layer with its arrays on ``device`` ("cpu" or "cuda")."""
        moved = copy.copy(self)
        for name, value in vars(self).items():
            if hasattr(value, "shape"):  # the weights in every layout the layer keeps, the shifts
                setattr(moved, name, to_device(value, device))
            elif isinstance(value, RowCache):
                setattr(moved, name, value.to(device))
        return moved

    def epilogue(self, y, out):
        """out = act(y + bias) for y and out (N, h, Wo, F); out may be y itself. Returns out.

        The bias is added as a row of Wo*F values (the bias repeated Wo times) to each image
        row, when the rows of y and out lie contiguously (see ``RowCache``). A shifted layer
        adds nothing: ``shifted_activation``.
        """
        if self.shift is not None:
            return shifted_activation(y, out, self.activation, self._floor, self._ceiling)
        return ACTIVATIONS[self.activation](add_rows(y, self._bias_rows, out), inplace=True)

    def __call__(self, x, padded=False, pad_out=0, workers=None):
        if self.padding and not padded:
            x = parallel.shared(workers, lambda: pad(x, self.padding, negated(self.in_shift)))
        n, h, w, _ = x.shape
        kh, kw = self.kernel
        ho, wo, f = (h - kh) // self.stride + 1, (w - kw) // self.stride + 1, self.out_channels
        if not pad_out and not parallel.splits(ho, workers):
            y = self._rows(x, 0, ho)  # the usual case: bias and activation in place
            return self.epilogue(y, y)
        xp = get_array_module(x, self.weight)
        out = parallel.shared(workers, lambda: padded_buffer((n, ho, wo, f), pad_out, x.dtype, xp, negated(self.shift)))
        inside = out[:, pad_out : pad_out + ho, pad_out : pad_out + wo]

        def band(r0, r1):
            self.epilogue(self._rows(x, r0, r1), inside[:, r0:r1])

        parallel.run_bands(band, ho, workers)
        return out


def _image_rows(a):
    """a (N, H, W, F) as an (N, H, W*F) view when each image row's W*F values lie contiguously, else None."""
    n, h, w, f = a.shape
    if a.strides[3] == a.itemsize and a.strides[2] == f * a.itemsize:
        return a.reshape(n, h, w * f)
    return None


class Pointwise(_Conv):
    """1x1 convolution: weight (C, F), bias (F,). (N, H, W, C) -> (N, ceil(H/s), ceil(W/s), F)."""

    kernel = (1, 1)

    def __init__(self, weight, bias, stride=1, activation=None):
        super().__init__(weight, bias, stride, 0, activation)

    @property
    def out_channels(self):
        return self.weight.shape[1]

    def _response(self, s):
        return s @ self.weight

    def _rows(self, x, r0, r1, out=None):
        """Output rows r0 <= i < r1 before bias and activation, written into ``out`` if given:
        (N, r1 - r0, Wo, F), C-contiguous (a single image's band of a larger output)."""
        s = self.stride
        x = x[:, r0 * s : (r1 - 1) * s + 1 : s, ::s]  # a strided 1x1 conv reads every s-th pixel
        n, h, w, c = x.shape
        xp = get_array_module(x, self.weight)
        f = self.weight.shape[1]
        if out is None:
            out = empty((n, h, w, f), xp.result_type(x, self.weight), xp)
        elif out.shape != (n, h, w, f):
            raise ValueError(f"Pointwise: out must have shape {(n, h, w, f)}, got {out.shape}")
        elif not out.flags.c_contiguous:
            raise ValueError("Pointwise: out must be C-contiguous (the product writes its pixels as the rows of one matrix)")
        if n > 1 and not x.flags.c_contiguous and x[0].flags.c_contiguous:
            # A band of rows of several images: each image's rows lie together, the images
            # apart. A product per image reads them where they are; one product over all
            # the pixels would first copy the band (8 images' 28x56x32 band: 0.62 ms, at
            # 41 GFLOP/s, against 66 for a contiguous input).
            xp.matmul(x.reshape(n, h * w, c), self.weight, out=out.reshape(n, h * w, f))
        else:
            xp.matmul(x.reshape(n * h * w, c), self.weight, out=out.reshape(n * h * w, f))  # the pixels are the rows
        return out

    def channels_first(self, x, workers=None):
        """This layer on true values x (N, H, W, C), its output channels-first: (N, F, Ho, Wo),
        as torchvision's features come.

        For one image, the product taken the other way round, W^T (F, C) @ x^T (C, pixels),
        writes each channel's pixels side by side, so no transposing copy follows (MobileNet's
        last conv, one thread: 14x14x320 to 1280 2.30 -> 1.98 ms, 7x7 0.60 -> 0.55 ms).
        ``workers``: bands of rows, each a block of columns of that product. Several images
        take one product over all their pixels and a transposing copy: a product per image
        packs the weights again each time (8 images of 4x4: 1.33 ms, against 1.66).
        """
        if self.in_shift is not None:
            raise ValueError("Pointwise.channels_first: needs a layer that reads true values (not shifted)")
        xp = get_array_module(x, self.weight)
        if x.shape[0] > 1:
            return channels_first_copy(self(x, workers=workers), workers)
        s = self.stride
        x = x[:, ::s, ::s]
        n, h, w, c = x.shape
        f = self.out_channels
        # It leaves the network, so not a pooled buffer; in a Team, the one the first thread made.
        out = parallel.shared(workers, lambda: xp.empty((n, f, h, w), xp.result_type(x, self.weight)))
        pixels = out.reshape(n, f, h * w)
        bias = self.bias[:, None]

        def band(r0, r1):
            rows = xp.ascontiguousarray(x[:, r0:r1]).reshape(n, (r1 - r0) * w, c)
            y = pixels[:, :, r0 * w : r1 * w]
            xp.matmul(self.weight.T, rows.transpose(0, 2, 1), out=y)
            ACTIVATIONS[self.activation](xp.add(y, bias, out=y), inplace=True)

        parallel.run_bands(band, h, workers)
        return out


class Depthwise(_Conv):
    """One KH x KW filter per channel: weight (KH, KW, C), bias (C,). (N, H, W, C) -> (N, Ho, Wo, C).

    out[n, i, j, c] = b[c] + sum_{p, q} w[p, q, c] * xpad[n, i*s + p, j*s + q, c], as one
    einsum in either of two formulations, chosen from the stride:

    - stride 1, *row taps*: tap (p, q) of output row i is input row i + p from column q on,
      and the Wo pixels it covers are one contiguous run of Wo*C values. So the einsum runs
      over a strided view (N, Ho, KH, KW, Wo*C) of whole rows against the filter repeated
      Wo times along the row, (KH, KW, Wo*C): its inner loop is a multiply-accumulate along
      Wo*C values, one pass per tap. Measured on the 2-core AMD EPYC, NumPy 2.4, one thread
      (us), against the window einsum below and 9 shifted multiply-adds (17 passes over the
      output): 112x112x32 505 / 2339 / 831; 56x56x144 551 / 974 / 912; 14x14x384 94 / 138
      / 246; 7x7x960 60 / 72 / 124; 8 images of 28x28x144 1376 / 2199 / 2765.
    - stride s > 1, *windows*: an einsum over the view (N, Ho, Wo, KH, KW, C) of all
      receptive fields; its inner loop runs along the C channels only, but the columns a
      strided tap reads are not contiguous. Splitting the columns into s phases first, so
      that row taps apply, was no faster as a copy of its own (112x112x96 to 56x56, 1222 us
      against 1132, of which the split copy 214); inside a block the 1x1 conv before writes
      the phases at no extra cost, and ``from_phases`` reads them (see ``phases``).
    """

    def __init__(self, weight, bias, stride=1, padding=0, activation=None):
        super().__init__(weight, bias, stride, padding, activation)
        self.kernel = weight.shape[:2]
        self._weight_rows = {}  # output width Wo -> the weights repeated along a row, (KH, KW, Wo*C)

    def to(self, device):
        moved = super().to(device)
        moved._weight_rows = {}
        return moved

    @property
    def out_channels(self):
        return self.weight.shape[2]

    def _response(self, s):
        return (self.weight * s).sum(axis=(0, 1))

    def _rows(self, x, r0, r1):
        xp = get_array_module(x, self.weight)
        kh, kw, c = self.weight.shape
        n, ho, wo = x.shape[0], r1 - r0, (x.shape[2] - kw) // self.stride + 1
        if self.stride == 1:
            taps, weight, spec, shape = self._row_taps(x, r0, r1), self.weight_rows(wo), "nhpqx,pqx->nhx", (n, ho, wo * c)
        else:
            taps, weight, spec, shape = windows(x, kh, kw, self.stride)[:, r0:r1], self.weight, "nhwpqc,pqc->nhwc", (n, ho, wo, c)
        if xp is not np:  # CuPy's einsum has no out=
            return xp.einsum(spec, taps, weight).reshape(n, ho, wo, c)
        out = empty(shape, np.result_type(x, self.weight))
        return np.einsum(spec, taps, weight, out=out).reshape(n, ho, wo, c)

    def _row_taps(self, x, r0, r1):
        """Stride 1 on padded x (N, H, W, C): a view (N, r1 - r0, KH, KW, Wo*C) whose [n, i, p, q]
        is input row r0 + i + p from column q on, Wo pixels of C channels."""
        xp = get_array_module(x)
        kh, kw, c = self.weight.shape
        if x.strides[3] != x.itemsize or x.strides[2] != c * x.itemsize:
            x = xp.ascontiguousarray(x)  # a row's pixels must lie side by side
        n, _, w, _ = x.shape
        sn, sh, sw, sc = x.strides
        return xp.lib.stride_tricks.as_strided(x[:, r0:], (n, r1 - r0, kh, kw, (w - kw + 1) * c), (sn, sh, sh, sw, sc))

    def from_phases(self, y, phases):
        """This layer, its epilogue included, on an input split into column phases (see
        ``phases``): y (N, rows, slots, C) padded, with rows = s*(Ho - 1) + KH; returns (N, Ho, Wo, C).

        Plane ph holds the taps q = ph, ph + s, ... one slot apart, so each plane is one
        einsum over whole rows, as with stride 1 (``_row_taps``), and the planes are added up.
        NumPy only (on CuPy the block keeps the windows).
        """
        kh, kw, c = self.weight.shape
        s = self.stride
        y = np.ascontiguousarray(y)  # the slots of a row side by side (as the 1x1 conv before wrote them)
        n, rows = y.shape[:2]
        ho, wo = (rows - kh) // s + 1, phases.wo
        sn, sr = y.strides[:2]
        weight = self.weight_rows(wo)
        dtype = np.result_type(y, self.weight)
        out, part = empty((n, ho, wo * c), dtype), empty((n, ho, wo * c), dtype)
        for phase, start in enumerate(phases.starts):
            taps = len(range(phase, kw, s))
            # [n, i, p, t] = row s*i + p of y from slot start + t on: Wo slots of C values.
            view = np.lib.stride_tricks.as_strided(y[:, :, start:], (n, ho, kh, taps, wo * c), (sn, s * sr, sr, c * y.itemsize, y.itemsize))
            np.einsum("nhpqx,pqx->nhx", view, weight[:, phase::s], out=out if phase == 0 else part)
            if phase:
                out += part
        out = out.reshape(n, ho, wo, c)
        return self.epilogue(out, out)

    def weight_rows(self, wo):
        """The weights repeated along an output row of ``wo`` pixels: (KH, KW, Wo*C), made once per width."""
        rows = self._weight_rows.get(wo)
        if rows is None:
            xp = get_array_module(self.weight)
            kh, kw, c = self.weight.shape
            rows = xp.ascontiguousarray(xp.broadcast_to(self.weight[:, :, None, :], (kh, kw, wo, c))).reshape(kh, kw, wo * c)
            self._weight_rows[wo] = rows
        return rows


class Grouped(_Conv):
    """Any other convolution, grouped or not, as matrix products per group; two formulations.

    weight: (G, KH*KW*Cg, F/G), row (p, q, c) for input channel g*Cg + c; bias (F,); kernel: (KH, KW).
    (N, H, W, C) -> (N, Ho, Wo, F), with the output of group g in channels g*F/G ... (g+1)*F/G - 1.

    - im2col: every receptive field copied out as a row of KH*KW*Cg values, then one
      product per group with K = KH*KW*Cg. Always for strided convs and small maps.
    - shifted products: with stride 1, the window tap (p, q) of output (i, j) is input
      pixel (i + p, j + q), i.e. a fixed offset p*Wp + q in the padded map read as one
      long list of pixels. So each tap is one product per group of a plain slice of
      that list, no copy, and the KH*KW products are added up. The outputs are computed at
      every position of the padded grid, the Hp*Wp - Ho*Wo extra ones thrown away, so
      this is a candidate only when they are at most half as many as the real ones.
      Then both are timed on the first call at each shape (``formulations``): which wins
      depends on the CPU's BLAS kernels. Measured, RegNet's 16-channel groups, shifted /
      im2col (us): AMD EPYC Zen 4, 8 images of 14x14x64 544 / 625, one image of 14x14x160
      154 / 176; AMD EPYC Zen 3, 8 images of 14x14x64 1342 / 672, one image of 14x14x400
      836 / 526.
    """

    def __init__(self, weight, bias, kernel, stride=1, padding=0, activation=None):
        super().__init__(weight, bias, stride, padding, activation)
        self.kernel = tuple(kernel)
        g, _, fg = weight.shape
        kh, kw = self.kernel
        # The same weights per tap: (KH, KW, G, Cg, F/G).
        self.tap_weight = weight.reshape(g, kh, kw, -1, fg).transpose(1, 2, 0, 3, 4).copy()

    @property
    def out_channels(self):
        return self.weight.shape[0] * self.weight.shape[2]

    def _response(self, s):
        # Row (p, q, c) of group g's weights meets input channel g*Cg + c at every tap.
        g, k, fg = self.weight.shape
        taps = np.tile(s.reshape(g, 1, -1), (1, k // (s.size // g), 1)).reshape(g, k)
        return np.einsum("gk,gkf->gf", taps, self.weight).reshape(g * fg)

    def _rows(self, x, r0, r1):
        kh, kw = self.kernel
        ho, wo = r1 - r0, x.shape[2] - kw + 1
        if self.stride != 1 or 3 * ho * wo < 2 * (ho + kh - 1) * x.shape[2]:
            return self._im2col(x, r0, r1)

        def shifted():
            return self._shifted_products(x[:, r0 : r1 + kh - 1])

        if get_array_module(x) is not np:  # on a GPU, as before: timing would need a synchronize per call
            return shifted()
        # Which of the two is faster depends on the CPU (by up to 2x): timed here, once per shape.
        key = ("grouped", x.shape[0], ho, *x.shape[2:], *self.weight.shape, kh, kw)
        return formulations.fastest(key, {"shifted products": shifted, "im2col": lambda: self._im2col(x, r0, r1)})

    def _im2col(self, x, r0, r1):
        xp = get_array_module(x, self.weight)
        (kh, kw), (g, k, fg) = self.kernel, self.weight.shape
        n, ho, wo, _, _, c = (view := windows(x, kh, kw, self.stride)[:, r0:r1]).shape
        # The one copy: each pixel's receptive field, group by group, as a row of
        # KH*KW*Cg values; each (p, q) contributes a contiguous run of Cg values.
        cols = empty((n, ho, wo, g, kh, kw, c // g), x.dtype, xp)
        if xp is np and g > 1 and x.strides[3] == x.itemsize:
            # Each run of Cg values moved as one opaque item: NumPy's copy loop then handles
            # one item per run instead of restarting every Cg values. Measured, Cg = 16:
            # 8 images' 7x7x160 map 143 us instead of 218, 4x4x400 160 instead of 192.
            run = np.dtype((np.void, c // g * x.itemsize))
            runs = windows(x.view(run), kh, kw, self.stride)[:, r0:r1]  # (N, Ho, Wo, KH, KW, G)
            cols.view(run).reshape(n, ho, wo, g, kh, kw)[...] = runs.transpose(0, 1, 2, 5, 3, 4)
        elif xp is np and g == 1 and x.flags.c_contiguous:
            # One group: a window's row of KW pixels is one run of KW*C values (a stem's 3x3
            # over 3 channels: 36 bytes, against 9 runs of 12), moved as one item. Measured,
            # a 448x448 image's stem: 526 us instead of 1090.
            run = np.dtype((np.void, kw * c * x.itemsize))
            sn, sh, sw, _ = x.strides
            s = self.stride
            runs = np.ndarray((n, ho, wo, kh), run, buffer=x, offset=r0 * s * sh, strides=(sn, s * sh, s * sw, sh))
            cols.reshape(n, ho, wo, kh * kw * c).view(run)[...] = runs
        else:
            cols[...] = view.reshape(n, ho, wo, kh, kw, g, c // g).transpose(0, 1, 2, 5, 3, 4, 6)
        m = n * ho * wo
        y = empty((m, g, fg), x.dtype, xp)
        # (G, M, KH*KW*Cg) @ (G, KH*KW*Cg, F/G) -> (G, M, F/G), read and written as strided
        # views of channel-last rows, so the output needs no transpose afterwards.
        xp.matmul(cols.reshape(m, g, k).transpose(1, 0, 2), self.weight, out=y.transpose(1, 0, 2))
        return y.reshape(n, ho, wo, g * fg)

    def _shifted_products(self, x):
        """Stride 1 on padded x (N, Hp, Wp, C): a view (N, Hp - KH + 1, Wp - KW + 1, F) of the outputs."""
        xp = get_array_module(x, self.weight)
        (kh, kw), (g, _, fg) = self.kernel, self.weight.shape
        n, hp, wp, c = x.shape
        pixels = x.reshape(n * hp * wp, c)  # the padded map as one list of pixels (a view if x is contiguous)
        m = n * hp * wp - (kh - 1) * wp - (kw - 1)  # the positions whose window lies inside the list
        out = empty((n * hp * wp, g, fg), x.dtype, xp)
        scratch = empty((m, g, fg), x.dtype, xp)
        for p in range(kh):
            for q in range(kw):
                shift = pixels[p * wp + q : p * wp + q + m].reshape(m, g, c // g).transpose(1, 0, 2)
                first = p == q == 0
                xp.matmul(shift, self.tap_weight[p, q], out=(out[:m] if first else scratch).transpose(1, 0, 2))
                if not first:
                    out[:m] += scratch
        return out.reshape(n, hp, wp, g * fg)[:, : hp - kh + 1, : wp - kw + 1]


def fold_batch_norm(w, gamma, beta, mean, var, eps=1e-5, b=None):
    """Fold an inference-mode batch norm into the convolution before it.

    BN(conv(x)) = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta
                = conv'(x) + b',  with  w' = w * s[f],  b' = beta + (b - mean) * s,
                s = gamma / sqrt(var + eps),
    since a convolution is linear in its weights. w: (F, C/groups, KH, KW); the rest (F,).
    Computed in float64 and returned as float32 (w', b').
    """
    s = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    conv_bias = 0.0 if b is None else np.asarray(b, np.float64)
    w_folded = np.asarray(w, np.float64) * s[:, None, None, None]
    b_folded = np.asarray(beta, np.float64) + (conv_bias - np.asarray(mean, np.float64)) * s
    return w_folded.astype(np.float32), b_folded.astype(np.float32)


class Sequential:
    """Layers applied one after the other, each on the previous one's output."""

    chunk_pixels = None  # pixels per CPU chunk of a batch (None: encoder.CHUNK_PIXELS)

    def __init__(self, layers):
        self.layers = layers

    def __call__(self, x, workers=None):
        for layer in self.layers:
            x = layer(x, workers=workers)
        return x

    def features(self, x, workers=None):
        """The output channels-first, (N, F, Hs, Ws), as torchvision gives it (the encoders' output)."""
        return channels_first_copy(self(x, workers), workers)

    def to(self, device):
        """A copy of the network with its weights on ``device``."""
        moved = copy.copy(self)
        moved.layers = [layer.to(device) for layer in self.layers]
        return moved


def channels_first_copy(y, workers=None):
    """A new array holding y (N, H, W, C) as (N, C, H, W), never a view of y: y may be a view of
    a reused buffer (``memory``). In a ``Team`` one thread copies for all: every thread has the
    same y by then (split last layers wrote it together, unsplit ones each computed it whole)."""
    return parallel.shared(workers, lambda: get_array_module(y).array(y.transpose(0, 3, 1, 2), order="C", copy=True))
