"""Datasets for captioning, all returned in one dict layout (CS231n's).

- ``load_shapes``   the embedded procedural "shapes world" (offline, the default)
- ``load_coco_data`` COCO in the CS231n format (h5 features, needs ``minicap[coco]``)
- ``load_coco_pt``  COCO in the EECS 498 format (``coco.pt``, read without PyTorch)
- ``read_torch_file`` the safe, torch-free reader for ``torch.save`` files
- ``build_vocab``, ``encode_captions``, ``decode_captions``: the vocabulary
- ``sample_coco_minibatch``: a random minibatch of (captions, features, images or urls)
- ``plot_minibatch``: a grid of images with their captions, as a PNG
- ``download_dataset``: resumable, checksummed, atomic downloads (``minicap.data.download``)

Names are imported on first use so that ``import minicap.data`` stays cheap.
"""

import importlib

_LAZY = {
    "load_shapes": "minicap.data.shapes",
    "load_coco_data": "minicap.data.coco",
    "load_coco_pt": "minicap.data.coco",
    "read_torch_file": "minicap.data.torchfile",
    "build_vocab": "minicap.data.vocab",
    "encode_captions": "minicap.data.vocab",
    "decode_captions": "minicap.data.vocab",
    "sample_coco_minibatch": "minicap.data.minibatch",
    "plot_minibatch": "minicap.data.minibatch",
    "download_dataset": "minicap.data.download",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'minicap.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
