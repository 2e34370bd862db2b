"""minicap: image captioning with RNNs, LSTMs and attention, in NumPy/CuPy.

Where things live:

- ``minicap.backend``   NumPy/CuPy selection and device moves (the only CuPy import)
- ``minicap.layers``    forward/backward pairs for every layer
- ``minicap.gradcheck`` numerical gradients for checking backward passes
- ``minicap.model``     ``CaptioningRNN`` (rnn, lstm, attention cells) and decoding
- ``minicap.optim``     update rules; ``minicap.solver``: the training loop
- ``minicap.data``      the embedded shapes world, COCO loaders, vocabulary
- ``minicap.shapes``    scene generation, the caption grammar, truth and grounding
- ``minicap.encoders``  MobileNet v2 / RegNet-X-400MF image features in NumPy/CuPy
- ``minicap.metrics``   BLEU, CIDEr-D, ROUGE-L (no Java)
- ``minicap.figures``   loss curves, captions, attention maps, beam search
- ``minicap.evaluation``, ``minicap.runs``, ``minicap.demo``, ``minicap.cli``: the command

The heavier names are imported on first use, so ``import minicap`` stays cheap
and never needs CuPy or matplotlib.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "CaptioningRNN": ("minicap.model", "CaptioningRNN"),
    "CaptioningSolver": ("minicap.solver", "CaptioningSolver"),
    "optim": ("minicap.optim", None),
}

__all__ = ["CaptioningRNN", "CaptioningSolver", "optim", "__version__"]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'minicap' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
