"""The two implementations of the model's layers, as namespaces of functions.

``CaptioningRNN(impl=...)`` runs one pipeline (docs/model.md) against one of:

- ``"reference"``: ``minicap.layers``, the course files, looked up at every call.
  A function that a student edits in its file, or replaces at run time in its
  module (``minicap.layers.lstm.lstm_step_backward = mine``) or in the package
  (``minicap.layers.lstm_step_backward = mine``), is the one that trains and
  decodes.
- ``"fast"`` (the default): ``minicap.kernels``, the same functions arranged
  for speed and tested equal to the course's.
"""

import importlib

IMPLEMENTATIONS = ("fast", "reference")


class _CourseLayers:
    """``minicap.layers`` with every name resolved when it is used."""

    def __getattr__(self, name):
        if name not in _ORIGINAL:
            raise AttributeError(f"minicap.layers has no layer function {name!r}")
        current = getattr(importlib.import_module("minicap.layers"), name)
        if current is not _ORIGINAL[name]:
            return current  # replaced in the package
        # the defining module's current function, which the course's sequence functions also call
        return getattr(importlib.import_module(f"minicap.layers.{_ORIGINAL_MODULE[name]}"), name)


def _snapshot():
    package = importlib.import_module("minicap.layers")
    originals = {name: getattr(package, name) for name in package.__all__}
    modules = {name: fn.__module__.rsplit(".", 1)[1] for name, fn in originals.items()}
    return originals, modules


_ORIGINAL, _ORIGINAL_MODULE = _snapshot()
COURSE = _CourseLayers()


def namespace(impl, cell):
    """The layer functions ``cell`` trains with under ``impl``.

    A registered cell without fast kernels gets the course layers around it in
    both implementations: the fast embedding hands the sequence kernels its
    ids and table rather than an array (``kernels.WordVectors``), which only the
    kernels read.
    """
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
    if impl == "fast" and cell.builtin:
        return importlib.import_module("minicap.kernels")
    return COURSE
