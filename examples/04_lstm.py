# %% [markdown]
# # 4. Training an LSTM captioner
#
# The same captioner as in `03_rnn.py` with the vanilla RNN cell replaced by an LSTM. Its
# memory cell `c` is updated additively (`c' = f * c + i * g`), so gradients survive many steps
# and the model can keep track of what it has already said. Everything else is unchanged: the
# image features give the initial hidden state (the cell starts at zero), and the loss, the
# solver and the sampling are the same calls.
#
# Run it as a script (`python examples/04_lstm.py [--quick] [--out DIR]`) or open it as a
# notebook with jupytext. Outputs go to `runs/examples/04_lstm/`, laid out as for 03, so the two
# runs' `metrics.json` and loss curves can be compared directly.

# %%
import argparse
import logging
import pathlib
import sys
import time

import numpy as np

from minicap import CaptioningRNN, CaptioningSolver
from minicap.data import load_shapes
from minicap.evaluation import evaluate_model
from minicap.figures import plot_caption_comparison, plot_loss_curves
from minicap.runs import write_json
from minicap.teaching import show_figure  # inline in Jupyter, nothing in a script

parser = argparse.ArgumentParser(description="Train an LSTM captioner on the shapes world.")
parser.add_argument("--quick", action="store_true", help="tiny data and a few iterations (CI)")
parser.add_argument("--out", default="runs/examples/04_lstm", help="output folder")
args, unknown = parser.parse_known_args()  # Jupyter passes its own arguments (-f kernel.json)
if unknown and "ipykernel" not in sys.modules:  # outside Jupyter an unknown option is a mistake
    parser.error(f"unrecognized arguments: {' '.join(unknown)}")
out_dir = pathlib.Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
logging.basicConfig(level=logging.INFO, format="%(message)s")  # the solver logs each epoch

# %% [markdown]
# ## The data
#
# The same data as for the RNN (loaded from the cache if `03_rnn.py` ran before): one global
# feature vector per image and several reference captions per image.

# %%
if args.quick:
    sizes = dict(num_train=60, num_val=20, num_test=20)
    settings = dict(wordvec_dim=32, hidden_dim=64, epochs=2, batch_size=50)
else:
    sizes = dict(num_train=2000, num_val=200, num_test=200)
    settings = dict(wordvec_dim=64, hidden_dim=128, epochs=10, batch_size=50)

data = load_shapes(**sizes, seed=0, spatial=False)
print(f"{len(data['train_captions'])} training captions of {len(data['train_features'])} images, "
      f"features {data['train_features'].shape[1:]}, {len(data['idx_to_word'])} words")

# %% [markdown]
# ## The model and the solver
#
# Only `cell_type` changes. The LSTM's `Wx`, `Wh` and `b` are four times as wide as the RNN's:
# the gates i, f, o, g side by side, so each step is about four times the RNN's work. Sizes,
# learning rate, decay and gradient clipping are the same as in 03, so the two runs' numbers
# compare directly (05 trains with the main job's tuned settings instead).

# %%
model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1],
                      wordvec_dim=settings["wordvec_dim"], hidden_dim=settings["hidden_dim"],
                      cell_type="lstm", seed=0)
H = settings["hidden_dim"]
for name in ("Wx", "Wh", "b"):
    print(f"{name} {model.params[name].shape}: columns 0:{H} input gate i, {H}:{2 * H} forget gate f, "
          f"{2 * H}:{3 * H} output gate o, {3 * H}:{4 * H} candidate g")
solver = CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": 5e-3},
                          lr_decay=0.95, batch_size=settings["batch_size"], num_epochs=settings["epochs"],
                          print_every=50, grad_clip=5.0, verbose=True, seed=0)
started = time.perf_counter()
solver.train()
seconds = time.perf_counter() - started
last_epoch = solver.loss_history[-solver.iterations_per_epoch:]
print(f"trained {solver.iteration} iterations in {seconds:.1f} s; "
      f"final training loss {np.mean(last_epoch):.3f}, validation loss {solver.val_loss_history[-1]:.3f}")

# %%
show_figure(plot_loss_curves(solver.loss_history, out_dir / "loss.png", solver.val_loss_history,
                             solver.iterations_per_epoch))

# %% [markdown]
# ## Captions
#
# Greedy sampling, on training images and on validation images the model never saw, through
# the same `evaluate_model` call as in 03. Compare with the RNN's captions in
# `runs/examples/03_rnn/captions.png`: the LSTM's memory should keep the colour and the shape
# of each object together more often.

# %%
train_shown = evaluate_model(model, data, "train", beam_size=1, max_images=4)
val_shown = evaluate_model(model, data, "val", beam_size=1, max_images=4)
blocks = [(data[f"{split}_images"][list(shown.references)], shown.captions,
           [refs[:3] for refs in shown.references.values()], [f"{split} #{i}" for i in shown.references])
          for split, shown in (("train", train_shown), ("val", val_shown))]
for caption, (image, refs) in zip(val_shown.captions, val_shown.references.items()):
    print(f"val #{image}: {caption!r}\n    e.g. {refs[0]!r}")
show_figure(plot_caption_comparison(*blocks, out_dir / "captions.png", labels=("train", "validation")))

# %% [markdown]
# ## Metrics
#
# The same metrics as for the RNN, on the same validation images, so the two `metrics.json`
# files compare line by line. The LSTM's gates cost about four times the RNN's work per step;
# the `seconds` entry shows what that buys.

# %%
result = evaluate_model(model, data, "val", beam_size=1)
scores = {k: v for k, v in result.metrics.items() if isinstance(v, float)}
print("validation, greedy: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
write_json(out_dir / "metrics.json", dict(result.metrics, final_train_loss=float(np.mean(last_epoch)),
                                          final_val_loss=solver.val_loss_history[-1], seconds=seconds,
                                          iterations=solver.iteration))
model.save(out_dir / "model.npz")
print(f"wrote {out_dir}/")
