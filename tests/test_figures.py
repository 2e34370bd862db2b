"""Figures: each renders from tiny synthetic inputs to a PNG of the documented
pixel size, bad inputs raise ValueError, writes are atomic, text stays inside
its panel, and the attention upsampling is right on hand-checked examples."""

import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicap.figures import (
    moving_average,
    plot_attention,
    plot_beam_search,
    plot_caption_comparison,
    plot_captions,
    plot_loss_curves,
    upsample_bilinear,
)
from minicap.figures.attention import words_to_show

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from the PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def png_pixels(path):
    """The PNG as an (height, width, channels) float array in [0, 1]."""
    from matplotlib.image import imread

    return imread(path)


def images(rng, n, size=112):
    return rng.integers(0, 256, size=(n, 3, size, size), dtype=np.uint8)


# Documented layout numbers (module docstrings): caption panels are 288 px wide,
# rows are 256 + 32 + 20 * lines tall; attention panels 208 x 240; loss 768 x 448.
def caption_row(lines):
    return 256 + 32 + 20 * lines


# ---------------------------------------------------------------- loss curves


@pytest.mark.parametrize(
    "val, per_epoch",
    [(None, None), ([2.0, 1.5, 1.2], None), ([2.0, 1.5, 1.2], 10)],
    ids=["train-only", "val-inferred-epochs", "val-given-epochs"],
)
def test_loss_curves_png_of_documented_size(tmp_path, rng, val, per_epoch):
    loss = list(3.0 * np.exp(-np.arange(30) / 10) + 0.1 * rng.random(30))
    target = tmp_path / "new" / "folder" / "loss.png"
    out = plot_loss_curves(loss, target, val_loss_history=val, iterations_per_epoch=per_epoch)
    assert out == target and target.stat().st_size > 0
    assert png_size(target) == (768, 448)


def test_loss_curves_single_iteration(tmp_path):
    assert png_size(plot_loss_curves([2.5], tmp_path / "one.png")) == (768, 448)


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"loss_history": []}, "loss_history must be a non-empty"),
        ({"loss_history": [[1.0, 2.0], [3.0, 4.0]]}, "loss_history must be a non-empty"),
        ({"loss_history": ["a", "b"]}, "loss_history must be a 1-D list of numbers"),
        ({"loss_history": [1.0, 2.0], "val_loss_history": [[1.0]]}, "val_loss_history must be"),
        ({"loss_history": [1.0, 2.0], "val_loss_history": [1.0], "iterations_per_epoch": 0}, "iterations_per_epoch"),
        ({"loss_history": [1.0, 2.0], "val_loss_history": [1.0], "iterations_per_epoch": 1.5}, "iterations_per_epoch"),
        ({"loss_history": [1.0, 2.0], "val_loss_history": [1.0], "iterations_per_epoch": True}, "iterations_per_epoch"),
    ],
)
def test_loss_curves_bad_inputs(tmp_path, kwargs, named):
    with pytest.raises(ValueError, match=named):
        plot_loss_curves(path=tmp_path / "bad.png", **kwargs)
    assert not (tmp_path / "bad.png").exists()


def test_moving_average_hand_example():
    np.testing.assert_allclose(moving_average([1.0, 2.0, 3.0, 4.0], 2), [1.0, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(moving_average([4.0, 0.0, 2.0], 5), [4.0, 2.0, 2.0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), st.integers(1, 50))
def test_moving_average_matches_a_loop(values, window):
    expected = [np.mean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
    np.testing.assert_allclose(moving_average(values, window), expected, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------- captions


def test_captions_grid_size(tmp_path, rng):
    # Short captions fit on one line each: lines = title + pred + 2 refs = 4.
    refs = [["a red circle", "a circle"], ["a blue square", "a square"], ["a cross", "one cross"]]
    out = plot_captions(images(rng, 3), ["a red circle", "a square", "a cross"], refs,
                        tmp_path / "c.png", titles=["a", "b", "c"], ncols=2)
    assert png_size(out) == (2 * 288, 2 * caption_row(4))


def test_captions_fewer_images_than_columns(tmp_path, rng):
    out = plot_captions(images(rng, 1), ["a cat"], [["a cat"]], tmp_path / "c.png", ncols=4)
    assert png_size(out) == (288, caption_row(2))


def test_long_caption_wraps_into_more_lines(tmp_path, rng):
    long = " ".join(["rectangle"] * 30)
    out = plot_captions(images(rng, 2), ["short", long], [["x"], ["y"]], tmp_path / "c.png", ncols=2)
    width, height = png_size(out)
    assert width == 2 * 288
    extra = height - caption_row(2)
    # 30 nine-letter words cannot fit on one 272-pixel line, and whole lines are added.
    assert extra >= 2 * 20 and extra % 20 == 0


def test_comparison_size(tmp_path, rng):
    train = (images(rng, 3), ["a", "b", "c"], [["a"], ["b"], ["c"]])
    test = (images(rng, 1), ["d"], [["d", "dd", "ddd"]], ["test #0"])
    out = plot_caption_comparison(train, test, tmp_path / "cmp.png", labels=("train", "val"), ncols=2)
    # train: 2 columns, 2 rows; test: 1 column, 1 row; the fullest panel has
    # title + pred + 3 refs = 5 lines; a 40-pixel heading above both blocks.
    assert png_size(out) == (2 * 288 + 32 + 1 * 288, 40 + 2 * caption_row(5))


def test_text_stays_inside_its_panel(tmp_path, rng):
    """The white strips between panels and between blocks stay white."""
    wide = " ".join(["mmmmwwwwmmmm"] * 6) + " " + "W" * 60
    gray = np.full((4, 3, 64, 64), 128, dtype=np.uint8)
    block = (gray, [wide] * 4, [[wide, "WWW MMM " * 10]] * 4, ["M" * 80] * 4)
    out = plot_caption_comparison(block, block, tmp_path / "cmp.png", ncols=2)
    pixels = png_pixels(out)[..., :3]
    width = png_size(out)[0]
    block_width = 2 * 288
    assert width == 2 * block_width + 32
    strips = [slice(288 - 6, 288 + 6), slice(block_width + 2, block_width + 30),
              slice(block_width + 32 + 288 - 6, block_width + 32 + 288 + 6), slice(width - 6, width)]
    for strip in strips:
        assert pixels[:, strip].min() > 0.99, f"text drawn in the gap at columns {strip}"
    # ...and the text was really drawn (dark pixels inside the panels).
    assert pixels[:, 8:280].min() < 0.2


@pytest.mark.parametrize(
    "args, named",
    [
        (lambda im: (im[0], ["a"], [["a"]]), r"images must have shape \(N, 3, H, W\)"),  # one image, not a batch
        (lambda im: (im.astype(np.float32), ["a", "b"], [["a"], ["b"]]), r"images\[0\] must be uint8"),
        (lambda im: (im.transpose(0, 2, 3, 1), ["a", "b"], [["a"], ["b"]]), "channels first"),
        (lambda im: (im, ["a"], [["a"], ["b"]]), "generated has 1 captions for 2 images"),
        (lambda im: (im, "ab", [["a"], ["b"]]), "generated must be a list of strings"),
        (lambda im: (im, ["a", 3], [["a"], ["b"]]), r"generated\[1\] must be a string"),  # ids, not words
        (lambda im: (im, ["a", "b"], [["a"]]), "references must be a list of 2 lists"),
        (lambda im: (im, ["a", "b"], ["a", "b"]), r"references\[0\] must be a list of strings"),
    ],
)
def test_captions_bad_inputs(tmp_path, rng, args, named):
    with pytest.raises(ValueError, match=named):
        plot_captions(*args(images(rng, 2, 16)), tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_captions_bad_titles_and_columns(tmp_path, rng):
    ims = images(rng, 2, 16)
    with pytest.raises(ValueError, match="titles"):
        plot_captions(ims, ["a", "b"], [["a"], ["b"]], tmp_path / "c.png", titles=["only one"])
    with pytest.raises(ValueError, match="ncols"):
        plot_captions(ims, ["a", "b"], [["a"], ["b"]], tmp_path / "c.png", ncols=0)


def test_comparison_bad_blocks(tmp_path, rng):
    good = (images(rng, 1, 16), ["a"], [["a"]])
    with pytest.raises(ValueError, match="block"):
        plot_caption_comparison(good, (images(rng, 1, 16), ["a"]), tmp_path / "c.png")
    with pytest.raises(ValueError, match="labels"):
        plot_caption_comparison(good, good, tmp_path / "c.png", labels=("only",))
    with pytest.raises(ValueError, match="test: generated"):
        plot_caption_comparison(good, (images(rng, 1, 16), ["a", "b"], [["a"]]), tmp_path / "c.png")


# ---------------------------------------------------------------- beam search


def test_beam_search_size(tmp_path, rng):
    out = plot_beam_search(images(rng, 1)[0], ["a red circle", "a circle", "red"], [-1.5, -2.25, -3.0],
                           tmp_path / "beam.png", title="beam 3")
    assert png_size(out) == (512, caption_row(1 + 3))


def test_beam_search_accepts_numpy_scores(tmp_path, rng):
    out = plot_beam_search(images(rng, 1)[0], ["a", "b"], np.array([-1.0, -2.0], dtype=np.float32), tmp_path / "b.png")
    assert png_size(out) == (512, caption_row(2))


@pytest.mark.parametrize(
    "captions, scores, named",
    [
        ([], [], "got 0 captions, 0 scores"),
        (["a", "b"], [-1.0], "got 2 captions, 1 scores"),
        (["a"], ["high"], r"scores\[0\] must be a number"),
        ("a", [-1.0], "captions must be a list of strings"),
        (["a"], -1.0, "scores must be a list of numbers"),
    ],
)
def test_beam_search_bad_inputs(tmp_path, rng, captions, scores, named):
    with pytest.raises(ValueError, match=named):
        plot_beam_search(images(rng, 1, 16)[0], captions, scores, tmp_path / "b.png")


def test_beam_search_bad_image(tmp_path, rng):
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        plot_beam_search(images(rng, 2, 16), ["a"], [-1.0], tmp_path / "b.png")


# ------------------------------------------------------------------ attention


def test_words_to_show_stops_after_end():
    assert words_to_show(["a", "cat", "<END>", "<NULL>", "x"]) == ["a", "cat", "<END>"]
    assert words_to_show(["a", "cat"]) == ["a", "cat"]


@pytest.mark.parametrize("ncols, expected", [(4, (4 * 208, 2 * 240)), (10, (6 * 208, 240)), (1, (208, 6 * 240))])
def test_attention_size(tmp_path, rng, ncols, expected):
    words = ["a", "red", "circle", "left", "<END>", "<NULL>", "<NULL>"]
    attention = rng.random((7, 4, 4))
    out = plot_attention(images(rng, 1)[0], words, attention, tmp_path / "att.png", ncols=ncols)
    # Panels: the plain image, then a, red, circle, left, <END> = 6.
    assert png_size(out) == expected


def test_attention_overlay_sits_over_the_hot_location(tmp_path):
    """A map hot in the top-right cell lights the top-right of its panel, not a transposed corner."""
    gray = np.full((3, 112, 112), 128, dtype=np.uint8)
    hot = np.zeros((1, 4, 4))
    hot[0, 0, 3] = 1.0
    out = plot_attention(gray, ["word"], hot, tmp_path / "att.png")
    pixels = png_pixels(out)[..., :3].mean(axis=2)
    # Second panel (after the plain image): image box at x 208 + 8, y 40, 192 px square.
    box = pixels[40 : 40 + 192, 216 : 216 + 192]
    quarter = 48
    top_right = box[:quarter, -quarter:].mean()
    others = [box[:quarter, :quarter].mean(), box[-quarter:, :quarter].mean(), box[-quarter:, -quarter:].mean()]
    assert top_right > max(others) + 0.2
    # The plain image panel is untouched grey.
    assert abs(pixels[40 + 96, 8 + 96] - 128 / 255) < 0.02


def test_attention_long_word_stays_over_its_panel(tmp_path):
    gray = np.full((3, 32, 32), 128, dtype=np.uint8)
    out = plot_attention(gray, ["a", "supercalifragilisticexpialidocious", "b"], np.ones((3, 2, 2)), tmp_path / "a.png")
    pixels = png_pixels(out)[:40, :, :3]  # the title row
    for boundary in (208, 2 * 208, 3 * 208):
        assert pixels[:, boundary - 6 : boundary + 6].min() > 0.99
    assert pixels[:, 2 * 208 : 3 * 208].min() < 0.3  # the long word is drawn


@pytest.mark.parametrize(
    "words, attention, named",
    [
        (["a", "b"], np.ones((2, 16)), r"attention must have shape \(T, Hs, Ws\)"),  # (T, L) maps
        (["a", "b", "c"], np.ones((2, 4, 4)), "attention has 2 steps but 3 words"),
        (["a"], -np.ones((1, 4, 4)), "finite, non-negative"),  # negative weights
        (["a"], np.full((1, 4, 4), np.nan), "finite, non-negative"),
        ([], np.ones((1, 4, 4)), "words is empty"),
        ("ab", np.ones((2, 4, 4)), "words must be a list of strings"),
    ],
)
def test_attention_bad_inputs(tmp_path, rng, words, attention, named):
    with pytest.raises(ValueError, match=named):
        plot_attention(images(rng, 1, 16)[0], words, attention, tmp_path / "att.png")


def test_attention_bad_image(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        plot_attention(np.zeros((3, 8, 8), dtype=np.float64), ["a"], np.ones((1, 2, 2)), tmp_path / "a.png")


# ------------------------------------------------------------ the upsampling


def test_upsample_linear_ramp_by_hand():
    # Output centres of a 2 -> 4 resize sit at input coordinates -0.25, 0.25,
    # 0.75, 1.25, clamped to 0, 0.25, 0.75, 1. Bilinear interpolation of the
    # linear map v(y, x) = 2y + x is exact, so the result is 2 * y_i + x_j.
    grid = np.array([0.0, 0.25, 0.75, 1.0])
    expected = 2 * grid[:, None] + grid[None, :]
    np.testing.assert_allclose(upsample_bilinear(np.array([[0.0, 1.0], [2.0, 3.0]]), 4, 4), expected)


def test_upsample_constant_stays_constant():
    np.testing.assert_allclose(upsample_bilinear(np.full((4, 4), 0.0625), 112, 112), 0.0625)


@pytest.mark.parametrize("row, col", [(0, 0), (1, 2), (3, 3), (2, 0)])
def test_upsample_hot_cell_peaks_over_its_region(row, col):
    hot = np.zeros((4, 4))
    hot[row, col] = 1.0
    up = upsample_bilinear(hot, 112, 112)
    peak_row, peak_col = np.unravel_index(np.argmax(up), up.shape)
    assert 28 * row <= peak_row < 28 * (row + 1) and 28 * col <= peak_col < 28 * (col + 1)
    # Far from the cell (more than one cell away) nothing leaks in.
    far = np.abs(np.arange(112)[:, None] // 28 - row) + np.abs(np.arange(112)[None, :] // 28 - col) >= 3
    assert np.all(up[far] == 0)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_upsample_matches_separable_np_interp(hs, ws, height, width, seed):
    """Against np.interp row by row then column by column (it clamps at the ends too)."""
    grid = np.random.default_rng(seed).random((hs, ws))
    ys = (np.arange(height) + 0.5) * hs / height - 0.5
    xs = (np.arange(width) + 0.5) * ws / width - 0.5
    across = np.stack([np.interp(xs, np.arange(ws), grid[r]) for r in range(hs)])
    expected = np.stack([np.interp(ys, np.arange(hs), across[:, c]) for c in range(width)], axis=1)
    got = upsample_bilinear(grid, height, width)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert got.min() >= grid.min() - 1e-12 and got.max() <= grid.max() + 1e-12


def test_upsample_bad_inputs():
    with pytest.raises(ValueError, match=r"attention map must have shape \(Hs, Ws\)"):
        upsample_bilinear(np.ones((2, 2, 2)), 4, 4)
    with pytest.raises(ValueError, match="height must be a positive integer"):
        upsample_bilinear(np.ones((2, 2)), 0, 4)


# -------------------------------------------------------- paths and atomicity


def _all_figures(tmp, rng, name):
    ims = images(rng, 2, 16)
    yield lambda: plot_loss_curves([1.0, 0.5], tmp / name)
    yield lambda: plot_captions(ims, ["a", "b"], [["a"], ["b"]], tmp / name)
    yield lambda: plot_caption_comparison((ims, ["a", "b"], [["a"], ["b"]]), (ims, ["a", "b"], [["a"], ["b"]]), tmp / name)
    yield lambda: plot_attention(ims[0], ["a"], np.ones((1, 2, 2)), tmp / name)
    yield lambda: plot_beam_search(ims[0], ["a"], [-1.0], tmp / name)


def test_every_figure_refuses_a_non_png_path(tmp_path, rng):
    for draw in _all_figures(tmp_path, rng, "figure.jpg"):
        with pytest.raises(ValueError, match=r"\.png"):
            draw()
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, rng, monkeypatch):
    from matplotlib.figure import Figure

    target = tmp_path / "fig.png"
    target.write_bytes(b"old")

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    for draw in _all_figures(tmp_path, rng, "fig.png"):
        with pytest.raises(OSError, match="disk full"):
            draw()
        assert target.read_bytes() == b"old"
        assert os.listdir(tmp_path) == ["fig.png"]


def test_rewrite_replaces_the_file_and_leaves_no_temp(tmp_path, rng):
    target = tmp_path / "fig.png"
    target.write_bytes(b"old")
    for draw in _all_figures(tmp_path, rng, "fig.png"):
        draw()
        assert target.read_bytes()[:8] == PNG_SIGNATURE
        assert os.listdir(tmp_path) == ["fig.png"]


def test_figures_never_import_pyplot(tmp_path):
    """No GUI backend: drawing every figure leaves matplotlib.pyplot unimported."""
    code = (
        "import sys, numpy as np\n"
        "from minicap.figures import plot_attention, plot_loss_curves\n"
        f"plot_loss_curves([1.0, 0.5], {str(tmp_path / 'a.png')!r})\n"
        f"plot_attention(np.zeros((3, 8, 8), np.uint8), ['a'], np.ones((1, 2, 2)), {str(tmp_path / 'b.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert png_size(tmp_path / "a.png") == (768, 448)
    assert math.prod(png_size(tmp_path / "b.png")) == 2 * 208 * 240


# ------------------------------------------------- review fixes: loss curves


def test_moving_average_skips_non_finite_values():
    # Each window averages its finite values only: a NaN spoils nothing, it is left out.
    np.testing.assert_array_equal(moving_average([1.0, np.nan, 3.0, 5.0], 2), [1.0, 1.0, 3.0, 4.0])
    np.testing.assert_array_equal(moving_average([1.0, np.inf, 2.0, 3.0], 2), [1.0, 1.0, 2.0, 2.5])
    # a window with no finite value is NaN (a gap in the line), and later windows recover
    np.testing.assert_array_equal(moving_average([np.nan, -np.inf, 4.0], 2), [np.nan, np.nan, 4.0])
    loss = np.linspace(5, 1, 100)
    loss[10] = np.nan
    smoothed = moving_average(loss, 5)
    assert not np.isnan(smoothed).any()  # was 90 NaNs: everything after step 10
    np.testing.assert_allclose(smoothed[12], np.mean(loss[[8, 9, 11, 12]]), rtol=1e-12)
    np.testing.assert_allclose(smoothed[20], np.mean(loss[16:21]), rtol=1e-12)


def test_moving_average_of_non_finite_values_warns_nothing():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old cumulative sum gave "invalid value encountered in subtract"
        moving_average([1.0, np.inf, 2.0, 3.0, -np.inf, np.nan], 3)


@pytest.mark.parametrize("empty", [[], np.array([]), ()])
def test_empty_validation_history_is_drawn_like_none(tmp_path, empty):
    # A run without a val split has val_loss_history == [] (the solver allows it).
    loss = [3.0, 2.5, 2.0, 1.8]
    plot_loss_curves(loss, tmp_path / "none.png")
    out = plot_loss_curves(loss, tmp_path / "empty.png", val_loss_history=empty)
    assert png_size(out) == (768, 448)
    np.testing.assert_array_equal(png_pixels(out), png_pixels(tmp_path / "none.png"))
