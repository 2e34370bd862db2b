"""Running an encoder over many images: batched feature extraction, feature files, image files.

``extract_features`` feeds an image array through an encoder in batches, on the
CPU or the GPU, and returns host arrays: the spatial map (N, C, Hs, Ws) that the
attention model attends over (L = Hs * Ws locations) and its mean over locations,
the pooled (N, C) feature for the rnn/lstm models. ``save_features`` writes them
to an ``.npz`` atomically, with the SHA-256 of the weights that made them when
known; ``load_image`` reads a JPEG/PNG for captioning.
"""

import contextlib
import math
import pathlib

import numpy as np
from tqdm.auto import tqdm

from minicap.argcheck import check_int
from minicap.atomic import atomic_open
from minicap.backend import check_device, to_device, to_numpy
from minicap.data.errors import READ_ERRORS
from minicap.encoders.encoder import check_images


def extract_features(images, encoder, batch_size=64, device="cpu", progress=True):
    """Encode ``images`` in batches of ``batch_size`` on ``device`` ("cpu" or "cuda").

    images: uint8 (N, 3, H, W), NumPy or CuPy. encoder: an ``Encoder`` (C channels).
    Returns NumPy float32 ``(spatial, pooled)``: (N, C, Hs, Ws) with Hs = ceil(H/32),
    Ws = ceil(W/32) (32 = ``encoder.stride``), and (N, C), pooled[n, c] = mean over (i, j) of spatial[n, c, i, j].
    ``progress`` shows a tqdm bar counting images.
    """
    check_device(device)
    check_images(images)
    batch_size = check_int("batch_size", batch_size, low=1)
    n, _, h, w = images.shape
    c = encoder.out_channels
    spatial = np.empty((n, c, math.ceil(h / encoder.stride), math.ceil(w / encoder.stride)), np.float32)
    with tqdm(total=n, unit="img", desc=f"{encoder.name} features", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            batch = to_device(images[start : start + batch_size], device)
            # Back to the host batch by batch: the whole spatial array may not fit on a GPU.
            spatial[start : start + len(batch)] = to_numpy(encoder(batch))
            bar.update(len(batch))
    pooled = spatial.mean(axis=(2, 3), dtype=np.float32)
    return spatial, pooled


# Keys a feature file keeps beside the features: what made them, not features themselves.
RESERVED_KEYS = ("encoder", "weights_sha256")


def save_features(path, features, encoder_name, weights_sha256=None):
    """Write ``features`` ({key: NumPy array}) and the encoder's name to ``path`` (.npz), atomically.

    ``weights_sha256`` (optional): the SHA-256 of the weights file the encoder used, kept so
    that features of new images can later be checked to come from the same network
    (``stored_weights_sha256``). A temporary file in the same folder is renamed over
    ``path`` only once complete, so an interrupted run never leaves a half-written file.
    Returns the path.
    """
    path = pathlib.Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"feature files are .npz; got {path}")
    for key in RESERVED_KEYS:
        if key in features:
            raise ValueError(f"{key!r} is reserved for what made the features; rename that feature")
    for key, value in features.items():
        if not isinstance(value, np.ndarray):
            raise TypeError(f"feature {key!r} must be a NumPy array (use minicap.backend.to_numpy), got {type(value).__name__}")
    extra = {} if weights_sha256 is None else {"weights_sha256": np.asarray(str(weights_sha256))}
    with atomic_open(path) as f:
        np.savez(f, encoder=np.asarray(encoder_name), **extra, **features)
    return path


@contextlib.contextmanager
def _open_npz(path):
    """``np.load(path)`` for a ``with`` block; a damaged file, found on opening or on reading
    a member (members are read lazily), is one ValueError saying what to do."""
    try:
        with np.load(path, allow_pickle=False) as f:
            yield f
    except READ_ERRORS as err:
        raise ValueError(
            f"cannot read the feature file {path} ({type(err).__name__}: {err}); it is damaged: delete it and extract again"
        ) from None


def stored_weights_sha256(path):
    """The weights' SHA-256 kept in the feature file ``path``, or None if it has none (older files)."""
    path = pathlib.Path(path)
    with _open_npz(path) as f:  # reads only this member, not the features
        return str(f["weights_sha256"]) if "weights_sha256" in f.files else None


def load_features(path, encoder_name=None):
    """The arrays of a file written by ``save_features``, as {key: array} (without "encoder" and "weights_sha256").

    With ``encoder_name``, raise ValueError if the file was made by another encoder.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file {path} does not exist; create it with extract_features + save_features")
    with _open_npz(path) as f:
        arrays = {key: f[key] for key in f.files}
    stored = str(arrays.pop("encoder", ""))
    arrays.pop("weights_sha256", None)
    if encoder_name is not None and stored != encoder_name:
        raise ValueError(f"{path} holds {stored or 'unnamed'} features, not {encoder_name}; extract them again")
    return arrays


def _to_8_bits(img, path, file_format):
    """``img`` with 16-bit or 32-bit integer samples scaled to 8 bits; other modes as they are.

    file_format: Pillow's name of the file's format ("PNG", "TIFF", ...).

    Pillow's ``convert("RGB")`` clips such samples at 255 instead of scaling them, so a
    16-bit grey PNG at 30000 (46% grey) would come out white.
    """
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":
        values = np.asarray(img)
        if img.mode == "I" and values.size and values.min() < 0:
            raise ValueError(f"{path} is a signed 32-bit image with negative values, which have no RGB meaning; "
                             "save it as an 8-bit or 16-bit PNG or a JPEG")
        # Old Pillow versions open 16-bit grey PNGs as mode "I" (32-bit): their range is still 16 bits.
        full = 65535 if img.mode != "I" or file_format == "PNG" else 2**31 - 1
        scaled = np.rint(values.astype(np.float64) * (255 / full))
        return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        raise ValueError(f"{path} is a 32-bit floating-point image, which has no fixed range to scale to 0..255; "
                         "save it as an 8-bit or 16-bit PNG or a JPEG")
    return img


def load_image(path, size):
    """A JPEG/PNG file as uint8 RGB (3, size, size), resized (whole image, no crop) with bicubic filtering.

    The image is first turned the way it is displayed: an EXIF orientation tag (phone
    photos) is applied. Grey, palette and RGBA images are converted to RGB (alpha dropped);
    16-bit and 32-bit integer images are scaled to 0..255 (x * 255 / 65535 for 16 bits).
    """
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise ImportError("reading image files needs Pillow: pip install pillow") from None
    if not (isinstance(size, int) and size >= 1):
        raise ValueError(f"size must be a positive int, got {size!r}")
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    try:
        with Image.open(path) as img:
            # exif_transpose: phones store the sensor's pixels plus a rotation tag, and the
            # caption must describe the picture as it is seen, not as it is stored.
            upright = ImageOps.exif_transpose(img)
            # exif_transpose returns a copy without .format, so pass the file's format along
            rgb = _to_8_bits(upright, path, img.format).convert("RGB").resize((size, size), Image.BICUBIC)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read {path} as an image ({err}); JPEG and PNG files are supported") from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))
