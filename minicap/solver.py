"""The training loop: minibatches, update rules, validation, checkpoints and resume.

``CaptioningSolver`` knows nothing about images or words: it draws rows of a data dict
(the layout every minicap loader returns), moves each minibatch to the model's device,
calls ``model.loss``, and applies an update rule from ``minicap.optim`` to every
parameter. See ``docs/training.md`` for the options and the guarantees::

    solver = CaptioningSolver(model, data, optim_config={"learning_rate": 5e-3},
                              lr_decay=0.95, batch_size=25, num_epochs=50,
                              checkpoint_dir="runs/rnn", resume=True)
    solver.train()

Host syncs are rare on purpose: losses stay device scalars until the next log point
(every ``print_every`` iterations) or the end of an epoch, when they come over in one
transfer, and that is also when non-finite values are detected.
"""

import logging
import math
import os
import pathlib
import sys
from contextlib import ExitStack, contextmanager

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from . import heap, optim, threads
from .argcheck import check_int, check_real
from .atomic import remove_stale_temporaries
from .averaging import ParameterAverage
from .backend import device_of, get_array_module, to_device, to_numpy
from .checkpoint import CheckpointError, DeferredInterrupt, load_state, save_state

__all__ = ["CaptioningSolver", "NonFiniteLossError", "TrainingInterrupted", "CHECKPOINT_NAME"]

_log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.npz"
_FORMAT, _VERSION = "minicap-solver-checkpoint", 1


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or infinite loss or gradient.

    Attributes: ``iteration`` (index into ``loss_history`` of the bad step), ``epoch``
    (0-based epoch it was in), ``restored_iteration`` (how many iterations the restored
    parameters had seen), ``checkpoint_path`` (the last good checkpoint, or None when none
    was written), ``facts`` (the message without its advice, for callers such as the
    command line that give advice of their own).
    """

    def __init__(self, message, iteration, epoch, restored_iteration, checkpoint_path=None, facts=None):
        super().__init__(message)
        self.iteration = iteration
        self.epoch = epoch
        self.restored_iteration = restored_iteration
        self.checkpoint_path = checkpoint_path
        self.facts = message if facts is None else facts


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``train()``; the solver's state is consistent and was checkpointed.

    Attributes: ``iteration`` and ``epoch`` (completed so far), ``checkpoint_path`` (the file
    written, or None without a checkpoint_dir or when the state could not be saved). Being a
    KeyboardInterrupt, it ends a script the way Ctrl-C always does unless caught.
    """

    def __init__(self, iteration, epoch, checkpoint_path):
        saved = f"; checkpoint saved to {checkpoint_path}" if checkpoint_path else "; no checkpoint was saved"
        super().__init__(f"training interrupted after iteration {iteration} (epoch {epoch + 1}){saved}")
        self.iteration, self.epoch, self.checkpoint_path = iteration, epoch, checkpoint_path


def _host_copy(params):
    """Host copies that later in-place updates cannot touch (``to_numpy`` of a NumPy array is the array)."""
    return {name: np.array(to_numpy(value), copy=True) for name, value in params.items()}


def _is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _check_split(data, split, required):
    """Validate one split of a data dict; returns False when an optional split is absent."""
    keys = [f"{split}_captions", f"{split}_image_idxs", f"{split}_features"]
    if not required and (keys[0] not in data or len(data[keys[0]]) == 0):
        return False
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"data is missing {missing}; pass the dict a minicap.data loader returns")
    captions, idxs, features = (data[k] for k in keys)
    for key, value in zip(keys, (captions, idxs, features)):
        if not isinstance(value, np.ndarray):
            raise ValueError(
                f"data[{key!r}] must be a NumPy array in host memory, got {type(value).__name__}; "
                "the solver moves each minibatch to the model's device itself"
            )
    if captions.ndim != 2 or captions.shape[1] < 2 or not np.issubdtype(captions.dtype, np.integer):
        raise ValueError(f"{keys[0]} must be an (M, T+1) integer array with T >= 1, got {captions.shape} {captions.dtype}")
    if len(captions) == 0:
        raise ValueError(f"{keys[0]} is empty: there is nothing to train on")
    if idxs.shape != (len(captions),) or not np.issubdtype(idxs.dtype, np.integer):
        raise ValueError(f"{keys[1]} must be ({len(captions)},) integers, one image row per caption, got {idxs.shape}")
    if idxs.min() < 0 or idxs.max() >= len(features):
        raise ValueError(f"{keys[1]} must index rows of {keys[2]} (0 to {len(features) - 1}), found {idxs.min()}..{idxs.max()}")
    return True


class CaptioningSolver:
    """Trains a captioning model with minibatch gradient descent.

    Parameters: ``model`` (``params`` dict, ``loss(features, captions) -> (loss, grads)``;
    ``to_arrays``/``from_arrays`` when checkpointing), ``data`` (train_* and optional val_*
    arrays, NumPy), ``update_rule`` (a name in ``minicap.optim.RULES`` or a callable with the
    same signature), ``optim_config`` (hyperparameters given to every parameter's rule),
    ``lr_decay`` (learning-rate factor per epoch), ``batch_size``, ``num_epochs``,
    ``print_every`` (iterations between log lines, host syncs and finiteness checks),
    ``verbose`` (progress bar on a terminal and INFO log lines; DEBUG otherwise).

    Keyword-only: ``seed`` (minibatch order and validation sample), ``grad_clip`` (maximum
    global L2 norm of the gradient, or None), ``checkpoint_dir`` (write ``checkpoint.npz``
    there after every epoch and on Ctrl-C), ``resume`` (True: continue from the checkpoint in
    ``checkpoint_dir`` if there is one; a path: continue from that file or folder),
    ``metric_fn`` (``metric_fn(model, data, "val") -> {name: float}``, called each epoch with
    ``data`` restricted to the validation sample), ``val_metric`` ("val_loss", minimised, or a
    name returned by ``metric_fn``, maximised), ``num_val_samples`` (validation images drawn
    once for the per-epoch validation; None for all), ``average_decay`` (keep a running
    average of the parameters, ``minicap.averaging``, and validate and keep it instead of
    the raw parameters; None for off), ``logger``.
    """

    def __init__(self, model, data, update_rule="adam", optim_config=None, lr_decay=1.0,
                 batch_size=100, num_epochs=10, print_every=10, verbose=True, *, seed=0,
                 grad_clip=None, checkpoint_dir=None, resume=False, metric_fn=None,
                 val_metric="val_loss", num_val_samples=1000, average_decay=None, logger=None):
        if not isinstance(getattr(model, "params", None), dict) or not callable(getattr(model, "loss", None)):
            raise TypeError("model needs a params dict and a loss(features, captions) method")
        if not model.params:
            raise ValueError("model.params is empty: there is nothing to train")
        if isinstance(update_rule, str):
            if update_rule not in optim.RULES:
                raise ValueError(f"unknown update_rule {update_rule!r}; choose one of {sorted(optim.RULES)} or pass a function")
            update_rule = optim.RULES[update_rule]
        elif not callable(update_rule):
            raise TypeError("update_rule must be a rule name or a function rule(w, dw, config) -> (w, config)")
        if optim_config is not None and not isinstance(optim_config, dict):
            raise TypeError(f"optim_config must be a dict or None, got {type(optim_config).__name__}")
        # a typo ("lr") or a bad value is reported now, not after the first forward and backward pass
        optim.check_config(update_rule, optim_config)
        batch_size, num_epochs = check_int("batch_size", batch_size, low=1), check_int("num_epochs", num_epochs, low=0)
        print_every, seed = check_int("print_every", print_every, low=1), check_int("seed", seed, low=0)
        lr_decay = check_real("lr_decay", lr_decay, low=0, low_open=True)
        # inf is a norm no gradient reaches: clipping off, as with None
        grad_clip = check_real("grad_clip", grad_clip, low=0, low_open=True, finite=False, none_ok=True)
        num_val_samples = check_int("num_val_samples", num_val_samples, low=1, none_ok=True)
        if metric_fn is not None and not callable(metric_fn):
            raise TypeError("metric_fn must be a function metric_fn(model, data, split) -> dict")
        if val_metric != "val_loss" and metric_fn is None:
            raise ValueError(f"val_metric={val_metric!r} needs a metric_fn that returns it; or use 'val_loss'")
        if (checkpoint_dir is not None or resume is not False) and not (
            callable(getattr(model, "to_arrays", None)) and callable(getattr(type(model), "from_arrays", None))
        ):
            raise TypeError("checkpoints need model.to_arrays() and type(model).from_arrays(arrays)")
        _check_split(data, "train", required=True)

        self.model, self.data = model, data
        self.update_rule = update_rule
        self.lr_decay, self.batch_size, self.num_epochs = lr_decay, batch_size, num_epochs
        self.print_every, self.verbose, self.seed = print_every, verbose, seed
        self.grad_clip = grad_clip
        self.checkpoint_dir = None if checkpoint_dir is None else pathlib.Path(checkpoint_dir)
        self.metric_fn, self.val_metric = metric_fn, val_metric
        self.average = None if average_decay is None else ParameterAverage(average_decay)
        self.logger = logger or _log

        self.num_train = len(data["train_captions"])
        self.iterations_per_epoch = math.ceil(self.num_train / batch_size)
        self.optim_configs = {name: dict(optim_config or {}) for name in model.params}
        self.epoch = 0  # completed epochs
        self.iteration = 0  # completed iterations == len(loss_history) after a sync
        self.loss_history, self.val_loss_history, self.metrics_history = [], [], []
        self.best_val = self.best_epoch = self.best_params = None
        self._rng = np.random.default_rng(seed)
        self._order, self._position = None, 0  # this epoch's permutation, rows done
        self._pending = []  # (loss, grads finite) device scalars since the last sync
        self._threads = None  # the BLAS thread policy while train() runs (minicap.threads)
        self._committing = False  # True while parameters / optimizer state are half-updated
        self._good_params, self._good_average, self._good_iteration = None, None, 0
        self.resumed_from = None  # the checkpoint file the state was loaded from, if any
        self._val_data = self._choose_val_sample(num_val_samples)
        if metric_fn is not None and self._val_data is None:
            raise ValueError("metric_fn needs validation data: data has no val_captions (or they are empty)")

        if resume is True:
            if self.checkpoint_dir is None:
                raise ValueError("resume=True needs checkpoint_dir (or pass resume=<path of a checkpoint>)")
            if self.checkpoint_path.exists():
                self._load_checkpoint(self.checkpoint_path)
            else:
                self.logger.info("no checkpoint at %s: starting from scratch", self.checkpoint_path)
        elif isinstance(resume, (str, os.PathLike)):
            path = pathlib.Path(resume)
            self._load_checkpoint(path / CHECKPOINT_NAME if path.is_dir() else path)
        elif resume is not False:
            raise TypeError(f"resume must be True, False or a path, got {resume!r}")
        if self.checkpoint_path is not None:
            # a run killed while writing its checkpoint (SIGKILL, a power cut) left the temporary file
            remove_stale_temporaries(self.checkpoint_path)

    @property
    def checkpoint_path(self):
        """Where checkpoints go (``checkpoint_dir / checkpoint.npz``), or None."""
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    @property
    def settings(self):
        """The options a resumed run must share with the run that wrote the checkpoint."""
        return {
            "update_rule": getattr(self.update_rule, "__name__", repr(self.update_rule)),
            "batch_size": self.batch_size,
            "seed": self.seed,
            "lr_decay": self.lr_decay,
            "grad_clip": self.grad_clip,
            "num_train": self.num_train,
            "average_decay": None if self.average is None else self.average.decay,
        }

    def _choose_val_sample(self, num_images):
        """A data dict whose val split holds every caption of a fixed random set of images.

        Drawn once, from its own generator, so that validation never shifts the training
        order and every epoch is measured on the same images with all their references.
        """
        if not _check_split(self.data, "val", required=False):
            return None
        idxs = self.data["val_image_idxs"]
        images = np.unique(idxs)
        if num_images is not None and num_images < len(images):
            images = np.sort(np.random.default_rng([self.seed, 1]).choice(images, num_images, replace=False))
        rows = np.flatnonzero(np.isin(idxs, images))  # host NumPy data: mask indexing is fine here
        return {**self.data, "val_captions": self.data["val_captions"][rows], "val_image_idxs": idxs[rows]}

    def _device(self):
        return device_of(next(iter(self.model.params.values())))

    def _follow_the_model(self):
        """Move everything the solver keeps for the parameters to the parameters' device.

        ``model.to(device)`` between ``train()`` calls moves the parameters only: the update
        rules' state (moments, velocities), the running average and losses not yet synced
        would stay behind, and the next update would mix devices (CuPy raises TypeError).
        They follow here, at the start of ``train()``; arrays already on the right device
        are not copied. A model whose parameters are on two devices is refused.
        """
        devices = sorted({device_of(value) for value in self.model.params.values()})
        if len(devices) > 1:
            raise ValueError(f"the model's parameters are on {' and '.join(devices)}; move the whole model "
                             "with model.to(device) before train()")
        device = devices[0]
        self.optim_configs = {name: to_device(config, device) for name, config in self.optim_configs.items()}
        if self.average is not None:
            self.average.to(device)
        self._pending = to_device(self._pending, device)

    def _minibatch(self, data, split, rows):
        """Captions and features of ``rows``, gathered on the host and moved to the model's device."""
        captions = data[f"{split}_captions"][rows]
        features = data[f"{split}_features"][data[f"{split}_image_idxs"][rows]]
        device = self._device()
        return to_device(features, device), to_device(captions, device)

    def train(self):
        """Run the remaining iterations until ``num_epochs`` epochs are complete.

        Ctrl-C stops at the end of the current iteration (a second one stops at once): the
        state is checkpointed when ``checkpoint_dir`` is set, and TrainingInterrupted (a
        KeyboardInterrupt) is raised. Calling ``train()`` again continues in memory, on the
        device the model is on then (``model.to(device)`` in between: see ``_follow_the_model``).
        Raises NonFiniteLossError on a NaN or infinite loss or gradient.
        """
        self._follow_the_model()
        total = self.num_epochs * self.iterations_per_epoch
        bar_on = self.verbose and _is_terminal(sys.stdout)
        # Every step allocates the same large temporaries: keep freed memory for the next
        # one instead of faulting fresh pages in again (minicap.heap).
        heap.keep_freed_memory()
        with ExitStack() as stack:
            # BLAS threads by the model's size and the machine's load (minicap.threads)
            self._threads = stack.enter_context(threads.for_model(self.model, self.batch_size))
            stop = stack.enter_context(DeferredInterrupt())
            if bar_on:
                stack.enter_context(logging_redirect_tqdm())
            bar = stack.enter_context(
                tqdm(total=total, initial=min(self.iteration, total), disable=not bar_on, file=sys.stdout,
                     desc="train", unit="it", dynamic_ncols=True)
            )
            self._snapshot()
            self._committing = False  # a NonFiniteLossError may have left it set
            try:
                while self.epoch < self.num_epochs:
                    if stop.requested:
                        raise KeyboardInterrupt
                    if self._order is not None and self._position >= len(self._order):
                        self._end_epoch(bar)
                    else:
                        self._step()
                        bar.update(1)
                        if self.iteration % self.print_every == 0:
                            self._sync(bar)
                self._sync(bar)
            except KeyboardInterrupt:
                raise self._interrupted() from None

    def _step(self):
        """One minibatch: loss and gradients, optional clipping, one update of every parameter."""
        if self._order is None:
            self._order, self._position = self._rng.permutation(self.num_train), 0
        rows = self._order[self._position:self._position + self.batch_size]
        features, captions = self._minibatch(self.data, "train", rows)
        params = self.model.params
        loss, grads = self.model.loss(features, captions)
        if grads.keys() != params.keys():
            raise ValueError(f"model.loss returned gradients for {sorted(grads)}, but the params are {sorted(params)}")
        xp = get_array_module(loss, *grads.values())
        norm = xp.sqrt(sum(xp.sum(g * g) for g in grads.values()))
        if self.grad_clip is not None:
            # min(1, clip / norm) as array arithmetic: no host sync, no branch on a device value
            scale = xp.minimum(1.0, self.grad_clip / (norm + 1e-6))
            grads = {name: g * scale for name, g in grads.items()}
        self._committing = True
        for name, w in params.items():
            params[name], self.optim_configs[name] = self.update_rule(w, grads[name], self.optim_configs[name])
        if self.average is not None:
            self.average.update(params)
        self._position += len(rows)
        self.iteration += 1
        self._pending.append((loss, xp.isfinite(norm)))
        self._committing = False

    def _snapshot(self):
        """Remember the current parameters (device copies) as the last good ones."""
        self._good_params = {name: value.copy() for name, value in self.model.params.items()}
        self._good_average = None if self.average is None else self.average.copy()
        self._good_iteration = self.iteration

    def _sync(self, bar=None):
        """Bring pending losses to the host in one transfer, check them, log the latest."""
        if not self._pending:
            return
        xp = get_array_module(*(loss for loss, _ in self._pending))
        losses = to_numpy(xp.stack([xp.asarray(loss, dtype=xp.float64) for loss, _ in self._pending]))
        grads_ok = to_numpy(xp.stack([ok for _, ok in self._pending]))
        first = self.iteration - len(self._pending)
        bad = np.flatnonzero(~(np.isfinite(losses) & grads_ok))
        self._committing = True  # the pending losses move into the history
        self._pending = []
        if bad.size:
            self._fail(first, losses, int(bad[0]))
        self.loss_history.extend(losses.tolist())
        self._committing = False
        self._snapshot()
        if bar is not None:
            bar.set_postfix(epoch=self.epoch + 1, loss=f"{self.loss_history[-1]:.4f}", refresh=False)
        if self.iteration % self.print_every == 0:
            # A child logger ("<logger>.iterations"), so that a program can keep the epoch
            # lines and silence these (the command line does, beside its progress bar).
            self.logger.getChild("iterations").log(
                logging.INFO if self.verbose else logging.DEBUG, "(Iteration %d / %d) loss: %f",
                self.iteration, self.num_epochs * self.iterations_per_epoch, self.loss_history[-1])

    def _fail(self, first, losses, offset):
        """Record the good losses, restore the last good parameters and raise."""
        iteration = first + offset
        self.loss_history.extend(losses[:offset].tolist())
        what = "loss" if not np.isfinite(losses[offset]) else "gradient"
        for name, value in self._good_params.items():
            self.model.params[name] = value.copy()
        if self._good_average is not None:
            self.average = self._good_average.copy()
        saved = self.checkpoint_path is not None and self.checkpoint_path.exists()
        where = f"the checkpoint {self.checkpoint_path} was left as it was" if saved else "no checkpoint was written"
        facts = (f"non-finite {what} at iteration {iteration} (epoch {self.epoch + 1}); the model's parameters "
                 f"were restored to those after iteration {self._good_iteration} and {where}.")
        # only advice that can be followed: a resumed run must keep grad_clip (the settings
        # check refuses a change), but its learning rate can be lowered; without a
        # checkpoint there is nothing to resume from
        clip = "a smaller grad_clip" if self.grad_clip is not None else "grad_clip"
        if saved:
            advice = ("Resume from the checkpoint with a lower learning rate (set every "
                      "solver.optim_configs[name]['learning_rate'] before train()), or train again "
                      f"from the start with a lower learning rate or {clip}.")
        else:
            advice = f"Train again with a lower learning rate or {clip}."
        raise NonFiniteLossError(
            f"{facts} {advice}", iteration=iteration, epoch=self.epoch, restored_iteration=self._good_iteration,
            checkpoint_path=self.checkpoint_path if saved else None, facts=facts,
        )

    def _validation_loss(self):
        """Mean per-caption loss over the validation sample (the model's loss is a mean over its batch)."""
        data, total = self._val_data, 0.0
        count = len(data["val_captions"])
        for start in range(0, count, self.batch_size):
            rows = np.arange(start, min(start + self.batch_size, count))
            loss, _ = self.model.loss(*self._minibatch(data, "val", rows))
            total = total + loss * len(rows)  # stays on the device until the float() below
        return float(total) / count

    def _end_epoch(self, bar):
        """Sync, validate, keep the best parameters, decay the learning rate, checkpoint."""
        self._sync(bar)
        with self._averaged_params():  # validate, and keep, the average when there is one
            val_loss = None if self._val_data is None else self._validation_loss()
            metrics = {}
            if self.metric_fn is not None:
                metrics = {k: float(v) for k, v in self.metric_fn(self.model, self._val_data, "val").items()}
                if self.val_metric != "val_loss" and self.val_metric not in metrics:
                    raise ValueError(f"val_metric {self.val_metric!r} is not among the metrics returned: "
                                     f"{sorted(metrics)}")
            self._committing = True  # from here to the epoch counter, a Ctrl-C must not save
            if val_loss is not None:
                self.val_loss_history.append(val_loss)
            if metrics:
                self.metrics_history.append(metrics)
            self._keep_if_best(val_loss, metrics)
        for config in self.optim_configs.values():
            if "learning_rate" in config:
                config["learning_rate"] *= self.lr_decay
        self.epoch += 1
        self._order, self._position = None, 0
        self._committing = False
        written = self._save_checkpoint()
        level = logging.INFO if self.verbose else logging.DEBUG
        parts = [f"(Epoch {self.epoch} / {self.num_epochs}) train loss {self.loss_history[-1]:.4f}"]
        parts += [] if val_loss is None else [f"val loss {val_loss:.4f}"]
        parts += [f"{k} {v:.4f}" for k, v in metrics.items()]
        parts += [] if written is None else [f"checkpoint {written}"]
        self.logger.log(level, ", ".join(parts))
        if self._threads is not None and self.epoch < self.num_epochs:
            self._threads.recheck()  # the machine's load may have changed: measure again

    @contextmanager
    def _averaged_params(self):
        """Within the block the model holds the averaged parameters; the raw ones after it."""
        averaged = None if self.average is None else self.average.averaged()
        if averaged is None:
            yield
            return
        raw = dict(self.model.params)
        self.model.params.update(averaged)  # in place: the model's loss reads this dict
        try:
            yield
        finally:
            self.model.params.update(raw)

    def _keep_if_best(self, val_loss, metrics):
        """Host copies of the parameters when the chosen measure improves (or always, without one)."""
        value = val_loss if self.val_metric == "val_loss" else metrics[self.val_metric]
        if value is None:
            better = True  # no validation data: keep the latest parameters
        elif not math.isfinite(value):
            better = False
        elif self.best_val is None:
            better = True
        else:
            better = value < self.best_val if self.val_metric == "val_loss" else value > self.best_val
        if better:
            self.best_val, self.best_epoch = value, self.epoch + 1
            self.best_params = _host_copy(self.model.params)

    def _interrupted(self):
        """Save what can be saved after a Ctrl-C and build the exception to raise."""
        if self._committing:
            self.logger.warning("interrupted in the middle of an update: the state is not saved; "
                                "the last epoch's checkpoint (if any) is intact")
            return TrainingInterrupted(self.iteration, self.epoch, None)
        self._sync()
        path = self._save_checkpoint()
        self.logger.warning("training interrupted after iteration %d%s", self.iteration,
                            f"; checkpoint saved to {path}" if path else "")
        return TrainingInterrupted(self.iteration, self.epoch, path)

    def _save_checkpoint(self):
        """Write the whole training state to ``checkpoint_path`` atomically; the path, or None."""
        if self.checkpoint_path is None:
            return None
        return save_state(self.checkpoint_path, {
            "format": _FORMAT, "version": _VERSION, "settings": self.settings,
            "model": self.model.to_arrays(),
            "optim": {name: {key: to_numpy(value) if hasattr(value, "shape") else value
                             for key, value in config.items()} for name, config in self.optim_configs.items()},
            "rng_state": self._rng.bit_generator.state, "order": self._order, "position": self._position,
            "epoch": self.epoch, "iteration": self.iteration, "loss_history": self.loss_history,
            "val_loss_history": self.val_loss_history, "metrics_history": self.metrics_history,
            "best_val": self.best_val, "best_epoch": self.best_epoch, "best_params": self.best_params,
            "average": None if self.average is None else self.average.state(),
        })

    def _load_checkpoint(self, path):
        """Restore the model's parameters and the whole training state from a checkpoint."""
        state = load_state(path)
        if state.get("format") != _FORMAT or state.get("version") != _VERSION:
            raise CheckpointError(f"{path} is not a {_FORMAT} (version {_VERSION}) file; "
                                  "a file written by model.save() is read with the model's load()")
        stored = state.get("settings", {})
        differ = [f"{key}: checkpoint {stored.get(key)!r}, now {value!r}"
                  for key, value in self.settings.items() if stored.get(key) != value]
        if differ:
            raise ValueError(f"cannot resume exactly from {path}: the run was started with other options "
                             f"({'; '.join(differ)}); pass the same options, or start a new checkpoint_dir")
        try:
            restored_model = type(self.model).from_arrays(state["model"])
            restored = restored_model.params
            configs, rng_state = state["optim"], state["rng_state"]
            fields = {key: state[key] for key in ("order", "position", "epoch", "iteration", "loss_history",
                                                  "val_loss_history", "metrics_history", "best_val",
                                                  "best_epoch", "best_params")}
        except KeyError as err:
            raise CheckpointError(f"{path} is incomplete: it has no {err} entry") from None
        own = self.model.params
        bad = sorted(key for key in set(own) | set(restored) if key not in own or key not in restored
                     or own[key].shape != restored[key].shape or own[key].dtype != restored[key].dtype)
        if bad or configs.keys() != own.keys():
            raise ValueError(f"the model in {path} does not match this model: parameters {bad or sorted(configs)} "
                             "differ in name, shape or dtype; build the model with the same settings")
        # Same parameter shapes do not make the same model: a vocabulary of the same size
        # with other words (or another cell with equal shapes) would silently load weights
        # whose rows mean other words.
        if callable(getattr(self.model, "config", None)) and callable(getattr(restored_model, "config", None)):
            own_config, stored_config = self.model.config(), restored_model.config()
            differ = sorted(key for key in set(own_config) | set(stored_config)
                            if key != "seed" and own_config.get(key) != stored_config.get(key))
            if differ:
                shown = [key if key == "word_to_idx" else
                         f"{key} (checkpoint {stored_config.get(key)!r}, now {own_config.get(key)!r})" for key in differ]
                raise ValueError(f"the model in {path} does not match this model: {'; '.join(shown)} differ "
                                 "(a vocabulary of the same size with other words has the same shapes); build "
                                 "the model with the checkpoint's settings and vocabulary, or start a new "
                                 "checkpoint_dir (the seed may differ: resuming replaces the weights)")
        if self.average is not None and not isinstance(state.get("average"), dict):
            raise CheckpointError(f"{path} is incomplete: it has no 'average' entry")
        device = self._device()
        for name in own:
            own[name] = to_device(restored[name], device)
        self.optim_configs = {name: to_device(config, device) for name, config in configs.items()}
        self._rng.bit_generator.state = rng_state
        if self.average is not None:  # checked above: the checkpoint has one
            self.average = ParameterAverage.from_state(state["average"], device)
        self._order, self._position = fields.pop("order"), fields.pop("position")
        for key, value in fields.items():
            setattr(self, key, value)
        self.resumed_from = pathlib.Path(path)
        self.logger.info("resumed from %s after epoch %d, iteration %d", path, self.epoch, self.iteration)

    def restore_best_params(self):
        """Copy ``best_params`` into the model, on the model's device; returns the model."""
        if self.best_params is None:
            raise RuntimeError("there are no best parameters yet: train for at least one epoch first")
        device = self._device()
        for name, value in self.best_params.items():
            self.model.params[name] = to_device(value.copy(), device)
        return self.model
