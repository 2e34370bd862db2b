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
import json
import logging
import pathlib
import time

import numpy as np

from minicap import CaptioningRNN, CaptioningSolver
from minicap.data import decode_captions, load_shapes
from minicap.figures import plot_attention, plot_caption_comparison, plot_loss_curves
from minicap.metrics import evaluate
from minicap.shapes.grounding import pointing_game
from minicap.shapes.truth import truth_score

parser = argparse.ArgumentParser(description="Train an attention LSTM captioner on the shapes world.")
parser.add_argument("--quick", action="store_true", help="tiny data and a few iterations (CI)")
parser.add_argument("--out", default="runs/examples/05_attention", help="output folder")
args, _ = parser.parse_known_args()  # known args only: Jupyter passes its own
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

# %%
if args.quick:
    sizes = dict(num_train=60, num_val=20, num_test=20)
    settings = dict(wordvec_dim=32, hidden_dim=64, epochs=2, batch_size=50)
else:
    sizes = dict(num_train=2000, num_val=200, num_test=200)
    settings = dict(wordvec_dim=64, hidden_dim=128, epochs=10, batch_size=50)

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
# A (N, H, 4, 4); the LSTM starts from h0 = c0 = the mean of A over the cells.

# %%
model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1],
                      wordvec_dim=settings["wordvec_dim"], hidden_dim=settings["hidden_dim"],
                      cell_type="attention", seed=0)
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
# Greedy sampling on training images and on validation images the model never saw.

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
# ## Where the model looks
#
# `sample(..., return_attention=True)` also returns the attention weights of every generated
# word, (N, max_length, 4, 4). Each panel shows the map that produced its word, upsampled and
# laid over the image. Ideally the colour and shape words light up the object they name. A model
# can also learn to choose its object once, at the first word, and carry it in its LSTM memory
# from then on: its captions can be right while its attention at the shape word is elsewhere.
# The grounding score below tells the two apart.

# %%
val_refs = references(data, "val")
val_images = sorted(val_refs)
val_ids, val_attention = model.sample(data["val_features"][val_images], return_attention=True)
val_generated = decode_captions(val_ids, data["idx_to_word"])
shown = 0
words = [data["idx_to_word"][i] for i in val_ids[shown]]
plot_attention(data["val_images"][val_images[shown]], words, val_attention[shown], out_dir / "attention.png")
print(f"attention figure for val #{val_images[shown]}: {val_generated[shown]!r}")

# %% [markdown]
# ## Metrics
#
# Besides the COCO caption metrics, the shapes world knows the truth. **Truth** parses each
# generated caption with the scene grammar and checks every colour, size, shape, position and
# relation it states against the scene record; **grounding** (the pointing game) asks, for each
# shape word that names exactly one object, whether the attention peak of that step lies on
# that object. `grounding_phrase` is the looser variant that counts a peak at any step of the
# noun phrase ("a small red circle"), for a model that looks at its object at the article and
# remembers it. See docs/metrics.md and docs/shapes.md.

# %%
metrics = evaluate(val_refs, dict(zip(val_images, val_generated)))
metrics["truth"] = truth_score(val_generated, data["val_objects"][val_images])
for span in ("word", "phrase"):
    grounding = pointing_game(val_ids, val_attention, data["val_objects"][val_images], data["idx_to_word"], span=span)
    key = "grounding" if span == "word" else "grounding_phrase"
    metrics[key] = grounding.score if grounding.eligible else None  # None: no shape word to score
    print(f"{key}: {grounding.hits} of {grounding.eligible} shape words with the attention peak on their object")
print("validation, greedy: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if v is not None))
metrics.update(final_train_loss=float(np.mean(last_epoch)), final_val_loss=solver.val_loss_history[-1],
               seconds=seconds, iterations=solver.iteration)
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
model.save(out_dir / "model.npz")
print(f"wrote {out_dir}/")
