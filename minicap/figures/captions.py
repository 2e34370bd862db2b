"""Captions under images: the result grid, train-vs-test blocks, beam search n-best.

Every image sits in a panel ``PANEL`` = 288 pixels wide, centred in a
``IMAGE`` = 256 pixel square, with its text under it in lines of ``LINE`` =
20 pixels, wrapped to the panel's width as measured in the font (so no line
spills into the next panel). A row of panels is as tall as its fullest panel
needs, and all rows are equally tall::

    row height = IMAGE + 32 + LINE * lines

where ``lines`` is the most text lines any panel in the figure has: one for its
title (if titles are given; a title too wide is cut with an ellipsis), the
wrapped generated caption, and each wrapped reference.
"""

import math
import numbers

from minicap.argcheck import check_int

from ._layout import (
    FONT_SIZE,
    LINE,
    add_text,
    check_image,
    check_images,
    check_png_path,
    check_strings,
    draw_image,
    new_figure,
    save_png,
    truncate,
    wrap,
)

PANEL = 288
IMAGE = 256
HEADING = 40  # the label row above each block of plot_caption_comparison
BLOCK_GAP = 32  # white space between the blocks of plot_caption_comparison
BEAM_WIDTH = 512
_TEXT_INSET = 8  # text starts this far into its panel and stops as far before its end
_PAD = 12  # above the title/image and below the last line
_GAP = 8  # between the image and its text

_STYLES = {"title": ("bold", "black"), "pred": ("bold", "#08306b"), "ref": ("normal", "#404040")}


def _check_block(images, generated, references, titles, where):
    """Validate one block of captioned images; returns it as host data and lists."""
    images = check_images(images, f"{where}images")
    n = images.shape[0]
    generated = check_strings(generated, f"{where}generated")
    if len(generated) != n:
        raise ValueError(f"{where}generated has {len(generated)} captions for {n} images; give one per image")
    if isinstance(references, str) or not hasattr(references, "__len__") or len(references) != n:
        raise ValueError(f"{where}references must be a list of {n} lists of strings (one list per image)")
    references = [check_strings(refs, f"{where}references[{i}]") for i, refs in enumerate(references)]
    if titles is not None:
        titles = check_strings(titles, f"{where}titles")
        if len(titles) != n:
            raise ValueError(f"{where}titles has {len(titles)} entries for {n} images; give one per image or None")
    return images, generated, references, titles


def _styled_lines(fig, texts, width):
    """Wrap each (text, style) pair to ``width`` pixels; a list of (line, style)."""
    lines = []
    for text, style in texts:
        lines += [(line, style) for line in wrap(fig, text, width, weight=_STYLES[style][0])]
    return lines


def _draw_panel(fig, left, top, image, title, lines):
    """One image with its title above and its caption lines below."""
    y = top + _PAD
    if title is not None:
        _write(fig, left + _TEXT_INSET, y, truncate(fig, title, PANEL - 2 * _TEXT_INSET, weight="bold"), "title")
        y += LINE
    draw_image(fig, image, left + (PANEL - IMAGE) // 2, y, IMAGE)
    y += IMAGE + _GAP
    for text, style in lines:
        _write(fig, left + _TEXT_INSET, y, text, style)
        y += LINE


def _write(fig, left, top, text, style):
    weight, color = _STYLES[style]
    add_text(fig, left, top, text, size=FONT_SIZE, weight=weight, color=color)


def _render_blocks(blocks, ncols, path, headed):
    """Lay out blocks of (label, images, generated, references, titles) side by side."""
    fig = new_figure(1, 1)  # resized once the text is measured
    laid_out = []
    most_lines = 0
    for label, images, generated, references, titles in blocks:
        panels = []
        for i in range(images.shape[0]):
            title = None if titles is None else titles[i]
            texts = [(f"pred: {generated[i]}", "pred")] + [(f"ref: {r}", "ref") for r in references[i]]
            lines = _styled_lines(fig, texts, PANEL - 2 * _TEXT_INSET)
            most_lines = max(most_lines, len(lines) + (title is not None))
            panels.append((images[i], title, lines))
        laid_out.append((label, min(ncols, len(panels)), panels))
    row_height = IMAGE + 2 * _PAD + _GAP + LINE * most_lines
    heading = HEADING if headed else 0
    width = sum(cols * PANEL for _, cols, _ in laid_out) + BLOCK_GAP * (len(laid_out) - 1)
    height = heading + max(math.ceil(len(panels) / cols) for _, cols, panels in laid_out) * row_height
    fig.set_size_inches(width / fig.dpi, height / fig.dpi)

    left = 0
    for label, cols, panels in laid_out:
        if headed:
            label = truncate(fig, label, cols * PANEL - 2 * _TEXT_INSET, size=12, weight="bold")
            add_text(fig, left + _TEXT_INSET, (HEADING - 16) // 2, label, size=12, weight="bold")
        for k, (image, title, lines) in enumerate(panels):
            row, col = divmod(k, cols)
            _draw_panel(fig, left + col * PANEL, heading + row * row_height, image, title, lines)
        left += cols * PANEL + BLOCK_GAP
    return save_png(fig, path)


def plot_captions(images, generated, references, path, titles=None, ncols=4):
    """Save a grid of images, each with its generated caption and references under it.

    images:     (N, 3, H, W) uint8 RGB, channels first (host NumPy).
    generated:  N strings, the model's captions ("pred:" lines, bold).
    references: N lists of strings, the ground-truth captions ("ref:" lines).
    titles:     optional N strings drawn above the images (e.g. "val #12").
    ncols:      panels per row (fewer when there are fewer images).

    The PNG is ``min(ncols, N) * 288`` pixels wide and
    ``ceil(N / ncols) * row height`` tall (see the module docstring).
    Returns the path written, as a ``pathlib.Path``.
    """
    path = check_png_path(path)
    ncols = check_int("ncols", ncols, low=1)
    block = _check_block(images, generated, references, titles, "")
    return _render_blocks([("", *block)], ncols, path, headed=False)


def plot_caption_comparison(train, test, path, labels=("train", "test"), ncols=2):
    """Save two labelled blocks of captioned images side by side (the seed project's result figure).

    train, test: each a tuple ``(images, generated, references)`` or
                 ``(images, generated, references, titles)`` as for
                 ``plot_captions``; the blocks may hold different numbers of images.
    labels:      the two headings (e.g. ``("train", "validation")``).
    ncols:       panels per row inside each block.

    The PNG is ``cols_train * 288 + 32 + cols_test * 288`` pixels wide, where
    ``cols = min(ncols, images in the block)``, and ``40 + rows * row height``
    tall, ``rows`` being the taller block's row count. Returns the path.
    """
    path = check_png_path(path)
    ncols = check_int("ncols", ncols, low=1)
    labels = check_strings(labels, "labels")
    if len(labels) != 2:
        raise ValueError(f"labels must be two strings (one per block), got {len(labels)}")
    blocks = []
    for label, block in zip(labels, (train, test)):
        if not isinstance(block, (tuple, list)) or len(block) not in (3, 4):
            raise ValueError(f"the {label!r} block must be a tuple (images, generated, references[, titles])")
        images, generated, references, *rest = block
        titles = rest[0] if rest else None
        blocks.append((label, *_check_block(images, generated, references, titles, f"{label}: ")))
    return _render_blocks(blocks, ncols, path, headed=True)


def plot_beam_search(image, captions, scores, path, title=None):
    """Save an image with the beam's n-best captions and their scores listed under it.

    image:    (3, H, W) uint8 RGB, channels first.
    captions: K strings, best first (the best is drawn in bold).
    scores:   K numbers, the beam scores (e.g. summed log-probabilities).
    title:    optional line above the image.

    The PNG is 512 pixels wide and ``256 + 32 + 20 * lines`` tall, where
    ``lines`` counts the title and every wrapped "rank. [score] caption" line.
    Returns the path.
    """
    path = check_png_path(path)
    image = check_image(image)
    captions = check_strings(captions, "captions")
    if isinstance(scores, str) or not hasattr(scores, "__len__"):
        raise ValueError(f"scores must be a list of numbers, got {type(scores).__name__}")
    scores = list(scores)
    if len(captions) < 1 or len(captions) != len(scores):
        raise ValueError(f"give one score per caption and at least one caption; got {len(captions)} captions, {len(scores)} scores")
    for i, score in enumerate(scores):
        if isinstance(score, bool) or not isinstance(score, numbers.Real):
            raise ValueError(f"scores[{i}] must be a number, got {score!r}")
    if title is not None and not isinstance(title, str):
        raise ValueError(f"title must be a string or None, got {type(title).__name__}")

    fig = new_figure(1, 1)
    texts = [(f"{rank}. [{float(score):.2f}] {caption}", "pred" if rank == 1 else "ref")
             for rank, (caption, score) in enumerate(zip(captions, scores), start=1)]
    lines = _styled_lines(fig, texts, BEAM_WIDTH - 2 * _TEXT_INSET)
    height = IMAGE + 2 * _PAD + _GAP + LINE * (len(lines) + (title is not None))
    fig.set_size_inches(BEAM_WIDTH / fig.dpi, height / fig.dpi)

    y = _PAD
    if title is not None:
        _write(fig, _TEXT_INSET, y, truncate(fig, title, BEAM_WIDTH - 2 * _TEXT_INSET, weight="bold"), "title")
        y += LINE
    draw_image(fig, image, (BEAM_WIDTH - IMAGE) // 2, y, IMAGE)
    y += IMAGE + _GAP
    for text, style in lines:
        _write(fig, _TEXT_INSET, y, text, style)
        y += LINE
    return save_png(fig, path)
