"""Random minibatches of a captioning dataset, and a picture of one.

``sample_coco_minibatch`` draws captions with replacement (as both courses
did) and returns them with their images' features and the images themselves
(or their URLs, for the CS231n format). ``plot_minibatch`` saves such a batch
as a grid of images with their decoded captions; a URL that cannot be fetched
quickly (offline, host down, dead link, not an image) gets a grey placeholder
panel that says why.
"""

import http.client
import io
import math
import numbers
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from minicap.argcheck import check_int
from minicap.data.vocab import decode_captions

PANEL = 288  # pixels per panel, image box plus margins
IMAGE = 256
_PAD, _GAP, _INSET = 12, 8, 8
_MAX_IMAGE_BYTES = 20 << 20  # a COCO JPEG is a few hundred kB


def _draw_rows(data, batch_size, split, rng):
    """Caption rows drawn with replacement, and the image row of each."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    key = f"{split}_captions"
    if key not in data:
        splits = sorted(k[: -len("_captions")] for k in data if k.endswith("_captions"))
        raise ValueError(f"the data has no split {split!r}; it has {splits}")
    if len(data[key]) == 0:
        raise ValueError(f"{key} is empty: there is nothing to sample")
    rows = np.random.default_rng(rng).integers(0, len(data[key]), size=int(batch_size))
    return rows, np.asarray(data[f"{split}_image_idxs"])[rows]


def sample_coco_minibatch(data, batch_size=100, split="train", rng=None):
    """Draw ``batch_size`` captions of ``split`` uniformly, with replacement.

    rng: a ``numpy.random.Generator``, a seed, or None for fresh entropy.
    Returns ``(captions, features, images_or_urls)``: captions (B, T+1) ints,
    features (B, D) or (B, D, Hs, Ws) for each caption's image (None when the
    data has no ``{split}_features``, e.g. coco.pt before ``minicap
    features``), and the images (B, 3, H, W) uint8 or their URLs (B,)
    strings (None when the data has neither).
    """
    rows, image_rows = _draw_rows(data, batch_size, split, rng)
    features = data.get(f"{split}_features")
    pictures = data.get(f"{split}_images")
    if pictures is None:
        pictures = data.get(f"{split}_urls")
    return (
        data[f"{split}_captions"][rows],
        None if features is None else features[image_rows],
        None if pictures is None else pictures[image_rows],
    )


class _Unreachable(Exception):
    """Connecting to the host failed (refused, no DNS, timed out), not just this one image."""


def _fetch_image(url, timeout):
    """(uint8 (3, H, W) image, None) or (None, why it is missing). Raises _Unreachable when connecting fails."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return None, "not an http(s) URL"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "minicap"}), timeout=timeout) as r:
            blob = r.read(_MAX_IMAGE_BYTES + 1)
    except urllib.error.HTTPError as err:
        return None, f"HTTP {err.code} (dead link)"
    except (urllib.error.URLError, OSError) as err:  # refused, no DNS, timed out
        raise _Unreachable(getattr(err, "reason", err)) from None
    except (http.client.HTTPException, ValueError) as err:
        return None, f"bad response ({type(err).__name__})"
    if len(blob) > _MAX_IMAGE_BYTES:
        return None, "file too large"
    from PIL import Image  # matplotlib depends on Pillow

    try:
        with Image.open(io.BytesIO(blob)) as img:
            img = img.convert("RGB")
            img.thumbnail((IMAGE, IMAGE))
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1), None
    except (OSError, ValueError, Image.DecompressionBombError):
        return None, "not an image"


def _pictures(data, split, image_rows, fetch, timeout):
    """Per row: (image or None, why it is missing, its URL or None)."""
    images = data.get(f"{split}_images")
    if images is not None:
        return [(images[i], None, None) for i in image_rows]
    if data.get(f"{split}_urls") is None:
        return [(None, "no images in this data", None)] * len(image_rows)
    out, unreachable = [], {}  # host -> why connecting failed
    for url in [str(data[f"{split}_urls"][i]) for i in image_rows]:
        host = urllib.parse.urlsplit(url).netloc
        if not fetch:
            out.append((None, "image fetching is off", url))
        elif host in unreachable:  # offline or host down: do not wait for each of its URLs to time out
            out.append((None, f"unreachable ({unreachable[host]})", url))
        else:
            try:
                image, why = _fetch_image(url, timeout)
            except _Unreachable as err:
                unreachable[host] = err
                image, why = None, f"unreachable ({err})"
            out.append((image, why, url))
    return out


def _draw_placeholder(fig, left, top, why, url):
    from minicap.figures._layout import LINE, add_text, draw_image, truncate

    draw_image(fig, np.full((3, IMAGE, IMAGE), 225, np.uint8), left, top, IMAGE)
    lines = ["image not available", why] + ([url] if url else [])
    y = top + (IMAGE - LINE * len(lines)) // 2
    for k, line in enumerate(lines):
        text = truncate(fig, line, IMAGE - 2 * _INSET)
        add_text(fig, left + _INSET, y + LINE * k, text, weight="bold" if k == 0 else "normal", color="#404040")


def plot_minibatch(data, path, batch_size=8, split="train", rng=None, ncols=4, fetch=True, timeout=3.0):
    """Save a random minibatch as a PNG grid: each image with its decoded caption.

    Draws the same captions as ``sample_coco_minibatch(data, batch_size,
    split, rng)`` and decodes them with ``data["idx_to_word"]``. URL images
    are fetched (``fetch``) with a ``timeout`` in seconds; once connecting
    to a host fails, its other URLs are not tried. A missing image is drawn as
    a grey placeholder saying why. Panels are 288 pixels wide,
    ``min(ncols, batch_size)`` per row, titled with the split and image
    index. Returns the path written (atomically), as a ``pathlib.Path``.
    """
    from minicap.figures._layout import LINE, add_text, check_png_path, draw_image, new_figure, save_png, truncate, wrap

    path = check_png_path(path)
    ncols = check_int("ncols", ncols, low=1)
    if "idx_to_word" not in data:
        raise ValueError("the data has no idx_to_word vocabulary to decode captions with; pass a loader's dict")
    rows, image_rows = _draw_rows(data, batch_size, split, rng)
    texts = decode_captions(data[f"{split}_captions"][rows], data["idx_to_word"])
    pictures = _pictures(data, split, image_rows, fetch, timeout)

    fig = new_figure(1, 1)  # resized once the captions are measured
    wrapped = [wrap(fig, text or "(empty caption)", PANEL - 2 * _INSET) for text in texts]
    cols = min(ncols, len(texts))
    row_height = _PAD + LINE + IMAGE + _GAP + LINE * max(map(len, wrapped)) + _PAD
    fig.set_size_inches(cols * PANEL / fig.dpi, math.ceil(len(texts) / cols) * row_height / fig.dpi)
    for k, ((image, why, url), lines, image_row) in enumerate(zip(pictures, wrapped, image_rows)):
        row, col = divmod(k, cols)
        left, top = col * PANEL, row * row_height + _PAD
        add_text(fig, left + _INSET, top, truncate(fig, f"{split} image {image_row}", PANEL - 2 * _INSET), weight="bold")
        box_left, box_top = left + (PANEL - IMAGE) // 2, top + LINE
        if image is None:
            _draw_placeholder(fig, box_left, box_top, why, url)
        else:
            draw_image(fig, image, box_left, box_top, IMAGE)
        for j, line in enumerate(lines):
            add_text(fig, left + _INSET, box_top + IMAGE + _GAP + LINE * j, line)
    return save_png(fig, path)
