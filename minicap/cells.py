"""The recurrent cells ``CaptioningRNN`` can run, and how to add one.

A cell is known by its course-style functions, the same three every built-in
cell has (shapes: N batch, T time, W word vector, H hidden, G = gates * H):

- ``forward(x, init, Wx, Wh, b) -> (h, cache)``: the whole sequence, x (N, T, W),
  h (N, T, H); init is h0 (N, H), or for an attention cell the projected grid
  A (N, H, Hs, Ws), and the call is ``forward(x, A, Wx, Wh, Wattn, b)``.
- ``backward(dh, cache) -> (dx, dinit, dWx, dWh, db)`` (with dWattn before db
  for an attention cell): the gradients in the forward's order.
- ``step_forward``: one step, for decoding. ``step_forward(x, prev_h, Wx, Wh, b)
  -> (next_h, cache)`` for a cell with only a hidden state;
  ``(x, prev_h, prev_c, Wx, Wh, b) -> (next_h, next_c, cache)`` for a cell with a
  memory cell (``memory=True``, started from c0 = 0); and
  ``(x, prev_h, prev_c, attn, Wx, Wh, Wattn, b)`` for an attention cell, which
  starts from h0 = c0 = mean of A.

Its weights are Wx (W, G), Wh (H, G) and b (G,), plus Wattn (H, G) for an
attention cell; ``gates`` sets G. The model, the decoders and the command line
read everything else from here, so adding a cell is one module with those
functions and one call (docs/tutorial_gru.md does it for a GRU)::

    register_cell("gru", forward=gru_forward, backward=gru_backward,
                  step_forward=gru_step_forward, gates=3)

The built-in cells name their functions instead of passing them: the model
looks them up in ``minicap.layers`` or ``minicap.kernels`` (``impl``). A
registered cell runs its own functions, with the course layers around it.
"""

from dataclasses import dataclass
from typing import Callable, Union

Function = Union[Callable, str]


@dataclass(frozen=True)
class Cell:
    name: str
    forward: Function
    backward: Function
    step_forward: Function
    gates: int
    memory: bool = False
    attention: bool = False

    @property
    def param_names(self):
        """The cell's weights, in the order its forward takes them after x and init."""
        return ("Wx", "Wh", "Wattn", "b") if self.attention else ("Wx", "Wh", "b")

    @property
    def builtin(self):
        """True for minicap's own cells, whose functions have fast kernels."""
        return isinstance(self.forward, str)

    def functions(self, layers):
        """(forward, backward, step_forward), looked up in ``layers`` for a built-in cell."""
        names = (self.forward, self.backward, self.step_forward)
        return tuple(getattr(layers, f) if isinstance(f, str) else f for f in names)


_CELLS = {}


def register_cell(name, *, forward, backward, step_forward, gates, memory=False, attention=False, replace=False):
    """Make ``name`` a ``cell_type`` of ``CaptioningRNN``, the decoders and ``--cell``.

    forward, backward, step_forward: the cell's course-style functions (see the
    module docstring for their signatures). gates: G / H, the number of H-wide
    blocks in Wx, Wh and b (1 for a vanilla RNN, 3 for a GRU, 4 for an LSTM).
    memory: the cell carries a memory cell c besides h, as an LSTM does.
    attention: every step also reads an attention context (implies memory).
    replace: allow registering a name again (a reloaded notebook cell, say).
    Returns the ``Cell``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a cell's name must be a word such as 'gru', got {name!r}")
    if name in _CELLS and not replace:
        raise ValueError(f"a cell named {name!r} is registered already; pass replace=True to redefine it")
    for what, fn in (("forward", forward), ("backward", backward), ("step_forward", step_forward)):
        if not callable(fn):
            raise TypeError(f"register_cell({name!r}): {what} must be a function, got {type(fn).__name__}")
    if isinstance(gates, bool) or not isinstance(gates, int) or gates < 1:
        raise ValueError(f"register_cell({name!r}): gates must be a positive integer, got {gates!r}")
    cell = Cell(name, forward, backward, step_forward, gates, memory=bool(memory or attention),
                attention=bool(attention))
    _CELLS[name] = cell
    return cell


def unregister_cell(name):
    """Remove a registered cell (minicap's own cannot be removed)."""
    cell = get_cell(name)
    if cell.builtin:
        raise ValueError(f"{name!r} is one of minicap's own cells and cannot be unregistered")
    del _CELLS[name]


def get_cell(name):
    """The registered ``Cell`` called ``name``; a ValueError listing the known ones otherwise."""
    cell = _CELLS.get(name) if isinstance(name, str) else None
    if cell is None:
        raise ValueError(f"cell_type must be one of {', '.join(map(repr, _CELLS))}, got {name!r} "
                         f"(a new cell is added with minicap.cells.register_cell)")
    return cell


def cell_names():
    """The registered cell names, built-in ones first."""
    return tuple(_CELLS)


_CELLS["rnn"] = Cell("rnn", "rnn_forward", "rnn_backward", "rnn_step_forward", gates=1)
_CELLS["lstm"] = Cell("lstm", "lstm_forward", "lstm_backward", "lstm_step_forward", gates=4, memory=True)
_CELLS["attention"] = Cell("attention", "attention_forward", "attention_backward", "attention_lstm_step_forward",
                           gates=4, memory=True, attention=True)
