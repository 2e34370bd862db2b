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
import logging
import pathlib
import sys
import time

from minicap import CaptioningRNN, CaptioningSolver
from minicap.data import decode_captions, load_shapes
from minicap.demo import DEMO_CONFIG, DEMO_DATA, QUICK_CONFIG, QUICK_DATA
from minicap.evaluation import evaluate_model
from minicap.figures import plot_attention, plot_beam_search, plot_caption_comparison, plot_loss_curves
from minicap.runs import write_json
from minicap.shapes.grounding import pointing_game
from minicap.teaching import show_figure  # inline in Jupyter, nothing in a script

parser = argparse.ArgumentParser(description="Evaluate an attention captioner on the shapes world's test split.")
parser.add_argument("--quick", action="store_true", help="tiny data; a few iterations if it has to train (CI)")
parser.add_argument("--checkpoint", default="runs/examples/05_attention/model.npz",
                    help="model saved by 05_attention.py (trained here if missing)")
parser.add_argument("--beam-size", type=int, default=3, help="beam width for beam search")
parser.add_argument("--out", default="runs/examples/06_results", help="output folder")
args, unknown = parser.parse_known_args()  # Jupyter passes its own arguments (-f kernel.json)
if unknown and "ipykernel" not in sys.modules:  # outside Jupyter an unknown option is a mistake
    parser.error(f"unrecognized arguments: {' '.join(unknown)}")
out_dir = pathlib.Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
logging.basicConfig(level=logging.INFO, format="%(message)s")

# %% [markdown]
# ## The data and the model
#
# The same shapes world as in 05 (spatial features). The vocabulary of the shapes world is fixed
# by its grammar, so a model trained on any size of the world reads any other. Without a
# checkpoint the model is trained here with the main job's settings, `minicap.demo.DEMO_CONFIG`
# (the same ones 05 uses).

# %%
sizes = QUICK_DATA if args.quick else DEMO_DATA  # the main job's data sizes too
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
    config = QUICK_CONFIG if args.quick else DEMO_CONFIG
    model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1],
                          wordvec_dim=config["wordvec_dim"], hidden_dim=config["hidden_dim"], cell_type="attention", seed=0)
    solver = CaptioningSolver(model, data, optim_config={"learning_rate": config["learning_rate"]},
                              lr_decay=config["lr_decay"], batch_size=config["batch_size"],
                              num_epochs=config["num_epochs"], grad_clip=config["grad_clip"],
                              average_decay=config["average_decay"], print_every=50, seed=0)
    solver.train()
    solver.restore_best_params()  # the averaged weights of the best epoch, as the demo keeps
    show_figure(plot_loss_curves(solver.loss_history, out_dir / "loss.png", solver.val_loss_history,
                                 solver.iterations_per_epoch))
    source = "trained by 06_results.py"

# %% [markdown]
# ## Greedy decoding and beam search
#
# Greedy decoding takes the most likely word at every step. Beam search keeps the K most likely
# partial captions instead, expanding all of them at each step (for all images at once), and
# returns the caption with the highest total log-probability. With K = 1 it is greedy decoding.
# `evaluate_model` decodes the whole test split either way and scores it: the COCO metrics,
# truth, and the word-level grounding (beam search does not carry attention, so it replays the
# chosen captions through the model to get their maps). We add the phrase-level grounding of 05.
# `seconds` is the time of the whole call, decoding and scoring.

# %%
results = {"checkpoint": source}
evaluations = {}
for beam_size in (1, args.beam_size):
    name = "greedy" if beam_size == 1 else f"beam{beam_size}"
    started = time.perf_counter()
    evaluations[name] = result = evaluate_model(model, data, "test", beam_size=beam_size)
    objects = data["test_objects"][list(result.references)]  # the scenes, in the order of the captions
    phrase = pointing_game(result.caption_ids, result.attention, objects, data["idx_to_word"], span="phrase")
    results[name] = dict(result.metrics, grounding_phrase=phrase.score if phrase.eligible else None,  # None: nothing to score
                         seconds=time.perf_counter() - started)
    print(f"{name:>6s}: " + ", ".join(f"{k} {v:.3f}" for k, v in results[name].items() if isinstance(v, float)))
write_json(out_dir / "metrics.json", results)
beam = evaluations[f"beam{args.beam_size}"]
test_images = list(beam.references)

# %% [markdown]
# ## Captions on training and test images
#
# The seed project's result figure: generated captions (bold) under their images, with some
# of the references, for images the model trained on (left) and held-out test images (right).

# %%
train = evaluate_model(model, data, "train", beam_size=args.beam_size, max_images=4)
show_figure(plot_caption_comparison(
    (data["train_images"][list(train.references)], train.captions, [refs[:2] for refs in train.references.values()],
     [f"train #{i}" for i in train.references]),
    (data["test_images"][test_images[:4]], beam.captions[:4], [beam.references[i][:2] for i in test_images[:4]],
     [f"test #{i}" for i in test_images[:4]]),
    out_dir / "captions.png", labels=("train", "test")))
for image, text in zip(test_images[:4], beam.captions[:4]):
    print(f"test #{image}: {text!r}  (ref: {beam.references[image][0]!r})")

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
    words = [data["idx_to_word"][i] for i in beam.caption_ids[k]]
    path = show_figure(plot_attention(data["test_images"][test_images[k]], words, beam.attention[k],
                                      out_dir / f"attention_{k}.png"))
    print(f"wrote {path}")

# %% [markdown]
# ## The beam's n-best list
#
# The K captions the beam ends with for one image, with their scores (summed log-probabilities;
# closer to 0 is more likely). Often they differ in one detail, such as the position phrase.

# %%
nbest = model.beam_search(data["test_features"][test_images[:1]], beam_size=args.beam_size,
                          max_length=beam.caption_ids.shape[1], return_all=True)  # as long as evaluate_model's
texts = decode_captions(nbest.nbest[0], data["idx_to_word"])
path = show_figure(plot_beam_search(data["test_images"][test_images[0]], texts, [float(s) for s in nbest.scores[0]],
                                    out_dir / "beam.png", title=f"test #{test_images[0]}, beam size {args.beam_size}"))
for text, score in zip(texts, nbest.scores[0]):
    print(f"  [{float(score):7.3f}] {text}")
print(f"wrote {out_dir}/")
