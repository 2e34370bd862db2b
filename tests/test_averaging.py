"""The running average of the parameters (minicap/averaging.py) and the solver's use of it."""

import numpy as np
import pytest

from minicap import CaptioningSolver
from minicap.averaging import ParameterAverage
from minicap.figures import generated_words
from test_solver_toy import ToyCaptioner, toy_data

OPTIONS = {"batch_size": 5, "verbose": False, "optim_config": {"learning_rate": 0.05}, "seed": 3}


def test_average_is_the_weighted_mean_of_every_step(rng):
    decay = 0.9
    steps = [{"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)} for _ in range(7)]
    average = ParameterAverage(decay)
    assert average.averaged() is None
    for params in steps:
        average.update(params)
    # written out: weight decay^(t - i) for step i of t, normalised to sum to one
    weights = np.array([decay ** (len(steps) - 1 - i) for i in range(len(steps))])
    weights /= weights.sum()
    for name in ("w", "b"):
        expected = sum(wt * params[name] for wt, params in zip(weights, steps))
        np.testing.assert_allclose(average.averaged()[name], expected, rtol=1e-12)


def test_decay_zero_is_the_last_step_and_float32_stays_float32(rng):
    average = ParameterAverage(0.0)
    for _ in range(3):
        last = {"w": rng.standard_normal(5).astype(np.float32)}
        average.update(last)
    got = average.averaged()["w"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, last["w"])


def test_update_does_not_alias_the_parameters(rng):
    params = {"w": rng.standard_normal(3)}
    average = ParameterAverage(0.5)
    average.update(params)
    params["w"] += 100.0  # an optimizer that updates in place must not move the average
    np.testing.assert_allclose(average.averaged()["w"], params["w"] - 100.0)


@pytest.mark.parametrize("decay", [1.0, -0.1, "0.9", True, None])
def test_bad_decay_is_explained(decay):
    with pytest.raises(ValueError, match=r"average_decay must be a number in \[0, 1\)"):
        ParameterAverage(decay)


def test_solver_keeps_the_average_and_trains_the_raw_weights():
    data = {k: v for k, v in toy_data().items() if not k.startswith("val_")}  # no validation: keep the latest
    model = ToyCaptioner()
    solver = CaptioningSolver(model, data, num_epochs=3, average_decay=0.8, **OPTIONS)
    solver.train()
    averaged = solver.average.averaged()
    assert solver.average.steps == solver.iteration == 15
    for name in model.params:
        np.testing.assert_array_equal(solver.best_params[name], averaged[name])
        assert not np.array_equal(model.params[name], averaged[name])  # training kept its own weights
    solver.restore_best_params()
    for name in model.params:
        np.testing.assert_array_equal(model.params[name], averaged[name])


def test_validation_sees_the_average():
    model = ToyCaptioner()
    seen = []
    loss = model.loss

    def recording(features, captions):
        seen.append({k: v.copy() for k, v in model.params.items()})
        return loss(features, captions)

    model.loss = recording
    solver = CaptioningSolver(model, toy_data(), num_epochs=1, average_decay=0.5, **OPTIONS)
    solver.train()
    averaged = solver.average.averaged()
    validation_calls = seen[solver.iteration:]  # training batches first, then the epoch's validation
    assert validation_calls
    for params in validation_calls:
        for name in params:
            np.testing.assert_array_equal(params[name], averaged[name])


def test_resume_with_averaging_is_exact(tmp_path):
    whole = CaptioningSolver(ToyCaptioner(), toy_data(), num_epochs=3, average_decay=0.7, **OPTIONS)
    whole.train()
    first = CaptioningSolver(ToyCaptioner(), toy_data(), num_epochs=1, average_decay=0.7,
                             checkpoint_dir=tmp_path, **OPTIONS)
    first.train()
    rest = CaptioningSolver(ToyCaptioner(), toy_data(), num_epochs=3, average_decay=0.7,
                            checkpoint_dir=tmp_path, resume=True, **OPTIONS)
    rest.train()
    assert rest.average.steps == whole.average.steps
    for name, value in whole.average.averaged().items():
        np.testing.assert_array_equal(rest.average.averaged()[name], value)
        np.testing.assert_array_equal(rest.best_params[name], whole.best_params[name])
    with pytest.raises(ValueError, match="average_decay: checkpoint 0.7, now 0.9"):
        CaptioningSolver(ToyCaptioner(), toy_data(), num_epochs=3, average_decay=0.9,
                         checkpoint_dir=tmp_path, resume=True, **OPTIONS)


def test_generated_words_add_end_only_when_the_decoder_wrote_it():
    assert generated_words("a red circle", 5) == ["a", "red", "circle", "<END>"]
    assert generated_words(["a", "red", "circle"], 3) == ["a", "red", "circle"]  # cut at max_length
