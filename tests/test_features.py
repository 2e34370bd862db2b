"""The grid feature extractor: known values by hand, both backends, and a probe."""

import math

import numpy as np
import pytest

from minicap.data.features import (appearance_features, feature_dims, fit_standardizer, global_features,
                                   position_channels, spatial_features, standardize)
from minicap.shapes.scenes import F, generate_scenes

DIMS = feature_dims()
ORIENT, ENERGY, HUE, COVER = 0, DIMS["orientation"], DIMS["orientation"] + DIMS["energy"], \
    DIMS["orientation"] + DIMS["energy"] + DIMS["hue"]


def test_dimensions():
    assert DIMS == {"orientation": 128, "energy": 16, "hue": 12, "coverage": 16}
    images = np.zeros((2, 3, 112, 112), dtype=np.uint8)
    out = appearance_features(images)
    assert out.shape == (2, 172, 4, 4) and out.dtype == np.float32
    assert appearance_features(images, grid=2, subgrid=2, hue_bins=6).shape == (2, 8 * 4 + 4 + 6 + 4, 2, 2)


def test_flat_image_has_no_features():
    images = np.full((1, 3, 112, 112), 128, dtype=np.uint8)
    assert not appearance_features(images).any()


def test_vertical_edge_known_values():
    """Black left half, white right half: worked out by hand.

    Central differences give gx = 255 in each channel on columns 55 and 56
    (one on each side of the cell border at 56) and gy = 0, so Jxx = 3 * 255^2,
    u = Jxx, v = 0 there. A 7x7 sub-cell holding one such column has mean
    u = 3 * 255^2 / 7, i.e. 3/7 after scaling by 1/255^2. Bin 0 (angle 0) takes
    all of it, bins 1 and 7 (22.5 degrees away) take cos(45) of it, energy
    equals u; everything is square-rooted.
    """
    images = np.zeros((1, 3, 112, 112), dtype=np.uint8)
    images[..., 56:] = 255
    out = appearance_features(images)[0]
    expected = np.zeros_like(out)
    for cell_col, sub_col in ((1, 3), (2, 0)):
        for sub_row in range(4):
            sub = sub_row * 4 + sub_col
            expected[ORIENT + 0 * 16 + sub, :, cell_col] = math.sqrt(3 / 7)
            expected[ORIENT + 1 * 16 + sub, :, cell_col] = math.sqrt(math.cos(math.pi / 4) * 3 / 7)
            expected[ORIENT + 7 * 16 + sub, :, cell_col] = math.sqrt(math.cos(math.pi / 4) * 3 / 7)
            expected[ENERGY + sub, :, cell_col] = math.sqrt(3 / 7)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_horizontal_edge_uses_the_opposite_bin():
    images = np.zeros((1, 3, 112, 112), dtype=np.uint8)
    images[..., 56:, :] = 255
    out = appearance_features(images)[0]
    # gradient along y: u = -Jyy, so bin 4 (90 degrees) holds it, bin 0 nothing
    assert out[ORIENT + 4 * 16:ORIENT + 5 * 16].max() == pytest.approx(math.sqrt(3 / 7), rel=1e-6)
    assert out[ORIENT:ORIENT + 16].max() == 0.0


@pytest.mark.parametrize("rgb, hue_bin", [((255, 0, 0), 0), ((0, 255, 0), 4), ((0, 0, 255), 8),
                                          ((255, 255, 0), 2), ((0, 255, 255), 6), ((255, 0, 255), 10)])
def test_pure_colours_fill_their_hue_bin(rgb, hue_bin):
    """A cell of a pure colour: chroma 255, weight (255 - 40) / 255 per pixel, its hue
    is 30 degrees per bin; the grey rest of the image casts no vote."""
    images = np.full((1, 3, 112, 112), 128, dtype=np.uint8)
    images[0, :, 28:56, 56:84] = np.array(rgb, dtype=np.uint8)[:, None, None]
    out = appearance_features(images)[0]
    weight = (255 - 40) / 255
    hue = np.zeros((12, 4, 4), dtype=np.float32)
    hue[hue_bin, 1, 2] = weight  # mean chroma vector length 255 * weight, / 255
    # compare before the square root, which magnifies float rounding next to a bin centre
    np.testing.assert_allclose(out[HUE:HUE + 12] ** 2, hue, atol=1e-5)
    cover = np.zeros((16, 4, 4), dtype=np.float32)
    cover[:, 1, 2] = math.sqrt(weight)
    np.testing.assert_allclose(out[COVER:COVER + 16], cover, atol=1e-6)


def test_backends_agree(xp, rng):
    images = rng.integers(0, 256, size=(3, 3, 112, 112), dtype=np.uint8)
    expected = appearance_features(images)
    got = appearance_features(xp.asarray(images))
    assert isinstance(got, xp.ndarray)
    np.testing.assert_allclose(got.get() if hasattr(got, "get") else got, expected, rtol=1e-4, atol=1e-5)


def test_position_channels_and_layouts(xp):
    pos = position_channels(2, 4, xp)
    assert pos.shape == (2, 8, 4, 4)
    for r in range(4):
        for c in range(4):
            onehot = np.zeros(8)
            onehot[r], onehot[4 + c] = 1, 1
            np.testing.assert_array_equal(np.asarray(pos[1, :, r, c].tolist()), onehot)
    app = xp.asarray(np.random.default_rng(1).random((2, 5, 4, 4), dtype=np.float32))
    assert spatial_features(app).shape == (2, 13, 4, 4)
    np.testing.assert_allclose(np.asarray(global_features(app).tolist()),
                               np.asarray(app.tolist()).reshape(2, 5, 16).mean(axis=2), rtol=1e-6)


def test_standardizer_known_values(rng):
    x = rng.normal(3.0, 2.0, size=(50, 4, 2, 2)).astype(np.float32)
    x[:, 2] = 7.0  # a constant channel
    mean, std = fit_standardizer(x)
    flat = x.transpose(1, 0, 2, 3).reshape(4, -1).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(std[[0, 1, 3]], flat.std(axis=1)[[0, 1, 3]], rtol=1e-4)
    assert std[2] == 1.0 and mean.dtype == std.dtype == np.float32
    z = standardize(x, mean, std)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3))[[0, 1, 3]], 1.0, rtol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        standardize(x, mean[:3], std[:3])
    with pytest.raises(ValueError, match="N >= 1"):
        fit_standardizer(x[:0])


def test_standardizer_sees_constant_channels_of_any_magnitude(rng):
    # Channels constant over the training split, at magnitudes where the one-pass
    # E[x^2] - E[x]^2 in float32 squares leaves noise well above the 1e-6 floor:
    # they must get std 1, not a tiny noise std that blows new values up.
    x = np.empty((3, 4, 2, 2), np.float32)
    for k, value in enumerate([0.1, 37.3, 1234.5, -98765.4]):
        x[:, k] = value
    mean, std = fit_standardizer(x)
    np.testing.assert_array_equal(std, np.ones(4, np.float32))
    np.testing.assert_allclose(mean, [0.1, 37.3, 1234.5, -98765.4], rtol=1e-6)
    one = fit_standardizer(rng.normal(5.0, 3.0, size=(1, 6, 4, 4)).astype(np.float32) + 100.0)[1]
    new = standardize(rng.normal(105.0, 3.0, size=(2, 6, 4, 4)).astype(np.float32), *fit_standardizer(
        np.repeat(rng.normal(105.0, 3.0, size=(1, 6, 1, 1)), 4, axis=2).repeat(4, axis=3).astype(np.float32)))
    assert np.all(one > 1e-3)  # one scene still has a spread over its 16 locations
    assert np.abs(new).max() < 100  # no channel standardised by rounding noise


@pytest.mark.parametrize("images, match", [
    (np.zeros((2, 112, 112), dtype=np.uint8), "N, 3, H, W"),
    (np.zeros((2, 3, 112, 112), dtype=np.float32), "uint8"),
    (np.zeros((2, 3, 100, 112), dtype=np.uint8), "multiples"),
    ([[1, 2]], "N, 3, H, W"),
])
def test_bad_images_are_clear_errors(images, match):
    with pytest.raises(ValueError, match=match):
        appearance_features(images)


def test_features_tell_shape_colour_and_size():
    """A ridge-regression probe on the object's own cell, trained on 600
    scenes and tested on 300 others, predicts each attribute far above chance."""
    images, objects = generate_scenes(900, seed=21)
    feats = appearance_features(images)
    mean, std = fit_standardizer(feats[:600])
    feats = standardize(feats, mean, std)

    def cells(lo, hi):
        x, y = [], []
        for n in range(lo, hi):
            for o in objects[n]:
                if o[F["present"]]:
                    x.append(feats[n, :, o[F["row"]], o[F["col"]]])
                    y.append(o[[F["shape"], F["colour"], F["size"]]])
        return np.array(x, dtype=np.float64), np.array(y)

    x_train, y_train = cells(0, 600)
    x_test, y_test = cells(600, 900)
    add_bias = lambda x: np.c_[x, np.ones(len(x))]  # noqa: E731
    for column, classes, floor in ((0, 5, 0.9), (1, 6, 0.98), (2, 2, 0.98)):
        xb = add_bias(x_train)
        w = np.linalg.solve(xb.T @ xb + 1.0 * np.eye(xb.shape[1]), xb.T @ np.eye(classes)[y_train[:, column]])
        accuracy = np.mean((add_bias(x_test) @ w).argmax(axis=1) == y_test[:, column])
        assert accuracy > floor, (column, accuracy)
