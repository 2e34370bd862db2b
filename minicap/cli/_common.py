"""Options and output helpers shared by the subcommands."""

import argparse
import math
import pathlib

from ..implementations import IMPLEMENTATIONS


def positive_int(text):
    """argparse type: an integer >= 1 (0 or a negative count would silently mean something else)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def at_most(high, unit, why):
    """argparse type: a whole number from 1 to ``high`` (an upper bound keeps a typo from running for hours)."""
    def parse(text):
        value = positive_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high} {unit} ({why}), got {value}")
        return value

    return parse


MAX_CAPTION_WORDS = 1000  # far past any real caption; a decoder runs max_length steps whatever it writes
caption_length = at_most(MAX_CAPTION_WORDS, "words", "far longer than any caption")
# one figure holds them all: 64 images are already a PNG thousands of pixels tall
MAX_FIGURE_IMAGES = 64
figure_images = at_most(MAX_FIGURE_IMAGES, "images", "they are drawn into one figure")


def positive_float(text):
    """argparse type: a finite number > 0 (a learning rate of 0, < 0 or nan trains nothing useful)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def refuse_to_replace(out, command, resume=False):
    """Raise FileExistsError when ``out`` holds a trained run that this command would replace.

    Called before anything is loaded or written, unless --overwrite was given.
    """
    out = pathlib.Path(out)
    found = [name for name in ("checkpoint.npz", "model.npz") if (out / name).is_file()]
    if resume and "checkpoint.npz" in found:
        return  # continuing that run is what the user asked for
    if not found:
        return
    if resume:  # a finished run whose checkpoint is gone: "resuming" would train a new model over it
        raise FileExistsError(f"{out} has {found[0]} but no checkpoint.npz to resume from; to train a new run "
                              f"there add --overwrite (it replaces the run), or choose another --out")
    if command == "train":
        how = "continue its training with --resume, replace it with --overwrite, or choose another --out"
    else:
        how = (f"replace it with --overwrite, choose another --out, or continue its training with: "
               f"minicap train --out {out} --resume")
    raise FileExistsError(f"{out} already holds a run ({' and '.join(found)}); {how}")


def add_impl(parser):
    parser.add_argument("--impl", choices=IMPLEMENTATIONS, default="fast",
                        help="which layer functions run: fast (minicap.kernels) or reference (the course "
                             "files of minicap.layers: slower, and what your own edits of them change); "
                             "both compute the same (default: fast)")


def add_threads(parser):
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="BLAS threads for the matrix products (default: one for small models, "
                             "the BLAS's own count for large ones, never more than OPENBLAS_NUM_THREADS "
                             "or OMP_NUM_THREADS allow; see docs/performance.md)")


def add_device(parser):
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to compute (cuda needs CuPy and a GPU; default: cpu)")


def table(rows, headers):
    """A plain aligned text table (for summaries printed by the CLI)."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_metrics(metrics):
    keys = [k for k in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D", "ROUGE-L", "truth", "grounding") if k in metrics]
    return table([[k, "n/a" if metrics[k] is None else f"{metrics[k]:.3f}"] for k in keys], ["metric", "value"])
