"""The two implementations of the model's layers, as namespaces of functions.

``CaptioningRNN(impl=...)`` runs one pipeline (docs/model.md) against one of:

- ``"reference"``: ``minicap.layers``, the course files, looked up at every call.
  A function that a student edits in its file, or replaces at run time in its
  module (``minicap.layers.lstm.lstm_step_backward = mine``) or in the package
  (``minicap.layers.lstm_step_backward = mine``, which replaces it in its module
  too), is the one that trains and decodes.
- ``"fast"`` (the default): ``minicap.kernels``, the same functions arranged
  for speed and tested equal to the course's. Where the kernels are not
  installed (a student's copy of the assignment), the course layers.
"""

import importlib
import types

try:
    # Imported now, so that the kernels bind the course functions they reuse
    # (the affine layers, the RNN step) before any student replaces them.
    from . import kernels as _KERNELS
except ImportError:  # a student's copy of the assignment ships without the fast kernels
    _KERNELS = None

IMPLEMENTATIONS = ("fast", "reference")


class _CourseLayers:
    """``minicap.layers`` with every name resolved, in the module that defines it, when it is used."""

    def __getattr__(self, name):
        if name not in _HOME:
            raise AttributeError(f"minicap.layers has no layer function {name!r}")
        return getattr(importlib.import_module(_HOME[name]), name)


class _LayersPackage(types.ModuleType):
    """The class of the ``minicap.layers`` module object: assigning one of its
    functions (``minicap.layers.lstm_step_forward = mine``) also replaces it in
    the module that defines it, which is where the course's sequence functions
    (``lstm_forward`` calls ``lstm_step_forward``) and the model look it up."""

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name in _HOME:
            setattr(importlib.import_module(_HOME[name]), name, value)


def _install():
    package = importlib.import_module("minicap.layers")
    homes = {name: getattr(package, name).__module__ for name in package.__all__}
    package.__class__ = _LayersPackage
    return homes


_HOME = _install()
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
    if impl == "fast" and cell.builtin and _KERNELS is not None:
        return _KERNELS
    return COURSE
