"""Pixel-exact layout shared by every figure: canvas, text, images, saving.

Every figure is laid out in whole pixels and saved at ``DPI`` = 128 dots per
inch. A power of two is used on purpose: ``pixels / 128`` is an exact binary
fraction, so ``figsize * dpi`` gives back the same whole number of pixels and
the PNG size is a documented formula, never off by one from float rounding
(no ``bbox_inches="tight"`` either, for the same reason).

Figures are built as ``matplotlib.figure.Figure`` with an Agg canvas, never
through pyplot: no GUI backend is touched, nothing is registered in pyplot's
global figure list (so nothing needs closing or leaks), and each call works on
a figure of its own, so calls from different threads share no figure or
renderer. matplotlib is imported inside the functions so that
``import minicap.figures`` stays cheap.

Coordinates here are pixels from the figure's top-left corner; matplotlib's
are fractions from the bottom-left, and ``place_axes``/``add_text`` convert.
"""

import pathlib

import numpy as np

from minicap.atomic import atomic_open

DPI = 128
FONT_SIZE = 8  # points; captions and lists
LINE = 20  # pixels per text line at FONT_SIZE, with room between lines


def new_figure(width, height):
    """A blank white ``Figure`` of ``width`` x ``height`` pixels with an Agg canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(f"minicap's figures need matplotlib ({err}); install it with `pip install matplotlib`") from None
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def figure_pixels(fig):
    """The (width, height) of ``fig`` in whole pixels."""
    width, height = fig.get_size_inches() * DPI
    return int(round(width)), int(round(height))


def place_axes(fig, left, top, width, height):
    """An axes without ticks or frame occupying the given pixel box."""
    fig_w, fig_h = figure_pixels(fig)
    ax = fig.add_axes((left / fig_w, 1 - (top + height) / fig_h, width / fig_w, height / fig_h))
    ax.set_axis_off()
    return ax


def add_text(fig, left, top, text, size=FONT_SIZE, **kwargs):
    """Write one line of plain text whose top-left corner is at (left, top) pixels.

    ``parse_math=False`` keeps a ``$`` in a caption from switching on mathtext.
    """
    fig_w, fig_h = figure_pixels(fig)
    return fig.text(left / fig_w, 1 - top / fig_h, text, size=size, ha="left", va="top", parse_math=False, **kwargs)


def text_width(fig, text, size=FONT_SIZE, weight="normal"):
    """How many pixels wide ``text`` is when ``fig`` draws it at ``size`` points.

    The figure's own renderer measures, so what is measured is what is drawn
    and figures built in different threads share no state.
    """
    from matplotlib.font_manager import FontProperties

    renderer = fig.canvas.get_renderer()
    width, _, _ = renderer.get_text_width_height_descent(text, FontProperties(size=size, weight=weight), ismath=False)
    return width


def wrap(fig, text, width, size=FONT_SIZE, weight="normal"):
    """Split ``text`` into lines that are each at most ``width`` pixels wide.

    Words are kept whole where they fit on a line of their own; a word wider
    than a whole line is broken between characters. Always at least one line.
    """
    lines = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if text_width(fig, candidate, size, weight) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        for char in word:
            if current and text_width(fig, current + char, size, weight) > width:
                lines.append(current)
                current = ""
            current += char
    lines.append(current)
    return lines


def truncate(fig, text, width, size=FONT_SIZE, weight="normal"):
    """``text`` cut to at most ``width`` pixels, ending in an ellipsis when cut."""
    if text_width(fig, text, size, weight) <= width:
        return text
    while text and text_width(fig, text + "\u2026", size, weight) > width:
        text = text[:-1]
    return text + "\u2026"


def draw_image(fig, image, left, top, box):
    """Draw a (3, H, W) uint8 image, aspect kept, centred in a ``box`` x ``box`` square."""
    _, height, width = image.shape
    scale = box / max(height, width)
    w, h = width * scale, height * scale
    ax = place_axes(fig, left + (box - w) / 2, top + (box - h) / 2, w, h)
    ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
    return ax


def check_image(image, name="image"):
    """``image`` as a NumPy (3, H, W) uint8 array, or a ValueError saying what is wrong."""
    image = _host_array(image, name)
    if image.ndim != 3 or image.shape[0] != 3 or image.shape[1] < 1 or image.shape[2] < 1:
        raise ValueError(f"{name} must have shape (3, H, W) (channels first, RGB), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 in 0..255, got dtype {image.dtype}; convert with (x * 255).astype(np.uint8)")
    return image


def check_images(images, name="images"):
    """``images`` as a NumPy (N, 3, H, W) uint8 array with N >= 1."""
    images = _host_array(images, name)
    if images.ndim != 4 or images.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N, 3, H, W) with N >= 1, got {images.shape}")
    for i in range(images.shape[0]):
        check_image(images[i], f"{name}[{i}]")
    return images


def check_strings(values, name):
    """``values`` as a list of strings (a single string is refused, not split)."""
    if isinstance(values, str) or not hasattr(values, "__len__"):
        raise ValueError(f"{name} must be a list of strings, got {type(values).__name__}")
    values = list(values)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"{name}[{i}] must be a string, got {type(value).__name__}; decode ids to words first")
    return values


def _host_array(x, name):
    if type(x).__module__.startswith("cupy"):
        raise ValueError(f"{name} is a CuPy array; pass host data (minicap.backend.to_numpy(x))")
    return np.asarray(x)


def check_png_path(path):
    """``path`` as a ``pathlib.Path`` that ends in ``.png``."""
    path = pathlib.Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG; the path must end in .png, got {str(path)!r}")
    return path


def save_png(fig, path):
    """Write ``fig`` to ``path`` as a PNG atomically and return the path.

    The parent folder is created; the image goes to a temporary file in the
    same folder first and is renamed over ``path``, so a crash never leaves a
    half-written PNG behind.
    """
    try:
        with atomic_open(path) as f:
            fig.savefig(f, format="png", dpi=DPI, facecolor=fig.get_facecolor())
    finally:
        fig.clear()
    return path
