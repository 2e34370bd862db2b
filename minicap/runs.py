"""Run folders: train a model from a plain config, evaluate it, draw its figures.

A run folder holds everything one training run made::

    runs/NAME/
        config.json      the settings below (dataset, model, optimiser)
        model.npz        the best parameters (by validation loss), CaptioningRNN.save
        checkpoint.npz   the solver's state, for --resume
        history.json     training loss per iteration, validation loss per epoch
        metrics.json     written by evaluation
        *.png            figures

The command line and the demo are thin layers over these functions, so
everything they do can be done from Python too.
"""

import json
import logging
import math
import pathlib
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .cells import get_cell
from .atomic import atomic_open
from .checkpoint import load_state
from .filecheck import check_training_state
from .model import CaptioningRNN
from .solver import CaptioningSolver

DATASETS = ("shapes", "coco-cs231n", "coco-eecs498")

_log = logging.getLogger(__name__)

# What a training run writes (besides config.json): a new run in an old folder removes
# these first, so that the folder never mixes files of two runs.
RUN_FILES = ("checkpoint.npz", "model.npz", "history.json", "metrics.json", "metrics-*.json",
             "loss.png", "captions.png", "beam.png", "attention_*.png",
             "captions-*.png", "beam-*.png", "attention-*.png")  # minicap visualize --split val


@dataclass
class RunConfig:
    """Everything needed to reproduce a run (saved as config.json)."""

    dataset: str = "shapes"
    data_path: str = None           # the COCO file or folder; unused for shapes
    dataset_options: dict = field(default_factory=dict)
    cell_type: str = "attention"
    wordvec_dim: int = 128
    hidden_dim: int = 256
    update_rule: str = "adam"
    learning_rate: float = 5e-3
    lr_decay: float = 0.9
    batch_size: int = 100
    num_epochs: int = 10
    grad_clip: float = 5.0
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    select_by: str = "val_loss"     # or a metric of greedy validation captions, e.g. "truth", "BLEU-4"
    average_decay: float = None     # validate and keep a running average of the weights (e.g. 0.999)
    # [[epoch, rate], ...]: `minicap train --resume --lr rate` set the learning rate after that
    # epoch; learning_rate stays the rate the run started with
    learning_rate_resets: list = field(default_factory=list)

    @property
    def spatial(self):
        """True when the cell attends over a grid of features (cells.Cell.attention)."""
        return get_cell(self.cell_type).attention


def load_dataset(name, path=None, spatial=False, **options):
    """Any of minicap's datasets, by name, in the common dict layout."""
    from . import data

    if name == "shapes":
        return data.load_shapes(spatial=spatial, **options)
    if path is None:
        raise ValueError(f"dataset {name!r} needs a path (--data-path); get the files with: minicap data download {name}")
    if name == "coco-cs231n":
        return data.load_coco_data(path, spatial=spatial, **options)
    if name == "coco-eecs498":
        loaded = data.load_coco_pt(path, spatial=spatial, **options)
        loaded["train_features"]  # raises the DataError that says how to make the features
        return loaded
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")


def write_json(path, obj):
    """Write JSON atomically (see ``minicap.atomic``); returns the path."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    return pathlib.Path(path)


def read_config(run_dir):
    if pathlib.Path(run_dir).is_file():  # e.g. --checkpoint runs/demo/model.npz
        raise NotADirectoryError(f"{run_dir} is a file; pass the run folder that holds it "
                                 f"({pathlib.Path(run_dir).parent}), not a file in it")
    path = pathlib.Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json); train one with: minicap train --out {run_dir}")
    try:
        config = RunConfig(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        raise ValueError(f"{path} is not a valid run config: {exc}") from None
    problem = _config_problem(config)
    if problem:  # a hand-edited config.json: say which field, not what broke deep inside later
        raise ValueError(f"{path} is not a valid run config: {problem}; fix it, or train the run again")
    return config


def _is_int(value, low):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_CONFIG_RULES = {
    "dataset": (lambda v: v in DATASETS, f"one of {DATASETS}"),
    "data_path": (lambda v: v is None or isinstance(v, str), "a path or null"),
    "dataset_options": (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v), "a JSON object"),
    "cell_type": (lambda v: isinstance(v, str), "the name of a cell (rnn, lstm, attention)"),
    "wordvec_dim": (lambda v: _is_int(v, 1), "a whole number >= 1"),
    "hidden_dim": (lambda v: _is_int(v, 1), "a whole number >= 1"),
    "update_rule": (lambda v: isinstance(v, str), "the name of an update rule"),
    "learning_rate": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "lr_decay": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "batch_size": (lambda v: _is_int(v, 1), "a whole number >= 1"),
    "num_epochs": (lambda v: _is_int(v, 1), "a whole number >= 1"),
    "grad_clip": (lambda v: v is None or (_is_number(v) and v >= 0), "a number >= 0 or null"),
    "seed": (lambda v: _is_int(v, 0), "a whole number >= 0"),
    "dtype": (lambda v: v in ("float32", "float64"), "float32 or float64"),
    "device": (lambda v: v in ("cpu", "cuda"), "cpu or cuda"),
    "select_by": (lambda v: isinstance(v, str), "val_loss or a metric's name"),
    "average_decay": (lambda v: v is None or _is_number(v), "a number or null"),
    "learning_rate_resets": (lambda v: isinstance(v, list) and all(
        isinstance(r, list) and len(r) == 2 and _is_int(r[0], 0) and _is_number(r[1]) for r in v),
        "a list of [epoch, rate] pairs"),
}


def _config_problem(config):
    """What is wrong with a RunConfig's field types and values (None: nothing)."""
    for name, (ok, expected) in _CONFIG_RULES.items():
        value = getattr(config, name)
        if not ok(value):
            return f"{name} is {value!r:.60}, expected {expected}"
    return None


def unfinished_hint(run_dir):
    """Why a run folder with a config.json has no model.npz yet, and what to do."""
    return (f"training in {run_dir} did not finish (it has config.json but no model.npz); "
            f"continue it with: minicap train --out {run_dir} --resume")


def default_split(data, split):
    """``split``, except that "test" falls back to "val" for a dataset without a test split."""
    if split == "test" and "test_features" not in data:
        return "val"
    return split


def load_model(run_or_file):
    """The model of a run folder (its model.npz) or of a .npz file."""
    path = pathlib.Path(run_or_file)
    if path.is_dir():
        if not (path / "model.npz").exists() and (path / "config.json").is_file():
            raise FileNotFoundError(unfinished_hint(path))  # e.g. stopped by Ctrl-C
        path = path / "model.npz"
    return CaptioningRNN.load(path)


def train(config, out_dir, data=None, resume=False, verbose=True, *, set_learning_rate=False, impl="fast"):
    """Train the model described by ``config``; write the run folder.

    The parameters kept are those of the epoch with the lowest validation
    loss, or with ``config.select_by`` highest on greedy validation captions;
    with ``config.average_decay`` set, the running average of the weights at
    that epoch (``minicap.averaging``).

    Nothing is written until the settings (and, with ``resume``, the checkpoint)
    have been accepted, so a refused call leaves ``out_dir`` as it was. A run that
    does not continue from a checkpoint first removes the files an earlier run
    left there (``RUN_FILES``, and only where that run's config.json is). With ``resume`` the checkpoint's optimizer state,
    decayed learning rate included, is used; ``set_learning_rate=True`` replaces
    that learning rate with ``config.learning_rate`` (logged, and recorded in config.json's
    ``learning_rate_resets``, while its ``learning_rate`` stays the starting rate).
    Returns (model with the best parameters, solver, data).
    """
    from .evaluation import validation_metrics

    out_dir = pathlib.Path(out_dir)
    if data is None:
        data = load_dataset(config.dataset, config.data_path, config.spatial, **config.dataset_options)
    if resume and (out_dir / "checkpoint.npz").is_file():  # before the solver relies on its fields
        check_training_state(load_state(out_dir / "checkpoint.npz"), out_dir / "checkpoint.npz")
    features = data["train_features"]
    _check_model_fits(config, features.shape[1], data)
    model = CaptioningRNN(data["word_to_idx"], input_dim=features.shape[1], wordvec_dim=config.wordvec_dim,
                          hidden_dim=config.hidden_dim, cell_type=config.cell_type,
                          dtype=np.dtype(config.dtype), seed=config.seed, impl=impl).to(config.device)
    solver = CaptioningSolver(
        model, data, update_rule=config.update_rule, optim_config={"learning_rate": config.learning_rate},
        lr_decay=config.lr_decay, batch_size=config.batch_size, num_epochs=config.num_epochs,
        print_every=50, verbose=verbose, seed=config.seed, grad_clip=config.grad_clip,
        checkpoint_dir=out_dir, resume=resume, val_metric=config.select_by,
        metric_fn=None if config.select_by == "val_loss" else validation_metrics,
        average_decay=config.average_decay)
    # the constructor has checked the settings and the checkpoint: only now touch the folder
    if solver.resumed_from is None:
        _remove_run_files(out_dir)
    elif set_learning_rate:
        _set_learning_rate(solver, config.learning_rate)
        # config.json keeps the starting rate, so that it still describes how the run began
        started = read_config(out_dir).learning_rate if (out_dir / "config.json").is_file() else config.learning_rate
        config = replace(config, learning_rate=started,
                         learning_rate_resets=[*config.learning_rate_resets, [solver.epoch, config.learning_rate]])
    write_json(out_dir / "config.json", asdict(config))
    start = time.perf_counter()
    # the solver checks every loss and gradient for NaN and inf and stops with one clear
    # error; NumPy's overflow warnings on the way there would only bury it
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        solver.train()
    solver.restore_best_params()
    model.save(out_dir / "model.npz")
    write_json(out_dir / "history.json", {
        "loss_history": [float(x) for x in solver.loss_history],
        "val_loss_history": [float(x) for x in solver.val_loss_history],
        "iterations_per_epoch": solver.iterations_per_epoch,
        "train_seconds": time.perf_counter() - start,
    })
    return model, solver, data


def _check_model_fits(config, input_dim, data):
    """Refuse sizes whose model cannot fit in memory, before it is built (NotEnoughMemoryError).

    The lower bound counted: the parameters and their gradients, and one minibatch's
    vocabulary scores and hidden states with their gradients, as if the cell had one gate
    (every cell has at least one), so that it holds for any registered cell.
    """
    from .memcheck import check_size

    V, D = max(data["word_to_idx"].values()) + 1, input_dim
    T = max(data["train_captions"].shape[1] - 1, 1)
    itemsize = np.dtype(config.dtype).itemsize
    W, H, what = config.wordvec_dim, config.hidden_dim, f"training a {config.cell_type} model"

    def cost(W, H, batch):
        params = V * W + D * H + H + (W + H + 1) * H + H * V + V
        activations = batch * T * (V + 2 * H)
        return 2 * (params + activations) * itemsize

    # each size alone first (the others at 1), so that the message blames the option that is too large
    check_size("hidden_dim", H, lambda h: cost(1, h, 1), what)
    check_size("wordvec_dim", W, lambda w: cost(w, 1, 1), what)
    check_size("hidden_dim", H, lambda h: cost(W, h, 1), f"{what} with wordvec_dim {W}")
    check_size("batch_size", config.batch_size, lambda b: cost(W, H, b), what)


def _remove_run_files(out_dir):
    # Only in a folder that holds a run (its config.json): a user's own loss.png or
    # metrics.json in a folder that never held one are not ours to delete.
    if not (out_dir / "config.json").is_file():
        return
    for pattern in RUN_FILES:
        for path in out_dir.glob(pattern):
            if path.is_file():
                path.unlink()


def _set_learning_rate(solver, learning_rate):
    """Give every parameter's optimizer the learning rate ``learning_rate`` from now on."""
    resumed = sorted({float(c["learning_rate"]) for c in solver.optim_configs.values() if "learning_rate" in c})
    for config in solver.optim_configs.values():
        config["learning_rate"] = float(learning_rate)
    was = "/".join(f"{lr:g}" for lr in resumed) or "rule's default"
    _log.info("learning rate set to %g from the resumed %s", learning_rate, was)


IMAGE_SIZE = 112  # shapes world and coco.pt: every image is 112 x 112


def load_images(paths, config):
    """Read JPEG/PNG files as uint8 (N, 3, S, S) at the size the run trained on."""
    if config.dataset == "coco-cs231n":
        raise ValueError("a coco-cs231n run reads precomputed VGG16 features; it cannot caption new images "
                         "(train on shapes or coco-eecs498 for that)")
    from .encoders import load_image

    for p in paths:
        if pathlib.Path(p).is_dir():
            raise IsADirectoryError(f"{p} is a folder, not an image file; pass the images themselves "
                                    f"(for example {pathlib.Path(p) / '*.png'})")
        if pathlib.Path(p).exists() and not pathlib.Path(p).is_file():  # a device or a pipe: it may never end
            raise ValueError(f"{p} is not a regular file; pass JPEG or PNG files")
    return np.stack([_load_image(load_image, p) for p in paths])


def _load_image(load_image, path):
    try:
        from PIL.Image import DecompressionBombError
    except ImportError:  # load_image says how to install Pillow
        return load_image(path, IMAGE_SIZE)
    try:
        return load_image(path, IMAGE_SIZE)
    except DecompressionBombError as err:  # Pillow refuses images too large to decode safely
        raise ValueError(f"cannot read {path}: {err}; scale the image down (it is captioned at "
                         f"{IMAGE_SIZE} x {IMAGE_SIZE} pixels anyway)") from None


def check_weights(config, weights):
    """Refuse encoder ``weights`` for a run without a CNN encoder (only coco-eecs498 runs have one).

    ``featurize_images`` calls it; the command line calls it too, before any slow work.
    """
    if weights is not None and config.dataset != "coco-eecs498":
        raise ValueError(f"weights choose the CNN of a coco-eecs498 run; a {config.dataset} run has no CNN encoder")


def featurize_images(config, images, weights=None):
    """Features of new images computed the way the run's training features were.

    weights (coco-eecs498 runs only): the encoder's checkpoint file, as given to
    ``minicap features --weights``; None for torchvision's published one. When the run's
    feature file (beside its data_path) records the SHA-256 of the weights that made the
    training features, other weights are refused: the model was trained on that network's
    features, and another network's would give wrong captions without any error.
    """
    check_weights(config, weights)
    if config.dataset == "shapes":
        from .data import features as feat

        # the training split's standardisation: loading the cached world is fast
        data = load_dataset("shapes", spatial=config.spatial, **config.dataset_options)
        layout = feat.spatial_features if config.spatial else feat.global_features
        return feat.standardize(layout(feat.appearance_features(images)), data["feature_mean"], data["feature_std"])
    if config.dataset == "coco-eecs498":
        from .encoders import extract_features, load_encoder

        name = config.dataset_options.get("encoder", "mobilenet_v2")
        from .data.coco import check_npz_bounded

        if isinstance(weights, (str, pathlib.PurePath)):
            check_npz_bounded(weights)  # a weights .npz is read whole: no zip bomb
        encoder = load_encoder(name, _same_weights_as_training(config, name, weights))
        spatial, pooled = extract_features(images, encoder, device=config.device, progress=False)
        return spatial if config.spatial else pooled
    raise ValueError(f"cannot compute features of new images for dataset {config.dataset!r}")


def _same_weights_as_training(config, name, weights):
    """``weights`` for ``load_encoder``, once checked against the SHA-256 that the run's feature file records.

    Nothing to check (no data_path, no feature file there, an older file without the
    digest, a dict of arrays, a missing file that ``load_encoder`` will report): returned as is.
    """
    from .data.coco import features_path
    from .encoders.extract import stored_weights_sha256
    from .encoders.weights import fetch_checkpoint, file_sha256

    if config.data_path is None or not isinstance(weights, (type(None), str, pathlib.PurePath)):
        return weights
    cache = features_path(config.data_path, name)
    if not cache.is_file():
        return weights
    recorded = stored_weights_sha256(cache)
    if recorded is None:
        return weights
    weights_file = fetch_checkpoint(name) if weights is None else pathlib.Path(weights)
    if not weights_file.is_file():
        return weights_file
    if file_sha256(weights_file) != recorded:
        used = f"torchvision's published checkpoint {weights_file}" if weights is None else f"--weights {weights_file}"
        raise ValueError(
            f"the run's training features ({cache}) were made with other {name} weights (SHA-256 {recorded[:12]}...) "
            f"than {used}; pass the same --weights that `minicap features` used"
        )
    return weights_file
