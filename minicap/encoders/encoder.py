"""The encoder a caller sees: uint8 images in, the last convolutional feature map out.

``load_encoder(name, weights)`` pairs a network with the input pipeline it was
trained with (scale to [0, 1], subtract the ImageNet mean, divide by the ImageNet
std, no resizing). The encoder runs wherever its input lives: a CuPy batch gets
a copy of the weights moved to the GPU once, then kept.

On the CPU a batch runs through the network in chunks of a few images, sized from
the image size (``images_per_chunk``), on ``threads`` threads at once (see
``parallel``). Images are independent, so chunks need no communication; a chunk's
feature maps stay in the processor's caches from layer to layer instead of
streaming the whole batch's through memory at every layer, and only ``threads``
chunks are in memory at a time. A single image is one chunk: the threads then share
each of its layers in bands of rows or through BLAS's threads, or leave it to one thread,
whichever its first calls timed fastest (see ``parallel``). A GPU gets the whole batch at once.
"""

import numpy as np

from minicap import heap
from minicap.argcheck import check_int
from minicap.backend import device_of, get_array_module
from minicap.encoders.memory import empty
from minicap.encoders.mobilenet_v2 import MobileNetV2
from minicap.encoders.parallel import Workers, one_blas_thread, usable_cpus
from minicap.encoders.regnet import RegNetX
from minicap.encoders.weights import resolve_weights

# Per RGB channel, over ImageNet's training images: what torchvision's models expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ENCODERS = {"mobilenet_v2": MobileNetV2, "regnet_x_400mf": RegNetX}


def check_images(images):
    """Raise ValueError unless ``images`` is a uint8 (N, 3, H, W) array (NumPy or CuPy) with H, W >= 1."""
    shape = getattr(images, "shape", None)
    dtype = getattr(images, "dtype", None)
    if shape is None or len(shape) != 4 or shape[1] != 3:
        hint = " (a single image? add a batch axis: images[None])" if shape is not None and len(shape) == 3 else ""
        raise ValueError(f"images must be an array of shape (N, 3, H, W), got shape {shape}{hint}")
    if dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 RGB (0..255) like coco.pt's, got {dtype}; "
            "for files use minicap.encoders.load_image, for floats in [0, 1] use (x * 255).round().astype(np.uint8)"
        )
    if shape[2] < 1 or shape[3] < 1:  # else the first conv fails with a message about kernels and padding
        raise ValueError(f"images must be at least 1 x 1 pixels, got H={shape[2]}, W={shape[3]} (shape {tuple(shape)})")


# Pixels per chunk on the CPU, unless the network says otherwise (its ``chunk_pixels``):
# 8 images of 112x112. Larger chunks give the deep layers' products more rows per
# weight matrix (RegNet's 400x400 weights meet only 16 pixels per 112x112 image);
# smaller ones keep the early maps (up to 1.2 MB per image) in cache and keep a thread
# for each chunk. Measured, 64 images, 2 threads: 1, 2, 4, 8, 16, 32 images per chunk:
# MobileNet v2 217, 176, 162, 152, 167, 211 ms; RegNet-X 273, 192, 162, 147, 149, 167 ms
# (AMD EPYC Zen 4). On a Zen 3, best of 5 rounds, 8 / 16 images per chunk: MobileNet v2
# 153 / 149 ms (medians 155 / 157), RegNet-X 153 / 145 ms; so RegNet takes 16.
# Larger images run fewer per chunk.
CHUNK_PIXELS = 8 * 112 * 112


def images_per_chunk(height, width, chunk_pixels=None):
    """How many images of height x width pixels one CPU chunk of ``chunk_pixels`` pixels
    (None: ``CHUNK_PIXELS``) takes: at least one."""
    return max(1, (chunk_pixels or CHUNK_PIXELS) // (height * width))


def default_threads():
    """One thread per CPU this process may run on (as torch's default count, on machines without SMT)."""
    return usable_cpus()


def normalize(images):
    """uint8 (N, 3, H, W) -> float32 (N, H, W, 3), (x / 255 - mean) / std per channel, on the images' backend.

    The same float32 operations in the same order as torchvision's transforms, so the
    input matches torchvision's to the last bit; the channels move last (as the networks
    run) while the pixels are still single bytes.
    """
    xp = get_array_module(images)
    n, c, h, w = images.shape
    # Per-channel constants repeated along a row of W*C values: each pass is then one
    # long contiguous loop per row instead of W loops of 3 (2.5 ms -> 1.2 ms at 448x448).
    mean = xp.asarray(np.tile(np.array(IMAGENET_MEAN, np.float32), w))
    std = xp.asarray(np.tile(np.array(IMAGENET_STD, np.float32), w))
    if xp is np:
        # One channel at a time: a copy whose inner loop runs along an image row (448x448:
        # 0.19 ms), where moving the whole array's axes at once loops over 3 bytes at a
        # time (1.0 ms).
        pixels = np.empty((n, h, w, c), np.uint8)
        for k in range(c):
            pixels[..., k] = images[:, k]
    else:
        pixels = xp.ascontiguousarray(images.transpose(0, 2, 3, 1))
    rows = pixels.reshape(n, h, w * c)
    x = empty((n, h, w * c), np.float32, xp)
    xp.divide(rows, np.float32(255), out=x, dtype=np.float32)
    x -= mean
    x /= std
    return x.reshape(n, h, w, c)


class Encoder:
    """A pretrained CNN trunk: ``enc(images)`` maps uint8 (N, 3, H, W) to float32 (N, C, ceil(H/32), ceil(W/32)).

    C is ``enc.out_channels`` (1280 for mobilenet_v2, 400 for regnet_x_400mf) and 32
    is ``enc.stride`` (smaller for reduced networks with fewer strided stages). The
    output is on the images' backend. The mean over the last two axes is the
    pooled (N, C) image feature.
    """

    def __init__(self, name, network, threads=None):
        self.name = name
        self.out_channels = network.out_channels
        self.stride = network.stride  # 32 for the published networks
        self.threads = default_threads() if threads is None else check_int("threads", threads, low=1)
        self._networks = {"cpu": network}  # per device, copied on first use
        self._workers = Workers(self.threads, f"minicap-{name}")

    def __call__(self, images):
        check_images(images)
        device = device_of(images)
        if device not in self._networks:
            self._networks[device] = self._networks["cpu"].to(device)
        network = self._networks[device]
        xp = get_array_module(images)

        def encode(chunk, workers=None):  # (N, C, Hs, Ws) out, as torchvision gives it
            x = normalize(chunk)
            return network.features(x) if workers is None else workers.run(network.features, x)

        if xp is not np:
            return encode(images)  # a GPU takes the whole batch at once
        # Freed blocks stay in the process for the next call (minicap.heap): a call's arrays
        # under the buffers' 1 MB (memory.py) otherwise come back as fresh pages, about 850
        # page faults per 448x448 RegNet image (best 40-49 ms against 38 without them).
        heap.keep_freed_memory()
        n, _, h, w = images.shape
        per_chunk = images_per_chunk(h, w, network.chunk_pixels)
        step = min(per_chunk, -(-n // self.threads))  # at least one chunk per thread, if it can
        chunks = [images[start : start + step] for start in range(0, n, step)]
        if len(chunks) == 1:  # a single image: the threads share each of its layers instead
            with self._workers.sharing_one_image(h, w, network.bands_min_pixels) as workers:
                return encode(images, workers)
        with one_blas_thread(), self._workers.own_cores():
            return np.concatenate(self._workers.map(encode, chunks))

    def __repr__(self):
        return f"Encoder({self.name!r}, out_channels={self.out_channels})"


def load_encoder(name, weights=None, threads=None, **arch):
    """The encoder ``name`` ("mobilenet_v2" or "regnet_x_400mf") with pretrained weights.

    weights: None for torchvision's published ImageNet checkpoint (downloaded into
    minicap's cache folder on first use), a path to a checkpoint (.pth from torch.save,
    or .npz with the same names), or a dict {name: array}. ``threads``: how many CPU
    threads encode a batch (default: the CPUs this process may use). ``arch`` changes the
    architecture for reduced networks: ``width_mult=``, ``setting=`` for mobilenet_v2
    (see ``mobilenet_v2.plan``), ``config=RegNetConfig(...)`` for regnet_x_400mf.
    Raises ``WeightsError`` (a ValueError) naming the file when a weights file is missing,
    cannot be read (truncated, a damaged zip or pickle), or does not fit the network.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    threads = check_int("threads", threads, low=1, none_ok=True)  # before any weights are read
    network_class = ENCODERS[name]
    state = resolve_weights(name, weights)
    try:
        network = network_class.from_state_dict(state, **arch)
    except TypeError as err:
        if "keyword argument" not in str(err):
            raise
        raise ValueError(f"{name} does not take the architecture option(s) {sorted(arch)}: {err}") from None
    return Encoder(name, network, threads)
