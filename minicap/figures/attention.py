"""Where the model looked: one panel per generated word, its attention map over the image.

The attention weights live on a coarse grid of Hs x Ws feature locations
(4 x 4 for a 112-pixel image through MobileNet or RegNet). To lay a map over
the image it is upsampled bilinearly, treating each weight as the value at the
centre of the image region its location covers (the "half-pixel centres" rule,
as ``align_corners=False`` in deep-learning libraries): a single hot location
then peaks over its own region, and a constant map stays constant.
"""

import math

import numpy as np

from minicap.argcheck import check_int

from ._layout import (
    add_text,
    check_image,
    check_png_path,
    check_strings,
    draw_image,
    new_figure,
    save_png,
    text_width,
)

ATTENTION_PANEL = 208
ATTENTION_IMAGE = 192
ATTENTION_ROW = 240  # the word (title) row plus the image and padding
_TITLE_SIZE = 10
_ALPHA = 0.6  # opacity of the heat map over the image
END = "<END>"


def _interpolation_weights(size_in, size_out):
    """For each output index: the two input indices and the weight of the second.

    Output pixel i has its centre at (i + 0.5) * size_in / size_out - 0.5 in
    input coordinates; outside the outermost centres it is clamped, so the
    border keeps the edge value instead of fading.
    """
    centre = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    centre = np.clip(centre, 0, size_in - 1)
    low = np.floor(centre).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, centre - low


def upsample_bilinear(attention_map, height, width):
    """Resize one (Hs, Ws) map to (height, width) by bilinear interpolation.

    Returns a float64 (height, width) array; values stay within the map's range.
    """
    attention_map = np.asarray(attention_map, dtype=np.float64)
    if attention_map.ndim != 2 or min(attention_map.shape) < 1:
        raise ValueError(f"attention map must have shape (Hs, Ws), got {attention_map.shape}")
    height = check_int("height", height, low=1)
    width = check_int("width", width, low=1)
    r0, r1, fr = _interpolation_weights(attention_map.shape[0], height)
    c0, c1, fc = _interpolation_weights(attention_map.shape[1], width)
    # Separable: interpolate along rows, then along columns.
    rows = attention_map[r0] * (1 - fr)[:, None] + attention_map[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc)[None, :] + rows[:, c1] * fc[None, :]


def words_to_show(words):
    """The words up to and including the first ``<END>`` (all of them if none)."""
    words = list(words)
    return words[: words.index(END) + 1] if END in words else words


def generated_words(caption, steps):
    """The words of a generated caption and the ``<END>`` that followed them, for ``plot_attention``.

    caption: a string or a list of words; steps: how many attention maps the
    decoder returned (its max_length). A caption that used every step was cut
    there and has no ``<END>`` step to show.
    """
    words = caption.split() if isinstance(caption, str) else list(caption)
    return words + [END] if len(words) < steps else words


def plot_attention(image, words, attention, path, ncols=5):
    """Save a grid: the image, then one panel per word with its attention map overlaid.

    image:     (3, H, W) uint8 RGB, channels first (host NumPy).
    words:     the generated words in order; drawing stops after ``<END>``.
    attention: (T, Hs, Ws) non-negative weights, T >= the number of words shown;
               row t is the map used to produce word t. Reshape a (T, L) array
               to (T, Hs, Ws) first.
    ncols:     panels per row (fewer when there are fewer panels).

    Each map is scaled by its own maximum for display (so a flat map shows as
    evenly lit, not as dark), upsampled bilinearly to the image size, and
    drawn over the image in the "inferno" colour map at 60% opacity.

    With P = 1 + the number of words shown, the PNG is ``min(ncols, P) * 208``
    pixels wide and ``ceil(P / ncols) * 240`` tall. Returns the path.
    """
    path = check_png_path(path)
    image = check_image(image)
    ncols = check_int("ncols", ncols, low=1)
    shown = words_to_show(check_strings(words, "words"))
    if not shown:
        raise ValueError("words is empty; give at least one generated word")
    if type(attention).__module__.startswith("cupy"):
        raise ValueError("attention is a CuPy array; pass host data (minicap.backend.to_numpy(x))")
    attention = np.asarray(attention)
    if attention.ndim != 3 or min(attention.shape) < 1:
        raise ValueError(f"attention must have shape (T, Hs, Ws), got {attention.shape}; reshape (T, L) maps first")
    if attention.shape[0] < len(shown):
        raise ValueError(f"attention has {attention.shape[0]} steps but {len(shown)} words are shown; give one map per word")
    if not np.issubdtype(attention.dtype, np.number) or not np.all(np.isfinite(attention)) or np.any(attention < 0):
        raise ValueError("attention must hold finite, non-negative numbers (softmax weights)")

    panels = [("image", None)] + [(word, attention[t]) for t, word in enumerate(shown)]
    cols = min(ncols, len(panels))
    width = cols * ATTENTION_PANEL
    height = math.ceil(len(panels) / cols) * ATTENTION_ROW
    fig = new_figure(width, height)
    _, img_h, img_w = image.shape
    inset = (ATTENTION_PANEL - ATTENTION_IMAGE) // 2
    for k, (word, weights) in enumerate(panels):
        row, col = divmod(k, cols)
        left, top = col * ATTENTION_PANEL, row * ATTENTION_ROW
        _draw_title(fig, word, left + ATTENTION_PANEL / 2, top + 10)
        ax = draw_image(fig, image, left + inset, top + 40, ATTENTION_IMAGE)
        if weights is not None:
            peak = float(weights.max())
            heat = upsample_bilinear(weights / peak if peak > 0 else weights, img_h, img_w)
            ax.imshow(heat, cmap="inferno", alpha=_ALPHA, vmin=0.0, vmax=1.0, interpolation="nearest")
    return save_png(fig, path)


def _draw_title(fig, word, centre, top):
    """The word, centred over its panel, shrunk if it would be wider than the image."""
    size = _TITLE_SIZE
    measured = text_width(fig, word, size, "bold")
    if measured > ATTENTION_IMAGE:
        size = size * ATTENTION_IMAGE / measured
    add_text(fig, centre - text_width(fig, word, size, "bold") / 2, top, word, size=size, weight="bold")
