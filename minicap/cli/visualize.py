"""``minicap visualize``: redraw a run's figures (loss curves, captions,
attention maps, beam search) from its folder."""

import json
import pathlib

import numpy as np

from .. import runs
from ..evaluation import evaluate_model
from ..backend import require_device
from ..runlock import hold_run_folder
from ._common import MAX_FIGURE_IMAGES, add_device, figure_images


def add_parser(sub):
    p = sub.add_parser("visualize", help="draw a run's figures", description=__doc__)
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--split", default="test", help="test, val or train (default: test, or val where there is no test)")
    p.add_argument("--images", type=figure_images, default=4,
                   help=f"how many images to caption and draw, at most {MAX_FIGURE_IMAGES} (default 4)")
    add_device(p)
    p.set_defaults(run=run)


def run(args):
    with hold_run_folder(args.run_dir, create=False):  # it redraws the figures there
        _visualize(args)


def _visualize(args):
    from ..demo import draw_figures

    run_dir = pathlib.Path(args.run_dir)
    config = runs.read_config(run_dir)
    model = runs.load_model(run_dir)  # first: it explains a run that did not finish
    history_path = run_dir / "history.json"
    if not history_path.is_file():
        raise FileNotFoundError(f"{history_path} is missing: has training in {run_dir} finished?")
    try:
        history = json.loads(history_path.read_text(encoding="utf-8"))
        solver_like = _History(history)
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        raise ValueError(f"{history_path} is damaged ({type(err).__name__}: {err}); training writes it when it "
                         "finishes: restore the file, or train the run again") from None
    model = model.to(require_device(args.device))
    data = runs.load_dataset(config.dataset, config.data_path, config.spatial, **config.dataset_options)
    split = runs.default_split(data, args.split)
    result = evaluate_model(model, data, split, beam_size=3, max_images=args.images)
    if f"{split}_images" not in data:  # CS231n's COCO has image URLs, not pixels
        from ..figures import plot_loss_curves

        plot_loss_curves(solver_like.loss_history, run_dir / "loss.png", solver_like.val_loss_history,
                         solver_like.iterations_per_epoch)
        print(f"{config.dataset} has no images in the data: only {run_dir / 'loss.png'} was drawn")
        return
    draw_figures(run_dir, model, solver_like, data, result, args.images, split=split)
    print(f"figures of the {split} split written to {run_dir}")


class _History:
    """The three solver attributes the figures read, from history.json."""

    def __init__(self, history):
        self.loss_history = np.asarray(history["loss_history"], dtype=float)
        self.val_loss_history = np.asarray(history["val_loss_history"], dtype=float)
        self.iterations_per_epoch = history["iterations_per_epoch"]
        per_epoch = self.iterations_per_epoch
        if not (isinstance(per_epoch, int) and not isinstance(per_epoch, bool) and per_epoch >= 1):
            raise ValueError(f"iterations_per_epoch is {per_epoch!r:.40}, not a whole number >= 1")
        if self.loss_history.ndim != 1 or self.val_loss_history.ndim != 1:
            raise ValueError("loss_history and val_loss_history must be lists of numbers")
