"""``load_shapes``: the embedded shapes world as a captioning dataset.

Scenes come from ``minicap.shapes.scenes``, their reference captions from
``minicap.shapes.grammar`` and their features from ``minicap.data.features``.
Everything, both feature layouts included, is built once and cached on disk
under ``minicap.data.cache.cache_dir()``, keyed by every setting; a later
load memory-maps the cached arrays and takes milliseconds.
"""

import logging
import time

import numpy as np

from minicap.argcheck import check_int
from minicap.data import features as feat
from minicap.data.cache import load_or_build
from minicap.data.vocab import build_vocab, encode_captions
from minicap.shapes import grammar
from minicap.shapes.scenes import OBJECT_FIELDS, generate_scenes

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
FORMAT_VERSION = 2  # bump when generation, captions or features change


def shapes_vocabulary():
    """(word_to_idx, idx_to_word) of the shapes grammar: the 4 special tokens, then its words.

    Fixed by the grammar, not counted from data, so every dataset size and
    seed shares one vocabulary and a model trained on one reads another.
    """
    return build_vocab([" ".join(grammar.vocabulary_words())])


def _build(sizes, seed, captions_per_image):
    """The whole world's arrays (what the cache stores)."""
    return _generate(sizes, seed, captions_per_image)


def _generate(sizes, seed, captions_per_image, quiet=False):
    word_to_idx, idx_to_word = shapes_vocabulary()
    arrays = {"idx_to_word": np.array(idx_to_word)}
    appearance = {}
    for stream, split in enumerate(SPLITS):
        start = time.perf_counter()
        images, objects = generate_scenes(sizes[split], seed, stream)
        refs = grammar.references_for_scenes(objects, captions_per_image, seed=[seed, stream])
        flat = [caption for scene in refs for caption in scene]
        arrays[f"{split}_images"] = images
        arrays[f"{split}_objects"] = objects
        arrays[f"{split}_captions"] = encode_captions(flat, word_to_idx, grammar.MAX_WORDS)
        arrays[f"{split}_image_idxs"] = np.repeat(np.arange(len(images), dtype=np.int32), captions_per_image)
        appearance[split] = feat.appearance_features(images)
        if not quiet:
            log.info("shapes world: %d %s scenes in %.1f s", len(images), split, time.perf_counter() - start)
    for layout, make in (("spatial", feat.spatial_features), ("global", feat.global_features)):
        features = {split: make(appearance[split]) for split in SPLITS}
        mean, std = feat.fit_standardizer(features["train"])
        arrays[f"{layout}_mean"], arrays[f"{layout}_std"] = mean, std
        for split in SPLITS:
            arrays[f"{split}_{layout}"] = feat.standardize(features[split], mean, std)
    return arrays


def load_shapes(num_train=4000, num_val=500, num_test=500, seed=0, spatial=False, captions_per_image=5,
                cache=True):
    """The shapes world in the common dataset layout.

    Returns a dict with, for each split in train, val, test:

    - ``{split}_captions`` int32 (M, T+1): ``<START>`` words ``<END>``, ``<NULL>``
      padded, T = ``minicap.shapes.grammar.MAX_WORDS`` + 1;
      ``captions_per_image`` consecutive rows per scene;
    - ``{split}_image_idxs`` int32 (M,): the scene (row of images/features) of each caption;
    - ``{split}_features`` float32, standardised with training-split statistics:
      (N, D, 4, 4) when ``spatial`` (D = 172 appearance + 8 position channels)
      else (N, 172), the appearance channels averaged over the grid;
    - ``{split}_images`` uint8 (N, 3, 112, 112);
    - ``{split}_objects`` int32 (N, 3, 10): the scene records, fields in
      ``object_fields`` (see ``minicap.shapes.scenes``);

    and ``idx_to_word`` (list), ``word_to_idx`` (dict), ``feature_mean`` and
    ``feature_std`` (the standardisation), ``object_fields`` (tuple).

    Deterministic for ``seed``; the splits are independent draws. The first
    call builds and caches the data (``cache=False`` skips the disk), later
    calls with the same settings load it.
    """
    sizes = {"train": check_int("num_train", num_train, low=1), "val": check_int("num_val", num_val, low=0),
             "test": check_int("num_test", num_test, low=0)}
    seed = check_int("seed", seed, low=0)
    captions_per_image = check_int("captions_per_image", captions_per_image, low=1)
    settings = dict(sizes, seed=seed, captions_per_image=captions_per_image)
    one = _check_memory(sizes, captions_per_image)

    def build():
        return _build(sizes, seed, captions_per_image)

    if cache:
        arrays, path, built = load_or_build("shapes", settings, build, FORMAT_VERSION,
                                            check=lambda cached: _check_cached(cached, one, sizes, captions_per_image))
        log.info("shapes world %s %s", "built and cached in" if built else "loaded from", path)
    else:
        arrays = build()
    return _assemble(arrays, spatial)


def _check_memory(sizes, captions_per_image):
    """Refuse a world that cannot fit in memory before generating it (NotEnoughMemoryError).

    One scene's arrays are measured by building one (milliseconds): its image, records,
    captions and both feature layouts; the world needs at least that per scene.
    """
    from minicap.memcheck import check_size

    one = _generate({"train": 1, "val": 0, "test": 0}, 0, captions_per_image, quiet=True)
    per_scene = sum(a.nbytes for key, a in one.items() if key.startswith("train_"))
    others = sizes["val"] + sizes["test"]
    check_size("num_train", sizes["train"], lambda n: (n + others) * per_scene, "the shapes world")
    return one


def _check_cached(cached, one, sizes, captions_per_image):
    """ValueError unless a cache entry holds what the settings make (a hand-edited or damaged entry).

    ``one`` is a one-scene world: every array must have its dtype and its shape after the
    first axis, with one row per scene (or per caption); captions must be ids of the
    vocabulary and image indices rows of their split.
    """
    for key, ref in one.items():
        split = key.split("_")[0]
        if split in SPLITS:
            per_scene = len(one[f"train{key[len(split):]}"])
            shape = (sizes[split] * per_scene, *ref.shape[1:])
        else:
            shape = ref.shape
        got = cached.get(key)
        if got is None or got.dtype != ref.dtype or got.shape != shape:
            found = "nothing" if got is None else f"{got.dtype} {got.shape}"
            raise ValueError(f"{key} is {found}, expected {ref.dtype} {shape}")
    if cached["idx_to_word"].tolist() != one["idx_to_word"].tolist():
        raise ValueError("its vocabulary is not the shapes grammar's")
    for split in SPLITS:
        captions, idxs = cached[f"{split}_captions"], cached[f"{split}_image_idxs"]
        if captions.size and (captions.min() < 0 or captions.max() >= len(one["idx_to_word"])):
            raise ValueError(f"{split}_captions holds ids outside the vocabulary")
        if idxs.size and (idxs.min() < 0 or idxs.max() >= sizes[split]):
            raise ValueError(f"{split}_image_idxs points outside the {sizes[split]} {split} scenes")


def _assemble(arrays, spatial):
    """The returned dict, picking one feature layout from the cached arrays."""
    layout = "spatial" if spatial else "global"
    idx_to_word = arrays["idx_to_word"].tolist()
    data = {"idx_to_word": idx_to_word, "word_to_idx": {w: i for i, w in enumerate(idx_to_word)},
            "object_fields": OBJECT_FIELDS,
            "feature_mean": arrays[f"{layout}_mean"], "feature_std": arrays[f"{layout}_std"]}
    for split in SPLITS:
        data[f"{split}_features"] = arrays[f"{split}_{layout}"]
        for key in ("captions", "image_idxs", "images", "objects"):
            data[f"{split}_{key}"] = arrays[f"{split}_{key}"]
    return data
