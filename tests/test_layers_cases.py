"""One description per forward/backward pair, shared by the layer test files.

A ``Case`` knows how to make random inputs for given sizes, how to run the
forward (returning only the outputs a backward takes gradients for) and how to
call the backward. The tests in this file check that the registry covers every
public layer, so a new layer cannot slip past the gradient checks.
"""

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

import minicap.kernels as K
import minicap.layers as L

# Small default sizes: gradient checks cost two forwards per input element.
DIMS = {"N": 2, "T": 3, "D": 4, "H": 3, "V": 5, "W": 4, "Hs": 2, "Ws": 3}


@dataclass
class Case:
    name: str
    make: Callable  # (rng, dims, dtype) -> list of host inputs, in forward order
    run: Callable  # (*inputs) -> (tuple of differentiable outputs, cache)
    back: Callable  # (tuple of upstream gradients, cache) -> tuple of grads
    wrt: tuple  # which inputs the grads belong to, in order
    forward: Callable  # the layer functions under test, for the coverage check
    backward: Callable
    sequence: bool = False  # many steps: gradient checks are allowed 1e-6
    names: tuple = ()  # the inputs' names, when they are not the forward's parameters

    def input_names(self):
        return self.names or tuple(inspect.signature(self.forward).parameters)

    def inputs(self, rng, dims=None, dtype=np.float64):
        return self.make(rng, {**DIMS, **(dims or {})}, dtype)


def _normal(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _weights(rng, dtype, *shapes):
    # Weights scaled by 1/sqrt(fan-in) keep tanh and sigmoid out of saturation,
    # where central differences would see almost no signal.
    return [_normal(rng, s, dtype, 1.0 / np.sqrt(s[0])) for s in shapes]


def _make_affine(rng, d, dt):
    return [_normal(rng, (d["N"], 2, d["D"]), dt), *_weights(rng, dt, (2 * d["D"], d["H"])), _normal(rng, d["H"], dt)]


def _make_temporal_affine(rng, d, dt):
    return [_normal(rng, (d["N"], d["T"], d["H"]), dt), *_weights(rng, dt, (d["H"], d["V"])), _normal(rng, d["V"], dt)]


def _make_embedding(rng, d, dt):
    # Draw ids from a few words only, so repeated ids are the rule, not luck.
    ids = rng.integers(0, min(d["V"], 3), size=(d["N"], d["T"]))
    return [ids, _normal(rng, (d["V"], d["W"]), dt)]


def _make_rnn_step(rng, d, dt):
    N, D, H = d["N"], d["D"], d["H"]
    return [_normal(rng, (N, D), dt), _normal(rng, (N, H), dt), *_weights(rng, dt, (D, H), (H, H)), _normal(rng, H, dt, 0.1)]


def _make_rnn(rng, d, dt):
    N, T, D, H = d["N"], d["T"], d["D"], d["H"]
    return [_normal(rng, (N, T, D), dt), _normal(rng, (N, H), dt), *_weights(rng, dt, (D, H), (H, H)), _normal(rng, H, dt, 0.1)]


def _make_lstm_step(rng, d, dt):
    N, D, H = d["N"], d["D"], d["H"]
    return [
        _normal(rng, (N, D), dt), _normal(rng, (N, H), dt), _normal(rng, (N, H), dt),
        *_weights(rng, dt, (D, 4 * H), (H, 4 * H)), _normal(rng, 4 * H, dt, 0.1),
    ]


def _make_lstm(rng, d, dt):
    N, T, D, H = d["N"], d["T"], d["D"], d["H"]
    return [_normal(rng, (N, T, D), dt), _normal(rng, (N, H), dt),
            *_weights(rng, dt, (D, 4 * H), (H, 4 * H)), _normal(rng, 4 * H, dt, 0.1)]


def _make_dot_attention(rng, d, dt):
    N, H = d["N"], d["H"]
    return [_normal(rng, (N, H), dt), _normal(rng, (N, H, d["Hs"], d["Ws"]), dt)]


def _make_attention_step(rng, d, dt):
    N, D, H = d["N"], d["D"], d["H"]
    return [
        _normal(rng, (N, D), dt), _normal(rng, (N, H), dt), _normal(rng, (N, H), dt), _normal(rng, (N, H), dt),
        *_weights(rng, dt, (D, 4 * H), (H, 4 * H), (H, 4 * H)), _normal(rng, 4 * H, dt, 0.1),
    ]


def _make_attention(rng, d, dt):
    N, T, D, H = d["N"], d["T"], d["D"], d["H"]
    return [_normal(rng, (N, T, D), dt), _normal(rng, (N, H, d["Hs"], d["Ws"]), dt),
            *_weights(rng, dt, (D, 4 * H), (H, 4 * H), (H, 4 * H)), _normal(rng, 4 * H, dt, 0.1)]


def _make_embed_project(rng, d, dt):
    # Few distinct words, so the folded route really sums several positions per row.
    N, T, V, W, G = d["N"], d["T"], d["V"], d["W"], 4 * d["H"]
    ids = rng.integers(0, min(V, 3), size=(N, T))
    return [ids, _normal(rng, (V, W), dt), *_weights(rng, dt, (W, G)), _normal(rng, G, dt)]


def _make_rnn_loop(rng, d, dt):
    N, T, H = d["N"], d["T"], d["H"]
    return [_normal(rng, (T, N, H), dt), _normal(rng, (N, H), dt), *_weights(rng, dt, (H, H))]


def _make_lstm_loop(rng, d, dt):
    N, T, H = d["N"], d["T"], d["H"]
    return [_normal(rng, (T, N, 4 * H), dt), _normal(rng, (N, H), dt), *_weights(rng, dt, (H, 4 * H))]


def _make_attention_loop(rng, d, dt):
    N, T, H = d["N"], d["T"], d["H"]
    return [_normal(rng, (T, N, 4 * H), dt), _normal(rng, (N, H, d["Hs"], d["Ws"]), dt),
            *_weights(rng, dt, (H, 4 * H), (H, 4 * H))]


def _with(forward, **options):
    """run() for ``forward`` called with keyword ``options``."""
    return lambda *args: (lambda result: ((result[0],), result[-1]))(forward(*args, **options))


def _outputs(forward, keep=(0,)):
    """run() for a forward whose last result is the cache; keeps the outputs at ``keep``."""
    def run(*args):
        result = forward(*args)
        return tuple(result[i] for i in keep), result[-1]
    return run


def _one_grad_out(backward):
    return lambda douts, cache: backward(douts[0], cache)


def _cases(L, prefix=""):
    """The cases of every function both namespaces share, with names ``prefix + layer``."""
    return [
        Case(prefix + "affine", _make_affine, _outputs(L.affine_forward), _one_grad_out(L.affine_backward),
             (0, 1, 2), L.affine_forward, L.affine_backward),
        Case(prefix + "temporal_affine", _make_temporal_affine, _outputs(_looked_up(L.temporal_affine_forward)),
             _one_grad_out(L.temporal_affine_backward), (0, 1, 2), L.temporal_affine_forward,
             L.temporal_affine_backward),
        Case(prefix + "word_embedding", _make_embedding, _outputs(_looked_up(L.word_embedding_forward)),
             lambda douts, cache: (L.word_embedding_backward(douts[0], cache),), (1,),
             L.word_embedding_forward, L.word_embedding_backward),
        Case(prefix + "rnn_step", _make_rnn_step, _outputs(L.rnn_step_forward), _one_grad_out(L.rnn_step_backward),
             (0, 1, 2, 3, 4), L.rnn_step_forward, L.rnn_step_backward),
        Case(prefix + "rnn", _make_rnn, _outputs(L.rnn_forward), _one_grad_out(L.rnn_backward), (0, 1, 2, 3, 4),
             L.rnn_forward, L.rnn_backward, sequence=True),
        Case(prefix + "lstm_step", _make_lstm_step, _outputs(L.lstm_step_forward, (0, 1)),
             lambda douts, cache: L.lstm_step_backward(*douts, cache), (0, 1, 2, 3, 4, 5),
             L.lstm_step_forward, L.lstm_step_backward),
        Case(prefix + "lstm", _make_lstm, _outputs(L.lstm_forward), _one_grad_out(L.lstm_backward),
             (0, 1, 2, 3, 4), L.lstm_forward, L.lstm_backward, sequence=True),
        Case(prefix + "dot_product_attention", _make_dot_attention, _outputs(L.dot_product_attention_forward),
             _one_grad_out(L.dot_product_attention_backward), (0, 1),
             L.dot_product_attention_forward, L.dot_product_attention_backward),
        Case(prefix + "attention_lstm_step", _make_attention_step, _outputs(L.attention_lstm_step_forward, (0, 1)),
             lambda douts, cache: L.attention_lstm_step_backward(*douts, cache), tuple(range(8)),
             L.attention_lstm_step_forward, L.attention_lstm_step_backward),
        Case(prefix + "attention", _make_attention, _outputs(L.attention_forward),
             _one_grad_out(L.attention_backward), tuple(range(6)), L.attention_forward, L.attention_backward,
             sequence=True),
    ]


def _looked_up(forward):
    """The kernels' embedding and temporal affine layer defer their output (WordVectors,
    Scores); compute it."""
    def run(*args):
        out, cache = forward(*args)
        if isinstance(out, K.WordVectors):
            out = out.lookup()
        elif isinstance(out, K.Scores):
            out = out.compute()
        return out, cache
    return run


def _words_then(sequence_forward, sequence_backward):
    """The kernels' embedding feeding a sequence kernel, which projects the ids and
    table itself (the fold): inputs ids, W_embed, then the sequence's other inputs."""
    def run(ids, W_embed, *rest):
        x, embed_cache = K.word_embedding_forward(ids, W_embed)
        h, cache = sequence_forward(x, *rest)
        return (h,), (embed_cache, cache)

    def back(douts, caches):
        embed_cache, cache = caches
        dx, *grads = sequence_backward(douts[0], cache)
        return (K.word_embedding_backward(dx, embed_cache), *grads)
    return run, back


def _make_words(make):
    """Inputs of ``make`` with x (N, T, D) replaced by ids (N, T) and a table (V, D)."""
    def words(rng, d, dt):
        x, *rest = make(rng, d, dt)
        N, T, D = x.shape
        return [rng.integers(0, min(d["V"], 3), size=(N, T)), _normal(rng, (d["V"], D), dt), *rest]
    return words


COURSE_CASES = _cases(L)
KERNEL_CASES = _cases(K, "kernels.") + [
    # The fused layer's two routes are separate cases: the default picks one by size.
    Case("kernels.embed_project_folded", _make_embed_project, _with(K.embed_project_forward, fold=True),
         _one_grad_out(K.embed_project_backward), (1, 2, 3), K.embed_project_forward, K.embed_project_backward),
    Case("kernels.embed_project_unfolded", _make_embed_project, _with(K.embed_project_forward, fold=False),
         _one_grad_out(K.embed_project_backward), (1, 2, 3), K.embed_project_forward, K.embed_project_backward),
    Case("kernels.rnn_loop", _make_rnn_loop, _outputs(K.rnn_loop_forward), _one_grad_out(K.rnn_loop_backward),
         (0, 1, 2), K.rnn_loop_forward, K.rnn_loop_backward, sequence=True),
    Case("kernels.lstm_loop", _make_lstm_loop, _outputs(K.lstm_loop_forward), _one_grad_out(K.lstm_loop_backward),
         (0, 1, 2), K.lstm_loop_forward, K.lstm_loop_backward, sequence=True),
    Case("kernels.attention_loop", _make_attention_loop, _outputs(K.attention_loop_forward),
         _one_grad_out(K.attention_loop_backward), (0, 1, 2, 3), K.attention_loop_forward,
         K.attention_loop_backward, sequence=True),
] + [
    Case(f"kernels.words_{name}", _make_words(make), *_words_then(fwd, bwd), wrt, fwd, bwd, sequence=True,
         names=("ids", "W_embed") + tuple(inspect.signature(fwd).parameters)[1:])
    for name, make, fwd, bwd, wrt in [
        ("rnn", _make_rnn, K.rnn_forward, K.rnn_backward, (1, 2, 3, 4, 5)),
        ("lstm", _make_lstm, K.lstm_forward, K.lstm_backward, (1, 2, 3, 4, 5)),
        ("attention", _make_attention, K.attention_forward, K.attention_backward, tuple(range(1, 7))),
    ]
]
CASES = COURSE_CASES + KERNEL_CASES
CASE_IDS = [c.name for c in CASES]


def to_xp(xp, arrays):
    return [xp.asarray(a) for a in arrays]


def test_every_public_layer_has_a_case():
    for namespace, cases in ((L, COURSE_CASES), (K, KERNEL_CASES)):
        covered = {f.__name__ for c in cases for f in (c.forward, c.backward)} | {"temporal_softmax_loss"}
        public = {name for name in namespace.__all__ if name[0].islower()}
        assert covered == public, namespace.__name__


def test_cases_return_one_grad_per_wrt_input(rng):
    for case in CASES:
        args = case.inputs(rng)
        outs, cache = case.run(*args)
        grads = case.back(tuple(np.ones_like(o) for o in outs), cache)
        assert len(grads) == len(case.wrt), case.name
        for i, g in zip(case.wrt, grads):
            assert g.shape == args[i].shape, (case.name, i)


def snapshot(tree):
    """A deep copy of every array inside nested tuples / lists (other leaves as they are)."""
    if isinstance(tree, (tuple, list)):
        return type(tree)(snapshot(t) for t in tree)
    return tree.copy() if _is_array(tree) else tree


def _is_array(a):
    # NumPy or CuPy arrays; dtypes also have a .shape, so they are excluded.
    return hasattr(a, "shape") and hasattr(a, "copy") and not isinstance(a, np.dtype)


def assert_tree_equal(a, b, what):
    """Exact equality of two nested structures of arrays (NaN never appears here)."""
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b), what
        for k, (x, y) in enumerate(zip(a, b)):
            assert_tree_equal(x, y, f"{what}[{k}]")
    elif _is_array(a):
        assert a.shape == b.shape and a.dtype == b.dtype, what
        assert bool((a == b).all()), f"{what} changed"
    else:
        assert a == b, what
