"""CaptioningSolver on the toy model: options, minibatches, clipping, validation, best params."""

import logging
import math

import numpy as np
import pytest

from minicap import CaptioningSolver
from minicap.backend import to_numpy
from test_solver_toy import ToyCaptioner, toy_data


def _solver(model=None, data=None, **kwargs):
    kwargs = {"batch_size": 5, "num_epochs": 2, "verbose": False, **kwargs}
    return CaptioningSolver(model or ToyCaptioner(), data or toy_data(), **kwargs)


def test_unknown_keyword_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="learning_rate"):
        _solver(learning_rate=0.1)


@pytest.mark.parametrize("kwargs, match", [
    ({"update_rule": "adagrad"}, "adagrad"),
    ({"batch_size": 0}, "batch_size"),
    ({"num_epochs": 1.5}, "num_epochs"),
    ({"print_every": 0}, "print_every"),
    ({"lr_decay": 0.0}, "lr_decay"),
    ({"grad_clip": -1.0}, "grad_clip"),
    ({"seed": None}, "seed"),
    ({"num_val_samples": 0}, "num_val_samples"),
    ({"val_metric": "BLEU-4"}, "metric_fn"),
    ({"resume": True}, "checkpoint_dir"),
    # wrongly typed: strings used to raise "'>' not supported between instances of 'str' and 'int'"
    ({"lr_decay": "0.9"}, "lr_decay must be a finite number > 0, got '0.9'"),
    ({"lr_decay": float("inf")}, "lr_decay must be a finite number > 0, got inf"),
    ({"grad_clip": "5"}, "grad_clip must be a number > 0 or None, got '5'"),
    ({"num_val_samples": True}, "num_val_samples must be a positive integer or None, got True"),
])
def test_bad_options_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _solver(**kwargs)


def test_bad_data_is_explained():
    data = toy_data()
    del data["train_image_idxs"]
    with pytest.raises(ValueError, match="train_image_idxs"):
        _solver(data=data)
    data = toy_data()
    data["train_image_idxs"] = data["train_image_idxs"] + 100
    with pytest.raises(ValueError, match="index rows"):
        _solver(data=data)
    data = toy_data()
    data["train_captions"] = data["train_captions"].astype(np.float32)
    with pytest.raises(ValueError, match="integer"):
        _solver(data=data)
    data = toy_data()
    data["train_features"] = data["train_features"].tolist()
    with pytest.raises(ValueError, match="NumPy"):
        _solver(data=data)


def _recording(model, seen):
    """Wrap model.loss to record which feature rows each training call saw."""
    loss = model.loss

    def wrapped(features, captions):
        seen.append(to_numpy(features)[:, 0].copy())
        return loss(features, captions)

    model.loss = wrapped
    return model


def test_each_epoch_sees_every_caption_once_in_a_seeded_order():
    data = toy_data(num_train=23, num_images=23)
    # feature row r starts with the value r, so the rows a batch came from can be read back
    data["train_image_idxs"] = np.arange(23, dtype=np.int32)
    data["train_features"][:, 0] = np.arange(23)
    del data["val_captions"]
    runs = []
    for seed in (0, 0, 1):
        seen = []
        solver = _solver(_recording(ToyCaptioner(), seen), data, num_epochs=3, seed=seed)
        solver.train()
        assert solver.iterations_per_epoch == 5 and len(seen) == 15
        assert [len(b) for b in seen[:5]] == [5, 5, 5, 5, 3]
        for epoch in range(3):
            rows = np.concatenate(seen[5 * epoch:5 * epoch + 5]).astype(int)
            assert sorted(rows) == list(range(23))
        runs.append(np.concatenate(seen))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    assert not np.array_equal(runs[0][:23], runs[0][23:46])  # a new permutation each epoch


def test_loss_history_is_host_floats_and_loss_goes_down():
    solver = _solver(optim_config={"learning_rate": 0.05}, num_epochs=20)
    solver.train()
    assert len(solver.loss_history) == 20 * 5
    assert all(type(x) is float for x in solver.loss_history)
    assert np.mean(solver.loss_history[-5:]) < 0.8 * np.mean(solver.loss_history[:5])
    assert len(solver.val_loss_history) == 20 and solver.epoch == 20 and solver.iteration == 100


def test_learning_rate_decays_once_per_epoch():
    solver = _solver(optim_config={"learning_rate": 0.02}, lr_decay=0.5, num_epochs=3)
    solver.train()
    for config in solver.optim_configs.values():
        assert config["learning_rate"] == pytest.approx(0.02 * 0.5**3, rel=1e-15)
        assert config["t"] == 15


@pytest.mark.parametrize("clip", [0.05, 1e6])
def test_clipping_scales_the_global_norm(clip):
    data = toy_data()
    del data["val_captions"]
    model = ToyCaptioner()
    before = {k: v.copy() for k, v in model.params.items()}
    # one sgd step with learning rate 1 on one batch holding all the data: w1 = w0 - scale * g
    solver = _solver(model, data, update_rule="sgd", optim_config={"learning_rate": 1.0},
                     batch_size=len(data["train_captions"]), num_epochs=1, grad_clip=clip)
    solver.train()
    reference = ToyCaptioner()
    _, grads = reference.loss(data["train_features"][data["train_image_idxs"]], data["train_captions"])
    norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    scale = min(1.0, clip / norm)
    assert (scale < 1.0) == (clip < 1.0)
    for name, g in grads.items():
        np.testing.assert_allclose(before[name] - model.params[name], scale * g, rtol=1e-6, atol=1e-12)


def test_validation_loss_is_the_mean_over_captions():
    data = toy_data()
    solver = _solver(data=data, num_epochs=1, num_val_samples=None, batch_size=4)
    solver.train()
    model = solver.model
    per_caption = [
        float(model.loss(data["val_features"][data["val_image_idxs"][[i]]], data["val_captions"][[i]])[0])
        for i in range(len(data["val_captions"]))
    ]
    assert solver.val_loss_history[0] == pytest.approx(np.mean(per_caption), rel=1e-12)


def _param_recorder(values):
    """A metric_fn returning scripted values and recording the parameters and data it saw."""
    calls = []

    def metric_fn(model, data, split):
        calls.append(({k: v.copy() for k, v in model.params.items()}, data, split))
        return {"score": values[len(calls) - 1]}

    return metric_fn, calls


def test_best_params_follow_the_chosen_metric():
    metric_fn, calls = _param_recorder([0.2, 0.7, 0.4])
    solver = _solver(num_epochs=3, metric_fn=metric_fn, val_metric="score")
    solver.train()
    assert solver.best_epoch == 2 and solver.best_val == 0.7
    assert [m["score"] for m in solver.metrics_history] == [0.2, 0.7, 0.4]
    for name, value in calls[1][0].items():
        np.testing.assert_array_equal(solver.best_params[name], value)
        assert isinstance(solver.best_params[name], np.ndarray)
    assert all(split == "val" for _, _, split in calls)
    solver.restore_best_params()
    np.testing.assert_array_equal(solver.model.params["W_vocab"], calls[1][0]["W_vocab"])


def test_best_params_default_to_lowest_val_loss():
    metric_fn, calls = _param_recorder([0.0] * 6)
    solver = _solver(num_epochs=6, metric_fn=metric_fn, optim_config={"learning_rate": 0.3})
    solver.train()
    best = int(np.argmin(solver.val_loss_history))
    assert solver.best_epoch == best + 1
    np.testing.assert_array_equal(solver.best_params["W_embed"], calls[best][0]["W_embed"])


def test_metric_fn_sees_every_caption_of_a_fixed_image_sample():
    metric_fn, calls = _param_recorder([0.0, 0.0])
    data = toy_data(num_val=40, num_images=9)
    solver = _solver(data=data, metric_fn=metric_fn, num_val_samples=3)
    solver.train()
    first, second = calls[0][1], calls[1][1]
    images = set(first["val_image_idxs"].tolist())
    assert len(images) == 3
    expected_rows = [i for i, img in enumerate(data["val_image_idxs"]) if img in images]
    np.testing.assert_array_equal(first["val_captions"], data["val_captions"][expected_rows])
    np.testing.assert_array_equal(second["val_image_idxs"], first["val_image_idxs"])


def test_a_metric_name_that_is_never_returned_is_explained():
    metric_fn, _ = _param_recorder([0.0])
    solver = _solver(num_epochs=1, metric_fn=metric_fn, val_metric="CIDEr")
    with pytest.raises(ValueError, match="CIDEr"):
        solver.train()


def test_quiet_off_a_terminal_and_logs_every_print_every(capsys, caplog):
    solver = _solver(verbose=True, print_every=3, num_epochs=1)
    # The command line sets the iterations logger's own level when it runs in this
    # process (tests/test_cli.py calls main()), so set both levels here.
    with caplog.at_level(logging.INFO, logger="minicap.solver"), \
            caplog.at_level(logging.INFO, logger="minicap.solver.iterations"):
        solver.train()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(")")[0] for line in lines if line.startswith("(Iteration")] == ["(Iteration 3 / 5"]
    assert any(line.startswith("(Epoch 1 / 1)") for line in lines)
    # the iteration lines have their own child logger, which the command line silences
    names = {r.name for r in caplog.records if r.getMessage().startswith("(Iteration")}
    assert names == {"minicap.solver.iterations"}


def test_float32_model_stays_float32():
    model = ToyCaptioner(dtype=np.float32)
    solver = _solver(model, grad_clip=0.1)
    solver.train()
    for name, value in model.params.items():
        assert value.dtype == np.float32, name
        assert solver.optim_configs[name]["m"].dtype == np.float32, name


def test_training_on_the_gpu_keeps_everything_there(xp):
    cpu = _solver(ToyCaptioner(dtype=np.float32), grad_clip=1.0)
    cpu.train()
    model = ToyCaptioner(dtype=np.float32).to("cuda" if xp is not np else "cpu")
    solver = _solver(model, grad_clip=1.0)
    solver.train()
    for name, value in model.params.items():
        assert isinstance(value, xp.ndarray) and isinstance(solver.optim_configs[name]["v"], xp.ndarray)
        assert isinstance(solver.best_params[name], np.ndarray)
    np.testing.assert_allclose(solver.loss_history, cpu.loss_history, rtol=1e-4)


def test_metrics_need_validation_data():
    data = toy_data()
    del data["val_captions"]
    with pytest.raises(ValueError, match="validation data"):
        _solver(data=data, metric_fn=lambda model, data, split: {})


# ---------------------------------------------------------------- review fixes


def test_optim_config_typo_is_reported_by_the_constructor():
    # it used to surface only at the first step, after a forward and backward pass (never with num_epochs=0)
    with pytest.raises(ValueError, match=r"adam: unknown config key\(s\) \['lr'\]"):
        _solver(optim_config={"lr": 1e-3}, num_epochs=0)
    with pytest.raises(TypeError, match=r"sgd: config\['learning_rate'\] must be a number"):
        _solver(update_rule="sgd", optim_config={"learning_rate": "0.1"})


def test_numpy_integer_num_val_samples_is_accepted():
    assert _solver(num_val_samples=np.int64(2))._val_data is not None
