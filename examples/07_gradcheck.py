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
    temporal_softmax_loss,
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
errors["sum(x^3)"] = rel_error(numerical, 3 * x**2)
print(f"sum(x^3): relative error {errors['sum(x^3)']:.1e}")

# %% [markdown]
# Why float64? In float32 the two function values agree in only about seven digits, and
# their difference divided by 2h loses most of what is left. The same check in float32 (with a
# larger h, the best float32 allows) is many orders of magnitude worse, even though nothing is
# wrong: gradient checks always run in float64.

# %%
x32 = x.astype(np.float32)
numerical32 = eval_numerical_gradient(lambda v: np.sum(v**3), x32, h=1e-2)
errors["sum(x^3), float32"] = rel_error(numerical32, 3 * x.astype(np.float32) ** 2)
print(f"the same in float32: relative error {errors['sum(x^3), float32']:.1e}")

# %% [markdown]
# ## 2. Layers: the vector-Jacobian product
#
# A layer's output is an array, and its backward computes `dout`-weighted sums: the gradient of
# `sum(out * dout)` for the upstream gradient `dout`. `eval_numerical_gradient_array(f, x, dout)`
# measures exactly that quantity, so a random `dout` checks the whole Jacobian at once. The
# helper below checks every input of a forward/backward pair.

# %%
def check_layer(name, forward, backward, inputs, num_outputs=1):
    """Relative error of each input's gradient; forward(*inputs)[:num_outputs] are the outputs."""
    outs = forward(*inputs)
    cache = outs[num_outputs]
    douts = [rng.standard_normal(o.shape) for o in outs[:num_outputs]]
    grads = backward(*douts, cache)
    found = {}
    for i, (value, grad) in enumerate(zip(inputs, grads)):
        # the checker perturbs ``value`` in place; the forward reads it through ``inputs``
        def f(_):
            return np.concatenate([o.ravel() for o in forward(*inputs)[:num_outputs]])

        numerical = eval_numerical_gradient_array(f, value, np.concatenate([d.ravel() for d in douts]))
        found[f"{name} d{i}"] = rel_error(grad, numerical)
    print(f"{name:>18s}: " + "  ".join(f"{e:.1e}" for e in found.values()))
    errors.update(found)


N, T, D, H = (2, 3, 4, 5) if args.quick else (4, 6, 8, 10)
check_layer("affine", affine_forward, affine_backward,
            [rng.standard_normal((N, D)), rng.standard_normal((D, H)), rng.standard_normal(H)])
check_layer("rnn step", rnn_step_forward, rnn_step_backward,
            [rng.standard_normal((N, D)), rng.standard_normal((N, H)),
             rng.standard_normal((D, H)) / math.sqrt(D), rng.standard_normal((H, H)) / math.sqrt(H),
             rng.standard_normal(H)])
check_layer("rnn sequence", rnn_forward, rnn_backward,
            [rng.standard_normal((N, T, D)), rng.standard_normal((N, H)),
             rng.standard_normal((D, H)) / math.sqrt(D), rng.standard_normal((H, H)) / math.sqrt(H),
             rng.standard_normal(H)])
check_layer("lstm step", lstm_step_forward, lstm_step_backward,
            [rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H)),
             rng.standard_normal((D, 4 * H)) / math.sqrt(D), rng.standard_normal((H, 4 * H)) / math.sqrt(H),
             rng.standard_normal(4 * H)], num_outputs=2)
check_layer("lstm sequence", lstm_forward, lstm_backward,
            [rng.standard_normal((N, T, D)), rng.standard_normal((N, H)),
             rng.standard_normal((D, 4 * H)) / math.sqrt(D), rng.standard_normal((H, 4 * H)) / math.sqrt(H),
             rng.standard_normal(4 * H)])


# %% [markdown]
# The attention layer returns two arrays, the context and the weights; only the context carries
# gradient backwards (the weights are for looking at), so its check uses the context alone.

# %%
def attention_context(prev_h, A):
    attn, _, cache = dot_product_attention_forward(prev_h, A)
    return attn, cache


check_layer("attention", attention_context, dot_product_attention_backward,
            [rng.standard_normal((N, H)), rng.standard_normal((N, H, 3, 3))])

# %% [markdown]
# ## 3. The loss
#
# `temporal_softmax_loss` returns a scalar and its gradient directly, so the scalar checker
# applies. Masked steps (here about a third) must get exactly zero gradient.

# %%
V = 7
scores = rng.standard_normal((N, T, V))
targets = rng.integers(0, V, size=(N, T))
mask = rng.random((N, T)) < 0.7
loss, dscores = temporal_softmax_loss(scores, targets, mask)
numerical = eval_numerical_gradient(lambda s: temporal_softmax_loss(s, targets, mask)[0], scores)
errors["temporal_softmax_loss"] = rel_error(dscores, numerical)
print(f"temporal_softmax_loss: {errors['temporal_softmax_loss']:.1e}; "
      f"largest gradient on a masked step: {np.abs(dscores[~mask]).max(initial=0.0)}")

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
        errors[f"model {cell} {name}"] = np.linalg.norm(numerical - grads[name]) / np.linalg.norm(numerical)
        whole = max(whole, errors[f"model {cell} {name}"])
        elementwise = max(elementwise, rel_error(grads[name], numerical))
    print(f"{cell:>9s} model, {len(model.params)} parameters: whole-gradient error {whole:.1e}, "
          f"largest elementwise error {elementwise:.1e}")

# %% [markdown]
# ## 5. What a bug looks like
#
# A correct backward lands near 1e-8 or below; a wrong one is off by more than 1e-2. Here is the
# vanilla RNN step with a classic mistake, the tanh derivative forgotten:

# %%
def plain_rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def buggy_rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h  # should be dnext_h * (1 - next_h ** 2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


check_layer("rnn step, buggy", plain_rnn_step_forward, buggy_rnn_step_backward,
            [rng.standard_normal((N, D)), rng.standard_normal((N, H)),
             rng.standard_normal((D, H)) / math.sqrt(D), rng.standard_normal((H, H)) / math.sqrt(H),
             rng.standard_normal(H)])

# %% [markdown]
# ## Summary
#
# Every check except the deliberately buggy one and the float32 demonstration should land below
# about 1e-7: the layers by the elementwise measure (sequence weights may approach 1e-7 on
# unlucky draws, see [the layer docs](../docs/layers.md)), the model by the whole-gradient one.
# The errors are saved for later comparison. To add a layer of your own and check it the same
# way, follow [the GRU tutorial](../docs/tutorial_gru.md).

# %%
expected_bad = [k for k in errors if "buggy" in k or "float32" in k]
good = {k: v for k, v in errors.items() if k not in expected_bad}
print(f"{len(good)} correct gradients checked, largest relative error {max(good.values()):.1e}")
print(f"the buggy backward: smallest relative error {min(errors[k] for k in expected_bad if 'buggy' in k):.1e}")
path = out_dir / "errors.json"
path.write_text(json.dumps(errors, indent=2) + "\n", encoding="utf-8")
print(f"wrote {path} in {time.perf_counter() - started:.1f} s")
