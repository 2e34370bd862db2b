"""RegNet-X's convolutional trunk (torchvision's ``stem`` then ``trunk_output``), inference only.

Radosavovic et al., "Designing Network Design Spaces" (2020). RegNet-X is a stem and
four stages of residual bottleneck blocks; the 400MF model's widths and depths
come from the paper's quantised linear rule, and are listed here as they come out:

- ``stem``: 3x3 conv, stride 2, 3 -> 32 channels, BN, ReLU.
- ``trunk_output.block{s}`` for s = 1..4: ``depths[s-1]`` blocks of width ``widths[s-1]``;
  the first block of each stage has stride 2. A block computes
  relu(shortcut(x) + c(b(a(x)))) with a: 1x1 conv + ReLU, b: 3x3 grouped conv
  (groups of ``group_width`` channels, the block's stride) + ReLU, c: 1x1 conv, no
  activation. The shortcut is x itself, or a strided 1x1 conv ("proj") when the
  width or the size changes.

Every conv has a batch norm after it, folded in at load time. The stride is 32
overall: (N, 3, H, W) -> (N, 400, ceil(H/32), ceil(W/32)) for 400MF.
"""

import copy
import math
from dataclasses import dataclass

from minicap.encoders.blocks import Bottleneck
from minicap.encoders.ops import Sequential
from minicap.encoders.weights import ConvSpec, build_conv, check_state_dict


@dataclass(frozen=True)
class RegNetConfig:
    """Widths and depths of the four stages; every 3x3 conv has groups of ``group_width`` channels."""

    stem_width: int = 32
    widths: tuple = (32, 64, 160, 400)
    depths: tuple = (1, 2, 7, 12)
    group_width: int = 16

    def __post_init__(self):
        if len(self.widths) != len(self.depths) or not self.widths:
            raise ValueError(f"widths {self.widths} and depths {self.depths} must be equally long and non-empty")
        values = (self.stem_width, self.group_width, *self.widths, *self.depths)
        if not all(isinstance(v, int) and v >= 1 for v in values):
            raise ValueError(f"every RegNet width, depth and group width must be a positive int: {self}")
        for w in self.widths:
            if w % self.group_width:
                raise ValueError(f"stage width {w} is not a multiple of the group width {self.group_width}")


REGNET_X_400MF = RegNetConfig()


def plan(config=REGNET_X_400MF):
    """The network as specs: (stem spec, [(proj or None, a, b, c)] over all blocks of all stages)."""
    stem = ConvSpec.conv_norm_act("stem", 3, config.stem_width, 3, stride=2, activation="relu")
    blocks = []
    width_in = config.stem_width
    for s, (width, depth) in enumerate(zip(config.widths, config.depths), start=1):
        groups = width // config.group_width
        for i in range(depth):
            stride = 2 if i == 0 else 1
            prefix = f"trunk_output.block{s}.block{s}-{i}"
            proj = None
            if width_in != width or stride != 1:
                proj = ConvSpec.conv_norm_act(f"{prefix}.proj", width_in, width, 1, stride=stride)
            a = ConvSpec.conv_norm_act(f"{prefix}.f.a", width_in, width, 1, activation="relu")
            b = ConvSpec.conv_norm_act(f"{prefix}.f.b", width, width, 3, stride=stride, groups=groups, activation="relu")
            c = ConvSpec.conv_norm_act(f"{prefix}.f.c", width, width, 1)
            blocks.append((proj, a, b, c))
            width_in = width
    return stem, blocks


class ResBottleneck:
    """relu(shortcut(x) + c(b(a(x)))), shortcut = proj or identity. (N, H, W, C) -> (N, H/s, W/s, F)."""

    def __init__(self, proj, a, b, c):
        self.stride = b.stride
        self._block = Bottleneck(a, b, c, "identity" if proj is None else proj, "relu")

    # The block's convs as it runs them: their biases carried as shifts (blocks.Bottleneck).
    a = property(lambda self: self._block.pre)
    b = property(lambda self: self._block.mid)
    c = property(lambda self: self._block.post)
    proj = property(lambda self: None if self._block.shortcut == "identity" else self._block.shortcut)

    def __call__(self, x, workers=None):
        """``workers``: threads to share a single image's block (see ``blocks``)."""
        return self._block(x, workers=workers)

    def to(self, device):
        moved = copy.copy(self)
        moved._block = self._block.to(device)
        return moved


class RegNetX(Sequential):
    """RegNet-X stem and trunk with folded batch norm: (N, H, W, 3) float32 -> (N, ceil(H/32), ceil(W/32), widths[-1])."""

    # A single image of at least this many pixels may also be shared in bands of rows; whether
    # it is, or goes through BLAS's threads or one thread, is timed (see ``parallel``). Measured,
    # 2 threads (ms), BLAS / bands: 224x224 13.8 / 17.8; 448x448 37.1 / 38.7 with the two
    # CPUs close, 61 / 42 with them apart.
    bands_min_pixels = 256 * 256
    # A batch's chunks: 16 images of 112x112, twice the default (see ``encoder.CHUNK_PIXELS``):
    # 12 of the 23 blocks work on 4x4 maps, whose products then get 256 rows per weight matrix.
    chunk_pixels = 16 * 112 * 112

    def __init__(self, layers):
        super().__init__(layers)
        self.out_channels = layers[-1].c.out_channels
        self.stride = math.prod(layer.stride for layer in layers)  # 2 ** (1 + number of stages)

    @classmethod
    def from_state_dict(cls, state, config=REGNET_X_400MF):
        """Build from torchvision's state dict (its ``stem.*`` and ``trunk_output.*`` tensors)."""
        stem, blocks = plan(config)
        specs = [stem] + [s for block in blocks for s in block if s is not None]
        check_state_dict(state, specs, f"regnet_x ({config})")
        layers = [build_conv(state, stem)]
        for proj, a, b, c in blocks:
            layers.append(ResBottleneck(None if proj is None else build_conv(state, proj), *(build_conv(state, s) for s in (a, b, c))))
        return cls(layers)

