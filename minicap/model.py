"""``CaptioningRNN``: image features in, a distribution over captions out.

The model is the one of the CS231n / EECS 498 assignments, with three cells:

- ``rnn``:       h0 = features @ W_proj + b_proj, then a vanilla RNN
- ``lstm``:      the same h0, c0 = 0, then an LSTM
- ``attention``: features are a grid (N, D, Hs, Ws); the same affine map at
  every location gives A (N, H, Hs, Ws); h0 = c0 = mean of A over locations;
  each step attends over A with the previous hidden state.

Every step feeds the embedding of the previous word, and a temporal affine
layer maps hidden states to vocabulary scores. The loss is the caption loss
of both courses: -log p(target) summed over the non-``<NULL>`` targets,
divided by the batch size N.

Shape letters: N batch, T time, D feature, W word vector, H hidden,
V vocabulary, Hs x Ws attention grid.
"""

import json
import math

import numpy as np

from . import decoding
from .argcheck import check_int
from .backend import check_device, device_of, get_array_module, to_device
from .checkpoint import CheckpointError, is_model_file, is_solver_state, load_npz, save_npz_atomic
from .layers import (
    affine_backward,
    affine_forward,
    attention_loop_backward,
    attention_loop_forward,
    embed_project_backward,
    embed_project_forward,
    lstm_loop_backward,
    lstm_loop_forward,
    rnn_loop_backward,
    rnn_loop_forward,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
)

CELL_TYPES = ("rnn", "lstm", "attention")
FORMAT = "minicap.CaptioningRNN/1"


class CaptioningRNN:
    """An image captioning model with an rnn, lstm or attention-lstm cell.

    Args:
        word_to_idx: vocabulary, word -> id. Only ``<NULL>`` is required to
            build and train; ``<START>`` and ``<END>`` are needed for decoding.
            V is one more than the largest id (gaps are unused words).
        input_dim: D, the feature size (channels for the attention cell).
        wordvec_dim: W, the word-vector size.
        hidden_dim: H, the hidden-state size.
        cell_type: "rnn", "lstm" or "attention".
        dtype: float32 (training) or float64 (gradient checks).
        seed: seeds the host generator that initialises the weights, so a CPU
            and a GPU model built with the same seed start identical.
    """

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128,
                 cell_type="rnn", dtype=np.float32, seed=0):
        if cell_type not in CELL_TYPES:
            raise ValueError(f"cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.input_dim = check_int("input_dim", input_dim, low=1)
        self.wordvec_dim = check_int("wordvec_dim", wordvec_dim, low=1)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, low=1)
        # None: a random start. The seed goes into config() (JSON) for save/load, and a
        # NumPy integer would make save() fail with "Object of type int64 is not JSON serializable".
        self.seed = check_int("seed", seed, low=0, none_ok=True)
        self.word_to_idx = _check_vocab(word_to_idx)
        self.cell_type = cell_type
        self.vocab_size = max(self.word_to_idx.values()) + 1
        self.idx_to_word = [None] * self.vocab_size
        for word, idx in self.word_to_idx.items():
            self.idx_to_word[idx] = word
        self._null = self.word_to_idx["<NULL>"]
        self._start = self.word_to_idx.get("<START>")
        self._end = self.word_to_idx.get("<END>")
        self.params = self._init_params(np.random.default_rng(seed))

    # ------------------------------------------------------------------ setup
    def _init_params(self, rng):
        V, W, D, H = self.vocab_size, self.wordvec_dim, self.input_dim, self.hidden_dim
        gates = 1 if self.cell_type == "rnn" else 4  # the LSTM cells stack i, f, o, g
        # The attention cell starts from h0 = c0 = mean of A, and A = features @ W_proj.
        # At the usual 1/sqrt(D) scale that summary already describes the image well
        # enough that some initialisations learn to caption from it alone and leave
        # the attention spread evenly over the grid (2 of 5 demo seeds: grounding 0).
        # At a quarter of the scale the state starts weaker and every seed learns to look
        # (docs/shapes.md, "Robust to the seed").
        proj_scale = 0.25 if self.cell_type == "attention" else 1.0
        p = {
            # small embeddings: the first steps should not saturate the cell
            "W_embed": rng.standard_normal((V, W)) / 100,
            "W_proj": rng.standard_normal((D, H)) * (proj_scale / math.sqrt(D)),
            "b_proj": np.zeros(H),
            "Wx": rng.standard_normal((W, gates * H)) / math.sqrt(W),
            "Wh": rng.standard_normal((H, gates * H)) / math.sqrt(H),
            "b": np.zeros(gates * H),
            "W_vocab": rng.standard_normal((H, V)) / math.sqrt(H),
            "b_vocab": np.zeros(V),
        }
        if self.cell_type == "attention":
            p["Wattn"] = rng.standard_normal((H, 4 * H)) / math.sqrt(H)
        return {k: v.astype(self.dtype) for k, v in p.items()}

    @property
    def device(self):
        """'cpu' or 'cuda': where the parameters live."""
        return device_of(self.params["W_embed"])

    def to(self, device):
        """Move every parameter to ``device`` ('cpu' or 'cuda'); returns self."""
        self.params = to_device(self.params, check_device(device))
        return self

    @property
    def null_id(self):
        return self._null

    # ------------------------------------------------------------------- loss
    def loss(self, features, captions):
        """Caption loss and gradients for one minibatch.

        Args:
            features: (N, D) for rnn/lstm, (N, D, Hs, Ws) for attention.
            captions: (N, T + 1) integer ids; inputs are captions[:, :-1],
                targets captions[:, 1:]; targets equal to <NULL> are masked.
        Returns:
            loss: 0-d array on the parameters' device (``float(loss)`` syncs).
            grads: dict with the same keys as ``self.params``.
        """
        features = self.check_features(features)
        captions = self._check_captions(captions, features)
        p = self.params  # read live: gradient checkers perturb these in place
        captions = self._trim_padding(captions)
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        mask = captions_out != self._null

        h0, A, proj_cache = self.project_features(features)
        # Word embedding and the cell's input projection x @ Wx + b, as one layer
        # (word_embedding_forward then the projection inside lstm_forward & co.
        # compute the same thing, slower when the batch has more words than the
        # vocabulary); the cell's loop then runs on the projected inputs a.
        a, inputs_cache = embed_project_forward(captions_in, p["W_embed"], p["Wx"], p["b"])
        if self.cell_type == "rnn":
            h, cell_cache = rnn_loop_forward(a, h0, p["Wh"])
        elif self.cell_type == "lstm":
            h, cell_cache = lstm_loop_forward(a, h0, p["Wh"], overwrite_a=True)
        else:
            h, cell_cache = attention_loop_forward(a, A, p["Wh"], p["Wattn"], overwrite_a=True)
        scores, vocab_cache = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)

        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, vocab_cache)
        if self.cell_type == "rnn":
            da, dh0, grads["Wh"] = rnn_loop_backward(dh, cell_cache)
        elif self.cell_type == "lstm":
            da, dh0, grads["Wh"] = lstm_loop_backward(dh, cell_cache)
        else:
            da, dA, grads["Wh"], grads["Wattn"] = attention_loop_backward(dh, cell_cache)
        grads["W_embed"], grads["Wx"], grads["b"] = embed_project_backward(da, inputs_cache)
        if self.cell_type == "attention":
            grads["W_proj"], grads["b_proj"] = self._projection_backward_grid(dA, proj_cache)
        else:
            _, grads["W_proj"], grads["b_proj"] = affine_backward(dh0, proj_cache)
        return loss, grads

    def _trim_padding(self, captions):
        """Drop trailing columns that are <NULL> in every row of the batch.

        Their targets are all masked and later steps never influence earlier
        ones, so the loss and every gradient are exactly unchanged; the
        recurrence just runs for fewer steps (captions are padded to the
        longest one in the dataset, not in the batch). Costs one small sync.
        """
        used = (captions[:, 1:] != self._null).any(axis=0)
        xp = get_array_module(captions)
        last = int(xp.flatnonzero(used)[-1]) + 2 if bool(used.any()) else 2  # keep T >= 1
        return captions[:, :last]

    def project_features(self, features):
        """(h0, A, cache): h0 (N, H) for rnn/lstm, or the projected grid A
        (N, H, Hs, Ws) for attention (the other is None), and the cache for
        the backward. Decoding starts from the same projection."""
        p = self.params
        if self.cell_type != "attention":
            h0, cache = affine_forward(features, p["W_proj"], p["b_proj"])
            return h0, None, cache
        N, D, Hs, Ws = features.shape
        # The same affine map at every location: view the grid as a sequence
        # of L = Hs * Ws feature vectors and reuse the temporal affine layer.
        seq = features.reshape(N, D, Hs * Ws).transpose(0, 2, 1)  # (N, L, D)
        out, _ = temporal_affine_forward(seq, p["W_proj"], p["b_proj"])
        A = out.transpose(0, 2, 1).reshape(N, self.hidden_dim, Hs, Ws)
        return None, A, seq

    def _projection_backward_grid(self, dA, seq):
        """dW_proj, db_proj of the grid projection, from dA (N, H, Hs, Ws) and seq (N, L, D).

        Written out rather than through temporal_affine_backward, which would
        also form the features' gradient (N, L, D): nothing needs it, and at
        COCO sizes it is a product as large as the projection itself.
        """
        N, H = dA.shape[:2]
        dout = dA.reshape(N, H, -1).transpose(0, 2, 1).reshape(-1, H)  # (N*L, H)
        return seq.reshape(-1, seq.shape[2]).T @ dout, dout.sum(axis=0)

    # --------------------------------------------------------------- decoding
    def sample(self, features, max_length=30, return_attention=False):
        """Greedy captions, (N, max_length) ints; see ``minicap.decoding.greedy``.

        With ``return_attention=True`` (attention cell only) also returns the
        attention weights of every generated word, (N, max_length, Hs, Ws).
        """
        if return_attention and self.cell_type != "attention":
            raise ValueError("return_attention=True needs cell_type='attention'")
        features = self.check_features(features)
        captions, attention = decoding.greedy(self, features, max_length)
        return (captions, attention) if return_attention else captions

    def beam_search(self, features, beam_size=3, max_length=30, length_penalty=0.0, return_all=False):
        """Beam-search captions; see ``minicap.decoding.beam_search`` (which checks the arguments)."""
        features = self.check_features(features)
        result = decoding.beam_search(self, features, beam_size, max_length, length_penalty)
        return result if return_all else result.captions

    def attention_for(self, features, captions):
        """Attention weights while reading given captions: (N, T, Hs, Ws).

        ``captions`` are in the ``sample`` layout (no <START>); step t shows
        where the model looked when it produced word t. Use it to ground
        beam-search captions, which do not carry attention themselves.
        """
        if self.cell_type != "attention":
            raise ValueError("attention_for needs cell_type='attention'")
        features = self.check_features(features)
        # the same checks as loss(): an out-of-range id would wrap around silently on CuPy
        captions = self._check_captions(captions, features, shifted=False)
        return decoding.teacher_forced_attention(self, features, captions)

    def decoding_ids(self):
        """(<NULL>, <START>, <END>) ids; a clear error when the vocabulary lacks them."""
        missing = [w for w, i in (("<START>", self._start), ("<END>", self._end)) if i is None]
        if missing:
            raise ValueError(f"decoding needs {' and '.join(missing)} in word_to_idx")
        return self._null, self._start, self._end

    # ---------------------------------------------------------- input checks
    def check_features(self, features):
        """Validate features for this cell and cast them to the model's dtype."""
        xp = get_array_module(self.params["W_embed"])
        _check_array("features", features, self.device)
        if get_array_module(features) is not xp:
            raise ValueError(
                f"features are on '{device_of(features)}' but the model is on '{self.device}'; "
                f"move them with minicap.backend.to_device(features, '{self.device}')")
        expected = "(N, D)" if self.cell_type != "attention" else "(N, D, Hs, Ws)"
        rank = 2 if self.cell_type != "attention" else 4
        if features.ndim != rank or features.shape[1] != self.input_dim or 0 in features.shape[2:]:
            raise ValueError(
                f"features must have shape {expected} with D = input_dim = {self.input_dim} "
                + ("and a grid of at least 1 x 1 " if rank == 4 else "")
                + f"for cell_type={self.cell_type!r}, got {tuple(features.shape)}")
        if features.dtype.kind != "f":
            raise ValueError(f"features must be floating point, got dtype {features.dtype}")
        features = features.astype(self.dtype, copy=False)
        # isfinite, not isnan: an infinite feature turns the loss and every gradient into NaN
        if not bool(xp.isfinite(features).all()):
            raise ValueError("features contain NaN or infinite values; check the feature extraction or the cache")
        return features

    def _check_captions(self, captions, features, shifted=True):
        """Word ids (N, T + 1) for loss() (``shifted``: input and target are the same captions
        shifted by one step), or (N, T) for attention_for; T >= 1 either way."""
        xp = get_array_module(self.params["W_embed"])
        _check_array("captions", captions, self.device)
        if get_array_module(captions) is not xp:
            raise ValueError(
                f"captions are on '{device_of(captions)}' but the model is on '{self.device}'; "
                f"move them with minicap.backend.to_device(captions, '{self.device}')")
        if captions.dtype.kind not in "iu":
            raise ValueError(f"captions must be integer word ids, got dtype {captions.dtype}")
        layout, min_length = ("(N, T + 1)", 2) if shifted else ("(N, T)", 1)
        if captions.ndim != 2 or captions.shape[1] < min_length or captions.shape[0] != features.shape[0]:
            raise ValueError(
                f"captions must have shape {layout} with N = {features.shape[0]} (the features' N) "
                f"and T >= 1, got {tuple(captions.shape)}")
        if captions.shape[0] == 0:
            raise ValueError("captions and features are empty (N = 0): pass at least one image and caption")
        # CuPy would wrap an out-of-range id silently; one sync per batch to rule it out.
        lo, hi = int(captions.min()), int(captions.max())
        if lo < 0 or hi >= self.vocab_size:
            raise ValueError(f"caption ids must lie in [0, {self.vocab_size}), found ids in [{lo}, {hi}]")
        return captions

    # ------------------------------------------------------------ persistence
    def config(self):
        """Everything needed to rebuild the model, as plain JSON-able values."""
        return {
            "input_dim": self.input_dim, "wordvec_dim": self.wordvec_dim, "hidden_dim": self.hidden_dim,
            "cell_type": self.cell_type, "dtype": self.dtype.name, "seed": self.seed,
            "word_to_idx": self.word_to_idx,
        }

    def to_arrays(self):
        """Host copies of the parameters plus the config, keyed for an .npz.

        Never moves the model: a GPU model stays on the GPU.
        """
        arrays = {f"param/{k}": np.array(to_device(v, "cpu"), copy=True) for k, v in self.params.items()}
        arrays["format"] = np.array(FORMAT)
        arrays["config"] = np.array(json.dumps(self.config()))
        return arrays

    @classmethod
    def from_arrays(cls, arrays, source="arrays"):
        """Rebuild a model (on the CPU) from ``to_arrays()`` output."""
        if is_solver_state(arrays) and not is_model_file(arrays):
            raise CheckpointError(
                f"{source} is a CaptioningSolver checkpoint, not a model file: resume it with "
                f"CaptioningSolver(..., resume=path), or take its model with CaptioningRNN.from_arrays("
                f"minicap.checkpoint.load_state(path)['model'])")
        if "format" not in arrays or str(arrays["format"]) != FORMAT or "config" not in arrays:
            raise CheckpointError(f"{source} is not a minicap CaptioningRNN checkpoint (format {FORMAT})")
        from .filecheck import check_model_arrays

        check_model_arrays(arrays, source)  # before the constructor allocates from the config's sizes
        try:
            config = json.loads(str(arrays["config"]))
            model = cls(config.pop("word_to_idx"), **config)
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{source} has an unreadable model config: {exc}") from None
        for name, value in model.params.items():
            key = f"param/{name}"
            if key not in arrays:
                raise CheckpointError(f"{source} is missing parameter {name!r}")
            stored = np.asarray(arrays[key])
            if stored.shape != value.shape:
                raise CheckpointError(f"{source}: parameter {name!r} has shape {stored.shape}, expected {value.shape}")
            model.params[name] = stored.astype(model.dtype)
        return model

    def save(self, path):
        """Write one .npz atomically (temp file, then rename). Returns the path."""
        save_npz_atomic(path, self.to_arrays())
        return path

    @classmethod
    def load(cls, path):
        """Load a model saved with ``save``; it comes back on the CPU.

        A missing file raises FileNotFoundError; a truncated or foreign one,
        ``CheckpointError`` (a ValueError) naming the file.
        """
        return cls.from_arrays(load_npz(path), source=str(path))


def _check_vocab(word_to_idx):
    if not isinstance(word_to_idx, dict) or "<NULL>" not in word_to_idx:
        raise ValueError("word_to_idx must be a dict mapping words to ids that contains '<NULL>'")
    clean = {}
    for word, idx in word_to_idx.items():
        if not isinstance(word, str):
            # str(word) could collide with a real word ({1: 5, "1": 6}) and drop an id silently
            raise ValueError(f"word_to_idx keys must be strings (the words), got {word!r} of type {type(word).__name__}")
        if not isinstance(idx, (int, np.integer)) or isinstance(idx, bool) or idx < 0:
            raise ValueError(f"word_to_idx[{word!r}] must be a non-negative integer id, got {idx!r}")
        clean[str(word)] = int(idx)
    if len(set(clean.values())) != len(clean):
        raise ValueError("word_to_idx maps two words to the same id")
    return clean


def _check_array(name, value, device):
    """A clear error for lists and other non-arrays (they have no .ndim / .dtype)."""
    if not (hasattr(value, "ndim") and hasattr(value, "shape") and hasattr(value, "dtype")):
        module = "numpy" if device == "cpu" else "cupy"
        raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(value).__name__}; "
                        f"convert it with {module}.asarray({name}) (the model is on '{device}')")
