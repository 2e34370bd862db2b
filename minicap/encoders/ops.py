"""Inference building blocks of the image encoders: convolution, folded batch norm, activations.

Forward only, on NumPy or CuPy alike: every function takes its array module from
its inputs. Images and feature maps are NCHW: (N, C, H, W), with F output channels.

A convolution is one matrix product. ``im2col`` lays every receptive field of
every image out as a column (a strided *view* of the padded input, copied at most
once by ``reshape``), and the filters, flattened to rows, multiply those columns:
one large product for the whole batch rather than one small one per image.
Grouped convolutions are the same product batched over groups. Outputs are
stored channel-major, (C, N, H, W) in memory while indexed (N, C, H, W), which is
the column layout the next product wants. Depthwise convolutions (one filter per
channel) would be thousands of tiny products, so they take a direct path instead:
one multiply-add over the whole tensor per kernel tap.

At inference batch norm is an affine map per channel with fixed statistics, so it
folds into the convolution before it (see ``fold_batch_norm``): every conv-BN pair
of the networks runs as a single convolution with a bias.
"""

import numbers
from dataclasses import dataclass

import numpy as np

from minicap.backend import get_array_module, to_device


def _check_conv_args(x, w, b, stride, padding, groups):
    if x.ndim != 4:
        raise ValueError(f"conv2d: x must be (N, C, H, W), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"conv2d: x must be floating point, got {x.dtype}; convert it first, e.g. x.astype(np.float32)")
    if w.ndim != 4:
        raise ValueError(f"conv2d: w must be (F, C // groups, KH, KW), got shape {w.shape}")
    if not (isinstance(stride, numbers.Integral) and stride >= 1):
        raise ValueError(f"conv2d: stride must be a positive int, got {stride!r}")
    if not (isinstance(padding, numbers.Integral) and padding >= 0):
        raise ValueError(f"conv2d: padding must be a non-negative int, got {padding!r}")
    if not (isinstance(groups, numbers.Integral) and groups >= 1):
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    c, f = x.shape[1], w.shape[0]
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
    h, wd = x.shape[2] + 2 * padding, x.shape[3] + 2 * padding
    if kh > h or kw > wd:
        raise ValueError(f"conv2d: a {kh}x{kw} kernel does not fit the padded {h}x{wd} input")


def conv2d(x, w, b=None, stride=1, padding=0, groups=1):
    """2-D convolution (cross-correlation, as in every deep learning library).

    x: (N, C, H, W); w: (F, C // groups, KH, KW); b: (F,) or None.
    Returns (N, F, Ho, Wo), Ho = (H + 2 * padding - KH) // stride + 1, likewise Wo:

        out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xpad[n, g(f) * C/groups + c, i*stride + p, j*stride + q]

    where xpad is x zero-padded by ``padding`` on each side and g(f) = f // (F / groups)
    is the group of filter f. The result has x's dtype; its memory is channel-major
    (see ``channel_major``), so use ``xp.ascontiguousarray`` where C order matters.
    """
    _check_conv_args(x, w, b, stride, padding, groups)
    xp = get_array_module(x, w, b)
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    w = w.astype(x.dtype, copy=False)
    if padding:
        x = _pad(x, padding)

    if groups == c == f:
        out = _depthwise(x, w, stride, ho, wo)
    else:
        cols = im2col(x, kh, kw, stride, groups)  # (G, Cg*KH*KW, N*Ho*Wo)
        # One product per group, each over every position of every image at once:
        # (G, F/G, Cg*KH*KW) @ (G, Cg*KH*KW, N*Ho*Wo) -> (G, F/G, N*Ho*Wo).
        out = xp.matmul(w.reshape(groups, f // groups, cg * kh * kw), cols)
        out = out.reshape(f, n, ho, wo).transpose(1, 0, 2, 3)
    if b is not None:
        out += b.astype(out.dtype, copy=False)[:, None, None]
    return out


def channel_major(shape, dtype, xp):
    """An uninitialised (N, C, H, W) array whose memory is ordered (C, N, H, W).

    Every product above wants its columns as (C..., N*H*W), so outputs are laid out
    that way: a 1x1 convolution of such an array needs no copy at all.
    """
    n, c, h, w = shape
    return xp.empty((c, n, h, w), dtype=dtype).transpose(1, 0, 2, 3)


def _pad(x, padding):
    """x zero-padded by ``padding`` on all four sides of every image, channel-major."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = channel_major((n, c, h + 2 * padding, w + 2 * padding), x.dtype, xp)
    out[...] = 0
    out[:, :, padding : padding + h, padding : padding + w] = x
    return out


def im2col(x, kh, kw, stride=1, groups=1):
    """Receptive fields as columns: (N, C, H, W) -> (G, C/G * KH * KW, N * Ho * Wo).

    x must already be padded; Ho = (H - KH) // stride + 1, likewise Wo. Row (c, p, q)
    of column (n, i, j) in group g holds x[n, g * C/G + c, i*stride + p, j*stride + q],
    matching the memory order of a filter w[f, c, p, q]. A view when x is
    channel-major and the kernel 1x1 with stride 1; otherwise one copy.
    """
    xp = get_array_module(x)
    n, c, h, wd = x.shape
    ho = (h - kh) // stride + 1
    wo = (wd - kw) // stride + 1
    cg = c // groups
    sn, sc, sh, sw = x.strides
    # A view, no copy: windows[g, c, p, q, n, i, j] = x[n, g*cg + c, i*stride + p, j*stride + q].
    windows = xp.lib.stride_tricks.as_strided(
        x,
        shape=(groups, cg, kh, kw, n, ho, wo),
        strides=(cg * sc, sc, sh, sw, sn, stride * sh, stride * sw),
    )
    return windows.reshape(groups, cg * kh * kw, n * ho * wo)


def _depthwise(x, w, stride, ho, wo):
    """Depthwise convolution of padded x: out[n, c] = sum_{p, q} w[c, 0, p, q] * x[n, c, shifted by (p, q)]."""
    xp = get_array_module(x, w)
    n, c = x.shape[:2]
    kh, kw = w.shape[2:]
    out = channel_major((n, c, ho, wo), x.dtype, xp)
    product = channel_major((n, c, ho, wo), x.dtype, xp)  # reused by every tap: one buffer, not KH * KW temporaries
    for p in range(kh):
        for q in range(kw):
            tap = x[:, :, p : p + stride * (ho - 1) + 1 : stride, q : q + stride * (wo - 1) + 1 : stride]
            xp.multiply(tap, w[:, 0, p, q][:, None, None], out=out if p == q == 0 else product)
            if p or q:
                out += product
    return out


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


def relu(x, inplace=False):
    """max(x, 0), elementwise; ``inplace`` overwrites x (only for arrays nobody else holds)."""
    return get_array_module(x).maximum(x, 0, out=x if inplace else None)


def relu6(x, inplace=False):
    """min(max(x, 0), 6), elementwise: MobileNet's bounded ReLU; ``inplace`` as for ``relu``."""
    return get_array_module(x).clip(x, 0, 6, out=x if inplace else None)


ACTIVATIONS = {None: lambda x, inplace=False: x, "relu": relu, "relu6": relu6}


@dataclass(frozen=True)
class FoldedConv:
    """A convolution with its batch norm folded in, then an activation.

    weight: (F, C // groups, KH, KW) float32; bias: (F,) float32; padding keeps
    "same" size at stride 1: (KH - 1) // 2. activation: None, "relu" or "relu6".
    Calling it maps (N, C, H, W) to (N, F, ceil(H / stride), ceil(W / stride)) for odd KH = KW.
    """

    weight: object
    bias: object
    stride: int = 1
    groups: int = 1
    activation: str | None = None

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")

    @property
    def padding(self):
        return (self.weight.shape[2] - 1) // 2

    def __call__(self, x):
        y = conv2d(x, self.weight, self.bias, self.stride, self.padding, self.groups)
        return ACTIVATIONS[self.activation](y, inplace=True)  # y is ours: no copy needed

    def to(self, device):
        """The same layer with its arrays on ``device`` ("cpu" or "cuda")."""
        return FoldedConv(to_device(self.weight, device), to_device(self.bias, device), self.stride, self.groups, self.activation)


class Sequential:
    """Layers applied one after the other; both networks are one of these."""

    def __init__(self, layers):
        self.layers = layers

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def to(self, device):
        """A copy of the network with its weights on ``device``."""
        return type(self)([layer.to(device) for layer in self.layers])
