"""The course path: with impl="reference" the functions of minicap.layers are the model.

A student's function replaced by one that raises must stop training and decoding
under impl="reference" (whether it is replaced in its module, as editing the file
does, or in the package, as a notebook might), and must not matter under
impl="fast", which runs minicap.kernels.
"""

import importlib

import numpy as np
import pytest

import minicap.layers
from minicap import CaptioningRNN, CaptioningSolver
from test_solver_toy import toy_data


class StudentFunctionCalled(Exception):
    pass


def _raises(*args, **kwargs):
    raise StudentFunctionCalled


# (function, the cells whose training runs it)
USED_IN_TRAINING = [
    ("rnn_step_forward", ["rnn"]),
    ("rnn_step_backward", ["rnn"]),
    ("rnn_forward", ["rnn"]),
    ("lstm_step_forward", ["lstm", "attention"]),
    ("lstm_step_backward", ["lstm", "attention"]),
    ("lstm_backward", ["lstm"]),
    ("dot_product_attention_forward", ["attention"]),
    ("dot_product_attention_backward", ["attention"]),
    ("attention_lstm_step_backward", ["attention"]),
    ("word_embedding_forward", ["rnn", "lstm", "attention"]),
    ("word_embedding_backward", ["rnn", "lstm", "attention"]),
    ("affine_backward", ["rnn", "lstm"]),
    ("temporal_affine_forward", ["rnn", "lstm", "attention"]),
    ("temporal_softmax_loss", ["rnn", "lstm", "attention"]),
]
CASES = [(name, cell) for name, cells in USED_IN_TRAINING for cell in cells]


def _train(cell, impl):
    data = toy_data(input_dim=4)
    if cell == "attention":
        rng = np.random.default_rng(1)
        for split in ("train", "val"):
            data[f"{split}_features"] = rng.standard_normal((9, 4, 2, 2)).astype(np.float32)
    model = CaptioningRNN(data["word_to_idx"], input_dim=4, wordvec_dim=3, hidden_dim=5, cell_type=cell, impl=impl)
    CaptioningSolver(model, data, batch_size=8, num_epochs=1, verbose=False).train()
    return model, data


def _replace(monkeypatch, name, where):
    module = minicap.layers if where == "package" else importlib.import_module(
        getattr(minicap.layers, name).__module__)
    monkeypatch.setattr(module, name, _raises)


@pytest.mark.parametrize("where", ["module", "package"])
@pytest.mark.parametrize("name, cell", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_reference_training_runs_the_student_function(monkeypatch, name, cell, where):
    _replace(monkeypatch, name, where)
    with pytest.raises(StudentFunctionCalled):
        _train(cell, "reference")


@pytest.mark.parametrize("name, cell", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_fast_training_does_not(monkeypatch, name, cell):
    _replace(monkeypatch, name, "module")
    model, data = _train(cell, "fast")
    assert model.sample(data["val_features"][:2], max_length=3).shape == (2, 3)


@pytest.mark.parametrize("name, cell", [("rnn_step_forward", "rnn"), ("lstm_step_forward", "lstm"),
                                        ("attention_lstm_step_forward", "attention"),
                                        ("dot_product_attention_forward", "attention"),
                                        ("word_embedding_forward", "lstm"), ("affine_forward", "rnn")])
def test_reference_decoding_runs_the_student_function(monkeypatch, name, cell):
    model, data = _train(cell, "reference")
    _replace(monkeypatch, name, "module")
    with pytest.raises(StudentFunctionCalled):
        model.sample(data["val_features"][:2], max_length=3)
    model.impl = "fast"
    if name not in ("affine_forward",):  # the kernels reuse the course's affine layer
        model.sample(data["val_features"][:2], max_length=3)


def test_an_unknown_impl_is_refused():
    with pytest.raises(ValueError, match=r"impl must be one of \('fast', 'reference'\), got 'slow'"):
        CaptioningRNN({"<NULL>": 0}, impl="slow")


@pytest.mark.parametrize("impl, fails", [("reference", True), ("fast", False)])
def test_the_command_line_trains_and_evaluates_with_the_chosen_impl(monkeypatch, tmp_path, impl, fails):
    from minicap.cli import main

    monkeypatch.setattr(minicap.layers, "lstm_step_backward", _raises)
    args = ["train", "--num-train", "20", "--cell", "lstm", "--hidden-dim", "8", "--wordvec-dim", "8",
            "--batch-size", "20", "--epochs", "1", "--quiet", "--impl", impl, "--out", str(tmp_path / "run")]
    if fails:
        with pytest.raises(StudentFunctionCalled):
            main(args)
        return
    assert main(args) == 0
    monkeypatch.setattr(minicap.layers, "lstm_step_forward", _raises)
    assert main(["evaluate", str(tmp_path / "run"), "--max-images", "2", "--impl", "fast"]) == 0
    with pytest.raises(StudentFunctionCalled):
        main(["evaluate", str(tmp_path / "run"), "--max-images", "2", "--impl", "reference"])
