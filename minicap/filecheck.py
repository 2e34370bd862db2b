"""Checking what a file says before anything is built from it: model files and solver checkpoints.

``load_npz`` (``minicap.checkpoint``) bounds what reading an ``.npz`` can cost; these
functions check what the arrays and the JSON inside claim. A model file's stored sizes
decide how much its model allocates, and a checkpoint's counts and row order decide what
training does next, so a damaged or hand-edited file is refused here, in one message
that names the file and the field, instead of allocating terabytes, failing deep inside
the training loop, or captioning with NaN weights.
"""

import json

import numpy as np

from .checkpoint import CheckpointError

__all__ = ["check_model_arrays", "check_training_state"]


def check_model_arrays(arrays, source):
    """Check a model file's stored sizes against its arrays before the model is built.

    The constructor allocates parameters from the config's sizes, so a config that says
    ``hidden_dim=10**7`` in a file of kilobytes would cost terabytes before any shape is
    compared: every size is compared with the stored arrays' shapes first (W_embed (V, W),
    W_proj (D, H), Wx (W, G), Wh (H, G), W_vocab (H, V), G a multiple of H: the cell's gates;
    taken from the file, so that any registered cell's file is checked the same way).
    Every parameter must be a real floating-point array of finite values: a NaN-filled
    model would caption every image with nothing and score zeros without an error.
    Raises ``CheckpointError`` naming ``source``.
    """
    try:
        config = json.loads(str(arrays["config"]))
    except (ValueError, RecursionError) as err:  # RecursionError: JSON nested thousands deep
        raise CheckpointError(f"{source} has an unreadable model config: {err}") from None
    if not isinstance(config, dict) or not isinstance(config.get("word_to_idx"), dict):
        raise CheckpointError(f"{source} has an unreadable model config: it is not a dict with a word_to_idx dict")
    for key, value in arrays.items():
        if not key.startswith("param/"):
            continue
        value = np.asarray(value)
        if value.dtype.kind != "f":
            raise CheckpointError(f"{source}: parameter {key[6:]!r} has dtype {value.dtype}; parameters are real "
                                  "floating-point arrays, so the file is damaged or was not written by minicap")
        bad = value.size - int(np.count_nonzero(np.isfinite(value)))
        if bad:
            raise CheckpointError(f"{source}: parameter {key[6:]!r} holds {bad} NaN or infinite values of "
                                  f"{value.size}: the run diverged or the file is damaged; use an earlier "
                                  "checkpoint or train again with a lower learning rate")
    sizes = {}
    for letter, field in (("D", "input_dim"), ("W", "wordvec_dim"), ("H", "hidden_dim")):
        value = config.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckpointError(f"{source} has an unreadable model config: {field} is {value!r:.40}, "
                                  "not a whole number >= 1")
        sizes[letter] = value
    stored = {}
    for name in ("W_embed", "W_proj", "Wx", "Wh", "W_vocab"):
        value = arrays.get(f"param/{name}")
        if value is None:
            raise CheckpointError(f"{source} is missing parameter {name!r}")
        if np.ndim(value) != 2:
            raise CheckpointError(f"{source}: parameter {name!r} has shape {np.shape(value)}, expected a matrix")
        stored[name] = np.shape(value)
    V, G = stored["W_embed"][0], stored["Wh"][1]
    D, W, H = sizes["D"], sizes["W"], sizes["H"]
    # Wh before Wx: G is read from Wh, so a misshaped Wh is named as itself
    expected = {"W_embed": (V, W), "W_proj": (D, H), "Wh": (H, G), "Wx": (W, G), "W_vocab": (H, V)}
    for name, shape in expected.items():
        if stored[name] != shape:
            raise CheckpointError(
                f"{source}: parameter {name!r} has shape {stored[name]}, but the config's sizes "
                f"(input_dim {D}, wordvec_dim {W}, hidden_dim {H}, vocabulary {V}) make it {shape}; "
                "the file is damaged or was edited")
    if G % H:
        raise CheckpointError(f"{source}: parameter 'Wh' has {G} columns, not a whole number of gates of "
                              f"hidden_dim {H}; the file is damaged or was edited")
    ids = [i for i in config["word_to_idx"].values() if isinstance(i, int) and not isinstance(i, bool)]
    if len(config["word_to_idx"]) > V or any(i >= V for i in ids):
        raise CheckpointError(f"{source}: its vocabulary has {len(config['word_to_idx'])} words with ids up to "
                              f"{max(ids, default=0)}, but W_embed has {V} rows; the file is damaged or was edited")


def _is_count(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 0


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_training_state(state, path):
    """Check the fields of a solver checkpoint (``load_state`` output) before a solver uses them.

    A hand-edited or damaged checkpoint whose JSON part still parses can hold a string
    where a count belongs, a row order that is not a permutation of the training rows,
    or a negative position: each would surface later as an error from deep inside the
    training loop, or silently train on the wrong rows. Raises ``CheckpointError``
    naming ``path`` and the field.
    """
    def refuse(field, expected, value=None):
        value = state.get(field) if value is None else value
        shown = f"an array {value.dtype} {value.shape}" if isinstance(value, np.ndarray) else f"{value!r:.60}"
        raise CheckpointError(f"{path} is damaged or was edited: its {field!r} is {shown}, expected {expected}; "
                              "resume from an intact checkpoint, or start the run again (--overwrite)")

    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is damaged: it does not hold a training state")
    for field in ("epoch", "iteration", "position"):
        if not _is_count(state.get(field)):
            refuse(field, "a whole number >= 0")
    for field in ("loss_history", "val_loss_history"):
        value = state.get(field)
        if not (isinstance(value, list) and all(_is_number(x) for x in value)):
            refuse(field, "a list of numbers")
    # the solver saves after a sync: every completed iteration has its loss, every epoch an iteration
    if len(state["loss_history"]) != state["iteration"]:
        refuse("iteration", f"the length of loss_history ({len(state['loss_history'])})")
    if state["epoch"] > state["iteration"]:
        refuse("epoch", f"at most the iteration count ({state['iteration']})")
    if not isinstance(state.get("metrics_history"), list):
        refuse("metrics_history", "a list")
    if not (state.get("best_val") is None or _is_number(state.get("best_val"))):
        refuse("best_val", "a number or null")
    if not (state.get("best_epoch") is None or _is_count(state.get("best_epoch"))):
        refuse("best_epoch", "a whole number >= 0 or null")
    best = state.get("best_params")
    if not (best is None or (isinstance(best, dict) and all(isinstance(v, np.ndarray) for v in best.values()))):
        refuse("best_params", "null or a dict of arrays")
    if not (isinstance(state.get("optim"), dict) and all(isinstance(c, dict) for c in state["optim"].values())):
        refuse("optim", "a dict of one optimizer state (a dict) per parameter")
    settings = state.get("settings")
    num_train = settings.get("num_train") if isinstance(settings, dict) else None
    order, position = state.get("order"), state["position"]
    if order is None:
        if position != 0:
            refuse("position", "0 between epochs (the checkpoint has no row order)")
    else:
        n = num_train if _is_count(num_train) else (len(order) if isinstance(order, np.ndarray) else 0)
        if not (isinstance(order, np.ndarray) and order.shape == (n,) and order.dtype.kind in "iu"
                and np.array_equal(np.sort(order), np.arange(n))):
            refuse("order", f"a permutation of the {n} training rows")
        if position > n:
            refuse("position", f"at most the {n} rows of the epoch's order")
    _check_arrays_match_the_model(state, refuse)
    try:  # the generator refuses a malformed state, with messages that name no file
        np.random.default_rng().bit_generator.state = state.get("rng_state")
    except (TypeError, ValueError, KeyError) as err:
        refuse("rng_state", f"the state of a PCG64 generator ({err})")


def _check_arrays_match_the_model(state, refuse):
    """Optimizer moments, best parameters and the weight average: finite float arrays of their parameter's shape.

    NumPy would broadcast a moment of shape (1,) against any parameter, and a NaN would
    spread through every later step: both would train on silently.
    """
    model = state.get("model")
    shapes = {key[len("param/"):]: np.shape(value) for key, value in model.items()
              if key.startswith("param/")} if isinstance(model, dict) else {}

    def fits(name, value):
        if isinstance(value, np.ndarray):
            return (value.shape == shapes.get(name, value.shape) and value.dtype.kind == "f"
                    and bool(np.isfinite(value).all()))
        return not (isinstance(value, float) and not np.isfinite(value))

    for name, config in state["optim"].items():
        for key, value in config.items():
            if not fits(name, value):
                refuse(f"optim/{name}/{key}", f"finite values (an array of {name}'s shape {shapes.get(name)})", value)
    for name, value in (state.get("best_params") or {}).items():
        if not fits(name, value):
            refuse(f"best_params/{name}", f"a finite float array of shape {shapes.get(name)}", value)
    average = state.get("average")
    if average is None:
        return
    sums = average.get("sums") if isinstance(average, dict) else None
    if not (isinstance(average, dict) and _is_number(average.get("decay")) and _is_count(average.get("steps"))
            and (sums is None or (isinstance(sums, dict) and all(isinstance(v, np.ndarray) and fits(k, v)
                                                                  for k, v in sums.items())))):
        refuse("average", "a decay, a step count and a finite array per parameter, of its shape")
