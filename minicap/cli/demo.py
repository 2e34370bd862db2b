"""``minicap demo``: the main job. Generate the shapes world, train the attention
LSTM, evaluate it on the test split with beam search, and write a run folder
with metrics.json, figures and the checkpoint."""

from ..backend import require_device
from ..cells import get_cell
from ..runlock import hold_run_folder
from ._common import add_device, add_impl, add_threads, format_metrics, refuse_to_replace


def add_parser(sub):
    p = sub.add_parser("demo", help="train and evaluate on the embedded shapes world (the main job)",
                       description=__doc__)
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--cell", choices=("rnn", "lstm", "attention"), default="attention",
                   help="the recurrent cell (default: attention)")
    p.add_argument("--quick", action="store_true", help="a tiny run that only checks the pipeline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (without it, such a folder is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    add_impl(p)
    add_threads(p)
    add_device(p)
    p.set_defaults(run=run)


def run(args):
    from ..demo import run_demo

    # held from the check of the folder to the last write: a second demo or train there is refused
    with hold_run_folder(args.out):
        if not args.overwrite:  # before the minutes of data generation and training
            refuse_to_replace(args.out, "demo")
        device = require_device(args.device)
        metrics = run_demo(args.out, cell_type=args.cell, quick=args.quick, device=device,
                           seed=args.seed, verbose=not args.quiet, impl=args.impl)
    print(format_metrics(metrics))
    print(f"{metrics['images']} {metrics['split']} images, beam size {metrics['beam_size']}, "
          f"{metrics['seconds']:.0f} s in all")
    figures = "loss.png, captions.png, " + ("attention_*.png, " if get_cell(args.cell).attention else "") + "beam.png"
    print(f"run folder: {args.out} (metrics.json, {figures}, model.npz)")
