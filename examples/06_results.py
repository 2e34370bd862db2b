# %% [markdown]
# # 6. Results: metrics, beam search and attention on the test split
#
# The last step of the course notebooks: look at what the trained model does on images it has
# never seen. This script loads the attention model that `05_attention.py` saved (or, if there
# is none, trains a small one itself), captions the held-out **test** split with greedy decoding
# and with beam search, scores both, and draws the result figures.
#
# Run it as a script (`python examples/06_results.py [--quick] [--checkpoint PATH] [--out DIR]`)
# or open it as a notebook with jupytext. Outputs go to `runs/examples/06_results/`:
# `metrics.json`, `captions.png` (train and test side by side), `attention_K.png` for a few test
# images and `beam.png` (the beam's n-best list for one image).

# %%
import argparse
import json
import logging
import pathlib
import time

from minicap import CaptioningRNN, CaptioningSolver
from minicap.data import decode_captions, load_shapes
from minicap.figures import plot_attention, plot_beam_search, plot_caption_comparison, plot_loss_curves
from minicap.metrics import evaluate
from minicap.shapes.grounding import pointing_game
from minicap.shapes.truth import truth_score

parser = argparse.ArgumentParser(description="Evaluate an attention captioner on the shapes world's test split.")
parser.add_argument("--quick", action="store_true", help="tiny data; a few iterations if it has to train (CI)")
parser.add_argument("--checkpoint", default="runs/examples/05_attention/model.npz",
                    help="model saved by 05_attention.py (trained here if missing)")
parser.add_argument("--beam-size", type=int, default=3, help="beam width for beam search")
parser.add_argument("--out", default="runs/examples/06_results", help="output folder")
args, _ = parser.parse_known_args()  # known args only: Jupyter passes its own
out_dir = pathlib.Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
logging.basicConfig(level=logging.INFO, format="%(message)s")

# %% [markdown]
# ## The data and the model
#
# The same shapes world as in 05 (spatial features). The vocabulary of the shapes world is fixed
# by its grammar, so a model trained on any size of the world reads any other.

# %%
sizes = dict(num_train=60, num_val=20, num_test=20) if args.quick else dict(num_train=2000, num_val=200, num_test=200)
data = load_shapes(**sizes, seed=0, spatial=True)
checkpoint = pathlib.Path(args.checkpoint)
if checkpoint.is_file():
    model = CaptioningRNN.load(checkpoint)
    if model.cell_type != "attention" or model.input_dim != data["train_features"].shape[1]:
        raise SystemExit(f"{checkpoint} is a {model.cell_type} model for {model.input_dim}-channel features; "
                         "this script needs the attention model that examples/05_attention.py saves")
    source = str(checkpoint)
    print(f"loaded {checkpoint}")
else:
    print(f"no checkpoint at {checkpoint}: training a small attention model here")
    model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1], wordvec_dim=64,
                          hidden_dim=128, cell_type="attention", seed=0)
    solver = CaptioningSolver(model, data, optim_config={"learning_rate": 5e-3}, lr_decay=0.98, batch_size=100,
                              num_epochs=2 if args.quick else 10, print_every=50, grad_clip=5.0, seed=0)
    solver.train()
    plot_loss_curves(solver.loss_history, out_dir / "loss.png", solver.val_loss_history, solver.iterations_per_epoch)
    source = "trained by 06_results.py"

# %% [markdown]
# ## Greedy decoding and beam search
#
# Greedy decoding takes the most likely word at every step. Beam search keeps the K most likely
# partial captions instead, expanding all of them at each step (for all images at once), and
# returns the caption with the highest total log-probability. With K = 1 it is greedy decoding.

# %%
def references(split):
    """Image index -> its reference captions as strings."""
    refs = {}
    for text, image in zip(decode_captions(data[f"{split}_captions"], data["idx_to_word"]), data[f"{split}_image_idxs"]):
        refs.setdefault(int(image), []).append(text)
    return refs


test_refs = references("test")
test_images = sorted(test_refs)
features = data["test_features"][test_images]
objects = data["test_objects"][test_images]

started = time.perf_counter()
greedy_ids, greedy_attention = model.sample(features, return_attention=True)
greedy_seconds = time.perf_counter() - started
started = time.perf_counter()
beam = model.beam_search(features, beam_size=args.beam_size, return_all=True)
beam_seconds = time.perf_counter() - started
# beam search does not carry attention; replay its captions through the model to get it
beam_attention = model.attention_for(features, beam.captions)

results = {"checkpoint": source, "split": "test", "images": len(test_images)}
for name, ids, attention, seconds in (("greedy", greedy_ids, greedy_attention, greedy_seconds),
                                      (f"beam{args.beam_size}", beam.captions, beam_attention, beam_seconds)):
    texts = decode_captions(ids, data["idx_to_word"])
    scores = evaluate(test_refs, dict(zip(test_images, texts)))
    scores["truth"] = truth_score(texts, objects)
    for span in ("word", "phrase"):
        grounding = pointing_game(ids, attention, objects, data["idx_to_word"], span=span)
        # None: no shape word to score
        scores["grounding" if span == "word" else "grounding_phrase"] = grounding.score if grounding.eligible else None
    scores["seconds"] = seconds
    results[name] = scores
    print(f"{name:>6s}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if v is not None))
(out_dir / "metrics.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

# %% [markdown]
# ## Captions on training and test images
#
# The seed project's result figure: generated captions (bold) under their images, with some
# of the references, for images the model trained on (left) and held-out test images (right).

# %%
beam_texts = decode_captions(beam.captions, data["idx_to_word"])
train_refs = references("train")
train_images = sorted(train_refs)[:4]
train_texts = decode_captions(model.beam_search(data["train_features"][train_images], beam_size=args.beam_size),
                              data["idx_to_word"])
plot_caption_comparison(
    (data["train_images"][train_images], train_texts, [train_refs[i][:2] for i in train_images],
     [f"train #{i}" for i in train_images]),
    (data["test_images"][test_images[:4]], beam_texts[:4], [test_refs[i][:2] for i in test_images[:4]],
     [f"test #{i}" for i in test_images[:4]]),
    out_dir / "captions.png", labels=("train", "test"))
for image, text in zip(test_images[:4], beam_texts[:4]):
    print(f"test #{image}: {text!r}  (ref: {test_refs[image][0]!r})")

# %% [markdown]
# ## Attention, word by word
#
# For the beam captions of a few test images: each panel is the attention map of the step that
# wrote the word, over the image. A well-grounded model looks at the object whose colour and
# shape it is naming. Compare the panels with the grounding score above: a low score with
# correct captions means the model found its object at another step (often the first word)
# and remembered it.

# %%
for k in range(min(3, len(test_images))):
    words = [data["idx_to_word"][i] for i in beam.captions[k]]
    path = plot_attention(data["test_images"][test_images[k]], words, beam_attention[k], out_dir / f"attention_{k}.png")
    print(f"wrote {path}")

# %% [markdown]
# ## The beam's n-best list
#
# The K captions the beam ends with for one image, with their scores (summed log-probabilities;
# closer to 0 is more likely). Often they differ in one detail, such as the position phrase.

# %%
nbest = decode_captions(beam.nbest[0], data["idx_to_word"])
path = plot_beam_search(data["test_images"][test_images[0]], nbest, [float(s) for s in beam.scores[0]],
                        out_dir / "beam.png", title=f"test #{test_images[0]}, beam size {args.beam_size}")
for text, score in zip(nbest, beam.scores[0]):
    print(f"  [{float(score):7.3f}] {text}")
print(f"wrote {out_dir}/")
