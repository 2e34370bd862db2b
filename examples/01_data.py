# %% [markdown]
# # 1. The data: the shapes world and a minibatch
#
# The course notebooks start by downloading COCO and looking at a minibatch. minicap's default
# dataset needs no download: the **shapes world** is generated on your machine. Each scene is a
# 112x112 image with one to three coloured shapes on a noisy, textured background; each comes
# with several reference captions from a small grammar, and with a symbolic record of what is
# where, so generated captions can later be checked for truth.
#
# Run it as a script (`python examples/01_data.py [--quick] [--out DIR]`) or open it as a
# notebook with jupytext. Outputs go to `runs/examples/01_data/`: `minibatch.png` and
# `summary.json`. For COCO in both course formats, see docs/data.md.

# %%
import argparse
import json
import pathlib
import sys
import time

import numpy as np

from minicap.data import decode_captions, load_shapes, plot_minibatch, sample_coco_minibatch
from minicap.shapes.scenes import COLOURS, SHAPES, SIZES
from minicap.teaching import show_figure  # inline in Jupyter, nothing in a script

parser = argparse.ArgumentParser(description="Generate the shapes world and look at a minibatch.")
parser.add_argument("--quick", action="store_true", help="a tiny world (CI)")
parser.add_argument("--out", default="runs/examples/01_data", help="output folder")
args, unknown = parser.parse_known_args()  # Jupyter passes its own arguments (-f kernel.json)
if unknown and "ipykernel" not in sys.modules:  # outside Jupyter an unknown option is a mistake
    parser.error(f"unrecognized arguments: {' '.join(unknown)}")
out_dir = pathlib.Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Generating (or loading) the world
#
# The first call generates the scenes, their captions and their features, and caches them on
# disk under `MINICAP_HOME` (default `~/.cache/minicap`), keyed by every setting. The second
# call with the same settings only reads the cache.

# %%
sizes = dict(num_train=60, num_val=20, num_test=20) if args.quick else dict(num_train=4000, num_val=500, num_test=500)
started = time.perf_counter()
data = load_shapes(**sizes, seed=0)
first = time.perf_counter() - started
started = time.perf_counter()
data = load_shapes(**sizes, seed=0)
second = time.perf_counter() - started
print(f"first load {first:.2f} s (generated, or read from an earlier run's cache), second load {second:.2f} s")

# %% [markdown]
# ## The layout
#
# Every minicap loader returns the same dict (CS231n's layout). Per split: `captions`, one row
# per caption (`<START>`, words, `<END>`, `<NULL>` padding), `image_idxs`, the image each
# caption belongs to, `features`, one row per image, and here also the `images` themselves and
# the scene records `objects`.

# %%
for key, value in data.items():
    if hasattr(value, "shape"):
        print(f"{key:18s} {str(value.dtype):8s} {value.shape}")
print(f"vocabulary ({len(data['idx_to_word'])} words): {' '.join(data['idx_to_word'])}")

# %% [markdown]
# ## One scene
#
# The record of a scene has one row per object slot, with the fields below; the references are
# all the captions whose `image_idxs` point at this scene. Every reference is true of the scene,
# and they vary in what they mention: one object or several, position or relation.

# %%
scene = 0
fields = data["object_fields"]
for obj in data["train_objects"][scene]:
    record = dict(zip(fields, obj.tolist()))
    if record["present"]:
        print(f"{SIZES[record['size']]} {COLOURS[record['colour']]} {SHAPES[record['shape']]} "
              f"in grid cell (row {record['row']}, column {record['col']}), box {obj[-4:].tolist()}")
rows = np.flatnonzero(data["train_image_idxs"] == scene)
for caption in decode_captions(data["train_captions"][rows], data["idx_to_word"]):
    print("  ref:", caption)

# %% [markdown]
# ## A minibatch
#
# `sample_coco_minibatch` draws captions at random (with replacement, as the courses did) and
# returns them with their images' features and the images. `plot_minibatch` draws the same
# batch as a grid, each image with its caption.

# %%
captions, features, images = sample_coco_minibatch(data, batch_size=8, split="train", rng=0)
print(f"captions {captions.shape}, features {features.shape}, images {images.shape}")
for caption in decode_captions(captions[:3], data["idx_to_word"]):
    print("  ", caption)
path = show_figure(plot_minibatch(data, out_dir / "minibatch.png", batch_size=8, split="train", rng=0))
print(f"wrote {path}")

# %% [markdown]
# ## Statistics
#
# Caption lengths and word counts over the training split: the grammar is small, but the
# captions vary in length and in what they describe, and colours and shapes are balanced.

# %%
lengths = (data["train_captions"] > 2).sum(axis=1)  # ids 0..2 are <NULL>, <START>, <END>
counts = np.bincount(data["train_captions"].ravel(), minlength=len(data["idx_to_word"]))
top = [(data["idx_to_word"][i], int(counts[i])) for i in np.argsort(-counts) if i > 3][:10]
objects_per_scene = data["train_objects"][:, :, fields.index("present")].sum(axis=1)
print(f"caption length: mean {lengths.mean():.1f} words, min {lengths.min()}, max {lengths.max()}")
print("objects per scene:", {int(k): int(v) for k, v in zip(*np.unique(objects_per_scene, return_counts=True))})
print("most frequent words:", top)
summary = {
    "images": {split: int(len(data[f"{split}_images"])) for split in ("train", "val", "test")},
    "captions": {split: int(len(data[f"{split}_captions"])) for split in ("train", "val", "test")},
    "vocabulary_size": len(data["idx_to_word"]),
    "feature_dim": int(data["train_features"].shape[1]),
    "mean_caption_words": float(lengths.mean()),
    "first_load_seconds": first,
    "cached_load_seconds": second,
}
(out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
print(f"wrote {out_dir / 'summary.json'}")
