"""conv2d against a direct loop, batch-norm folding against conv-then-BN, activations."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicap.backend import to_numpy
from minicap.encoders.ops import FoldedConv, conv2d, fold_batch_norm, im2col, relu, relu6


def conv_loop(x, w, b, stride, padding, groups):
    """The definition, one output position at a time, in float64."""
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    xpad = np.zeros((n, c, h + 2 * padding, wd + 2 * padding))
    xpad[:, :, padding : padding + h, padding : padding + wd] = x
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, f, ho, wo))
    per_group = f // groups
    for k in range(f):
        g = k // per_group
        for i in range(ho):
            for j in range(wo):
                patch = xpad[:, g * cg : (g + 1) * cg, i * stride : i * stride + kh, j * stride : j * stride + kw]
                out[:, k, i, j] = (patch * w[k]).sum(axis=(1, 2, 3)) + (0.0 if b is None else b[k])
    return out


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cg, fg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * padding), 7))
    wd = draw(st.integers(max(1, kw - 2 * padding), 7))
    n = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return n, groups * cg, h, wd, groups * fg, cg, kh, kw, stride, padding, groups, bias, seed


@settings(max_examples=60, deadline=None)
@given(conv_cases())
def test_conv2d_matches_the_loop_definition(case):
    n, c, h, wd, f, cg, kh, kw, stride, padding, groups, bias, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, wd))
    w = rng.standard_normal((f, cg, kh, kw))
    b = rng.standard_normal(f) if bias else None
    out = conv2d(x, w, b, stride=stride, padding=padding, groups=groups)
    np.testing.assert_allclose(out, conv_loop(x, w, b, stride, padding, groups), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_depthwise_path_matches_the_loop(rng, stride, kernel):
    # groups == C == F takes the tap-by-tap path instead of im2col.
    x = rng.standard_normal((2, 6, 9, 8))
    w = rng.standard_normal((6, 1, kernel, kernel))
    b = rng.standard_normal(6)
    out = conv2d(x, w, b, stride=stride, padding=kernel // 2, groups=6)
    np.testing.assert_allclose(out, conv_loop(x, w, b, stride, kernel // 2, 6), rtol=1e-10, atol=1e-10)


def test_depthwise_with_channel_multiplier_matches_the_loop(rng):
    # groups == C but F = 2C: each channel has two filters (the general path).
    x = rng.standard_normal((1, 3, 6, 6))
    w = rng.standard_normal((6, 1, 3, 3))
    out = conv2d(x, w, None, stride=1, padding=1, groups=3)
    np.testing.assert_allclose(out, conv_loop(x, w, None, 1, 1, 3), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("groups", [1, 2, 8])
def test_conv2d_backends_agree_and_float32_stays_float32(xp, rng, groups):
    x = rng.standard_normal((2, 8, 10, 9)).astype(np.float32)
    w = rng.standard_normal((8, 8 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    out = conv2d(xp.asarray(x), xp.asarray(w), xp.asarray(b), stride=2, padding=1, groups=groups)
    assert isinstance(out, xp.ndarray)
    assert out.dtype == np.float32
    assert out.shape == (2, 8, 5, 5)
    ref = conv_loop(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 2, 1, groups)
    np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-4, atol=1e-4)


def test_im2col_columns_are_receptive_fields(rng):
    x = rng.standard_normal((2, 4, 5, 6))
    cols = im2col(x, 2, 3, stride=2, groups=2)  # Ho = 2, Wo = 2
    assert cols.shape == (2, 2 * 2 * 3, 2 * 2 * 2)
    # group 1, image 1, output position (i, j) = (1, 0): channels 2..3, rows 2..3, columns 0..2
    np.testing.assert_array_equal(cols[1, :, 1 * 4 + 1 * 2 + 0], x[1, 2:4, 2:4, 0:3].ravel())


def test_pointwise_conv_of_a_conv_output_needs_no_copy(rng):
    # 1x1 stride-1 convs are most of the work: conv outputs are laid out so that
    # the next one's columns are the array itself.
    x = rng.standard_normal((2, 3, 5, 6))
    y = conv2d(x, rng.standard_normal((4, 3, 3, 3)), padding=1)
    assert np.shares_memory(im2col(y, 1, 1), y)
    w = rng.standard_normal((5, 4, 1, 1))
    np.testing.assert_allclose(conv2d(y, w), conv_loop(y, w, None, 1, 0, 1), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, message",
    [
        ((3, 4, 4), (2, 3, 3, 3), {}, "x must be"),
        ((1, 3, 4, 4), (2, 3, 3), {}, "w must be"),
        ((1, 3, 4, 4), (2, 2, 3, 3), {}, "needs 3"),
        ((1, 4, 4, 4), (3, 2, 3, 3), {"groups": 2}, "must divide"),
        ((1, 3, 2, 2), (2, 3, 3, 3), {}, "does not fit"),
        ((1, 3, 4, 4), (2, 3, 3, 3), {"stride": 0}, "stride"),
        ((1, 3, 4, 4), (2, 3, 3, 3), {"padding": -1}, "padding"),
        ((1, 3, 4, 4), (2, 3, 3, 3), {"groups": 0}, "groups"),
    ],
)
def test_conv2d_rejects_bad_arguments_clearly(x_shape, w_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv2d(np.zeros(x_shape), np.zeros(w_shape), **kwargs)


def test_conv2d_rejects_integer_input():
    with pytest.raises(ValueError, match="must be floating point, got uint8"):
        conv2d(np.zeros((1, 3, 4, 4), np.uint8), np.zeros((2, 3, 3, 3)))


def test_conv2d_accepts_numpy_integers_as_settings(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((2, 1, 3, 3))
    out = conv2d(x, w, stride=np.int64(2), padding=np.int32(1), groups=np.int64(2))
    np.testing.assert_allclose(out, conv_loop(x, w, None, 2, 1, 2), rtol=1e-10, atol=1e-10)


def test_conv2d_rejects_a_misshaped_bias():
    with pytest.raises(ValueError, match=r"b must have shape \(2,\)"):
        conv2d(np.zeros((1, 3, 4, 4)), np.zeros((2, 3, 3, 3)), np.zeros(3))


@pytest.mark.parametrize("conv_bias", [False, True])
def test_folded_batch_norm_equals_conv_then_batch_norm(rng, conv_bias):
    x = rng.standard_normal((2, 4, 6, 6))
    w = rng.standard_normal((6, 2, 3, 3))
    b = rng.standard_normal(6) if conv_bias else None
    gamma, beta, mean = rng.standard_normal((3, 6))
    var = rng.uniform(0.1, 3.0, 6)
    eps = 1e-3
    y = conv2d(x, w, b, stride=1, padding=1, groups=2)
    expected = gamma[:, None, None] * (y - mean[:, None, None]) / np.sqrt(var[:, None, None] + eps) + beta[:, None, None]
    wf, bf = fold_batch_norm(w, gamma, beta, mean, var, eps, b=b)
    assert wf.dtype == np.float32 and bf.dtype == np.float32
    out = conv2d(x, wf.astype(np.float64), bf.astype(np.float64), stride=1, padding=1, groups=2)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_activations(xp):
    values = np.array([-7.0, -1.0, 0.0, 0.5, 6.0, 6.5, 100.0], dtype=np.float32)
    x = xp.asarray(values)
    np.testing.assert_array_equal(to_numpy(relu(x)), [0, 0, 0, 0.5, 6, 6.5, 100])
    np.testing.assert_array_equal(to_numpy(relu6(x)), [0, 0, 0, 0.5, 6, 6, 6])
    np.testing.assert_array_equal(to_numpy(x), values)  # not in place by default
    relu6(x, inplace=True)
    np.testing.assert_array_equal(to_numpy(x), [0, 0, 0, 0.5, 6, 6, 6])


@pytest.mark.parametrize("activation, clip", [(None, None), ("relu", (0, None)), ("relu6", (0, 6))])
def test_folded_conv_pads_to_same_size_and_applies_its_activation(rng, activation, clip):
    x = rng.standard_normal((1, 2, 7, 7)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 3
    b = rng.standard_normal(4).astype(np.float32)
    out = FoldedConv(w, b, stride=2, activation=activation)(x)
    raw = conv_loop(x, w, b, 2, 1, 1)
    expected = raw if clip is None else np.clip(raw, *clip)
    assert out.shape == (1, 4, 4, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_folded_conv_rejects_an_unknown_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        FoldedConv(np.zeros((1, 1, 1, 1)), np.zeros(1), activation="gelu")
