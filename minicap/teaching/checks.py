"""The checks of every exercise: known values, gradient checks, sanity values, overfitting.

Each check is a function of the student's code that returns ``Row``s, one per
array it compared: what was compared, the relative error, the tolerance.
Functions are looked up when a check runs (``student``), so the grader
always runs the code that is in the files now.

- ``known values``: the courses' published inputs and outputs (``published``);
- ``gradient check``: float64 central differences against the backward, for
  every input and parameter that gets a gradient, contracted with a random
  upstream gradient (the CS231n way: one check covers the whole Jacobian);
- ``sanity``: temporal_softmax_loss on nearly uniform scores is about log V
  per kept step (CS231n's three values, and EECS 498's three ranges);
- ``overfit``: 50 captions learned by a vanilla-RNN model through the student's
  layers, loss and update rule, to a final training loss below 0.1 (CS231n's
  setting: hidden 512, word vectors 256, Adam at 5e-3, 100 iterations).

``CHECKS`` maps each exercise to its (kind, points, check) in the order they run.
"""

import importlib
import math
from dataclasses import dataclass

import numpy as np

from . import published


@dataclass(frozen=True)
class Row:
    what: str
    error: float  # relative error (or, for the overfit, the final loss)
    tolerance: float

    @property
    def passed(self):
        return bool(self.error < self.tolerance)  # NaN fails


def student(name):
    """The function ``name`` as the files define it now ("CaptioningRNN.loss" gives the model class)."""
    from .exercises import BY_NAME

    exercise = BY_NAME[name]
    module = importlib.import_module(exercise.module)
    return getattr(module, name.split(".")[0])


def rel_error(x, y):
    from ..gradcheck import rel_error as course_rel_error

    return course_rel_error(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


# ------------------------------------------------------------------ known values
def known_values(name):
    entry = next(k for k in published.KNOWN_VALUES if k.function == name)

    def check():
        args, expected = entry.build()
        result = student(name)(*args)
        rows = []
        for key, value in expected.items():
            if isinstance(key, int):
                got = result[key] if isinstance(result, tuple) else result
                label = entry.outputs[key]
            else:  # an update rule's state, in the config it returned
                got, label = result[1][key], f"config[{key!r}]"
            rows.append(Row(f"{label} vs {entry.source}", _compare(got, value), entry.tolerance))
        return rows

    return check


def _compare(got, expected):
    got = np.asarray(got)
    if got.shape != expected.shape:
        raise ValueError(f"the output has shape {got.shape}, expected {expected.shape}")
    return rel_error(got, expected)


# --------------------------------------------------------------- gradient checks
@dataclass(frozen=True)
class GradientCase:
    """How to check one backward against its forward.

    inputs(rng) -> list of forward arguments; outputs: positions of the
    forward's results that carry gradient; cache: position of the cache;
    grads: (name, input position, position in the backward's result or None
    when the backward returns a single array).
    """

    forward: str
    backward: str
    inputs: object
    outputs: tuple
    cache: int
    grads: tuple
    tolerance: float


def _w(rng, fan_in, *shape):
    """Weights at the usual 1/sqrt(fan-in) scale, so no tanh or sigmoid saturates."""
    return rng.standard_normal(shape) / math.sqrt(fan_in)


def _all(names):
    return tuple((n, i, i) for i, n in enumerate(names))


GRADIENT_CASES = {
    "affine_backward": GradientCase(
        "affine_forward", "affine_backward",
        lambda r: [r.standard_normal((3, 2, 3)), _w(r, 6, 6, 4), r.standard_normal(4)],
        (0,), 1, _all(["dx", "dw", "db"]), 1e-8),
    "word_embedding_backward": GradientCase(
        "word_embedding_forward", "word_embedding_backward",
        lambda r: [r.integers(0, 5, size=(6, 3)), r.standard_normal((5, 4))],
        (0,), 1, (("dW", 1, None),), 1e-9),
    "temporal_affine_backward": GradientCase(
        "temporal_affine_forward", "temporal_affine_backward",
        lambda r: [r.standard_normal((2, 3, 4)), _w(r, 4, 4, 5), r.standard_normal(5)],
        (0,), 1, _all(["dx", "dw", "db"]), 1e-8),
    "rnn_step_backward": GradientCase(
        "rnn_step_forward", "rnn_step_backward",
        lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 5)), _w(r, 4, 4, 5), _w(r, 5, 5, 5),
                   r.standard_normal(5)],
        (0,), 1, _all(["dx", "dprev_h", "dWx", "dWh", "db"]), 1e-7),
    "rnn_backward": GradientCase(
        "rnn_forward", "rnn_backward",
        lambda r: [r.standard_normal((2, 4, 3)), r.standard_normal((2, 5)), _w(r, 3, 3, 5), _w(r, 5, 5, 5),
                   r.standard_normal(5)],
        (0,), 1, _all(["dx", "dh0", "dWx", "dWh", "db"]), 1e-6),
    "lstm_step_backward": GradientCase(
        "lstm_step_forward", "lstm_step_backward",
        lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 5)), r.standard_normal((3, 5)),
                   _w(r, 4, 4, 20), _w(r, 5, 5, 20), r.standard_normal(20)],
        (0, 1), 2, _all(["dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"]), 1e-6),
    "lstm_backward": GradientCase(
        "lstm_forward", "lstm_backward",
        lambda r: [r.standard_normal((2, 4, 3)), r.standard_normal((2, 5)), _w(r, 3, 3, 20), _w(r, 5, 5, 20),
                   r.standard_normal(20)],
        (0,), 1, _all(["dx", "dh0", "dWx", "dWh", "db"]), 1e-6),
    "dot_product_attention_backward": GradientCase(
        "dot_product_attention_forward", "dot_product_attention_backward",
        lambda r: [r.standard_normal((2, 5)), r.standard_normal((2, 5, 3, 3))],
        (0,), 2, _all(["dprev_h", "dA"]), 1e-7),
    "attention_lstm_step_backward": GradientCase(
        "attention_lstm_step_forward", "attention_lstm_step_backward",
        lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 5)), r.standard_normal((3, 5)),
                   r.standard_normal((3, 5)), _w(r, 4, 4, 20), _w(r, 5, 5, 20), _w(r, 5, 5, 20),
                   r.standard_normal(20)],
        (0, 1), 2, _all(["dx", "dprev_h", "dprev_c", "dattn", "dWx", "dWh", "dWattn", "db"]), 1e-6),
    "attention_backward": GradientCase(
        "attention_forward", "attention_backward",
        lambda r: [r.standard_normal((2, 3, 4)), r.standard_normal((2, 5, 2, 2)), _w(r, 4, 4, 20),
                   _w(r, 5, 5, 20), _w(r, 5, 5, 20), r.standard_normal(20)],
        (0,), 1, _all(["dx", "dA", "dWx", "dWh", "dWattn", "db"]), 1e-6),
}


def gradient_check(case, seed):
    def check():
        from ..gradcheck import eval_numerical_gradient_array

        rng = np.random.default_rng(seed)
        inputs = case.inputs(rng)
        forward, backward = student(case.forward), student(case.backward)
        results = forward(*inputs)
        douts = [rng.standard_normal(np.shape(results[i])) for i in case.outputs]
        analytic = backward(*douts, results[case.cache])
        dflat = np.concatenate([d.ravel() for d in douts])

        def outputs(_):
            out = forward(*inputs)
            return np.concatenate([np.asarray(out[i], dtype=np.float64).ravel() for i in case.outputs])

        rows = []
        for name, arg, position in case.grads:
            numerical = eval_numerical_gradient_array(outputs, inputs[arg], dflat)
            got = analytic if position is None else analytic[position]
            rows.append(Row(name, _compare(got, numerical), case.tolerance))
        return rows

    return check


def softmax_gradient():
    from ..gradcheck import eval_numerical_gradient

    loss_fn = student("temporal_softmax_loss")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((7, 8, 9))
    y = rng.integers(0, 9, size=(7, 8))
    mask = rng.random((7, 8)) > 0.5
    _, dx = loss_fn(x, y, mask)
    numerical = eval_numerical_gradient(lambda v: loss_fn(v, y, mask)[0], x)
    return [Row("dx", _compare(dx, numerical), 1e-6)]  # CS231n: "on the order of e-7"


def softmax_sanity():
    loss_fn = student("temporal_softmax_loss")
    rng = np.random.default_rng(231)
    rows = []
    for N, T, V, p, about in published.SOFTMAX_SANITY:
        x = 0.001 * rng.standard_normal((N, T, V))
        y = rng.integers(0, V, size=(N, T))
        mask = rng.random((N, T)) <= p
        loss = float(loss_fn(x, y, mask)[0])
        rows.append(Row(f"loss {loss:.3f}, about {about:g} (N={N}, T={T}, p={p:g})",
                        abs(loss / about - 1.0), published.SOFTMAX_SANITY_TOLERANCE))
    rng = np.random.default_rng(498)
    for N, T, V, p, (low, high) in published.EECS498_SOFTMAX_SANITY:
        x = 0.001 * rng.standard_normal((N, T, V))
        y = rng.integers(0, V, size=(N, T))
        y[rng.random((N, T)) > p] = 0
        loss = float(loss_fn(x, y, y != 0)[0])  # EECS 498 ignores id 0 (<NULL>)
        center, half = (low + high) / 2, (high - low) / 2
        rows.append(Row(f"loss {loss:.3f} in [{low}, {high}] (EECS 498)", abs(loss / center - 1.0),
                        half / center))
    return rows


# ------------------------------------------------------------------------ the model
def _course_model(cell, **kwargs):
    import warnings

    model_class = student("CaptioningRNN.loss")
    with warnings.catch_warnings():  # the course's vocabulary has an id (3) beyond V = 3, on purpose
        warnings.simplefilter("ignore")
        return model_class(impl="reference", dtype=np.float64, cell_type=cell, **kwargs)


def model_losses():
    rows = []
    for cell, ((lo, hi), expected) in published.MODEL_LOSSES.items():
        N, D, W, H, T = 10, 20, 30, 40, 13
        word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
        model = _course_model(cell, word_to_idx=word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H)
        for k, v in model.params.items():
            model.params[k] = np.linspace(-1.4, 1.3, num=v.size).reshape(v.shape)
        features = np.linspace(lo, hi, num=N * D).reshape(N, D)
        captions = (np.arange(N * T, dtype=np.int32) % len(word_to_idx)).reshape(N, T)
        loss, _ = model.loss(features, captions)
        rows.append(Row(f"{cell} model loss vs CS231n {expected}",
                        rel_error(float(loss), expected), published.MODEL_LOSS_TOLERANCE))
    return rows


def model_gradients():
    """CS231n's model gradient check: a float64 rnn model, every parameter."""
    from ..gradcheck import eval_numerical_gradient

    rng = np.random.default_rng(231)
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2, "cat": 3, "dog": 4}
    model = _course_model("rnn", word_to_idx=word_to_idx, input_dim=4, wordvec_dim=5, hidden_dim=6, seed=0)
    features = rng.standard_normal((2, 4))
    captions = rng.integers(0, len(word_to_idx), size=(2, 4))
    _, grads = model.loss(features, captions)
    missing = sorted(set(model.params) - set(grads))
    if missing:
        raise ValueError(f"grads has no entry for {', '.join(missing)}: give every parameter its gradient")
    rows = []
    for name, value in model.params.items():
        numerical = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], value)
        rows.append(Row(name, _compare(grads[name], numerical), 1e-6))
    return rows


def overfit():
    """50 captions, CS231n's overfitting setting, through the student's code."""
    from ..data import load_shapes
    from ..solver import CaptioningSolver

    data = load_shapes(num_train=50, num_val=0, num_test=0, seed=0, captions_per_image=1, cache=False)
    model_class = student("CaptioningRNN.loss")
    model = model_class(data["word_to_idx"], input_dim=data["train_features"].shape[1], wordvec_dim=256,
                        hidden_dim=512, cell_type="rnn", seed=0, impl="reference")
    solver = CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": 5e-3},
                              lr_decay=0.95, batch_size=25, num_epochs=50, verbose=False)
    solver.train()
    final = solver.loss_history[-1]
    return [Row(f"final loss (from {solver.loss_history[0]:.1f}, {len(solver.loss_history)} steps)", final, 0.1)]


# ------------------------------------------------------------- every exercise's checks
def _checks():
    checks = {}
    for entry in published.KNOWN_VALUES:
        checks.setdefault(entry.function, []).append(("known values", 1, known_values(entry.function)))
    for seed, (name, case) in enumerate(GRADIENT_CASES.items()):
        checks.setdefault(name, []).append(("gradient check", 2, gradient_check(case, seed)))
    checks["temporal_softmax_loss"] = [("sanity", 1, softmax_sanity), ("gradient check", 2, softmax_gradient)]
    checks["CaptioningRNN.loss"] = [("known values", 1, model_losses), ("gradient check", 2, model_gradients),
                                    ("overfit", 2, overfit)]
    return checks


CHECKS = _checks()
