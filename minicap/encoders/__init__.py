"""Pretrained image encoders in NumPy/CuPy, forward only: images in, CNN feature maps out.

- ``encoder``       ``load_encoder(name, weights)`` and the ``Encoder`` it returns
- ``mobilenet_v2``  MobileNet v2's ``features`` trunk: 1280 channels at stride 32
- ``regnet``        RegNet-X-400MF's stem and trunk: 400 channels at stride 32
- ``ops``           channel-last convs (1x1 product, depthwise einsum over row taps or windows, grouped shifted products or im2col), BN folding
- ``blocks``        the residual bottleneck of both networks, in bands of rows
- ``parallel``      the encoders' threads: chunks of images, bands of rows, or BLAS's threads for one image
- ``memory``        large arrays as views of reused per-thread buffers
- ``weights``       torchvision checkpoints: download, read, check, fold
- ``extract``       batched feature extraction with a progress bar, feature caches, image files

Usage::

    from minicap.encoders import load_encoder, extract_features
    enc = load_encoder("mobilenet_v2")            # torchvision's ImageNet weights
    spatial, pooled = extract_features(images, enc, batch_size=64)   # uint8 (N, 3, 112, 112)
    # spatial: (N, 1280, 4, 4) float32, pooled: (N, 1280) float32
"""

from minicap.encoders.encoder import ENCODERS, Encoder, load_encoder
from minicap.encoders.extract import extract_features, load_features, load_image, save_features
from minicap.encoders.weights import WeightsError

__all__ = ["ENCODERS", "Encoder", "WeightsError", "extract_features", "load_encoder", "load_features", "load_image", "save_features"]
