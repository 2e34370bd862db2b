"""``CaptioningRNN``: image features in, a distribution over captions out.

The model is the one of the CS231n / EECS 498 assignments, with three cells
(and any cell registered with ``minicap.cells.register_cell``):

- ``rnn``:       h0 = features @ W_proj + b_proj, then a vanilla RNN
- ``lstm``:      the same h0, c0 = 0, then an LSTM
- ``attention``: features are a grid (N, D, Hs, Ws); the same affine map at
  every location gives A (N, H, Hs, Ws); h0 = c0 = mean of A over locations;
  each step attends over A with the previous hidden state.

Every step feeds the embedding of the previous word, and a temporal affine
layer maps hidden states to vocabulary scores. The loss is the caption loss
of both courses: -log p(target) summed over the non-``<NULL>`` targets,
divided by the batch size N.

``loss`` is written once, as the courses write it, against a namespace of layer
functions: ``minicap.layers`` (``impl="reference"``, the course files, looked up
at every call) or ``minicap.kernels`` (``impl="fast"``, the same functions
arranged for speed). See ``minicap.implementations``.

Shape letters: N batch, T time, D feature, W word vector, H hidden,
V vocabulary, Hs x Ws attention grid.
"""

import json
import math
import warnings

import numpy as np

from . import decoding
from .argcheck import check_int
from .backend import check_device, device_of, get_array_module, to_device
from .cells import get_cell
from .checkpoint import CheckpointError, is_model_file, is_solver_state, load_npz, save_npz_atomic
from .implementations import IMPLEMENTATIONS, namespace

FORMAT = "minicap.CaptioningRNN/1"


class CaptioningRNN:
    """An image captioning model with an rnn, lstm or attention-lstm cell.

    Args:
        word_to_idx: vocabulary, word -> id. Only ``<NULL>`` is required to
            build and train; ``<START>`` and ``<END>`` are needed for decoding.
            V = len(word_to_idx), as in both courses: a word whose id is V or
            more can never be used (captions holding it are refused), and an
            id below V that no word has is never generated.
        input_dim: D, the feature size (channels for the attention cell).
        wordvec_dim: W, the word-vector size.
        hidden_dim: H, the hidden-state size.
        cell_type: "rnn", "lstm", "attention", or a cell registered with
            ``minicap.cells.register_cell``.
        dtype: float32 (training) or float64 (gradient checks).
        seed: seeds the host generator that initialises the weights, so a CPU
            and a GPU model built with the same seed start identical.
        impl: "fast" (``minicap.kernels``) or "reference" (``minicap.layers``,
            looked up at every call, so an edited or replaced course function is
            what trains and decodes). Both compute the same loss and gradients.
            An attribute: ``model.impl = "reference"`` switches a loaded model.
    """

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128,
                 cell_type="rnn", dtype=np.float32, seed=0, impl="fast"):
        self.cell = get_cell(cell_type)
        self.impl = impl
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
        self.vocab_size = len(self.word_to_idx)
        self.idx_to_word = [None] * self.vocab_size
        unusable = []
        for word, idx in self.word_to_idx.items():
            if idx < self.vocab_size:
                self.idx_to_word[idx] = word
            else:
                unusable.append(f"{word!r} (id {idx})")
        if unusable:
            # The courses' own loss check builds a model with such a word, so it is a warning;
            # a caption or a decoding that needs the word is refused where it happens.
            warnings.warn(f"word_to_idx has {len(self.word_to_idx)} words, so V = {self.vocab_size} and ids "
                          f"must lie in [0, {self.vocab_size}); these can never be used: {', '.join(unusable[:5])}"
                          + (" ..." if len(unusable) > 5 else ""), stacklevel=2)
        self._gaps = [i for i, word in enumerate(self.idx_to_word) if word is None]  # ids without a word
        self._null = self.word_to_idx["<NULL>"]
        self._start = self.word_to_idx.get("<START>")
        self._end = self.word_to_idx.get("<END>")
        self.params = self._init_params(np.random.default_rng(seed))

    # ------------------------------------------------------------------ setup
    def _init_params(self, rng):
        V, W, D, H = self.vocab_size, self.wordvec_dim, self.input_dim, self.hidden_dim
        gates = self.cell.gates  # 1 for the RNN; the LSTM cells stack i, f, o, g
        # The attention cell starts from h0 = c0 = mean of A, and A = features @ W_proj.
        # At the usual 1/sqrt(D) scale that summary already describes the image well
        # enough that some initialisations learn to caption from it alone and leave
        # the attention spread evenly over the grid (2 of 5 demo seeds: grounding 0).
        # At a quarter of the scale the state starts weaker and every seed learns to look
        # (docs/shapes.md, "Robust to the seed").
        proj_scale = 0.25 if self.cell.attention else 1.0
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
        if self.cell.attention:
            p["Wattn"] = rng.standard_normal((H, gates * H)) / math.sqrt(H)
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

    @property
    def impl(self):
        """"fast" or "reference": which implementation of the layers runs."""
        return self._impl

    @impl.setter
    def impl(self, impl):
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
        self._impl = impl

    def layers(self):
        """The namespace of layer functions this model runs (``minicap.implementations``)."""
        return namespace(self.impl, self.cell)

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
        captions = self._trim_padding(captions)
        L = self.layers()
        forward, backward, _ = self.cell.functions(L)
        p = self.params  # read live: gradient checkers perturb these in place
        cell_params = [p[name] for name in self.cell.param_names]
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        mask = captions_out != self._null

        # BEGIN SOLUTION
        # Forward: the image gives the initial state (h0, or the grid A for
        # attention), the words give their vectors, the cell runs over them,
        # and every hidden state is scored against the vocabulary.
        init, init_cache = self._project_features(L, features)
        x, embed_cache = L.word_embedding_forward(captions_in, p["W_embed"])
        h, cell_cache = forward(x, init, *cell_params)
        scores, scores_cache = L.temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        loss, dscores = L.temporal_softmax_loss(scores, captions_out, mask)

        # Backward: the same layers in reverse order.
        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = L.temporal_affine_backward(dscores, scores_cache)
        dx, dinit, *dcell = backward(dh, cell_cache)
        grads.update(zip(self.cell.param_names, dcell))
        grads["W_embed"] = L.word_embedding_backward(dx, embed_cache)
        grads["W_proj"], grads["b_proj"] = self._project_features_backward(L, dinit, init_cache)
        # END SOLUTION
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

    def _project_features(self, L, features):
        """The cell's initial input from the image, and a cache: h0 (N, H) =
        features @ W_proj + b_proj, or for an attention cell the grid A
        (N, H, Hs, Ws), the same affine map at every location."""
        p = self.params
        if not self.cell.attention:
            return L.affine_forward(features, p["W_proj"], p["b_proj"])
        N, D, Hs, Ws = features.shape
        # The N * L location vectors (L = Hs * Ws) as one batch of the affine layer.
        locations = features.reshape(N, D, Hs * Ws).transpose(0, 2, 1).reshape(N * Hs * Ws, D)
        out, _ = L.affine_forward(locations, p["W_proj"], p["b_proj"])  # (N * L, H)
        A = out.reshape(N, Hs * Ws, self.hidden_dim).transpose(0, 2, 1).reshape(N, self.hidden_dim, Hs, Ws)
        return A, locations

    def _project_features_backward(self, L, dinit, cache):
        """dW_proj, db_proj from dh0 (N, H) or dA (N, H, Hs, Ws)."""
        if not self.cell.attention:
            _, dW_proj, db_proj = L.affine_backward(dinit, cache)
            return dW_proj, db_proj
        # Written out rather than through affine_backward, which would also form the
        # features' gradient (N * L, D): nothing needs it, and at COCO sizes it is a
        # product as large as the projection itself.
        locations = cache
        N, H = dinit.shape[:2]
        dout = dinit.reshape(N, H, -1).transpose(0, 2, 1).reshape(-1, H)  # (N * L, H)
        return locations.T @ dout, dout.sum(axis=0)

    def initial_state(self, features):
        """(h, c, A) at t = 0 for decoding, with the layers of ``impl``: c is
        None for a cell without memory, A None without attention."""
        L = self.layers()
        init, _ = self._project_features(L, features)
        if self.cell.attention:  # h0 = c0 = mean of A over the locations
            h0 = init.mean(axis=(2, 3))
            return h0, h0.copy(), init
        c0 = get_array_module(init).zeros_like(init) if self.cell.memory else None
        return init, c0, None

    # --------------------------------------------------------------- decoding
    def sample(self, features, max_length=30, return_attention=False):
        """Greedy captions, (N, max_length) ints; see ``minicap.decoding.greedy``.

        With ``return_attention=True`` (attention cell only) also returns the
        attention weights of every generated word, (N, max_length, Hs, Ws).
        """
        if return_attention and not self.cell.attention:
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
        if not self.cell.attention:
            raise ValueError(f"attention_for needs an attention cell such as cell_type='attention', "
                             f"not {self.cell_type!r}")
        features = self.check_features(features)
        # the same checks as loss(): an out-of-range id would wrap around silently on CuPy
        captions = self._check_captions(captions, features, shifted=False)
        return decoding.teacher_forced_attention(self, features, captions)

    def decoding_ids(self):
        """(<NULL>, <START>, <END>) ids; a clear error when the vocabulary lacks them."""
        missing = [w for w, i in (("<START>", self._start), ("<END>", self._end)) if i is None]
        if missing:
            raise ValueError(f"decoding needs {' and '.join(missing)} in word_to_idx")
        for word, idx in (("<NULL>", self._null), ("<START>", self._start), ("<END>", self._end)):
            if idx >= self.vocab_size:
                raise ValueError(f"decoding needs {word} inside the vocabulary, but its id {idx} is not "
                                 f"below V = len(word_to_idx) = {self.vocab_size}")
        return self._null, self._start, self._end

    def never_generated(self):
        """Ids the decoders never emit: <NULL>, <START>, and ids below V without a word."""
        null, start, _ = self.decoding_ids()
        return [null, start] + self._gaps

    # ---------------------------------------------------------- input checks
    def check_features(self, features):
        """Validate features for this cell and cast them to the model's dtype."""
        xp = get_array_module(self.params["W_embed"])
        _check_array("features", features, self.device)
        if get_array_module(features) is not xp:
            raise ValueError(
                f"features are on '{device_of(features)}' but the model is on '{self.device}'; "
                f"move them with minicap.backend.to_device(features, '{self.device}')")
        expected = "(N, D, Hs, Ws)" if self.cell.attention else "(N, D)"
        rank = 4 if self.cell.attention else 2
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
            bad = lo if lo < 0 else hi
            word = next((w for w, i in self.word_to_idx.items() if i == bad), None)
            raise ValueError(
                f"caption ids must lie in [0, {self.vocab_size}) (V = len(word_to_idx)), found id {bad}"
                + (f" ({word!r})" if word is not None else "") + f"; the ids range over [{lo}, {hi}]")
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
