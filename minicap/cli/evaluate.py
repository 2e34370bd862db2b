"""``minicap evaluate``: caption a split with a trained model and score it."""

import pathlib

from .. import runs
from ..evaluation import evaluate_model
from ..backend import require_device
from ..runlock import hold_run_folder
from ._common import add_device, add_impl, add_threads, format_metrics, positive_int


def add_parser(sub):
    p = sub.add_parser("evaluate", help="score a trained model on a split", description=__doc__)
    p.add_argument("run_dir", metavar="RUN", help="a run folder written by minicap train or minicap demo")
    p.add_argument("--split", default="test", help="test, val or train (default: test, or val where there is no test)")
    p.add_argument("--beam-size", type=positive_int, default=3, help="1 for greedy decoding (default: 3)")
    p.add_argument("--max-images", type=positive_int, help="evaluate only the first N images (default: all)")
    add_impl(p)
    add_threads(p)
    add_device(p)
    p.set_defaults(run=run)


def run(args):
    with hold_run_folder(args.run_dir, create=False):  # it writes metrics-SPLIT.json there
        _evaluate(args)


def _evaluate(args):
    config = runs.read_config(args.run_dir)
    model = runs.load_model(args.run_dir).to(require_device(args.device))
    model.impl = args.impl
    data = runs.load_dataset(config.dataset, config.data_path, config.spatial, **config.dataset_options)
    split = runs.default_split(data, args.split)
    result = evaluate_model(model, data, split, beam_size=args.beam_size, max_images=args.max_images)
    path = runs.write_json(pathlib.Path(args.run_dir) / f"metrics-{split}.json", result.metrics)
    print(format_metrics(result.metrics))
    print(f"{result.metrics['images']} {split} images, beam size {args.beam_size}; written to {path}")
