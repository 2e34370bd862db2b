"""``minicap train``: train a captioning model and write a run folder."""

from .. import runs
from ..backend import require_device
from ._common import add_device


def add_parser(sub):
    defaults = runs.RunConfig()
    p = sub.add_parser("train", help="train a captioning model", description=__doc__)
    p.add_argument("--dataset", choices=runs.DATASETS, default="shapes")
    p.add_argument("--data-path", help="coco.pt (coco-eecs498) or the unpacked coco_captioning folder (coco-cs231n)")
    p.add_argument("--num-train", type=int, help="training scenes (shapes) or captions (coco-cs231n max_train)")
    p.add_argument("--cell", choices=("rnn", "lstm", "attention"), default=defaults.cell_type)
    p.add_argument("--wordvec-dim", type=int, default=defaults.wordvec_dim)
    p.add_argument("--hidden-dim", type=int, default=defaults.hidden_dim)
    p.add_argument("--update-rule", choices=("sgd", "sgd_momentum", "rmsprop", "adam", "adamw"), default=defaults.update_rule)
    p.add_argument("--lr", type=float, default=defaults.learning_rate, help="learning rate")
    p.add_argument("--lr-decay", type=float, default=defaults.lr_decay, help="learning-rate factor per epoch")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--epochs", type=int, default=defaults.num_epochs)
    p.add_argument("--grad-clip", type=float, default=defaults.grad_clip, help="max global gradient norm (0: off)")
    p.add_argument("--average-decay", type=float, default=defaults.average_decay,
                   help="validate and keep a running average of the weights with this decay, e.g. 0.999 (default: off)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=defaults.dtype)
    p.add_argument("--seed", type=int, default=defaults.seed)
    add_device(p)
    p.add_argument("--out", default="runs/train", help="run folder (default: runs/train)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def config_from_args(args):
    options = {}
    if args.num_train is not None:
        options["max_train" if args.dataset == "coco-cs231n" else "num_train"] = args.num_train
    return runs.RunConfig(
        dataset=args.dataset, data_path=args.data_path, dataset_options=options, cell_type=args.cell,
        wordvec_dim=args.wordvec_dim, hidden_dim=args.hidden_dim, update_rule=args.update_rule,
        learning_rate=args.lr, lr_decay=args.lr_decay, batch_size=args.batch_size, num_epochs=args.epochs,
        grad_clip=args.grad_clip or None, seed=args.seed, dtype=args.dtype, device=require_device(args.device),
        average_decay=args.average_decay)


def run(args):
    config = config_from_args(args)
    model, solver, _ = runs.train(config, args.out, resume=args.resume, verbose=not args.quiet)
    print(f"trained {config.cell_type} on {config.dataset}: {solver.iteration} iterations, "
          f"final training loss {float(solver.loss_history[-1]):.3f}" if solver.loss_history else "no iterations run")
    print(f"run folder: {args.out} (model.npz, checkpoint.npz, history.json)")
