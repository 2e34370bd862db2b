"""Every layer of minicap as a pair of plain functions.

``*_forward(inputs...) -> (out, cache)`` and ``*_backward(dout, cache) -> grads``,
grads in the order of the forward's inputs; names and return conventions are
the CS231n / EECS 498 captioning ones. A backward never modifies its cache, its
upstream gradient or the forward's inputs. Each layer takes its array module
(NumPy or CuPy) from its inputs. Conventions and derivations: docs/conventions.md
and docs/layers.md.

Where things live:

- ``affine``          affine_forward/backward, temporal_affine_forward/backward
- ``embedding``       word_embedding_forward/backward
- ``embed_project``   embed_project_forward/backward: the embedding and a cell's input
                      projection as one layer, which the model uses with the ``*_loop`` functions
- ``rnn``             rnn_step_forward/backward, rnn_forward/backward, rnn_loop_forward/backward
- ``lstm``            lstm_step_forward/backward, lstm_forward/backward, lstm_loop_forward/backward,
                      the shared gate cell
- ``attention``       dot_product_attention_forward/backward
- ``attention_lstm``  attention_lstm_step_forward/backward, attention_forward/backward,
                      attention_loop_forward/backward
- ``loss``            temporal_softmax_loss
- ``_through_time``   the batched input projection and weight gradients of the sequences
- ``_checks``         shape and dtype validation with errors that name the argument
"""

from .affine import affine_backward, affine_forward, temporal_affine_backward, temporal_affine_forward
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
from .embedding import word_embedding_backward, word_embedding_forward
from .loss import temporal_softmax_loss
from .lstm import (
    lstm_backward,
    lstm_forward,
    lstm_loop_backward,
    lstm_loop_forward,
    lstm_step_backward,
    lstm_step_forward,
)
from .rnn import rnn_backward, rnn_forward, rnn_loop_backward, rnn_loop_forward, rnn_step_backward, rnn_step_forward

__all__ = [
    "affine_forward",
    "affine_backward",
    "temporal_affine_forward",
    "temporal_affine_backward",
    "word_embedding_forward",
    "word_embedding_backward",
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
