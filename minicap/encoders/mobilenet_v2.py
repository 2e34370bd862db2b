"""MobileNet v2's convolutional trunk (torchvision's ``mobilenet_v2().features``), inference only.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (2018). The
network, as torchvision builds it (the names are its state-dict prefixes):

- ``features.0``: 3x3 conv, stride 2, 3 -> 32 channels, BN, ReLU6.
- ``features.1`` ... ``features.17``: inverted residual blocks. Each widens its input
  t times with a 1x1 conv (skipped when t = 1), filters every channel on its own
  with a 3x3 depthwise conv (the block's stride), and narrows back with a 1x1 conv
  that has no activation (the "linear bottleneck"). When the stride is 1 and the
  width is unchanged, the input is added to the output.
- ``features.18``: 1x1 conv to 1280 channels, BN, ReLU6.

Every conv has a batch norm after it, folded in at load time. The stride is 32
overall: (N, 3, H, W) -> (N, 1280, ceil(H/32), ceil(W/32)), e.g. 4x4 for 112x112.

``width_mult`` scales every width except the last 1280 (as in torchvision, which
only widens that one for width_mult > 1); a shorter ``setting`` gives the small
networks the tests use.
"""

import copy
import math

from minicap.encoders.blocks import Bottleneck
from minicap.encoders.ops import Sequential
from minicap.encoders.weights import ConvSpec, build_conv, check_state_dict

# The paper's Table 2 (and torchvision's default): per stage, expansion t, output
# channels c, number of blocks n, stride s of the stage's first block.
DEFAULT_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def make_divisible(value, divisor=8):
    """Round a scaled width to the nearest multiple of ``divisor`` (at least ``divisor``),
    going up a step if rounding lost more than 10%: the rule torchvision's widths follow."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def plan(width_mult=1.0, setting=DEFAULT_SETTING):
    """The network as specs: (stem spec, [(expand or None, depthwise, project, residual)], last spec)."""
    if width_mult <= 0:
        raise ValueError(f"width_mult must be positive, got {width_mult}")
    for row in setting:
        if len(row) != 4 or not all(isinstance(v, int) and v >= 1 for v in row):
            raise ValueError(f"each setting row must be 4 positive ints (t, c, n, s), got {row!r}")
    width = make_divisible(STEM_CHANNELS * width_mult)
    stem = ConvSpec.conv_norm_act("features.0", 3, width, 3, stride=2, activation="relu6")
    blocks = []
    index = 1
    for t, c, n, s in setting:
        out = make_divisible(c * width_mult)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = int(round(width * t))
            prefix = f"features.{index}.conv"
            # torchvision numbers the block's layers consecutively, so without the
            # expansion conv every later index moves down by one.
            k = 0
            expand = None
            if t != 1:
                expand = ConvSpec.conv_norm_act(f"{prefix}.0", width, hidden, 1, activation="relu6")
                k = 1
            depthwise = ConvSpec.conv_norm_act(f"{prefix}.{k}", hidden, hidden, 3, stride=stride, groups=hidden, activation="relu6")
            project = ConvSpec(f"{prefix}.{k + 1}", f"{prefix}.{k + 2}", hidden, out, 1)
            blocks.append((expand, depthwise, project, stride == 1 and width == out))
            width = out
            index += 1
    last = ConvSpec.conv_norm_act(f"features.{index}", width, make_divisible(LAST_CHANNELS * max(1.0, width_mult)), 1, activation="relu6")
    return stem, blocks, last


class InvertedResidual:
    """x -> project(depthwise(expand(x))), plus x when ``residual``. (N, H, W, C) -> (N, H/s, W/s, F).

    No activation after the sum: the bottleneck stays linear.
    """

    def __init__(self, expand, depthwise, project, residual):
        self.residual = residual
        self.stride = depthwise.stride
        self._block = Bottleneck(expand, depthwise, project, "identity" if residual else None)

    # The block's convs as it runs them: their biases carried as shifts (blocks.Bottleneck).
    expand = property(lambda self: self._block.pre)
    depthwise = property(lambda self: self._block.mid)
    project = property(lambda self: self._block.post)

    def __call__(self, x, padded=False, workers=None):
        """``padded``: x carries the depthwise conv's border (only for blocks without ``expand``);
        ``workers``: threads to share a single image's block (see ``blocks``)."""
        return self._block(x, padded, workers)

    def to(self, device):
        moved = copy.copy(self)
        moved._block = self._block.to(device)
        return moved


class MobileNetV2(Sequential):
    """MobileNet v2 features with folded batch norm: (N, H, W, 3) float32 -> (N, ceil(H/32), ceil(W/32), 1280)."""

    # A single image of at least this many pixels may also be shared in bands of rows; whether
    # it is, or goes through BLAS's threads or one thread, is timed (see ``parallel``). Measured,
    # 2 threads (ms), BLAS / bands: 224x224 13.4 / 15.4; 448x448 48.4 / 38.5. Again with the
    # row-tap depthwise convs (best of 24 to 32 calls): 224x224 12.3 / 14.8; 448x448 43.6 / 35.9.
    bands_min_pixels = 256 * 256

    def __init__(self, layers):
        super().__init__(layers)
        self.out_channels = layers[-1].out_channels
        self.stride = math.prod(layer.stride for layer in layers)  # 32 unless ``setting`` changes it

    def __call__(self, x, workers=None):
        return self.layers[-1](self._trunk(x, workers), workers=workers)

    def features(self, x, workers=None):
        """The output channels-first, (N, 1280, Hs, Ws): for one image the last 1x1 conv writes it
        so, with no transposing copy (``ops.Pointwise.channels_first``)."""
        return self.layers[-1].channels_first(self._trunk(x, workers), workers)

    def _trunk(self, x, workers):
        """All the layers but the last conv."""
        stem, *blocks, _ = self.layers
        # The first block (t = 1) starts with its depthwise conv: the stem writes the
        # zero-bordered map that conv reads, instead of a separate padding copy.
        padded = blocks[0].expand is None
        x = stem(x, pad_out=blocks[0].depthwise.padding if padded else 0, workers=workers)
        for block in blocks:
            x = block(x, padded, workers)
            padded = False
        return x

    @classmethod
    def from_state_dict(cls, state, width_mult=1.0, setting=DEFAULT_SETTING):
        """Build from torchvision's state dict (its ``features.*`` tensors; others are ignored)."""
        stem, blocks, last = plan(width_mult, setting)
        specs = [stem] + [s for block in blocks for s in block[:3] if s is not None] + [last]  # network order
        check_state_dict(state, specs, f"mobilenet_v2 (width_mult={width_mult}, {len(setting)} stages)")
        layers = [build_conv(state, stem)]
        for expand, depthwise, project, residual in blocks:
            layers.append(
                InvertedResidual(
                    None if expand is None else build_conv(state, expand),
                    build_conv(state, depthwise),
                    build_conv(state, project),
                    residual,
                )
            )
        layers.append(build_conv(state, last))
        return cls(layers)

