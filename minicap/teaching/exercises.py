"""The exercises: every function a student writes, in the order the courses meet them.

An exercise is one function of the library whose body sits between
``# BEGIN SOLUTION`` and ``# END SOLUTION``. It belongs to a part (a course
section: ``basics``, ``rnn``, ``lstm``, ``attention``, ``optim``, ``model``),
lives in one module, and comes with the text of its stub: what goes in, what
must come out, with shapes, and the section of the docs that explains it.

``uses`` names the exercises its checks run through (a sequence calls its
step; the model calls everything): when one of those fails too, the grader
says so, since fixing it first may fix this one.

To add an exercise: mark the function's body, add an ``Exercise`` here, and
add its checks to ``minicap.teaching.checks`` (docs/teaching.md walks
through it).
"""

from dataclasses import dataclass

PARTS = ("basics", "rnn", "lstm", "attention", "optim", "model")


@dataclass(frozen=True)
class Exercise:
    name: str  # how the student and the grader call it: "rnn_step_forward", "CaptioningRNN.loss"
    part: str
    module: str  # where it is defined, e.g. "minicap.layers.rnn"
    todo: str  # the stub's comment: inputs, outputs and shapes
    docs: str  # the section of the docs that explains it
    region_in: str = ""  # the function holding the region when it is not ``name`` (adam's body is _adam_step's)
    uses: tuple = ()

    @property
    def function(self):
        """The qualified name of the function whose body is the region."""
        return self.region_in or self.name

    @property
    def path(self):
        """The source file, relative to the folder holding the package: minicap/layers/rnn.py."""
        return self.module.replace(".", "/") + ".py"


def _layer(name, part, module, todo, section, uses=()):
    return Exercise(name, part, f"minicap.layers.{module}", todo, f"docs/layers.md, section \"{section}\"",
                    uses=tuple(uses))


EXERCISES = (
    # ---- basics: the layers around the recurrence
    _layer("affine_forward", "basics", "affine",
           "x (N, d_1, ..., d_k), w (D, M) with D = d_1 * ... * d_k, b (M,) -> out (N, M) = "
           "x.reshape(N, D) @ w + b, and cache, what affine_backward needs.", "Affine"),
    _layer("affine_backward", "basics", "affine",
           "dout (N, M) and the forward's cache -> dx (the shape of x), dw (D, M), db (M,).", "Affine",
           uses=["affine_forward"]),
    _layer("word_embedding_forward", "basics", "embedding",
           "x (N, T) integer ids in [0, V), W (V, W) -> out (N, T, W) with out[n, t] = W[x[n, t]], "
           "and cache.", "Word embedding"),
    _layer("word_embedding_backward", "basics", "embedding",
           "dout (N, T, W) and the cache -> dW (V, W). A word that occurs twice collects both "
           "gradients: minicap.backend.scatter_add(target, ids, rows) adds every one.", "Word embedding",
           uses=["word_embedding_forward"]),
    _layer("temporal_affine_forward", "basics", "affine",
           "x (N, T, H), w (H, V), b (V,) -> out (N, T, V) with out[:, t] = x[:, t] @ w + b, and cache.",
           "Temporal affine"),
    _layer("temporal_affine_backward", "basics", "affine",
           "dout (N, T, V) and the cache -> dx (N, T, H), dw (H, V), db (V,).", "Temporal affine",
           uses=["temporal_affine_forward"]),
    _layer("temporal_softmax_loss", "basics", "loss",
           "scores x (N, T, V), targets y (N, T), mask (N, T) -> loss, the sum over kept (n, t) of "
           "-log softmax(x[n, t])[y[n, t]] divided by N (a scalar), and dx (N, T, V).",
           "Temporal softmax loss"),
    # ---- rnn
    _layer("rnn_step_forward", "rnn", "rnn",
           "x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,) -> next_h (N, H) = "
           "tanh(x @ Wx + prev_h @ Wh + b), and cache.", "RNN step"),
    _layer("rnn_step_backward", "rnn", "rnn",
           "dnext_h (N, H) and the cache -> dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,).",
           "RNN step", uses=["rnn_step_forward"]),
    _layer("rnn_forward", "rnn", "rnn",
           "x (N, T, D), h0 (N, H), Wx, Wh, b -> h (N, T, H), running rnn_step_forward over t = 0..T-1, "
           "and cache.", "RNN through time", uses=["rnn_step_forward"]),
    _layer("rnn_backward", "rnn", "rnn",
           "dh (N, T, H) and the cache -> dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,), "
           "running rnn_step_backward from the last step to the first.", "RNN through time",
           uses=["rnn_forward", "rnn_step_forward", "rnn_step_backward"]),
    # ---- lstm
    _layer("lstm_step_forward", "lstm", "lstm",
           "x (N, D), prev_h, prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,) -> next_h, next_c (N, H) "
           "and cache; gates i, f, o, g in that order along the 4H axis (sigmoid is defined above).",
           "LSTM step"),
    _layer("lstm_step_backward", "lstm", "lstm",
           "dnext_h, dnext_c (N, H) and the cache -> dx (N, D), dprev_h, dprev_c (N, H), dWx (D, 4H), "
           "dWh (H, 4H), db (4H,).", "LSTM step", uses=["lstm_step_forward"]),
    _layer("lstm_forward", "lstm", "lstm",
           "x (N, T, D), h0 (N, H), Wx, Wh, b -> h (N, T, H), from c0 = 0, running lstm_step_forward; "
           "and cache.", "LSTM through time", uses=["lstm_step_forward"]),
    _layer("lstm_backward", "lstm", "lstm",
           "dh (N, T, H) and the cache -> dx (N, T, D), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).",
           "LSTM through time", uses=["lstm_forward", "lstm_step_forward", "lstm_step_backward"]),
    # ---- attention
    _layer("dot_product_attention_forward", "attention", "attention",
           "prev_h (N, H), A (N, H, Hs, Ws) -> attn (N, H), the average of A's locations weighted by "
           "softmax(prev_h . A[:, :, l] / sqrt(H)); attn_weights (N, Hs, Ws); cache (softmax is above).",
           "Dot-product attention"),
    _layer("dot_product_attention_backward", "attention", "attention",
           "dattn (N, H) and the cache -> dprev_h (N, H), dA (N, H, Hs, Ws).", "Dot-product attention",
           uses=["dot_product_attention_forward"]),
    _layer("attention_lstm_step_forward", "attention", "attention_lstm",
           "x (N, D), prev_h, prev_c, attn (N, H), Wx (D, 4H), Wh, Wattn (H, 4H), b (4H,) -> next_h, "
           "next_c (N, H) and cache: an LSTM step on a = x @ Wx + prev_h @ Wh + attn @ Wattn + b.",
           "Attention LSTM step", uses=["lstm_step_forward"]),
    _layer("attention_lstm_step_backward", "attention", "attention_lstm",
           "dnext_h, dnext_c (N, H) and the cache -> dx (N, D), dprev_h, dprev_c, dattn (N, H), "
           "dWx (D, 4H), dWh, dWattn (H, 4H), db (4H,).", "Attention LSTM step",
           uses=["attention_lstm_step_forward", "lstm_step_forward", "lstm_step_backward"]),
    _layer("attention_forward", "attention", "attention_lstm",
           "x (N, T, D), A (N, H, Hs, Ws), Wx, Wh, Wattn, b -> h (N, T, H) and cache; h0 = c0 = the "
           "mean of A over its locations, and step t attends with h[t-1].", "Attention LSTM through time",
           uses=["dot_product_attention_forward", "attention_lstm_step_forward", "lstm_step_forward"]),
    _layer("attention_backward", "attention", "attention_lstm",
           "dh (N, T, H) and the cache -> dx (N, T, D), dA (N, H, Hs, Ws), dWx (D, 4H), dWh, dWattn "
           "(H, 4H), db (4H,). A is reached as keys, as values, and through h0 = c0 = mean(A).",
           "Attention LSTM through time",
           uses=["attention_forward", "dot_product_attention_forward", "dot_product_attention_backward",
                 "attention_lstm_step_forward", "attention_lstm_step_backward", "lstm_step_forward",
                 "lstm_step_backward"]),
    # ---- optim
    Exercise("sgd_momentum", "optim", "minicap.optim",
             "w, dw (any shape) and config with learning_rate, momentum and the state velocity (like w) "
             "-> update velocity and w in place (next_w is w).", "docs/training.md, section \"Update rules\""),
    Exercise("rmsprop", "optim", "minicap.optim",
             "w, dw and config with learning_rate, decay_rate, epsilon and the state cache (like w) "
             "-> update cache and w in place.", "docs/training.md, section \"Update rules\""),
    Exercise("adam", "optim", "minicap.optim",
             "w, dw and config with learning_rate, beta1, beta2, epsilon and the state m, v (like w) and "
             "t (an int) -> t += 1 first, then update m, v and w in place (adam's docstring has the formula).",
             "docs/training.md, section \"Update rules\"", region_in="_adam_step"),
    # ---- the model
    Exercise("CaptioningRNN.loss", "model", "minicap.model",
             "captions_in, captions_out, mask and cell_params are ready above; L holds the layer functions "
             "(L.word_embedding_forward, ...), forward/backward the cell's sequence functions -> loss (a "
             "scalar) and grads (a dict: the gradient of every key of self.params). The image goes in "
             "through self._project_features(L, features) (h0, or the grid A for attention) and its "
             "gradient out through self._project_features_backward(L, dinit, cache).",
             "docs/model.md",
             uses=["affine_forward", "affine_backward", "word_embedding_forward", "word_embedding_backward",
                   "temporal_affine_forward", "temporal_affine_backward", "temporal_softmax_loss",
                   "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
                   "lstm_step_forward", "lstm_forward", "adam"]),
)

BY_NAME = {exercise.name: exercise for exercise in EXERCISES}


def parse_parts(text):
    """``"rnn,lstm"`` -> ("rnn", "lstm") in course order; None or "" -> every part.

    Raises ValueError naming the unknown part and the known ones.
    """
    if text is None or text == "":
        return PARTS
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in PARTS]
    if unknown or not names:
        raise ValueError(f"unknown part {', '.join(map(repr, unknown)) or repr(text)}: "
                         f"the parts are {', '.join(PARTS)}")
    return tuple(p for p in PARTS if p in names)


def exercises_of(parts):
    """The exercises of ``parts``, in course order."""
    return [e for e in EXERCISES if e.part in parts]
