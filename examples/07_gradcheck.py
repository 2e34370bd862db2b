# %% [markdown]
# # Gradient checking, step by step
#
# Every backward pass in minicap was derived by hand, and a hand derivation is only a claim
# until a **gradient check** agrees with it. This walkthrough shows how the check works, runs it
# on the layers and on the whole captioning model, and shows what a bug looks like.
#
# Run it as a script (`python examples/07_gradcheck.py [--quick] [--out DIR]`) or open it as a
# notebook with jupytext. It writes `errors.json` (every relative error it measured) to
# `runs/examples/07_gradcheck/` unless `--out` says otherwise.

# %%
import argparse
import json
import math
import pathlib
import sys
import time

import numpy as np

from minicap import CaptioningRNN
from minicap.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from minicap.layers import (
    affine_backward,
    affine_forward,
    attention_lstm_step_backward,
    attention_lstm_step_forward,
    dot_product_attention_backward,
    dot_product_attention_forward,
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)

parser = argparse.ArgumentParser(description="Gradient checks of minicap's layers and model.")
parser.add_argument("--quick", action="store_true", help="smaller shapes, fewer checks (CI)")
parser.add_argument("--out", default="runs/examples/07_gradcheck", help="output folder")
args, unknown = parser.parse_known_args()  # Jupyter passes its own arguments (-f kernel.json)
if unknown and "ipykernel" not in sys.modules:  # outside Jupyter an unknown option is a mistake
    parser.error(f"unrecognized arguments: {' '.join(unknown)}")
out_dir = pathlib.Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
started = time.perf_counter()
errors = {}
table = []  # (function, argument, relative error, verdict), printed as a table at the end


def verdict(error):
    """The course notes' reading of a relative error (CS231n, "neural-networks-3"): 1e-7 or less
    is good; up to 1e-4 acceptable (here: an entry of the gradient close to zero, see section 4);
    up to 1e-2 suspicious; above, wrong."""
    if not error < 1e-2:
        return "wrong"
    if error >= 1e-4:
        return "suspicious"
    if error >= 1e-7:
        return "acceptable"
    return "good"


def record(function, argument, error):
    errors[f"{function} {argument}"] = error
    table.append((function, argument, error, verdict(error)))


def print_table(rows):
    print(f"{'function':34s} {'argument':10s} {'rel. error':>10s}  verdict")
    for function, argument, error, word in rows:
        print(f"{function:34s} {argument:10s} {error:10.1e}  {word}")

# %% [markdown]
# ## 1. Central differences
#
# For a scalar function f, the derivative along coordinate i is approximately
# `(f(x + h e_i) - f(x - h e_i)) / (2h)`, with an error of order h². Compare with the exact
# gradient by the **relative error** `max |a - b| / max(1e-8, |a| + |b|)`: it does not care
# whether the gradient is large or small. `f(x) = sum(x³)` has gradient `3x²`:

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((3, 4))
numerical = eval_numerical_gradient(lambda v: np.sum(v**3), x)
record("sum(x^3)", "x", rel_error(numerical, 3 * x**2))
print(f"sum(x^3): relative error {errors['sum(x^3) x']:.1e}")

# %% [markdown]
# Why float64? A float32 number carries about 7 significant digits (machine epsilon 1.2e-7,
# against 2.2e-16 in float64). The central difference subtracts two nearly equal values
# f(x + h) and f(x - h): their rounding error, about eps * |f| each, is divided by 2h. The
# approximation's own error shrinks as h², so the best h balances the two, and in float32 the
# best balance leaves an error around 1e-4 to 1e-3 of the gradient, where float64 reaches
# 1e-10. Rounding `x + h` to float32 alone moves the probe point by up to eps * |x|. So the same
# correct check run in float32 (with a larger h, the best float32 allows) looks far worse,
# although nothing is wrong: gradient checks always run in float64.

# %%
x32 = x.astype(np.float32)
numerical32 = eval_numerical_gradient(lambda v: np.sum(v**3), x32, h=1e-2)
record("sum(x^3), float32", "x", rel_error(numerical32, 3 * x.astype(np.float32) ** 2))
print(f"the same in float32: relative error {errors['sum(x^3), float32 x']:.1e} "
      f"(float32 epsilon {np.finfo(np.float32).eps:.1e}, float64 {np.finfo(np.float64).eps:.1e})")

# %% [markdown]
# ## 2. Layers: the vector-Jacobian product
#
# A layer's output is an array, and its backward computes `dout`-weighted sums: the gradient of
# `sum(out * dout)` for the upstream gradient `dout`. `eval_numerical_gradient_array(f, x, dout)`
# measures exactly that quantity, so a random `dout` checks the whole Jacobian at once. The
# helper below checks every input of a forward/backward pair.

# %%
def check_layer(name, forward, backward, inputs, arguments, num_outputs=1, skip=()):
    """Check every input's gradient; forward(*inputs)[:num_outputs] are the outputs, and
    backward returns one gradient per input in ``arguments`` order (``skip``: inputs without
    one, such as word ids)."""
    outs = forward(*inputs)
    cache = outs[num_outputs]
    douts = [rng.standard_normal(o.shape) for o in outs[:num_outputs]]
    grads = backward(*douts, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    rows = []
    wanted = [(value, argument) for value, argument in zip(inputs, arguments) if argument not in skip]
    for (value, argument), grad in zip(wanted, grads):
        # the checker perturbs ``value`` in place; the forward reads it through ``inputs``
        def f(_):
            return np.concatenate([o.ravel() for o in forward(*inputs)[:num_outputs]])

        numerical = eval_numerical_gradient_array(f, value, np.concatenate([d.ravel() for d in douts]))
        record(name, argument, rel_error(grad, numerical))
        rows.append(table[-1])
    print_table(rows)


def weights(fan_in, *shape):
    return rng.standard_normal(shape) / math.sqrt(fan_in)


N, T, D, H = (2, 3, 4, 5) if args.quick else (4, 6, 8, 10)
V = 7
check_layer("affine_backward", affine_forward, affine_backward,
            [rng.standard_normal((N, D)), weights(D, D, H), rng.standard_normal(H)], ["x", "w", "b"])

# %% [markdown]
# The word embedding has no gradient for its integer ids, only for the table: `dW`. Ids repeat
# on purpose (N*T draws from V words), so a backward that lost repeated rows would show here.

# %%
check_layer("word_embedding_backward", word_embedding_forward, word_embedding_backward,
            [rng.integers(0, V, size=(N, T)), rng.standard_normal((V, D))], ["x", "W"], skip=("x",))
check_layer("temporal_affine_backward", temporal_affine_forward, temporal_affine_backward,
            [rng.standard_normal((N, T, H)), weights(H, H, V), rng.standard_normal(V)], ["x", "w", "b"])
check_layer("rnn_step_backward", rnn_step_forward, rnn_step_backward,
            [rng.standard_normal((N, D)), rng.standard_normal((N, H)), weights(D, D, H), weights(H, H, H),
             rng.standard_normal(H)], ["x", "prev_h", "Wx", "Wh", "b"])
check_layer("rnn_backward", rnn_forward, rnn_backward,
            [rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), weights(D, D, H), weights(H, H, H),
             rng.standard_normal(H)], ["x", "h0", "Wx", "Wh", "b"])
check_layer("lstm_step_backward", lstm_step_forward, lstm_step_backward,
            [rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H)),
             weights(D, D, 4 * H), weights(H, H, 4 * H), rng.standard_normal(4 * H)],
            ["x", "prev_h", "prev_c", "Wx", "Wh", "b"], num_outputs=2)
check_layer("lstm_backward", lstm_forward, lstm_backward,
            [rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), weights(D, D, 4 * H),
             weights(H, H, 4 * H), rng.standard_normal(4 * H)], ["x", "h0", "Wx", "Wh", "b"])


# %% [markdown]
# The attention layer returns two arrays, the context and the weights; only the context carries
# gradient backwards (the weights are for looking at), so its check uses the context alone. The
# attention LSTM step has two outputs, like the LSTM step, and eight inputs.

# %%
def attention_context(prev_h, A):
    attn, _, cache = dot_product_attention_forward(prev_h, A)
    return attn, cache


check_layer("dot_product_attention_backward", attention_context, dot_product_attention_backward,
            [rng.standard_normal((N, H)), rng.standard_normal((N, H, 3, 3))], ["prev_h", "A"])
check_layer("attention_lstm_step_backward", attention_lstm_step_forward, attention_lstm_step_backward,
            [rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H)),
             rng.standard_normal((N, H)), weights(D, D, 4 * H), weights(H, H, 4 * H), weights(H, H, 4 * H),
             rng.standard_normal(4 * H)],
            ["x", "prev_h", "prev_c", "attn", "Wx", "Wh", "Wattn", "b"], num_outputs=2)

# %% [markdown]
# ## 3. The loss
#
# `temporal_softmax_loss` returns a scalar and its gradient directly, so the scalar checker
# applies. Masked steps (here about a third) must get exactly zero gradient.

# %%
scores = rng.standard_normal((N, T, V))
targets = rng.integers(0, V, size=(N, T))
mask = rng.random((N, T)) < 0.7
loss, dscores = temporal_softmax_loss(scores, targets, mask)
numerical = eval_numerical_gradient(lambda s: temporal_softmax_loss(s, targets, mask)[0], scores)
record("temporal_softmax_loss", "x", rel_error(dscores, numerical))
print_table(table[-1:])
print(f"largest gradient on a masked step: {np.abs(dscores[~mask]).max(initial=0.0)}")

# %% [markdown]
# ## 4. The whole model
#
# `CaptioningRNN.loss` chains embedding, cell, output layer and loss. Its `params` dict is read
# live on every call, so the checker can perturb a weight in place and call `loss` again. Build a
# float64 model with a tiny vocabulary and check every parameter of every cell type.
#
# One thing changes at this scale. The loss is a sum over all captions and steps (about 10
# here), so each central difference carries round-off of about 1e-10 in absolute terms. A
# gradient entry that happens to be tiny (the LSTM's recurrent weights have entries near 1e-5)
# then shows an *elementwise* relative error near 1e-5 although nothing is wrong. So we print
# the course's elementwise measure and, next to it, the error of the gradient as a whole,
# `||numerical - analytic|| / ||numerical||`, which is the one to hold to 1e-7.

# %%
word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3, "red": 4, "circle": 5}
D_img, W, H_model = (3, 4, 5) if args.quick else (6, 8, 10)
captions = rng.integers(0, len(word_to_idx), size=(N, T + 1))
cells = ["rnn", "attention"] if args.quick else ["rnn", "lstm", "attention"]
for cell in cells:
    model = CaptioningRNN(word_to_idx, input_dim=D_img, wordvec_dim=W, hidden_dim=H_model,
                          cell_type=cell, dtype=np.float64, seed=1)
    shape = (N, D_img, 2, 2) if cell == "attention" else (N, D_img)
    features = rng.standard_normal(shape)
    _, grads = model.loss(features, captions)
    elementwise, whole = 0.0, 0.0
    for name, value in model.params.items():
        numerical = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], value)
        record(f"CaptioningRNN.loss ({cell})", name,
               float(np.linalg.norm(numerical - grads[name]) / np.linalg.norm(numerical)))
        whole = max(whole, table[-1][2])
        elementwise = max(elementwise, rel_error(grads[name], numerical))
    print(f"{cell:>9s} model, {len(model.params)} parameters: whole-gradient error {whole:.1e}, "
          f"largest elementwise error {elementwise:.1e}")

# %% [markdown]
# ## 5. What a bug looks like
#
# A correct backward lands near 1e-8 or below; a wrong one is off by more than 1e-3. Here are two
# deliberately broken versions of the vanilla RNN step's backward: one returns `dWx` 1% too
# large, the other flips the sign of `dWh`. Even the 1% error stands out by four orders of
# magnitude: `|1.01 a - a| / (1.01 |a| + |a|)` is 0.01 / 2.01, about 5e-3, for every entry.

# %%
def dWx_one_percent_off(dnext_h, cache):
    dx, dprev_h, dWx, dWh, db = rnn_step_backward(dnext_h, cache)
    return dx, dprev_h, 1.01 * dWx, dWh, db


def dWh_sign_flipped(dnext_h, cache):
    dx, dprev_h, dWx, dWh, db = rnn_step_backward(dnext_h, cache)
    return dx, dprev_h, dWx, -dWh, db


rnn_inputs = [rng.standard_normal((N, D)), rng.standard_normal((N, H)), weights(D, D, H), weights(H, H, H),
              rng.standard_normal(H)]
for name, backward in (("rnn_step_backward, buggy dWx", dWx_one_percent_off),
                       ("rnn_step_backward, buggy dWh", dWh_sign_flipped)):
    check_layer(name, rnn_step_forward, backward, rnn_inputs, ["x", "prev_h", "Wx", "Wh", "b"])

# %% [markdown]
# ## Summary
#
# Every check except the deliberately buggy ones and the float32 demonstration should be good or
# acceptable: the layers by the elementwise measure (a weight whose gradient has an entry close
# to zero can reach 1e-6 on an unlucky draw, see [the layer docs](../docs/layers.md)), the
# model (its rows in the table) by the whole-gradient one. The table lists them all; the errors are saved for later comparison. To add a layer of your
# own and check it the same way, follow [the GRU tutorial](../docs/tutorial_gru.md);
# `minicap check` runs the courses' checks of every layer (docs/teaching.md).

# %%
print_table(table)
expected_bad = [k for k in errors if "buggy" in k or "float32" in k]
good = {k: v for k, v in errors.items() if k not in expected_bad}
buggy = {k: v for k, v in errors.items() if "buggy dWx Wx" in k or "buggy dWh Wh" in k}
print(f"{len(good)} correct gradients checked, largest relative error {max(good.values()):.1e}")
print("the broken gradients: " + ", ".join(f"{k} {v:.1e}" for k, v in buggy.items()))
path = out_dir / "errors.json"
path.write_text(json.dumps(errors, indent=2) + "\n", encoding="utf-8")
print(f"wrote {path} in {time.perf_counter() - started:.1f} s")
