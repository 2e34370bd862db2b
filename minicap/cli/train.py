"""``minicap train``: train a captioning model and write a run folder.

With ``--resume`` the run's own config.json supplies every setting, and only the
options given on the command line change it (the checkpoint then refuses the
changes that would not continue the same run)."""

import argparse
import dataclasses
import pathlib

from .. import runs
from ..backend import require_device
from ..cells import cell_names
from ..runlock import hold_run_folder
from ._common import add_impl, add_threads, positive_float, positive_int, refuse_to_replace

# option dest -> RunConfig field, for the options that map one to one
_FIELDS = {"dataset": "dataset", "data_path": "data_path", "cell": "cell_type", "wordvec_dim": "wordvec_dim",
           "hidden_dim": "hidden_dim", "update_rule": "update_rule", "lr": "learning_rate",
           "lr_decay": "lr_decay", "batch_size": "batch_size", "epochs": "num_epochs", "grad_clip": "grad_clip",
           "average_decay": "average_decay", "dtype": "dtype", "seed": "seed", "device": "device"}
ENCODERS = ("mobilenet_v2", "regnet_x_400mf")


def add_parser(sub):
    d = runs.RunConfig()
    p = sub.add_parser("train", help="train a captioning model", description=__doc__,
                       argument_default=argparse.SUPPRESS)  # so that run() knows which options were given

    # shown_default is only printed in --help (argparse never applies it, see SUPPRESS above);
    # config_from_args applies the real defaults, RunConfig's
    def option(flag, text, shown_default=None, **kwargs):
        shown = f" (default: {shown_default})" if shown_default is not None else ""
        p.add_argument(flag, help=text + shown, **kwargs)

    option("--dataset", "the data to train on", choices=runs.DATASETS, shown_default=d.dataset)
    option("--data-path", "coco.pt (coco-eecs498) or the unpacked coco_captioning folder (coco-cs231n)")
    option("--num-train", "training scenes (shapes) or captions (coco-cs231n max_train)", type=positive_int)
    option("--encoder", "whose features of coco.pt to train on, made by minicap features "
           "(coco-eecs498 only)", choices=ENCODERS, shown_default=ENCODERS[0])
    option("--cell", "the recurrent cell", choices=cell_names(), shown_default=d.cell_type)
    option("--wordvec-dim", "word vector size", type=positive_int, shown_default=d.wordvec_dim)
    option("--hidden-dim", "hidden state size", type=positive_int, shown_default=d.hidden_dim)
    option("--update-rule", "the optimizer", choices=("sgd", "sgd_momentum", "rmsprop", "adam", "adamw"),
           shown_default=d.update_rule)
    option("--lr", "learning rate; with --resume it replaces the checkpoint's current (decayed) one",
           type=positive_float, shown_default=d.learning_rate)
    option("--lr-decay", "learning-rate factor per epoch", type=positive_float, shown_default=d.lr_decay)
    option("--batch-size", "captions per minibatch", type=positive_int, shown_default=d.batch_size)
    option("--epochs", "epochs in all (with --resume, including those done)", type=positive_int,
           shown_default=d.num_epochs)
    option("--grad-clip", "max global gradient norm (0: off)", type=float, shown_default=d.grad_clip)
    option("--average-decay", "validate and keep a running average of the weights with this decay, "
           "e.g. 0.999", type=float, shown_default="off")
    option("--dtype", "parameter dtype", choices=("float32", "float64"), shown_default=d.dtype)
    option("--seed", "initial weights and minibatch order", type=int, shown_default=d.seed)
    p.add_argument("--device", choices=("cpu", "cuda"),
                   help="where to compute (cuda needs CuPy and a GPU; default: cpu, or the run's with --resume)")
    add_impl(p)
    add_threads(p)
    p.add_argument("--out", default="runs/train", help="run folder (default: runs/train)")
    p.add_argument("--resume", action="store_true", default=False,
                   help="continue from the checkpoint in --out, with the settings in its config.json "
                        "(the defaults shown here are a new run's; a resumed run's come from its config.json)")
    p.add_argument("--overwrite", action="store_true", default=False,
                   help="replace the run already in --out (without it, such a folder is refused)")
    p.add_argument("--quiet", action="store_true", default=False, help="no progress bar or progress lines")
    p.set_defaults(run=run)


def config_from_args(args):
    """The RunConfig: the defaults, or the run's config.json with --resume, changed by the options given."""
    given = vars(args)
    config_path = pathlib.Path(args.out) / "config.json"
    base = runs.read_config(args.out) if args.resume and config_path.is_file() else runs.RunConfig()
    values = dataclasses.asdict(base)
    options = dict(base.dataset_options)
    if "dataset" in given and given["dataset"] != base.dataset:
        options, values["data_path"] = {}, None  # the old dataset's options and file do not apply
    values.update({field: given[dest] for dest, field in _FIELDS.items() if dest in given})
    dataset = values["dataset"]
    if "num_train" in given:
        options["max_train" if dataset == "coco-cs231n" else "num_train"] = given["num_train"]
    if "encoder" in given and dataset != "coco-eecs498":
        raise ValueError(f"--encoder chooses the features of coco.pt: it needs --dataset coco-eecs498, not {dataset!r}")
    if dataset == "coco-eecs498":
        options["encoder"] = given.get("encoder", options.get("encoder", ENCODERS[0]))
    values["dataset_options"] = options
    values["grad_clip"] = values["grad_clip"] or None  # 0 turns clipping off
    try:
        values["device"] = require_device(values["device"])
    except RuntimeError as exc:
        if "device" in given:
            raise
        # the device came from the run's config.json, not from the user
        raise RuntimeError(f"{exc} (the run in {args.out} was trained with --device {values['device']}; "
                           "add --device cpu to resume it here)") from None
    return runs.RunConfig(**values)


def run(args):
    # held from the check of the folder to the last write: a second train or demo there is refused
    with hold_run_folder(args.out):
        _train(args)


def _train(args):
    from ..solver import NonFiniteLossError

    if not args.overwrite:
        refuse_to_replace(args.out, "train", resume=args.resume)
    config = config_from_args(args)
    try:
        model, solver, _ = runs.train(config, args.out, resume=args.resume, verbose=not args.quiet, impl=args.impl,
                                      set_learning_rate=args.resume and "lr" in vars(args))
    except NonFiniteLossError as exc:
        raise FloatingPointError(f"{exc.facts} {_divergence_advice(exc, config, args.out)}") from None
    print(f"trained {config.cell_type} on {config.dataset}: {solver.iteration} iterations, "
          f"final training loss {float(solver.loss_history[-1]):.3f}" if solver.loss_history else "no iterations run")
    print(f"run folder: {args.out} (model.npz, checkpoint.npz, history.json)")


def _divergence_advice(exc, config, out):
    """What the user can do from the command line: only a resume with a lower --lr keeps the run."""
    lower = f"--lr {config.learning_rate / 10:g}"
    clip = "a smaller --grad-clip" if config.grad_clip else "--grad-clip 5"
    if exc.checkpoint_path is not None:
        return (f"Resume with a lower learning rate: minicap train --out {out} --resume {lower}; "
                f"or start again with a lower --lr or {clip}, adding --overwrite.")
    return f"Train again with a lower learning rate ({lower}) or {clip}."
