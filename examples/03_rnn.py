# %% [markdown]
# # 3. Training a vanilla RNN captioner
#
# The first real model of the course: image features set the initial hidden state of a
# vanilla RNN, which then writes the caption one word at a time. Here it learns the shapes
# world, whose captions name the colour, size, shape and position of one to three objects.
#
# Run it as a script (`python examples/03_rnn.py [--quick] [--out DIR]`) or open it as a
# notebook with jupytext. Outputs go to `runs/examples/03_rnn/`: the loss curves, captions of
# training and validation images, the validation metrics and the trained model.

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

parser = argparse.ArgumentParser(description="Train a vanilla RNN captioner on the shapes world.")
parser.add_argument("--quick", action="store_true", help="tiny data and a few iterations (CI)")
parser.add_argument("--out", default="runs/examples/03_rnn", help="output folder")
args, unknown = parser.parse_known_args()  # Jupyter passes its own arguments (-f kernel.json)
if unknown and "ipykernel" not in sys.modules:  # outside Jupyter an unknown option is a mistake
    parser.error(f"unrecognized arguments: {' '.join(unknown)}")
out_dir = pathlib.Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
logging.basicConfig(level=logging.INFO, format="%(message)s")  # the solver logs each epoch

# %% [markdown]
# ## The data
#
# `load_shapes` generates the shapes world on first use and caches it (under `MINICAP_HOME`,
# by default `~/.cache/minicap`). `spatial=False` gives one global feature vector per image,
# which is what a vanilla RNN takes. Every image has several reference captions; each one is a
# training example, so `train_captions` has more rows than there are images.

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
# `CaptioningRNN` holds the parameters in a plain dict; `CaptioningSolver` draws minibatches,
# calls `model.loss` and updates every parameter with Adam. The learning rate decays a little
# after each epoch, and after each epoch the solver measures the validation loss.

# %%
model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1],
                      wordvec_dim=settings["wordvec_dim"], hidden_dim=settings["hidden_dim"],
                      cell_type="rnn", seed=0)
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
show_figure(plot_loss_curves(solver.loss_history, out_dir / "loss.png", solver.val_loss_history,
                             solver.iterations_per_epoch))

# %% [markdown]
# ## Captions
#
# Greedy sampling writes the most likely word at each step. Compare a few generated captions
# with the references, on images the model trained on and on images it never saw.
# `evaluate_model(..., beam_size=1)` does the sampling (greedy decoding) and collects each
# image's references; `max_images` keeps it to the first few images of the split.

# %%
blocks = []
for split in ("train", "val"):
    shown = evaluate_model(model, data, split, beam_size=1, max_images=4)
    images = list(shown.references)
    for image, caption in zip(images, shown.captions):
        print(f"{split} #{image}: {caption!r}\n    e.g. {shown.references[image][0]!r}")
    blocks.append((data[f"{split}_images"][images], shown.captions,
                   [shown.references[i][:3] for i in images], [f"{split} #{i}" for i in images]))
show_figure(plot_caption_comparison(*blocks, out_dir / "captions.png", labels=("train", "validation")))

# %% [markdown]
# ## Metrics
#
# The COCO caption metrics compare every generated caption with all references of its image
# (see docs/metrics.md). On the shapes world the references are short and regular, so good
# models score far higher than on COCO. The shapes world also knows the truth: `truth` is the
# fraction of captions that parse with the scene grammar and state nothing false about their
# scene. Overlap with the references can be high while truth stays low: a caption with the
# right words in a plausible order can still name the wrong colour. `evaluate_model` computes
# all of them over the whole validation split.

# %%
result = evaluate_model(model, data, "val", beam_size=1)
print("validation, greedy: " + ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items() if isinstance(v, float)))
metrics = dict(result.metrics, final_train_loss=float(np.mean(last_epoch)), final_val_loss=solver.val_loss_history[-1],
               seconds=seconds, iterations=solver.iteration)
write_json(out_dir / "metrics.json", metrics)
model.save(out_dir / "model.npz")
print(f"wrote {out_dir}/")
