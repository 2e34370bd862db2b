"""COCO captions in the two published course formats, mapped to minicap's dict layout.

- ``load_coco_data(base_dir)``: CS231n's ``coco_captioning`` folder (h5 files of
  captions and VGG-16 fc7 features, a vocabulary json, image URL lists). Needs
  h5py (``pip install 'minicap[coco]'``).
- ``load_coco_pt(path)``: EECS 498's ``coco.pt`` (images, one caption per image
  and a vocabulary, saved with torch), read by ``read_torch_file`` without
  PyTorch. Its features are made once by ``extract_coco_pt_features`` (the
  ``minicap features`` command) and cached beside the file.

Both return the layout of every minicap loader: ``{split}_captions`` int32
(M, T+1), ``{split}_image_idxs`` int32 (M,) into the image rows,
``{split}_features``, images (``{split}_images``) or their URLs
(``{split}_urls``), ``idx_to_word`` and ``word_to_idx``.
"""

import json
import os
import pathlib
import tempfile

import numpy as np

from minicap.argcheck import check_int
from minicap.data.errors import DataError
from minicap.data.torchfile import read_torch_file
from minicap.data.vocab import SPECIAL_TOKENS

CS231N_URL = "https://cs231n.stanford.edu/coco_captioning.zip"
EECS498_URL = "https://web.eecs.umich.edu/~justincj/teaching/eecs498/coco.pt"
_GET_CS231N = f"get it with `minicap data download coco-cs231n` (or unzip {CS231N_URL})"
_GET_EECS498 = f"get it with `minicap data download coco-eecs498` (or from {EECS498_URL})"


# ---------------------------------------------------------------- shared checks


def _check_vocab(idx_to_word, word_to_idx, where):
    """Both directions of a vocabulary, consistent and with the special tokens first."""
    if not (isinstance(idx_to_word, list) and all(isinstance(w, str) for w in idx_to_word)):
        raise DataError(f"{where}: the vocabulary's word list must be a list of strings")
    if not isinstance(word_to_idx, dict):
        raise DataError(f"{where}: the vocabulary's word-to-id map must be a dict")
    if list(idx_to_word[: len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
        raise DataError(f"{where}: the vocabulary must start with {list(SPECIAL_TOKENS)}, got {idx_to_word[:4]}")
    if any(word_to_idx.get(w) != i for i, w in enumerate(idx_to_word)) or len(word_to_idx) != len(idx_to_word):
        raise DataError(f"{where}: the two directions of the vocabulary disagree")


def _check_captions(captions, vocab_size, where):
    """Integer (M, T+1) caption ids inside the vocabulary, as int32."""
    if captions.ndim != 2 or captions.shape[1] < 2 or not np.issubdtype(captions.dtype, np.integer):
        raise DataError(f"{where} must be integer (M, T+1) caption ids, got {captions.dtype} {captions.shape}")
    if captions.size and (captions.min() < 0 or captions.max() >= vocab_size):
        raise DataError(f"{where} holds ids outside the vocabulary [0, {vocab_size}): from {captions.min()} to {captions.max()}")
    return captions.astype(np.int32, copy=False)


# ---------------------------------------------------------------- CS231n format


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading the CS231n COCO files needs h5py: pip install 'minicap[coco]'") from None
    return h5py


def _read_h5(path, keys):
    """{key: array} for ``keys`` in one h5 file, with errors that name the file."""
    h5py = _h5py()
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {_GET_CS231N}")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in keys if k not in f]
            if missing:
                raise DataError(f"{path} lacks the datasets {missing} (it has {sorted(f)}); is it the right file?")
            for k in keys:
                _check_h5_size(path, k, f[k], h5py)
            return {k: np.asarray(f[k]) for k in keys}
    except OSError as err:
        raise DataError(f"{path} is not a readable h5 file ({err}); download it again") from None


# Compressed h5 datasets may expand by at most this factor: caption ids and features compress
# a few times at most, while a dataset of one repeated value (a bomb) compresses a thousandfold.
_MAX_H5_EXPANSION = 64


def _check_h5_size(path, key, dataset, h5py):
    """Refuse a dataset whose declared size the file cannot back, before reading it.

    An h5 dataset declares its shape; storage that was never written reads as the fill
    value, and compressed chunks can hold any amount of one repeated value. Either way a
    file of kilobytes can declare gigabytes, which ``np.asarray`` would allocate.
    """
    if not isinstance(dataset, h5py.Dataset):
        raise DataError(f"{path}[{key}] is a {type(dataset).__name__}, not a dataset; is it the right file?")
    plist = dataset.id.get_create_plist()
    # external storage and virtual datasets read other files (any file this user can read,
    # /dev/zero for ever): the published files keep their data inside
    if plist.get_external_count() > 0 or plist.get_layout() == h5py.h5d.VIRTUAL:
        raise DataError(f"{path}[{key}] keeps its data in other files (external or virtual storage), which the "
                        f"CS231n files never do; it is refused: {_GET_CS231N}")
    declared = dataset.size * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    compressed = plist.get_nfilters() > 0
    if declared > stored * (_MAX_H5_EXPANSION if compressed else 1):
        how = f"more than {_MAX_H5_EXPANSION} times the {stored} compressed bytes" if compressed else \
            f"but only {stored} bytes are stored (the rest would be fill values)"
        raise DataError(f"{path}[{key}] declares {dataset.dtype} {dataset.shape} ({declared} bytes), {how}; "
                        f"the file is damaged or not the CS231n one: {_GET_CS231N}")


def _read_lines(path):
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {_GET_CS231N}")
    try:
        with open(path, encoding="utf-8") as f:
            return np.asarray([line.strip() for line in f])
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err}); it is damaged: download it again") from None


def load_coco_data(base_dir, max_train=None, pca_features=True, spatial=False, seed=0):
    """COCO captions and VGG-16 fc7 features in CS231n's format.

    base_dir: the unpacked ``coco_captioning`` folder (``minicap data download
    coco-cs231n`` puts it in minicap's cache). pca_features: the 512-wide PCA
    features (``*_vgg16_fc7_pca.h5``) or the 4096-wide originals. max_train:
    keep this many training captions, drawn *without* replacement by a
    ``default_rng(seed)`` (the course drew them with replacement), in file
    order; the features of all images stay, as the image indices point there.

    Returns ``train_captions`` (400135, 17) int32, ``train_image_idxs``,
    ``train_features`` (82783, D) float32, ``train_urls`` (image URLs, many
    dead today), the same for ``val_``, ``idx_to_word`` and ``word_to_idx``.
    The features are global vectors: ``spatial=True`` is an error.
    """
    if spatial:
        raise ValueError(
            "the CS231n COCO features are global fc7 vectors; there are no spatial maps for the attention model. "
            "Use coco-eecs498 (coco.pt with `minicap features`) or the shapes world for attention"
        )
    max_train = check_int("max_train", max_train, low=1, none_ok=True)
    base = pathlib.Path(base_dir)
    if not base.is_dir():
        raise FileNotFoundError(f"{base} is not a folder; {_GET_CS231N}")

    vocab_path = base / "coco2014_vocab.json"
    if not vocab_path.is_file():
        raise FileNotFoundError(f"{vocab_path} is missing; {_GET_CS231N}")
    try:
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        idx_to_word, word_to_idx = vocab["idx_to_word"], vocab["word_to_idx"]
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        raise DataError(f"{vocab_path} is not the vocabulary json ({type(err).__name__}: {err}); download it again") from None
    _check_vocab(idx_to_word, word_to_idx, vocab_path)

    captions_path = base / "coco2014_captions.h5"
    keys = [f"{s}_{k}" for s in ("train", "val") for k in ("captions", "image_idxs")]
    data = _read_h5(captions_path, keys)
    suffix = "_pca" if pca_features else ""
    for split in ("train", "val"):
        where = f"{captions_path}[{split}_captions]"
        data[f"{split}_captions"] = _check_captions(data[f"{split}_captions"], len(idx_to_word), where)
        features_path = base / f"{split}2014_vgg16_fc7{suffix}.h5"
        if not pca_features and not features_path.is_file():
            # the download counts a folder without these as complete (they are optional)
            raise FileNotFoundError(
                f"{features_path} is missing: the 4096-wide features are read only with pca_features=False; "
                f"use the default PCA features, or delete {base} and run `minicap data download coco-cs231n` again")
        features = _read_h5(features_path, ["features"])["features"]
        if features.ndim != 2 or not np.issubdtype(features.dtype, np.floating):
            raise DataError(f"{features_path}[features] must be float (N, D), got {features.dtype} {features.shape}")
        data[f"{split}_features"] = features.astype(np.float32, copy=False)
        data[f"{split}_urls"] = _read_lines(base / f"{split}2014_urls.txt")
        idxs = data[f"{split}_image_idxs"]
        if idxs.shape != (len(data[f"{split}_captions"]),) or not np.issubdtype(idxs.dtype, np.integer):
            raise DataError(f"{captions_path}[{split}_image_idxs] must hold one integer per caption, got {idxs.shape}")
        if idxs.size and (idxs.min() < 0 or idxs.max() >= len(features)):
            raise DataError(f"{captions_path}[{split}_image_idxs] points outside the {len(features)} rows of {features_path}")
        if len(data[f"{split}_urls"]) != len(features):
            raise DataError(f"{base / f'{split}2014_urls.txt'} has {len(data[f'{split}_urls'])} lines for {len(features)} images")
        data[f"{split}_image_idxs"] = idxs.astype(np.int32, copy=False)

    if max_train is not None and max_train < len(data["train_captions"]):
        keep = np.sort(np.random.default_rng(seed).choice(len(data["train_captions"]), max_train, replace=False))
        data["train_captions"] = data["train_captions"][keep]
        data["train_image_idxs"] = data["train_image_idxs"][keep]
    data["idx_to_word"], data["word_to_idx"] = idx_to_word, word_to_idx
    return data


# ---------------------------------------------------------------- EECS 498 format (coco.pt)


def features_path(path, encoder):
    """Where the ``encoder`` features of the ``coco.pt`` at ``path`` are cached: ``coco.pt.<encoder>.features.npz``."""
    path = pathlib.Path(path)
    return path.with_name(f"{path.name}.{encoder}.features.npz")


class CocoPtData(dict):
    """The dict ``load_coco_pt`` returns; asking for features it lacks says how to make them."""

    missing_features = ""

    def __missing__(self, key):
        if isinstance(key, str) and key.endswith("_features") and self.missing_features:
            raise DataError(self.missing_features)
        raise KeyError(key)


def _read_coco_pt(path):
    """The contents of coco.pt, checked: {split: (images, captions)}, idx_to_word, word_to_idx."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not the coco.pt file; pass the file itself ({_GET_EECS498})")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {_GET_EECS498}")
    raw = read_torch_file(path)
    keys = ("train_images", "train_captions", "val_images", "val_captions", "vocab")
    if not isinstance(raw, dict) or any(k not in raw for k in keys):
        # by repr: a dict with str and int keys cannot be sorted by the keys themselves
        found = sorted(raw, key=repr) if isinstance(raw, dict) else type(raw).__name__
        raise DataError(f"{path} is not EECS 498's coco.pt: expected the keys {list(keys)}, found {found}; {_GET_EECS498}")
    vocab = raw["vocab"]
    if not isinstance(vocab, dict) or "idx_to_token" not in vocab or "token_to_idx" not in vocab:
        raise DataError(f"{path}: 'vocab' must be a dict with idx_to_token and token_to_idx; {_GET_EECS498}")
    idx_to_word, word_to_idx = vocab["idx_to_token"], vocab["token_to_idx"]
    if not isinstance(idx_to_word, (list, tuple)) or not isinstance(word_to_idx, dict):
        raise DataError(
            f"{path}: the vocabulary must hold a list idx_to_token and a dict token_to_idx, got "
            f"{type(idx_to_word).__name__} and {type(word_to_idx).__name__}; {_GET_EECS498}"
        )
    idx_to_word, word_to_idx = list(idx_to_word), dict(word_to_idx)
    _check_vocab(idx_to_word, word_to_idx, path)
    splits = {}
    _check_fits_file(path, {name: raw[name] for name in keys[:4]})
    for split in ("train", "val"):
        images = raw[f"{split}_images"]
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3:
            got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
            raise DataError(f"{path}: {split}_images must be uint8 (N, 3, H, W), got {got}; {_GET_EECS498}")
        captions = raw[f"{split}_captions"]
        if not isinstance(captions, np.ndarray):
            raise DataError(f"{path}: {split}_captions must be a tensor, got {type(captions).__name__}")
        captions = _check_captions(captions, len(idx_to_word), f"{path}: {split}_captions")
        if len(captions) != len(images):
            raise DataError(f"{path}: {len(captions)} {split} captions for {len(images)} images; expected one per image")
        splits[split] = (np.ascontiguousarray(images), captions)
    return splits, idx_to_word, word_to_idx


def _check_fits_file(path, tensors):
    """Refuse tensors that show more bytes than the file holds.

    The torch reader keeps tensors as views of their storage, so a tensor saved with
    stride 0 (torch's ``expand``) costs nothing until it is copied; coco.pt stores every
    image and caption, and copying such a view (to make it contiguous, or int32) could
    cost gigabytes from a file of kilobytes.
    """
    size = path.stat().st_size
    shown = {name: t.nbytes for name, t in tensors.items() if isinstance(t, np.ndarray)}
    if sum(shown.values()) > size:
        name = max(shown, key=shown.get)
        t = tensors[name]
        raise DataError(
            f"{path}: its tensors show {sum(shown.values())} bytes, more than the {size} bytes of the file "
            f"({name} {t.shape} has strides {t.strides}: it repeats the same bytes); coco.pt stores every "
            f"image and caption, so this is not the EECS 498 file; {_GET_EECS498}")


def check_npz_bounded(path):
    """ValueError (a CheckpointError) for an .npz that would take more memory than the file holds.

    minicap writes its feature and weight .npz files uncompressed; see
    ``minicap.checkpoint.check_npz_sizes``. A missing or damaged file is left to its reader.
    """
    from minicap.checkpoint import CheckpointError, check_npz_sizes

    path = pathlib.Path(path)
    if path.suffix != ".npz" or not path.is_file():
        return
    try:
        check_npz_sizes(path)
    except CheckpointError:
        raise
    except Exception:  # not a readable zip: the reader that follows says what is wrong with it
        return


def _load_features(path, encoder, splits):
    """{split: (spatial, pooled)} from the cache file of ``encoder``, checked against the images."""
    from minicap.encoders.extract import load_features

    cache = features_path(path, encoder)
    try:
        check_npz_bounded(cache)
        arrays = load_features(cache, encoder)
    except ValueError as err:
        raise DataError(f"{err}. To extract them, run `minicap features {path} --encoder {encoder}`") from None
    out = {}
    for split, (images, _) in splits.items():
        spatial, pooled = arrays.get(f"{split}_spatial"), arrays.get(f"{split}_pooled")
        if (
            spatial is None or pooled is None or spatial.ndim != 4 or pooled.ndim != 2
            or len(spatial) != len(images) or pooled.shape != spatial.shape[:2]
            or not np.issubdtype(spatial.dtype, np.floating) or not np.issubdtype(pooled.dtype, np.floating)
        ):
            got = "missing" if spatial is None or pooled is None else f"{spatial.dtype} {spatial.shape}, {pooled.dtype} {pooled.shape}"
            raise DataError(
                f"{cache} does not hold float {split}_spatial (N, D, Hs, Ws) and {split}_pooled (N, D) for the "
                f"{len(images)} {split} images of {path} (got {got}); "
                f"delete it and run `minicap features {path} --encoder {encoder}`"
            )
        out[split] = (spatial.astype(np.float32, copy=False), pooled.astype(np.float32, copy=False))
    return out


def load_coco_pt(path, spatial=False, encoder="mobilenet_v2", num_train=None):
    """EECS 498's ``coco.pt`` in minicap's layout, read without PyTorch.

    Returns ``train_images`` (N, 3, 112, 112) uint8, ``train_captions`` (N, 17)
    int32, ``train_image_idxs`` = arange(N) (one caption per image), the same
    for ``val_``, ``idx_to_word`` and ``word_to_idx``. num_train keeps the
    first ``num_train`` training images.

    Features: if ``features_path(path, encoder)`` exists (made once by
    ``minicap features coco.pt --encoder mobilenet_v2``, or
    ``extract_coco_pt_features``), ``train_features`` / ``val_features`` are
    its pooled (N, D) vectors, or with ``spatial=True`` its (N, D, Hs, Ws)
    maps. Without that file the images are returned without features, and
    asking for ``data["train_features"]`` raises a DataError saying how to
    make them.
    """
    num_train = check_int("num_train", num_train, low=1, none_ok=True)
    splits, idx_to_word, word_to_idx = _read_coco_pt(path)
    data = CocoPtData(idx_to_word=idx_to_word, word_to_idx=word_to_idx)
    features = None
    if features_path(path, encoder).is_file():
        features = _load_features(path, encoder, splits)
    else:
        data.missing_features = (
            f"no {encoder} features for {path} yet: make them once with `minicap features {path} --encoder {encoder}` "
            f"(they are cached in {features_path(path, encoder)}), then load the data again"
        )
    for split, (images, captions) in splits.items():
        n = num_train if split == "train" and num_train is not None else len(images)
        data[f"{split}_images"] = images[:n]
        data[f"{split}_captions"] = captions[:n]
        data[f"{split}_image_idxs"] = np.arange(min(n, len(images)), dtype=np.int32)
        if features is not None:
            data[f"{split}_features"] = features[split][0 if spatial else 1][:n]
    return data


def _check_writable(path, encoder):
    """Raise a clear OSError if the features of ``path`` cannot be written beside it."""
    path = pathlib.Path(path)
    target = features_path(path, encoder)
    try:
        fd, probe = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".probe")
    except OSError as err:
        raise type(err)(
            f"cannot write {target.name} in {target.parent} ({err.strerror or err}): the features are cached beside "
            f"{path.name}, so its folder must be writable. Copy {path} to a folder you can write to and run "
            f"`minicap features` on the copy (and load the copy)"
        ) from None
    os.close(fd)
    os.unlink(probe)


def extract_coco_pt_features(path, encoder="mobilenet_v2", weights=None, batch_size=64, device="cpu", progress=True):
    """Run a pretrained CNN over coco.pt's images once and cache the features beside the file.

    Writes ``features_path(path, encoder)``: ``train_spatial`` / ``val_spatial``
    (N, D, Hs, Ws) float32 maps and ``train_pooled`` / ``val_pooled`` (N, D),
    their mean over locations (D = 1280 and 4 x 4 for mobilenet_v2 on 112 x 112
    images). weights: see ``minicap.encoders.load_encoder``. Returns the path.
    """
    from minicap.encoders import extract_features, load_encoder, save_features

    splits, _, _ = _read_coco_pt(path)
    # Before the CNN runs (minutes): a read-only dataset folder must not cost that work.
    _check_writable(path, encoder)
    if isinstance(weights, (str, os.PathLike)):
        check_npz_bounded(weights)
    _check_batch_fits(splits, batch_size)
    model = load_encoder(encoder, weights)
    arrays = {}
    for split, (images, _) in splits.items():
        arrays[f"{split}_spatial"], arrays[f"{split}_pooled"] = extract_features(
            images, model, batch_size=batch_size, device=device, progress=progress
        )
    return save_features(features_path(path, encoder), arrays, encoder, weights_sha256=_weights_sha256(encoder, weights))


def _check_batch_fits(splits, batch_size):
    """Refuse a batch whose activations cannot fit in memory, before the CNN runs.

    The lower bound counted per image: the float32 input and the stem's output, 32
    channels at half the resolution in both encoders (the widest maps come later).
    """
    from minicap.memcheck import check_size

    largest = max(len(images) for images, _ in splits.values())
    _, channels, height, width = splits["train"][0].shape
    per_image = 4 * (channels * height * width + 32 * (height // 2) * (width // 2))
    check_size("batch_size", batch_size, lambda b: min(b, largest) * per_image, "feature extraction")


def _weights_sha256(encoder, weights):
    """The SHA-256 of the weights file the encoder was loaded from; None for weights given as arrays.

    Kept in the features file, so that ``minicap caption`` can refuse to featurize new
    images with a different network than the one that made the training features.
    """
    from minicap.encoders.weights import checkpoint_path, file_sha256

    # weights=None: the published checkpoint, which load_encoder fetched into the cache
    source = checkpoint_path(encoder) if weights is None else weights
    if isinstance(source, (str, os.PathLike)) and pathlib.Path(source).is_file():
        return file_sha256(source)
    return None
