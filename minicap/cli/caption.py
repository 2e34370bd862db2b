"""``minicap caption``: caption your own JPEG/PNG images with a trained run."""

import pathlib

from .. import runs
from ..data.vocab import decode_captions
from ..backend import require_device
from ..evaluation import check_decoding_fits
from ._common import MAX_CAPTION_WORDS, add_device, add_impl, add_threads, caption_length, positive_int


def add_parser(sub):
    p = sub.add_parser("caption", help="caption image files with a trained model", description=__doc__)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG or PNG files")
    p.add_argument("--checkpoint", required=True, metavar="RUN", help="a run folder (from minicap train or demo)")
    p.add_argument("--beam-size", type=positive_int, default=3, help="1 for greedy decoding (default: 3)")
    p.add_argument("--max-length", type=caption_length, default=20,
                   help=f"most words per caption, at most {MAX_CAPTION_WORDS} (default: 20)")
    p.add_argument("--attention-out", metavar="DIR",
                   help="write each word's attention overlay here, as STEM_attention.png "
                        "(K_STEM_attention.png, K the image's position, when two images share a file name)")
    p.add_argument("--weights", metavar="PATH",
                   help="the encoder checkpoint that `minicap features --weights` used for the run's coco.pt "
                        "features (coco-eecs498 runs; default: torchvision's published one, downloaded into the cache)")
    add_impl(p)
    add_threads(p)
    add_device(p)
    p.set_defaults(run=run)


def run(args):
    import numpy as np

    from ..backend import to_device, to_numpy

    if args.attention_out and pathlib.Path(args.attention_out).exists() and not pathlib.Path(args.attention_out).is_dir():
        raise NotADirectoryError(f"--attention-out {args.attention_out} is a file; it takes a folder for the overlays")
    config = runs.read_config(args.checkpoint)
    model = runs.load_model(args.checkpoint).to(require_device(args.device))
    model.impl = args.impl
    if args.attention_out and not model.cell.attention:  # before any work or output
        raise ValueError(f"--attention-out needs an attention model, but the run in {args.checkpoint} has "
                         f"cell_type {model.cell_type!r}; leave out --attention-out, or use a run trained "
                         "with --cell attention")
    runs.check_weights(config, args.weights)  # also before any work
    check_decoding_fits(model, len(args.images), args.beam_size, args.max_length)
    images = runs.load_images(args.images, config)
    features = to_device(runs.featurize_images(config, images, weights=args.weights), model.device)
    ids = model.beam_search(features, beam_size=args.beam_size, max_length=args.max_length)
    texts = decode_captions(to_numpy(ids), model.idx_to_word)
    for path, text in zip(args.images, texts):
        print(f"{path}: {text}")
    if args.attention_out:
        from ..figures import generated_words, plot_attention

        attention = to_numpy(model.attention_for(features, ids))
        out = pathlib.Path(args.attention_out)
        for k, (name, text) in enumerate(zip(overlay_names(args.images), texts)):
            plot_attention(images[k], generated_words(text, len(attention[k])), np.asarray(attention[k]), out / name)
        print(f"attention overlays written to {out}")


def overlay_names(paths):
    """STEM_attention.png per image; with the image's index in front of every name when
    two files share a stem (a/img.png and b/img.png), so no overlay replaces another."""
    stems = [pathlib.Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return [f"{stem}_attention.png" for stem in stems]
    return [f"{k}_{stem}_attention.png" for k, stem in enumerate(stems)]
