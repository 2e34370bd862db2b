# %% [markdown]
# # 5. Training an attention LSTM captioner
#
# The RNN and the LSTM of 03 and 04 see the image once, as a single vector that sets their
# initial state. The attention LSTM keeps the whole 4x4 grid of features: at every step it
# scores each location against its previous hidden state (dot products scaled by 1/sqrt(H)), turns
# the scores into weights with a softmax, and feeds the weighted sum, the *context*, into the
# LSTM's gates. So it can look at the object it is about to name, and we can watch it do so.
#
# Run it as a script (`python examples/05_attention.py [--quick] [--out DIR]`) or open it as a
# notebook with jupytext. Outputs go to `runs/examples/05_attention/`: as for 03 and 04, plus
# `attention.png` (where the model looked for each word) and the scene-truth and grounding
# scores in `metrics.json`. `06_results.py` picks up the saved `model.npz`.

# %%
import argparse
import logging
import pathlib
import sys
import time

import numpy as np

from minicap import CaptioningRNN, CaptioningSolver
from minicap.data import load_shapes
from minicap.demo import DEMO_CONFIG, DEMO_DATA, QUICK_CONFIG, QUICK_DATA
from minicap.evaluation import evaluate_model
from minicap.figures import plot_attention, plot_caption_comparison, plot_loss_curves
from minicap.runs import write_json
from minicap.shapes.grounding import pointing_game
from minicap.teaching import show_figure  # inline in Jupyter, nothing in a script

parser = argparse.ArgumentParser(description="Train an attention LSTM captioner on the shapes world.")
parser.add_argument("--quick", action="store_true", help="tiny data and a few iterations (CI)")
parser.add_argument("--out", default="runs/examples/05_attention", help="output folder")
args, unknown = parser.parse_known_args()  # Jupyter passes its own arguments (-f kernel.json)
if unknown and "ipykernel" not in sys.modules:  # outside Jupyter an unknown option is a mistake
    parser.error(f"unrecognized arguments: {' '.join(unknown)}")
out_dir = pathlib.Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
logging.basicConfig(level=logging.INFO, format="%(message)s")  # the solver logs each epoch

# %% [markdown]
# ## The data
#
# `spatial=True` keeps the features on their grid: (N, D, 4, 4), one D-vector per cell of the
# image (28x28 pixels each). Besides the appearance channels (oriented gradients, colour,
# coverage) each cell carries one-hot row and column channels, so the model can tell *where* it
# is looking, which it needs for words like "top left corner". The cache is shared with 03 and
# 04: only the layout of the features differs.
#
# The data sizes and training settings are not chosen here: they are `minicap.demo.DEMO_DATA`
# and `DEMO_CONFIG`, the tuned numbers of the main job (`minicap demo`), so this notebook and the
# demo train the same model (`QUICK_DATA` / `QUICK_CONFIG` with `--quick`). They differ from
# 03 and 04 in one telling way: a hidden size of only 64. With room for little more than "which
# object am I describing", the cell cannot memorise every attribute at the first word, so it
# looks at the object again for each word; with a larger hidden state the captions stay as good
# but attention wanders between the words (see docs/shapes.md).

# %%
sizes = QUICK_DATA if args.quick else DEMO_DATA  # the main job's data sizes too
config = QUICK_CONFIG if args.quick else DEMO_CONFIG
print(f"settings from minicap.demo: {config}")

data = load_shapes(**sizes, seed=0, spatial=True)
for split in ("train", "val"):
    print(f"{split}: {len(data[f'{split}_features'])} images, {len(data[f'{split}_captions'])} captions, "
          f"features {data[f'{split}_features'].shape[1:]}")
print(f"vocabulary: {len(data['idx_to_word'])} words, captions padded to {data['train_captions'].shape[1]} tokens")

# %% [markdown]
# ## The model and the solver
#
# The attention cell adds one parameter, `Wattn` (H, 4H): the context's share of the gates.
# The same affine map `W_proj` now projects every grid cell to the hidden size, giving
# A (N, H, 4, 4); the LSTM starts from h0 = c0 = the mean of A over the cells, so before it
# has attended anywhere it holds a summary of the whole image.

# %%
model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1],
                      wordvec_dim=config["wordvec_dim"], hidden_dim=config["hidden_dim"],
                      cell_type="attention", seed=0)
print({name: value.shape for name, value in model.params.items()})
solver = CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": config["learning_rate"]},
                          lr_decay=config["lr_decay"], batch_size=config["batch_size"],
                          num_epochs=config["num_epochs"], grad_clip=config["grad_clip"],
                          average_decay=config["average_decay"], print_every=50, verbose=True, seed=0)
started = time.perf_counter()
solver.train()
seconds = time.perf_counter() - started
# Validation measured the running average of the weights (average_decay, docs/training.md);
# the model gets the average of the epoch with the lowest validation loss.
solver.restore_best_params()
last_epoch = solver.loss_history[-solver.iterations_per_epoch:]
print(f"trained {solver.iteration} iterations in {seconds:.1f} s; "
      f"final training loss {np.mean(last_epoch):.3f}, validation loss {solver.val_loss_history[-1]:.3f}")

# %%
show_figure(plot_loss_curves(solver.loss_history, out_dir / "loss.png", solver.val_loss_history,
                             solver.iterations_per_epoch))

# %% [markdown]
# ## Captions and where the model looks
#
# `evaluate_model(..., beam_size=1)` samples greedily, as in 03 and 04, and for the attention
# cell it also returns the attention weights of every generated word, (N, max_length, 4, 4).
# The attention panel shows, for one validation image, the map that produced each word,
# upsampled and laid over the image. Ideally the colour and shape words light up the object
# they name. A model can also learn to choose its object once, at the first word, and carry it
# in its LSTM memory from then on: its captions can be right while its attention at the shape
# word is elsewhere. The grounding scores below tell the two apart.

# %%
train_shown = evaluate_model(model, data, "train", beam_size=1, max_images=4)
result = evaluate_model(model, data, "val", beam_size=1)  # every validation image, with attention
val_images = list(result.references)
show_figure(plot_caption_comparison(
    (data["train_images"][list(train_shown.references)], train_shown.captions,
     [refs[:3] for refs in train_shown.references.values()], [f"train #{i}" for i in train_shown.references]),
    (data["val_images"][val_images[:4]], result.captions[:4], [result.references[i][:3] for i in val_images[:4]],
     [f"val #{i}" for i in val_images[:4]]),
    out_dir / "captions.png", labels=("train", "validation")))
words = [data["idx_to_word"][i] for i in result.caption_ids[0]]
show_figure(plot_attention(data["val_images"][val_images[0]], words, result.attention[0], out_dir / "attention.png"))
print(f"attention figure for val #{val_images[0]}: {result.captions[0]!r}")

# %% [markdown]
# ## Metrics
#
# Besides the COCO caption metrics, the shapes world knows the truth. **Truth** parses each
# generated caption with the scene grammar and checks every colour, size, shape, position and
# relation it states against the scene record; **grounding** (the pointing game) asks, for each
# shape word that names exactly one object, whether the attention peak of that step lies on
# that object. `evaluate_model` computes both. `grounding_phrase` is the looser variant that
# counts a peak at any step of the noun phrase ("a small red circle"), for a model that looks
# at its object at the article and remembers it; we add it with `pointing_game(span="phrase")`.
# See docs/metrics.md and docs/shapes.md.

# %%
phrase = pointing_game(result.caption_ids, result.attention, data["val_objects"][val_images],
                       data["idx_to_word"], span="phrase")
print(f"grounding_phrase: {phrase.hits} of {phrase.eligible} shape words with a peak on their object in their phrase")
metrics = dict(result.metrics, grounding_phrase=phrase.score if phrase.eligible else None)  # None: nothing to score
print("validation, greedy: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float)))
metrics.update(final_train_loss=float(np.mean(last_epoch)), final_val_loss=solver.val_loss_history[-1],
               seconds=seconds, iterations=solver.iteration)
write_json(out_dir / "metrics.json", metrics)
model.save(out_dir / "model.npz")
print(f"wrote {out_dir}/")
