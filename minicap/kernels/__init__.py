"""The fast kernels: the course layers of ``minicap.layers``, arranged for speed.

Every public function here has the name and signature of the ``minicap.layers``
function it speeds up and computes the same thing (tests/test_kernels_equal.py
proves it in float64 to 1e-10 on random shapes); where the course version
is already as fast as NumPy allows (the affine layer, the RNN step), the
course function itself is exported. ``CaptioningRNN(impl="fast")``, the
default, trains with these. They are a lesson of their own, "making NumPy
fast": docs/kernels.md puts each trick next to the plain code it replaces.

- ``embedding``       the deferred lookup (``WordVectors``), sorted row sums in the backward
- ``embed_project``   the embedding folded into a cell's input projection
- ``_through_time``   batched input projections and weight gradients, time-major buffers
- ``rnn``             rnn_forward/backward and their loops
- ``lstm``            the in-place gate cell, lstm_step_*, lstm_forward/backward, loops
- ``attention``       the attention pieces the loop calls every step
- ``attention_lstm``  attention_lstm_step_*, attention_forward/backward, loops
- ``scores``          the vocabulary scores deferred (``Scores``), computed for kept targets only
- ``loss``            temporal_softmax_loss in one buffer
"""

from ..layers.affine import affine_backward, affine_forward
from ..layers.rnn import rnn_step_backward, rnn_step_forward
from .attention import dot_product_attention_backward, dot_product_attention_forward
from .attention_lstm import (
    attention_backward,
    attention_forward,
    attention_loop_backward,
    attention_loop_forward,
    attention_lstm_step_backward,
    attention_lstm_step_forward,
)
from .embed_project import embed_project_backward, embed_project_forward
from .embedding import WordGradients, WordVectors, word_embedding_backward, word_embedding_forward
from .loss import temporal_softmax_loss
from .lstm import (
    lstm_backward,
    lstm_forward,
    lstm_loop_backward,
    lstm_loop_forward,
    lstm_step_backward,
    lstm_step_forward,
)
from .rnn import rnn_backward, rnn_forward, rnn_loop_backward, rnn_loop_forward
from .scores import KeptRowGradients, Scores, temporal_affine_backward, temporal_affine_forward

__all__ = [
    "affine_forward",
    "affine_backward",
    "temporal_affine_forward",
    "temporal_affine_backward",
    "Scores",
    "KeptRowGradients",
    "word_embedding_forward",
    "word_embedding_backward",
    "WordVectors",
    "WordGradients",
    "embed_project_forward",
    "embed_project_backward",
    "rnn_step_forward",
    "rnn_step_backward",
    "rnn_forward",
    "rnn_backward",
    "rnn_loop_forward",
    "rnn_loop_backward",
    "lstm_step_forward",
    "lstm_step_backward",
    "lstm_forward",
    "lstm_backward",
    "lstm_loop_forward",
    "lstm_loop_backward",
    "dot_product_attention_forward",
    "dot_product_attention_backward",
    "attention_lstm_step_forward",
    "attention_lstm_step_backward",
    "attention_forward",
    "attention_backward",
    "attention_loop_forward",
    "attention_loop_backward",
    "temporal_softmax_loss",
]
