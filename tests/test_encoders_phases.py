"""Column phases: every tap of a strided depthwise conv finds its column where the layout says,
and the conv and the block on phases equal the same layers on the plain map."""

import numpy as np
import pytest

from minicap.encoders import blocks
from minicap.encoders.ops import make_conv, pad
from minicap.encoders.phases import Phases

from test_encoders_blocks import direct

SHAPES = [  # width, kernel, stride, padding
    *((width, 3, 2, 1) for width in range(1, 10)),  # MobileNet v2's strided depthwise convs
    (8, 3, 2, 0),
    (9, 5, 2, 2),
    (10, 3, 3, 1),
    (7, 4, 2, 1),
]


@pytest.mark.parametrize("width, kernel, stride, padding", SHAPES)
def test_each_tap_reads_its_padded_column_from_its_plane(width, kernel, stride, padding):
    phases = Phases(width, kernel, stride, padding)
    assert phases.wo == (width + 2 * padding - kernel) // stride + 1
    # One image row whose pixel j holds j + 1 in its single channel: 0 marks a border slot.
    row = np.arange(1, width + 1, dtype=float).reshape(1, 1, width, 1)
    slots = phases.gather(row, np.full((1, 1, phases.slots, 1), np.nan))[0, 0, :, 0]
    assert not np.isnan(slots).any()  # every slot written
    for q in range(kernel):
        start = phases.starts[q % stride] + q // stride
        for j in range(phases.wo):
            column = stride * j + q - padding  # in the unpadded row
            assert slots[start + j] == (column + 1 if 0 <= column < width else 0), (q, j)
    # The border slots are exactly the slots of padding columns.
    assert sorted(phases.border) == [i for i, value in enumerate(slots) if value == 0]


def test_phases_need_a_stride_from_two_to_the_kernel():
    for stride in (1, 4):
        with pytest.raises(ValueError, match="needs a stride from 2 to the kernel's 3 columns"):
            Phases(8, 3, stride, 1)
    with pytest.raises(ValueError, match="made for 8 columns, got 9"):
        Phases(8, 3, 2, 1).gather(np.zeros((1, 1, 9, 2)), np.zeros((1, 1, 9, 2)))


@pytest.mark.parametrize("width, kernel, stride, padding", [(11, 3, 2, 1), (12, 3, 2, 1), (9, 5, 2, 2), (10, 3, 3, 1)])
@pytest.mark.parametrize("activation", [None, "relu6"])
def test_depthwise_on_phases_equals_the_plain_map(rng, width, kernel, stride, padding, activation):
    c = 5
    conv = make_conv(rng.standard_normal((c, 1, kernel, kernel)), rng.standard_normal(c), stride, padding, c, activation)
    shift = rng.standard_normal(c)
    shifted = conv.shifted(shift)  # as inside a block: the input stored as true - shift
    x = rng.standard_normal((2, 9, width, c))
    expected = shifted(x - shift)
    xpad = pad(x - shift, padding, -shift)
    phases = Phases(width, kernel, stride, padding)
    y = np.empty((2, xpad.shape[1], phases.slots, c))
    # The image's columns go to their slots; the padding slots get -shift, as the block sets them.
    inner = xpad[:, :, padding : padding + width]
    phases.gather(inner, y)
    for slot in phases.border:
        y[:, :, slot] = -shift
    rows = (expected.shape[1] - 1) * stride + kernel
    got = shifted.from_phases(y[:, :rows], phases)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("width", [11, 12, 7])
@pytest.mark.parametrize("bands", [False, True])
def test_a_strided_block_reads_its_depthwise_input_in_phases(monkeypatch, rng, width, bands):
    hidden, c = 12, 8
    pre = make_conv(rng.standard_normal((hidden, c, 1, 1)), rng.standard_normal(hidden), activation="relu6")
    mid = make_conv(rng.standard_normal((hidden, 1, 3, 3)), rng.standard_normal(hidden), 2, 1, hidden, "relu6")
    post = make_conv(rng.standard_normal((6, hidden, 1, 1)), rng.standard_normal(6))
    x = rng.standard_normal((2, 21, width, c))
    block = blocks.Bottleneck(pre, mid, post)
    if bands:
        monkeypatch.setattr(blocks, "MIN_BAND_ROWS", 2)
        monkeypatch.setattr(blocks, "BAND_VALUES", 2 * 8 * (width + 2) * hidden)  # about 8 input rows per band
    calls = []
    monkeypatch.setattr(type(block.mid), "from_phases", lambda self, y, p, f=type(block.mid).from_phases: calls.append(y.shape[1]) or f(self, y, p))
    out = block(x)
    np.testing.assert_allclose(out, direct(x, pre, mid, post, None, None), rtol=1e-12, atol=1e-12)
    assert len(calls) == (3 if bands else 1)
    assert sum((rows - 3) // 2 + 1 for rows in calls) == out.shape[1]  # each output row from one band


def test_only_a_strided_depthwise_after_a_1x1_conv_reads_phases(rng):
    pre = make_conv(rng.standard_normal((12, 8, 1, 1)), rng.standard_normal(12), activation="relu6")
    strided = make_conv(rng.standard_normal((12, 1, 3, 3)), rng.standard_normal(12), 2, 1, 12, "relu6")
    plain = make_conv(rng.standard_normal((12, 1, 3, 3)), rng.standard_normal(12), 1, 1, 12, "relu6")
    grouped = make_conv(rng.standard_normal((12, 4, 3, 3)), rng.standard_normal(12), 2, 1, 3, "relu")
    post = make_conv(rng.standard_normal((6, 12, 1, 1)), rng.standard_normal(6))
    assert blocks.Bottleneck(pre, strided, post)._phases is not None
    for block in (blocks.Bottleneck(pre, plain, post), blocks.Bottleneck(pre, grouped, post), blocks.Bottleneck(None, strided, post)):
        assert block._phases is None


def test_phases_keep_the_wider_dtype_of_input_and_weights(rng):
    # float32 maps with float64 weights give float64, as the windows formulation does.
    pre = make_conv(rng.standard_normal((6, 4, 1, 1)).astype(np.float32), rng.standard_normal(6).astype(np.float32), activation="relu6")
    mid = make_conv(rng.standard_normal((6, 1, 3, 3)), rng.standard_normal(6), 2, 1, 6, "relu6")
    post = make_conv(rng.standard_normal((3, 6, 1, 1)), rng.standard_normal(3))
    x = rng.standard_normal((1, 9, 8, 4)).astype(np.float32)
    block = blocks.Bottleneck(pre, mid, post)
    out = block(x)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, direct(x, pre, mid, post, None, None), rtol=1e-6, atol=1e-6)
