"""A tiny stand-in captioning model for the solver tests, and the checks that make it trustworthy.

``ToyCaptioner`` has CaptioningRNN's interface (``params``, ``loss``, ``to_arrays`` /
``from_arrays``, ``device``, ``dtype``) but no recurrence: the scores of step t are
``(W_embed[x_t] + features @ W_proj) @ W_vocab + b_vocab``, with the caption loss of the
courses (sum over unmasked steps, divided by N). It trains in microseconds, which makes
exact resume tests over many iterations cheap.
"""

import numpy as np

from minicap.backend import device_of, get_array_module, scatter_add, to_device
from minicap.gradcheck import eval_numerical_gradient, rel_error

NULL = 0


class ToyCaptioner:
    def __init__(self, vocab_size=7, input_dim=4, hidden_dim=5, dtype=np.float64, seed=0):
        rng = np.random.default_rng(seed)
        shapes = {"W_embed": (vocab_size, hidden_dim), "W_proj": (input_dim, hidden_dim),
                  "W_vocab": (hidden_dim, vocab_size)}
        self.params = {k: (0.3 * rng.standard_normal(s)).astype(dtype) for k, s in shapes.items()}
        self.params["b_vocab"] = np.zeros(vocab_size, dtype=dtype)
        self.dtype = np.dtype(dtype)

    @property
    def device(self):
        return device_of(self.params["W_embed"])

    def to(self, device):
        self.params = to_device(self.params, device)
        return self

    def loss(self, features, captions):
        p = self.params
        xp = get_array_module(features, captions, *p.values())
        n, (v, h) = len(captions), p["W_embed"].shape
        x_in, y = captions[:, :-1], captions[:, 1:]
        mask = (y != NULL).astype(self.dtype)[..., None]
        hidden = p["W_embed"][x_in] + (features @ p["W_proj"])[:, None, :]
        scores = hidden @ p["W_vocab"] + p["b_vocab"]
        shifted = scores - scores.max(axis=2, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=2, keepdims=True))
        onehot = (xp.arange(v) == y[..., None]).astype(self.dtype)
        loss = -(log_probs * onehot * mask).sum() / n
        dscores = (xp.exp(log_probs) - onehot) * mask / n
        dhidden = dscores @ p["W_vocab"].T
        grads = {
            "W_vocab": hidden.reshape(-1, h).T @ dscores.reshape(-1, v),
            "b_vocab": dscores.sum(axis=(0, 1)),
            "W_proj": features.T @ dhidden.sum(axis=1),
            "W_embed": scatter_add(xp.zeros_like(p["W_embed"]), x_in.ravel(), dhidden.reshape(-1, h)),
        }
        return loss, grads

    def to_arrays(self):
        return {name: to_device(value, "cpu").copy() for name, value in self.params.items()}

    @classmethod
    def from_arrays(cls, arrays):
        model = cls.__new__(cls)
        model.params = {name: np.array(value) for name, value in arrays.items()}
        model.dtype = model.params["W_embed"].dtype
        return model


def toy_data(num_train=23, num_images=9, num_val=11, steps=5, vocab_size=7, input_dim=4, seed=0):
    """A data dict in the minicap layout: random words, random <NULL> padding after <END>=2."""
    rng = np.random.default_rng(seed)

    def captions(m):
        words = rng.integers(3, vocab_size, size=(m, steps + 1)).astype(np.int32)
        words[:, 0] = 1  # <START>
        lengths = rng.integers(2, steps + 1, size=m)
        for row, length in enumerate(lengths):
            words[row, length] = 2  # <END>
            words[row, length + 1:] = NULL
        return words

    return {
        "train_captions": captions(num_train),
        "train_image_idxs": rng.integers(0, num_images, size=num_train).astype(np.int32),
        "train_features": rng.standard_normal((num_images, input_dim)).astype(np.float32),
        "val_captions": captions(num_val),
        "val_image_idxs": rng.integers(0, num_images, size=num_val).astype(np.int32),
        "val_features": rng.standard_normal((num_images, input_dim)).astype(np.float32),
        "idx_to_word": ["<NULL>", "<START>", "<END>"] + [f"w{i}" for i in range(3, vocab_size)],
        "word_to_idx": {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>"] + [f"w{i}" for i in range(3, vocab_size)])},
    }


def test_toy_gradients_match_numerical():
    data = toy_data()
    model = ToyCaptioner()
    features = data["train_features"][data["train_image_idxs"][:6]].astype(np.float64)
    captions = data["train_captions"][:6]
    _, grads = model.loss(features, captions)
    for name, value in model.params.items():
        numeric = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], value)
        assert rel_error(grads[name], numeric) < 1e-7, name


def test_toy_loss_equals_per_token_sum():
    data = toy_data()
    model = ToyCaptioner()
    features = data["train_features"][data["train_image_idxs"]].astype(np.float64)
    captions = data["train_captions"]
    loss, _ = model.loss(features, captions)
    total = 0.0
    for n in range(len(captions)):
        for t in range(captions.shape[1] - 1):
            target = captions[n, t + 1]
            if target == NULL:
                continue
            scores = (model.params["W_embed"][captions[n, t]] + features[n] @ model.params["W_proj"]) @ model.params["W_vocab"]
            total -= scores[target] - np.log(np.sum(np.exp(scores)))
    assert abs(float(loss) - total / len(captions)) < 1e-10


def test_toy_round_trip():
    model = ToyCaptioner(seed=3)
    copy = ToyCaptioner.from_arrays(model.to_arrays())
    for name, value in model.params.items():
        np.testing.assert_array_equal(copy.params[name], value)
        assert copy.params[name] is not value
