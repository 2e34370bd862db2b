"""The courses' overfitting check on the embedded shapes world: 50 captions learned by heart.

CS231n's setting: 50 training captions, hidden 512, word vectors 256, adam, batch 25,
50 epochs (100 iterations). Each caption comes from a different image, as with 50 random
COCO captions; with several references of one image the loss could not go below their
entropy. A model that cannot drive this loss under 0.1 has a bug in its backward pass or in
the training loop.
"""

import math

import numpy as np
import pytest

from minicap import CaptioningRNN, CaptioningSolver
from minicap.data import load_shapes

# cell type: (learning rate, lr decay per epoch); rnn is the course's setting
SETTINGS = {"rnn": (5e-3, 0.95), "lstm": (5e-3, 0.995), "attention": (5e-3, 0.995)}
NUM_CAPTIONS = 50


def fifty_captions(spatial):
    """One caption for each of 50 training images, and no validation split."""
    data = load_shapes(num_train=NUM_CAPTIONS, num_val=0, num_test=0, seed=0, spatial=spatial,
                       captions_per_image=1, cache=False)
    assert len(data["train_captions"]) == NUM_CAPTIONS
    assert len(np.unique(data["train_image_idxs"])) == NUM_CAPTIONS
    return data


@pytest.mark.slow
@pytest.mark.parametrize("cell_type", sorted(SETTINGS))
def test_overfits_fifty_captions(cell_type):
    data = fifty_captions(spatial=cell_type == "attention")
    learning_rate, lr_decay = SETTINGS[cell_type]
    model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1], wordvec_dim=256,
                          hidden_dim=512, cell_type=cell_type, seed=0)
    solver = CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": learning_rate},
                              lr_decay=lr_decay, batch_size=25, num_epochs=50, verbose=False)
    solver.train()
    assert len(solver.loss_history) == 100
    # the start is far from the goal: about (target words per caption) * log V
    targets = np.count_nonzero(data["train_captions"][:, 1:] != data["word_to_idx"]["<NULL>"]) / NUM_CAPTIONS
    assert solver.loss_history[0] > 0.5 * targets * math.log(len(data["idx_to_word"]))
    assert solver.loss_history[-1] < 0.1
    # learned by heart: greedy decoding reproduces the training captions
    # (sampled column 0 is the first word after <START>, <NULL> after <END>, like captions[:, 1:])
    words = data["train_captions"][:, 1:]
    sampled = model.sample(data["train_features"][data["train_image_idxs"]], max_length=words.shape[1])
    assert np.mean(np.all(sampled == words, axis=1)) > 0.9
