"""`minicap features` on a 500-image coco.pt, end to end, against torchvision's forward passes alone.

    python benchmarks/features_end_to_end.py      # needs torch and torchvision

Writes a coco.pt of 400 train and 100 val random 112x112 images (the layout the tests
use: uint8 images, int64 captions, the vocabulary) and each encoder's torchvision weights
(random initialisation, random batch-norm statistics, as in benchmarks/encoders.py) to
a temporary folder, then times, best of two:

- ``minicap features coco.pt --encoder E --weights E.npz`` in a fresh process: starting
  Python, reading coco.pt, loading the weights, the encoder, writing the feature file;
- minicap's encoder alone on the same images (``extract_features``, batches of 64);
- torchvision's trunk alone on the same images, already normalised, batches of 64,
  ``torch.no_grad()``: its forward passes and nothing else.

Both libraries use the CPUs this process may use (minicap's default, ``torch.set_num_threads``).
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from encoders import torch_input, torchvision_trunk  # noqa: E402
from machine import cpu_model  # noqa: E402
from minicap.encoders import extract_features, load_encoder  # noqa: E402
from minicap.encoders.encoder import default_threads  # noqa: E402

WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "red", "cat", "dog"]


def write_coco_pt(path, rng, n_train=400, n_val=100, side=112):
    import torch

    data = {"vocab": {"idx_to_token": WORDS, "token_to_idx": {w: i for i, w in enumerate(WORDS)}}}
    for split, n in (("train", n_train), ("val", n_val)):
        data[f"{split}_images"] = torch.from_numpy(rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8))
        captions = torch.zeros(n, 6, dtype=torch.int64)
        captions[:, :4] = torch.tensor([1, 4, 6, 2])  # <START> a cat <END>
        data[f"{split}_captions"] = captions
    torch.save(data, path)
    return np.concatenate([data["train_images"].numpy(), data["val_images"].numpy()])


def best_of(runs, fn):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    import torch

    threads = default_threads()
    torch.set_num_threads(threads)
    print(f"CPU: {cpu_model()}; threads: {threads} for both")
    with tempfile.TemporaryDirectory() as tmp:
        coco = os.path.join(tmp, "coco.pt")
        images = write_coco_pt(coco, np.random.default_rng(0))
        n = len(images)
        env = {**os.environ, "PYTHONPATH": os.path.join(HERE, "..") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        print("| encoder | minicap features, end to end (images/s) | minicap encoder alone (images/s) | torchvision forward alone (images/s) |")
        print("| --- | --- | --- | --- |")
        for name in ("mobilenet_v2", "regnet_x_400mf"):
            trunk, state = torchvision_trunk(name)
            weights = os.path.join(tmp, f"{name}.npz")
            np.savez(weights, **state)
            command = [sys.executable, "-c", "import sys; from minicap.cli import main; sys.exit(main())",
                       "features", coco, "--encoder", name, "--weights", weights]
            cli = best_of(2, lambda: subprocess.run(command, check=True, capture_output=True, env=env))
            enc = load_encoder(name, weights=state)
            alone = best_of(2, lambda: extract_features(images, enc, batch_size=64, progress=False))
            x = torch_input(images)

            def forward():
                with torch.no_grad():
                    for start in range(0, n, 64):
                        trunk(x[start : start + 64])

            forward()
            theirs = best_of(2, forward)
            print(f"| {name} | {n / cli:.0f} | {n / alone:.0f} | {n / theirs:.0f} |", flush=True)


if __name__ == "__main__":
    main()
