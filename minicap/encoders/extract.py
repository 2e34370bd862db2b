"""Running an encoder over many images: batched feature extraction, feature files, image files.

``extract_features`` feeds an image array through an encoder in batches, on the
CPU or the GPU, and returns host arrays: the spatial map (N, C, Hs, Ws) that the
attention model attends over (L = Hs * Ws locations) and its mean over locations,
the pooled (N, C) feature for the rnn/lstm models. ``save_features`` writes them
to an ``.npz`` atomically; ``load_image`` reads a JPEG/PNG for captioning.
"""

import math
import pathlib
import struct
import zipfile
import zlib

import numpy as np
from tqdm.auto import tqdm

from minicap.atomic import atomic_open
from minicap.backend import check_device, to_device, to_numpy
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
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
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


def save_features(path, features, encoder_name):
    """Write ``features`` ({key: NumPy array}) and the encoder's name to ``path`` (.npz), atomically.

    A temporary file in the same folder is renamed over ``path`` only once complete,
    so an interrupted run never leaves a half-written file. Returns the path.
    """
    path = pathlib.Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"feature files are .npz; got {path}")
    if "encoder" in features:
        raise ValueError("'encoder' is reserved for the encoder's name; rename that feature")
    for key, value in features.items():
        if not isinstance(value, np.ndarray):
            raise TypeError(f"feature {key!r} must be a NumPy array (use minicap.backend.to_numpy), got {type(value).__name__}")
    with atomic_open(path) as f:
        np.savez(f, encoder=np.asarray(encoder_name), **features)
    return path


def load_features(path, encoder_name=None):
    """The arrays of a file written by ``save_features``, as {key: array} (without "encoder").

    With ``encoder_name``, raise ValueError if the file was made by another encoder.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file {path} does not exist; create it with extract_features + save_features")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
    except (OSError, ValueError, EOFError, KeyError, NotImplementedError, struct.error, zipfile.BadZipFile, zlib.error) as err:
        # An .npz is a zip: a truncated or damaged one fails inside zipfile (BadZipFile for a bad CRC or a
        # missing directory, zlib.error, struct.error, ...), not in NumPy.
        raise ValueError(
            f"cannot read the feature file {path} ({type(err).__name__}: {err}); it is damaged: delete it and extract again"
        ) from None
    stored = str(arrays.pop("encoder", ""))
    if encoder_name is not None and stored != encoder_name:
        raise ValueError(f"{path} holds {stored or 'unnamed'} features, not {encoder_name}; extract them again")
    return arrays


def load_image(path, size):
    """A JPEG/PNG file as uint8 RGB (3, size, size), resized (whole image, no crop) with bicubic filtering.

    Grey, palette and RGBA images are converted to RGB (alpha dropped).
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImportError("reading image files needs Pillow: pip install pillow") from None
    if not (isinstance(size, int) and size >= 1):
        raise ValueError(f"size must be a positive int, got {size!r}")
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((size, size), Image.BICUBIC)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read {path} as an image ({err}); JPEG and PNG files are supported") from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))
