"""Moving the model between train() calls moves the solver's state with it.

``model.to(device)`` moves the parameters; the update rules' moments and the running
average of the weights must follow, or the next update mixes devices (CuPy raises
TypeError). Without a GPU, "cuda" is played by the DeviceArray stand-in of
test_layers_backend_purity: a NumPy array that refuses to be mixed with host arrays,
as a CuPy array does. Its arithmetic is NumPy's, so a run that moves must give the
same losses, float for float, as one that never does.
"""

import numpy as np
import pytest

from minicap import CaptioningSolver
from minicap import backend
from minicap.backend import to_device
from test_layers_backend_purity import DeviceArray, FakeCupy
from test_solver_toy import ToyCaptioner, toy_data


class MovableFakeCupy(FakeCupy):
    """FakeCupy with the two host transfers that ``to_device`` uses."""

    def asarray(self, a, dtype=None):
        if isinstance(a, np.ndarray):  # host to device: a copy, as cupy.asarray makes
            return DeviceArray(np.array(a, dtype=dtype, copy=True))
        return FakeCupy.__getattr__(self, "asarray")(a, dtype=dtype)

    def asnumpy(self, a):
        return np.array(a._data, copy=True)


@pytest.fixture
def fake_cuda(monkeypatch):
    """'cuda' is the DeviceArray stand-in for the length of a test."""
    monkeypatch.setattr(backend, "_cupy", MovableFakeCupy())
    monkeypatch.setattr(backend, "gpu_available", lambda: True)


def _solver(model, **kwargs):
    kwargs = {"batch_size": 5, "num_epochs": 1, "verbose": False, "average_decay": 0.9, **kwargs}
    return CaptioningSolver(model, toy_data(), **kwargs)


def _state_arrays(solver):
    arrays = [value for config in solver.optim_configs.values() for value in config.values() if hasattr(value, "shape")]
    return arrays + list(solver.average.sums.values())


@pytest.mark.parametrize("rule", ["adam", "sgd_momentum", "rmsprop"])
def test_moving_the_model_between_train_calls_moves_the_solver_state(fake_cuda, rule):
    straight = _solver(ToyCaptioner(), update_rule=rule, num_epochs=3)
    straight.train()

    model = ToyCaptioner()
    solver = _solver(model, update_rule=rule)
    solver.train()
    for device, kind in (("cuda", DeviceArray), ("cpu", np.ndarray)):
        model.to(device)
        solver.num_epochs += 1
        solver.train()
        assert all(isinstance(value, kind) for value in model.params.values())
        assert all(isinstance(value, kind) for value in _state_arrays(solver)), device
    assert solver.loss_history == straight.loss_history
    assert solver.val_loss_history == straight.val_loss_history
    for name, value in straight.best_params.items():
        np.testing.assert_array_equal(solver.best_params[name], value)


def test_captioning_rnn_moved_between_train_calls(fake_cuda):
    from minicap import CaptioningRNN

    data = toy_data()
    words = {word: i for i, word in enumerate(data["idx_to_word"])}

    def run(moves):
        model = CaptioningRNN(words, input_dim=4, wordvec_dim=6, hidden_dim=5, cell_type="lstm")
        solver = CaptioningSolver(model, data, batch_size=5, num_epochs=0, verbose=False, average_decay=0.9)
        for device in moves:
            model.to(device)
            solver.num_epochs += 1
            solver.train()
        return solver

    moved, straight = run(["cpu", "cuda", "cpu"]), run(["cpu"] * 3)
    assert moved.loss_history == straight.loss_history


def test_without_the_move_the_update_would_mix_devices(fake_cuda):
    # what train() prevents: an update of device parameters with host moments, which the
    # update rule refuses in one line (CuPy itself would raise a TypeError from inside)
    model = ToyCaptioner()
    solver = _solver(model)
    solver.train()
    model.to("cuda")
    with pytest.raises(ValueError, match="is on 'cpu' but the parameter is on 'cuda'"):
        solver._step()


def test_a_model_on_two_devices_is_refused_in_one_line(fake_cuda):
    model = ToyCaptioner()
    solver = _solver(model)
    model.params["W_embed"] = to_device(model.params["W_embed"], "cuda")
    with pytest.raises(ValueError, match=r"on cpu and cuda; move the whole model with model.to\(device\)"):
        solver.train()
    assert solver.iteration == 0


def test_a_resumed_solver_follows_a_model_moved_after_loading(fake_cuda, tmp_path):
    straight = _solver(ToyCaptioner(), num_epochs=2)
    straight.train()
    first = _solver(ToyCaptioner(), checkpoint_dir=tmp_path)
    first.train()
    model = ToyCaptioner()
    resumed = _solver(model, num_epochs=2, checkpoint_dir=tmp_path, resume=True)  # state loaded on the CPU
    model.to("cuda")
    resumed.train()
    assert all(isinstance(value, DeviceArray) for value in _state_arrays(resumed))
    assert resumed.loss_history == straight.loss_history


def test_moving_to_the_gpu_between_train_calls(xp):
    """The same on a real GPU (skipped without one; on NumPy it moves from cpu to cpu)."""
    straight = _solver(ToyCaptioner(dtype=np.float32), num_epochs=2)
    straight.train()
    model = ToyCaptioner(dtype=np.float32)
    solver = _solver(model)
    solver.train()
    model.to("cpu" if xp is np else "cuda")
    solver.num_epochs = 2
    solver.train()
    assert all(isinstance(value, xp.ndarray) for value in _state_arrays(solver))
    np.testing.assert_allclose(solver.loss_history, straight.loss_history, rtol=1e-4)


def test_update_rules_refuse_state_on_another_device(fake_cuda):
    from minicap import optim

    w, dw = np.ones(3), np.full(3, 0.5)
    _, config = optim.adam(w, dw)  # moments made on the host
    moved = to_device(w, "cuda")
    with pytest.raises(ValueError, match=r"adam: config\['m'\] is on 'cpu' but the parameter is on 'cuda'; "
                                         r"move the state with minicap.backend.to_device\(config, 'cuda'\)"):
        optim.adam(moved, to_device(dw, "cuda"), config)
    with pytest.raises(ValueError, match="adam: the gradient is on 'cpu' but the parameter is on 'cuda'"):
        optim.adam(moved, dw, to_device(config, "cuda"))
    w2, config = optim.adam(moved, to_device(dw, "cuda"), to_device(config, "cuda"))
    assert isinstance(w2, DeviceArray) and config["t"] == 2
