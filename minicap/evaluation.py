"""Evaluating a trained model on a split: captions, COCO metrics, and for the
shapes world the truth and grounding scores.

``evaluate_model`` decodes every image of a split (greedy or beam search, in
batches, on the model's device), scores the captions against the split's
references with ``minicap.metrics.evaluate``, and, when the data carries scene
records (the shapes world), adds:

- ``truth``: the fraction of captions that parse with the shapes grammar and
  are entirely true of their scene;
- ``grounding``: the pointing game, the fraction of shape words naming exactly
  one object whose attention map peaks inside that object's box (attention
  cell only).
"""

import math
from dataclasses import dataclass, field

import numpy as np

from . import threads
from .backend import to_device, to_numpy
from .data.vocab import decode_captions
from .metrics import evaluate


@dataclass
class Evaluation:
    """What ``evaluate_model`` found. ``metrics`` is JSON-ready."""

    metrics: dict
    captions: list            # one generated string per image
    caption_ids: np.ndarray   # (N, max_length) ids, the ``sample`` layout
    references: dict          # image index -> list of reference strings
    attention: np.ndarray = field(default=None)  # (N, max_length, Hs, Ws) or None


def references_by_image(data, split):
    """{image index: [reference strings]} for every image of ``split``."""
    captions = decode_captions(data[f"{split}_captions"], data["idx_to_word"])
    refs = {}
    for image, text in zip(np.asarray(data[f"{split}_image_idxs"]).tolist(), captions):
        refs.setdefault(int(image), []).append(text)
    return refs


def generate(model, features, beam_size=1, max_length=20, batch_size=256):
    """Decode captions for host ``features`` in batches on the model's device.

    Returns host arrays: caption ids (N, max_length) and, for the attention
    cell, the attention of every generated word (N, max_length, Hs, Ws).
    """
    check_decoding_fits(model, min(len(features), batch_size), beam_size, max_length)
    with threads.for_model(model, min(len(features), batch_size) * beam_size):
        return _generate(model, features, beam_size, max_length, batch_size)


def _generate(model, features, beam_size, max_length, batch_size):
    captions, attention = [], []
    for start in range(0, len(features), batch_size):
        batch = to_device(np.asarray(features[start:start + batch_size]), model.device)
        if beam_size == 1:
            ids = model.sample(batch, max_length=max_length)
        else:
            ids = model.beam_search(batch, beam_size=beam_size, max_length=max_length)
        captions.append(to_numpy(ids))
        if model.cell.attention:
            attention.append(to_numpy(model.attention_for(batch, ids)))
    return np.concatenate(captions), (np.concatenate(attention) if attention else None)


def check_decoding_fits(model, num_images, beam_size, max_length=None):
    """Refuse a beam too wide for memory, before decoding (NotEnoughMemoryError).

    The lower bound counted: at every step, each of the num_images x beam_size hypotheses
    scores the whole vocabulary (and its log-probabilities), holds its LSTM state, and
    keeps its words so far.
    """
    from .memcheck import check_size

    H, V = model.params["W_vocab"].shape
    itemsize, T = model.params["W_vocab"].dtype.itemsize, max_length or 20

    def cost(beam):
        return num_images * beam * (2 * V * itemsize + 4 * H * itemsize + T * 8)

    check_size("beam_size", beam_size, cost, f"decoding {num_images} images")


def evaluate_model(model, data, split="test", beam_size=3, max_length=None, batch_size=256, max_images=None):
    """Decode and score every image (or the first ``max_images``) of ``split``."""
    key = f"{split}_features"
    if key not in data:
        available = sorted(k[:-len("_features")] for k in data if k.endswith("_features"))
        raise ValueError(f"this dataset has no {split!r} split; choose one of {available}")
    if max_length is None:
        max_length = data[f"{split}_captions"].shape[1] - 1  # <START>..<END> fit in T+1
    refs = references_by_image(data, split)
    images = sorted(refs)[:max_images] if max_images else sorted(refs)
    ids, attention = generate(model, data[key][images], beam_size, max_length, batch_size)
    texts = decode_captions(ids, data["idx_to_word"])
    metrics = evaluate({i: refs[i] for i in images}, dict(zip(images, texts)))
    if f"{split}_objects" in data:
        from .shapes.grounding import grounding_score
        from .shapes.truth import truth_score

        objects = data[f"{split}_objects"][images]
        metrics["truth"] = truth_score(texts, objects)
        if attention is not None:
            # ids, not text: keeps word t aligned with attention step t
            score = float(grounding_score(ids, attention, objects, data["idx_to_word"]))
            # NaN when no generated word names exactly one object; JSON has no NaN
            metrics["grounding"] = None if math.isnan(score) else score
    metrics["split"] = split
    metrics["images"] = len(images)
    metrics["beam_size"] = beam_size
    return Evaluation(metrics, texts, ids, {i: refs[i] for i in images}, attention)


def validation_metrics(model, data, split="val"):
    """The numeric metrics of greedy captions on ``split``: a ``metric_fn`` for
    ``CaptioningSolver``, which can then keep the parameters of the epoch with
    the best validation truth (or BLEU-4, ...), not just the lowest loss."""
    metrics = evaluate_model(model, data, split, beam_size=1).metrics
    return {k: v for k, v in metrics.items() if isinstance(v, float)}
