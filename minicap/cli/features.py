"""``minicap features``: run a pretrained CNN over coco.pt's images, once."""

from ..backend import require_device
from ._common import add_device, add_threads, positive_int


def add_parser(sub):
    p = sub.add_parser("features", help="extract CNN features for coco.pt", description=__doc__)
    p.add_argument("path", help="coco.pt (the EECS 498 file)")
    p.add_argument("--encoder", choices=("mobilenet_v2", "regnet_x_400mf"), default="mobilenet_v2")
    p.add_argument("--weights", help="the torchvision .pth checkpoint (default: download into the cache)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default: 64)")
    add_device(p)
    add_threads(p)
    p.set_defaults(run=run)


def run(args):
    from ..data.coco import extract_coco_pt_features

    path = extract_coco_pt_features(args.path, encoder=args.encoder, weights=args.weights,
                                    batch_size=args.batch_size, device=require_device(args.device))
    print(f"features written to {path}; load them with minicap.data.load_coco_pt({args.path!r}, spatial=True)")
