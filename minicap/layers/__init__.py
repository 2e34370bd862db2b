"""The course: every layer of minicap as a pair of plain functions.

``*_forward(inputs...) -> (out, cache)`` and ``*_backward(dout, cache) -> grads``,
grads in the order of the forward's inputs; names, signatures and return
conventions are the CS231n / EECS 498 captioning ones. These files are written
the way the math reads, to be read and re-implemented: named gates, one
gradient per line, sequences that loop over their step function. A backward
never modifies its cache, its upstream gradient or the forward's inputs, and
checks that its upstream gradient has the shape its forward produced. Each layer
takes its array module (NumPy or CuPy) from its inputs. Derivations:
docs/layers.md.

``minicap.kernels`` holds the fast versions of the same functions (time-major
buffers, in-place cells, batched projections), proven equal to these by the
tests; ``CaptioningRNN(impl="reference")`` trains with the functions here.

Where things live (one idea per file, in the order the courses meet them):

- ``rnn``             rnn_step_forward/backward, rnn_forward/backward
- ``embedding``       word_embedding_forward/backward
- ``affine``          affine_forward/backward, temporal_affine_forward/backward
- ``loss``            temporal_softmax_loss
- ``lstm``            sigmoid, lstm_step_forward/backward, lstm_forward/backward
- ``attention``       softmax, dot_product_attention_forward/backward
- ``attention_lstm``  attention_lstm_step_forward/backward, attention_forward/backward
- ``_checks``         shape and dtype validation with errors that name the argument

The body of every exercise function sits between ``# BEGIN SOLUTION`` and
``# END SOLUTION`` (nbgrader's markers, docs/teaching.md): the lines a
student writes. The checks above a region stay in the student's copy.
"""

from .affine import affine_backward, affine_forward, temporal_affine_backward, temporal_affine_forward
from .attention import dot_product_attention_backward, dot_product_attention_forward
from .attention_lstm import (
    attention_backward,
    attention_forward,
    attention_lstm_step_backward,
    attention_lstm_step_forward,
)
from .embedding import word_embedding_backward, word_embedding_forward
from .loss import temporal_softmax_loss
from .lstm import lstm_backward, lstm_forward, lstm_step_backward, lstm_step_forward
from .rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward

__all__ = [
    "affine_forward",
    "affine_backward",
    "temporal_affine_forward",
    "temporal_affine_backward",
    "word_embedding_forward",
    "word_embedding_backward",
    "rnn_step_forward",
    "rnn_step_backward",
    "rnn_forward",
    "rnn_backward",
    "lstm_step_forward",
    "lstm_step_backward",
    "lstm_forward",
    "lstm_backward",
    "dot_product_attention_forward",
    "dot_product_attention_backward",
    "attention_lstm_step_forward",
    "attention_lstm_step_backward",
    "attention_forward",
    "attention_backward",
    "temporal_softmax_loss",
]
