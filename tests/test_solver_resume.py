"""Checkpoints, exact resume, Ctrl-C and non-finite losses, on the toy model (CPU, exact)."""

import signal

import numpy as np
import pytest

from minicap import CaptioningSolver
from minicap.checkpoint import CheckpointError, load_state
from minicap.solver import NonFiniteLossError, TrainingInterrupted
from test_solver_toy import ToyCaptioner, toy_data

EPOCHS, BATCH = 4, 5  # 23 captions: 5 iterations per epoch, 20 in all
OPTIONS = {"batch_size": BATCH, "verbose": False, "optim_config": {"learning_rate": 0.05},
           "lr_decay": 0.9, "grad_clip": 2.0, "seed": 3}


TRAIN_FEATURES = toy_data()["train_features"]


def _is_training_call(features):
    """Training batches come from train_features; validation batches from val_features."""
    return bool(np.all(TRAIN_FEATURES == features[0], axis=1).any())


def _solver(model=None, num_epochs=EPOCHS, **kwargs):
    return CaptioningSolver(model or ToyCaptioner(), toy_data(), num_epochs=num_epochs, **{**OPTIONS, **kwargs})


@pytest.fixture(scope="module")
def reference():
    """An uninterrupted run, with the parameters every loss call saw (index = iterations done)."""
    model = ToyCaptioner()
    seen, loss = [], model.loss

    def recording(features, captions):
        if _is_training_call(features):
            seen.append({k: v.copy() for k, v in model.params.items()})
        return loss(features, captions)

    model.loss = recording
    solver = _solver(model)
    solver.train()
    assert len(seen) == EPOCHS * 5
    return solver, seen


def _fail_at(model, iteration, exc=None, nan_in="loss"):
    """Make the training loss call number ``iteration`` (0-based) raise or return a NaN."""
    loss, count = model.loss, [0]

    def patched(features, captions):
        if not _is_training_call(features):
            return loss(features, captions)
        value, grads = loss(features, captions)
        count[0] += 1
        if count[0] - 1 == iteration:
            if exc is not None:
                raise exc
            if nan_in == "loss":
                value = value * np.nan
            else:
                grads = {**grads, "W_proj": grads["W_proj"] * np.inf}
        return value, grads

    model.loss = patched
    return model


def _assert_same_run(solver, reference_solver):
    assert solver.loss_history == reference_solver.loss_history  # exactly, float for float
    assert solver.val_loss_history == reference_solver.val_loss_history
    for name, value in reference_solver.model.params.items():
        np.testing.assert_array_equal(solver.model.params[name], value)
        np.testing.assert_array_equal(solver.optim_configs[name]["m"], reference_solver.optim_configs[name]["m"])
        assert solver.optim_configs[name]["learning_rate"] == reference_solver.optim_configs[name]["learning_rate"]
    assert solver.best_epoch == reference_solver.best_epoch


def test_a_checkpoint_after_every_epoch(tmp_path, reference):
    solver = _solver(num_epochs=2, checkpoint_dir=tmp_path)
    solver.train()
    state = load_state(tmp_path / "checkpoint.npz")
    assert state["epoch"] == 2 and state["iteration"] == 10 and state["order"] is None
    assert state["loss_history"] == reference[0].loss_history[:10]
    assert set(state["optim"]["W_embed"]) == {"learning_rate", "beta1", "beta2", "epsilon", "m", "v", "t"}
    for name, value in ToyCaptioner.from_arrays(state["model"]).params.items():
        np.testing.assert_array_equal(value, solver.model.params[name])


def test_resume_after_whole_epochs_is_exact(tmp_path, reference):
    _solver(num_epochs=2, checkpoint_dir=tmp_path).train()
    solver = _solver(ToyCaptioner(seed=99), checkpoint_dir=tmp_path, resume=True)
    assert solver.epoch == 2 and len(solver.loss_history) == 10
    solver.train()
    _assert_same_run(solver, reference[0])


@pytest.mark.parametrize("stop_at", [0, 7, 10, 19])
def test_resume_after_a_keyboard_interrupt_is_exact(tmp_path, reference, stop_at):
    model = _fail_at(ToyCaptioner(), stop_at, exc=KeyboardInterrupt())
    with pytest.raises(TrainingInterrupted) as info:
        _solver(model, checkpoint_dir=tmp_path).train()
    assert info.value.iteration == stop_at and info.value.checkpoint_path == tmp_path / "checkpoint.npz"
    assert isinstance(info.value, KeyboardInterrupt)
    state = load_state(tmp_path / "checkpoint.npz")
    assert state["iteration"] == stop_at and state["loss_history"] == reference[0].loss_history[:stop_at]
    solver = _solver(ToyCaptioner(seed=99), resume=tmp_path / "checkpoint.npz")
    solver.train()
    _assert_same_run(solver, reference[0])


def test_a_real_ctrl_c_finishes_the_iteration_then_saves(tmp_path, reference):
    model, calls = ToyCaptioner(), [0]
    loss = model.loss

    def interrupting(features, captions):
        calls[0] += _is_training_call(features)
        if calls[0] == 8:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C does
        return loss(features, captions)

    model.loss = interrupting
    handler = signal.getsignal(signal.SIGINT)
    solver = _solver(model, checkpoint_dir=tmp_path)
    with pytest.raises(TrainingInterrupted) as info:
        solver.train()
    assert signal.getsignal(signal.SIGINT) is handler
    assert info.value.iteration == 8  # the 8th iteration was completed, then it stopped
    resumed = _solver(ToyCaptioner(seed=5), checkpoint_dir=tmp_path, resume=True)
    resumed.train()
    _assert_same_run(resumed, reference[0])
    solver.train()  # the interrupted solver itself also continues, in memory
    _assert_same_run(solver, reference[0])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0 when clipping
@pytest.mark.parametrize("print_every", [1, 4])
@pytest.mark.parametrize("nan_in", ["loss", "gradient"])
def test_non_finite_values_stop_restore_and_keep_the_checkpoint(tmp_path, reference, print_every, nan_in):
    bad = 13  # in the third epoch: two epoch checkpoints written before it
    model = _fail_at(ToyCaptioner(), bad, nan_in=nan_in)
    solver = _solver(model, checkpoint_dir=tmp_path, print_every=print_every)
    with pytest.raises(NonFiniteLossError, match=f"non-finite {nan_in} at iteration {bad}") as info:
        solver.train()
    assert isinstance(info.value, FloatingPointError) and info.value.iteration == bad
    # parameters go back to those of the last check (every print_every and at each epoch end)
    checks = [i for i in range(bad + 1) if i % print_every == 0 or i % 5 == 0]
    assert info.value.restored_iteration == max(checks)
    for name, value in reference[1][max(checks)].items():
        np.testing.assert_array_equal(model.params[name], value)
    state = load_state(tmp_path / "checkpoint.npz")
    assert state["epoch"] == 2 and state["iteration"] == 10
    assert solver.loss_history == reference[0].loss_history[:bad]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0 when clipping
def test_non_finite_advice_is_what_can_be_done(tmp_path):
    # before the first epoch's checkpoint: nothing to resume from, so no advice to resume
    with pytest.raises(NonFiniteLossError) as info:
        _solver(_fail_at(ToyCaptioner(), 2), checkpoint_dir=tmp_path / "early", print_every=1).train()
    message = str(info.value)
    assert "no checkpoint was written" in message and "resume" not in message.lower()
    assert "Train again with a lower learning rate or a smaller grad_clip." in message
    assert info.value.checkpoint_path is None and message.startswith(info.value.facts)
    # after it: resume with a lower learning rate (the only option a resume accepts), or start over
    with pytest.raises(NonFiniteLossError) as info:
        _solver(_fail_at(ToyCaptioner(), 7), checkpoint_dir=tmp_path / "late", grad_clip=None).train()
    message = str(info.value)
    assert info.value.checkpoint_path == tmp_path / "late" / "checkpoint.npz"
    assert "Resume from the checkpoint with a lower learning rate" in message
    assert "lower learning rate or grad_clip." in message and "resume" not in info.value.facts.lower()


def test_resumed_from_says_whether_a_checkpoint_was_loaded(tmp_path):
    _solver(num_epochs=1, checkpoint_dir=tmp_path).train()
    assert _solver(checkpoint_dir=tmp_path, resume=True).resumed_from == tmp_path / "checkpoint.npz"
    assert _solver(checkpoint_dir=tmp_path / "empty", resume=True).resumed_from is None
    assert _solver(checkpoint_dir=tmp_path).resumed_from is None


def test_resume_refuses_other_options_and_other_models(tmp_path):
    _solver(num_epochs=1, checkpoint_dir=tmp_path).train()
    with pytest.raises(ValueError, match="batch_size: checkpoint 5, now 6"):
        _solver(checkpoint_dir=tmp_path, resume=True, batch_size=6)
    with pytest.raises(ValueError, match="does not match this model"):
        _solver(ToyCaptioner(hidden_dim=6), checkpoint_dir=tmp_path, resume=True)


def test_resume_sources(tmp_path, caplog):
    with pytest.raises(FileNotFoundError):
        _solver(resume=tmp_path / "missing.npz")
    fresh = _solver(checkpoint_dir=tmp_path / "empty", resume=True)  # nothing there yet: start over
    assert fresh.iteration == 0
    np.savez(tmp_path / "model.npz", W=np.ones(2))
    with pytest.raises(CheckpointError):
        _solver(resume=tmp_path / "model.npz")
    with pytest.raises(TypeError, match="resume"):
        _solver(resume=1)


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_resume_is_exact_with_the_real_model(tmp_path, cell_type):
    from minicap import CaptioningRNN

    data = toy_data()

    def build(seed=0):
        return CaptioningRNN(data["word_to_idx"], input_dim=4, wordvec_dim=6, hidden_dim=8,
                             cell_type=cell_type, seed=seed)

    options = {**OPTIONS, "num_epochs": 3}
    full = CaptioningSolver(build(), data, **options)
    full.train()
    model = build()
    loss, calls = model.loss, [0]

    def interrupting(features, captions):
        calls[0] += 1
        if calls[0] == 7:  # 5 training batches, then the second validation batch of epoch 1
            raise KeyboardInterrupt
        return loss(features, captions)

    model.loss = interrupting
    with pytest.raises(TrainingInterrupted):
        CaptioningSolver(model, data, checkpoint_dir=tmp_path, **options).train()
    resumed = CaptioningSolver(build(seed=1), data, checkpoint_dir=tmp_path, resume=True, **options)
    resumed.train()
    assert resumed.loss_history == full.loss_history and len(full.loss_history) == 15
    for name, value in full.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], value)
        assert value.dtype == np.float32


# ---------------------------------------------------------------- review fixes


def test_resume_refuses_a_model_with_another_vocabulary_of_the_same_size(tmp_path):
    from minicap import CaptioningRNN

    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "b": 4}
    rng = np.random.default_rng(0)
    data = {"train_captions": rng.integers(1, 5, (6, 4)), "train_image_idxs": np.arange(6) % 3,
            "train_features": rng.standard_normal((3, 4)).astype(np.float32)}
    options = {"verbose": False, "batch_size": 3, "checkpoint_dir": tmp_path}

    def model(words, seed=0):
        return CaptioningRNN(words, input_dim=4, wordvec_dim=5, hidden_dim=6, seed=seed)

    CaptioningSolver(model(vocab), data, num_epochs=1, **options).train()
    other = {"<NULL>": 0, "<START>": 1, "<END>": 2, "dog": 3, "cat": 4}  # same shapes, other words
    with pytest.raises(ValueError, match=r"does not match this model: word_to_idx differ"):
        CaptioningSolver(model(other), data, num_epochs=2, resume=True, **options)
    # the seed only draws the initial weights, which resuming replaces
    assert CaptioningSolver(model(vocab, seed=5), data, num_epochs=2, resume=True, **options).resumed_from


def test_resuming_from_a_model_file_says_which_loader_to_use(tmp_path):
    from minicap import CaptioningRNN

    model = CaptioningRNN({"<NULL>": 0, "a": 1}, input_dim=4, wordvec_dim=5, hidden_dim=6)
    path = model.save(tmp_path / "model.npz")
    data = {"train_captions": np.ones((2, 3), dtype=np.int64), "train_image_idxs": np.zeros(2, dtype=np.int64),
            "train_features": np.zeros((1, 4), dtype=np.float32)}
    with pytest.raises(CheckpointError, match=r"it is a model file .* load it with CaptioningRNN.load\(path\)"):
        CaptioningSolver(model, data, verbose=False, resume=path)
