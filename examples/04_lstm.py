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
import json
import logging
import pathlib
import time

import numpy as np

from minicap import CaptioningRNN, CaptioningSolver
from minicap.data import decode_captions, load_shapes
from minicap.figures import plot_caption_comparison, plot_loss_curves
from minicap.metrics import evaluate
from minicap.shapes.truth import truth_score

parser = argparse.ArgumentParser(description="Train an LSTM captioner on the shapes world.")
parser.add_argument("--quick", action="store_true", help="tiny data and a few iterations (CI)")
parser.add_argument("--out", default="runs/examples/04_lstm", help="output folder")
args, _ = parser.parse_known_args()  # known args only: Jupyter passes its own
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
for split in ("train", "val"):
    print(f"{split}: {len(data[f'{split}_features'])} images, {len(data[f'{split}_captions'])} captions, "
          f"features {data[f'{split}_features'].shape[1:]}")
print(f"vocabulary: {len(data['idx_to_word'])} words, captions padded to {data['train_captions'].shape[1]} tokens")

# %% [markdown]
# ## The model and the solver
#
# Only `cell_type` changes. The LSTM's `Wx`, `Wh` and `b` are four times as wide as the RNN's:
# the gates i, f, o, g side by side, so each step is about four times the RNN's work. Sizes,
# learning rate, decay and gradient clipping are the same as in 03 (and 05), so the three
# runs' numbers compare directly.

# %%
model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1],
                      wordvec_dim=settings["wordvec_dim"], hidden_dim=settings["hidden_dim"],
                      cell_type="lstm", seed=0)
print({name: value.shape for name, value in model.params.items()})
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
plot_loss_curves(solver.loss_history, out_dir / "loss.png", solver.val_loss_history, solver.iterations_per_epoch)

# %% [markdown]
# ## Captions
#
# Greedy sampling, on training images and on validation images the model never saw. Compare
# with the RNN's captions in `runs/examples/03_rnn/captions.png`.

# %%
def references(data, split):
    """Image index -> its reference captions as strings."""
    refs = {}
    for row, image in zip(decode_captions(data[f"{split}_captions"], data["idx_to_word"]), data[f"{split}_image_idxs"]):
        refs.setdefault(int(image), []).append(row)
    return refs


def caption_block(split, count):
    refs = references(data, split)
    images = sorted(refs)[:count]
    generated = decode_captions(model.sample(data[f"{split}_features"][images]), data["idx_to_word"])
    for image, caption in zip(images, generated):
        print(f"{split} #{image}: {caption!r}\n    e.g. {refs[image][0]!r}")
    return data[f"{split}_images"][images], generated, [refs[i][:3] for i in images], [f"{split} #{i}" for i in images]


train_block = caption_block("train", 4)
val_block = caption_block("val", 4)
plot_caption_comparison(train_block, val_block, out_dir / "captions.png", labels=("train", "validation"))

# %% [markdown]
# ## Metrics
#
# The same metrics as for the RNN, on the same validation images.

# %%
val_refs = references(data, "val")
val_images = sorted(val_refs)
val_generated = decode_captions(model.sample(data["val_features"][val_images]), data["idx_to_word"])
metrics = evaluate(val_refs, dict(zip(val_images, val_generated)))
metrics["truth"] = truth_score(val_generated, data["val_objects"][val_images])
print("validation, greedy: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
metrics.update(final_train_loss=float(np.mean(last_epoch)), final_val_loss=solver.val_loss_history[-1],
               seconds=seconds, iterations=solver.iteration)
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
model.save(out_dir / "model.npz")
print(f"wrote {out_dir}/")
