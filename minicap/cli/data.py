"""``minicap data``: make the shapes world, download COCO, draw a minibatch."""

import pathlib

from .. import runs
from ._common import MAX_FIGURE_IMAGES, figure_images, positive_int


def add_parser(sub):
    p = sub.add_parser("data", help="prepare datasets", description=__doc__)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    d = actions.add_parser("download", help="download a COCO dataset (resumable, checksummed)")
    d.add_argument("name", choices=("coco-cs231n", "coco-eecs498"))
    d.add_argument("--dest", help="folder to put it in (default: the minicap cache)")
    d.set_defaults(run=run_download)
    s = actions.add_parser("shapes", help="generate and cache the embedded shapes world")
    s.add_argument("--num-train", type=positive_int)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(run=run_shapes)
    v = actions.add_parser("show", help="save a grid of images with their captions as a PNG")
    v.add_argument("dataset", choices=runs.DATASETS)
    v.add_argument("--data-path")
    v.add_argument("--split", default="train")
    v.add_argument("--batch-size", type=figure_images, default=8,
                   help=f"images in the grid, at most {MAX_FIGURE_IMAGES} (default 8)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--out", default="minibatch.png")
    v.set_defaults(run=run_show)


def run_download(args):
    from ..data.download import download_dataset

    path = download_dataset(args.name, args.dest)
    print(f"{args.name}: {path}")


def run_shapes(args):
    import time

    options = {"seed": args.seed}
    if args.num_train is not None:
        options["num_train"] = args.num_train
    start = time.perf_counter()
    data = runs.load_dataset("shapes", spatial=True, **options)
    seconds = time.perf_counter() - start
    for split in ("train", "val", "test"):
        print(f"{split:5s}: {len(data[f'{split}_features'])} scenes, {len(data[f'{split}_captions'])} captions, "
              f"features {tuple(data[f'{split}_features'].shape[1:])}")
    print(f"vocabulary: {len(data['idx_to_word'])} words; ready in {seconds:.1f} s")


def run_show(args):
    import numpy as np

    from ..data.minibatch import plot_minibatch

    if pathlib.Path(args.out).is_dir():
        raise IsADirectoryError(f"--out {args.out} is a folder; give the PNG file to write, "
                                f"for example {pathlib.Path(args.out) / 'minibatch.png'}")
    if args.dataset == "coco-eecs498" and args.data_path is not None:
        from ..data import load_coco_pt

        # The picture needs only images and captions: no features, so no `minicap features` first.
        data = load_coco_pt(args.data_path)
    else:
        data = runs.load_dataset(args.dataset, args.data_path, spatial=False)
    path = plot_minibatch(data, args.out, batch_size=args.batch_size, split=args.split,
                          rng=np.random.default_rng(args.seed))
    print(f"wrote {path}")
