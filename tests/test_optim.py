"""Update rules against steps computed by hand, element by element, in plain Python."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minicap import optim

W0 = [0.5, -1.25, 2.0, 0.0]
DW1 = [0.1, -0.3, 0.0, 2.0]
DW2 = [-0.2, 0.4, 1.5, -0.5]


def _run(rule, config, steps):
    w = np.array(W0, dtype=np.float64)
    for dw in steps:
        w, config = rule(w, np.array(dw, dtype=np.float64), config)
    return w, config


def test_sgd_step():
    w, config = _run(optim.sgd, None, [DW1, DW2])
    expected = [w0 - 1e-2 * a - 1e-2 * b for w0, a, b in zip(W0, DW1, DW2)]
    np.testing.assert_allclose(w, expected, rtol=1e-14)
    assert config["learning_rate"] == 1e-2


def test_sgd_momentum_steps():
    lr, mu = 0.1, 0.8
    w, config = _run(optim.sgd_momentum, {"learning_rate": lr, "momentum": mu}, [DW1, DW2])
    expected, velocity = [], []
    for w0, a, b in zip(W0, DW1, DW2):
        v = -lr * a
        x = w0 + v
        v = mu * v - lr * b
        expected.append(x + v)
        velocity.append(v)
    np.testing.assert_allclose(w, expected, rtol=1e-14)
    np.testing.assert_allclose(config["velocity"], velocity, rtol=1e-14)


def test_rmsprop_steps():
    lr, decay, eps = 0.05, 0.9, 1e-8
    w, _ = _run(optim.rmsprop, {"learning_rate": lr, "decay_rate": decay}, [DW1, DW2])
    expected = []
    for w0, a, b in zip(W0, DW1, DW2):
        cache, x = 0.0, w0
        for g in (a, b):
            cache = decay * cache + (1 - decay) * g * g
            x -= lr * g / (math.sqrt(cache) + eps)
        expected.append(x)
    np.testing.assert_allclose(w, expected, rtol=1e-12)


def _adam_by_hand(lr, b1, b2, eps, grads, w0, weight_decay=0.0):
    m = v = 0.0
    x = w0
    for t, g in enumerate(grads, start=1):
        x = x * (1 - lr * weight_decay)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        # The textbook form; the rule folds the corrections into the step, which moves
        # epsilon by a factor sqrt(1 - b2**t): use an epsilon small enough not to matter.
        x -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return x


def test_adam_steps_match_bias_corrected_textbook_form():
    w, config = _run(optim.adam, {"learning_rate": 0.01, "epsilon": 1e-12}, [DW1, DW2])
    expected = [_adam_by_hand(0.01, 0.9, 0.999, 1e-12, (a, b), w0) for w0, a, b in zip(W0, DW1, DW2)]
    np.testing.assert_allclose(w, expected, rtol=1e-9)
    assert config["t"] == 2


def test_adam_step_with_epsilon_exactly_as_reference():
    # REFERENCE.md: step = lr * sqrt(1 - b2^t) / (1 - b1^t); w -= step * m / (sqrt(v) + eps)
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    w, _ = _run(optim.adam, None, [DW1])
    expected = []
    for w0, g in zip(W0, DW1):
        m, v = (1 - b1) * g, (1 - b2) * g * g
        step = lr * math.sqrt(1 - b2) / (1 - b1)
        expected.append(w0 - step * m / (math.sqrt(v) + eps))
    np.testing.assert_allclose(w, expected, rtol=1e-14)


def test_adamw_decays_then_steps():
    lr, wd = 0.01, 0.1
    w, _ = _run(optim.adamw, {"learning_rate": lr, "weight_decay": wd, "epsilon": 1e-12}, [DW1, DW2])
    expected = [_adam_by_hand(lr, 0.9, 0.999, 1e-12, (a, b), w0, wd) for w0, a, b in zip(W0, DW1, DW2)]
    np.testing.assert_allclose(w, expected, rtol=1e-9)


def test_adamw_with_zero_gradient_only_decays():
    w = np.array(W0)
    w, _ = optim.adamw(w, np.zeros(4), {"learning_rate": 0.5, "weight_decay": 0.2})
    np.testing.assert_allclose(w, [x * 0.9 for x in W0], rtol=1e-15)


def test_defaults_are_the_course_values():
    expected = {
        "sgd": {"learning_rate": 1e-2},
        "sgd_momentum": {"learning_rate": 1e-2, "momentum": 0.9},
        "rmsprop": {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8},
        "adam": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
        # AdamW: Adam's defaults and PyTorch's weight decay (docs/training.md)
        "adamw": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 1e-2},
    }
    for name, defaults in expected.items():
        _, config = optim.RULES[name](np.ones(3), np.ones(3))
        assert {k: config[k] for k in defaults} == defaults, name


def test_adam_minimises_a_quadratic(rng):
    # f(w) = 0.5 * sum(a * (w - c)^2) with curvatures spanning two orders of magnitude
    a = np.geomspace(0.1, 10.0, 20)
    c = rng.standard_normal(20)
    w = c + 5.0 * rng.standard_normal(20)
    start = 0.5 * np.sum(a * (w - c) ** 2)
    config = {"learning_rate": 0.05}
    for _ in range(3000):
        w, config = optim.adam(w, a * (w - c), config)
    assert 0.5 * np.sum(a * (w - c) ** 2) < 1e-6 * start
    np.testing.assert_allclose(w, c, atol=1e-3)


@pytest.mark.parametrize("name", sorted(optim.RULES))
def test_state_lives_with_the_parameter_and_float32_stays(xp, name):
    rule = optim.RULES[name]
    w = xp.asarray(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
    dw = xp.asarray(np.linspace(0.5, -0.5, 12, dtype=np.float32).reshape(3, 4))
    config = None
    for _ in range(2):
        w, config = rule(w, dw, config)
    assert isinstance(w, xp.ndarray) and w.dtype == xp.float32
    for key, value in config.items():
        if hasattr(value, "shape"):
            assert isinstance(value, xp.ndarray), key
            assert value.dtype == xp.float32, key
        else:
            assert isinstance(value, (int, float)), key


@pytest.mark.parametrize("name", sorted(optim.RULES))
def test_rules_reject_typos_and_shape_mismatch(name):
    rule = optim.RULES[name]
    with pytest.raises(ValueError, match="lr"):
        rule(np.ones(3), np.ones(3), {"lr": 0.1})
    with pytest.raises(ValueError, match="shape"):
        rule(np.ones(3), np.ones(4))


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5), elements=st.floats(1.0, 1e3)))
def test_first_adam_step_is_learning_rate_times_sign(grad_magnitude):
    # With t = 1 the corrections cancel: the step is lr * sign(dw), up to eps / (0.03 |dw|).
    signs = np.where(np.arange(grad_magnitude.size).reshape(grad_magnitude.shape) % 2 == 0, 1.0, -1.0)
    dw = grad_magnitude * signs
    w, _ = optim.adam(np.zeros_like(dw), dw, {"learning_rate": 0.1})
    np.testing.assert_allclose(w, -0.1 * signs, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float64, (2, 3), elements=st.floats(-10, 10)), st.floats(1e-4, 1.0))
def test_momentum_zero_is_sgd(dw, lr):
    w_sgd, _ = optim.sgd(np.ones((2, 3)), dw, {"learning_rate": lr})
    w_mom, _ = optim.sgd_momentum(np.ones((2, 3)), dw, {"learning_rate": lr, "momentum": 0.0})
    np.testing.assert_allclose(w_mom, w_sgd, rtol=1e-15, atol=0)


# ---------------------------------------------------------------- review fixes


@pytest.mark.parametrize("name, config, error, match", [
    ("sgd", {"learning_rate": "1e-3"}, TypeError, r"sgd: config\['learning_rate'\] must be a number, got '1e-3' \(str\)"),
    ("adam", {"learning_rate": None}, TypeError, r"adam: config\['learning_rate'\] must be a number, got None"),
    ("adam", {"beta1": 1.0}, ValueError, r"adam: config\['beta1'\] must be in \[0, 1\), got 1.0"),
    ("adamw", {"weight_decay": -0.1}, ValueError, r"config\['weight_decay'\] must be a finite number >= 0"),
    ("rmsprop", {"epsilon": 0.0}, ValueError, r"config\['epsilon'\] must be a finite number > 0"),
    ("sgd_momentum", {"learning_rate": float("nan")}, ValueError, r"config\['learning_rate'\] must be a finite number >= 0"),
    ("sgd_momentum", {"momentum": True}, TypeError, r"config\['momentum'\] must be a number, got True"),
])
def test_hyperparameters_are_checked(name, config, error, match):
    # these used to fail inside NumPy ("can't multiply sequence") or divide by zero (beta1 = 1)
    with pytest.raises(error, match=match):
        optim.RULES[name](np.ones(3), np.ones(3), dict(config))
    with pytest.raises(error, match=match):
        optim.check_config(name, dict(config))


def test_numpy_hyperparameters_become_python_floats():
    w = np.ones(3, dtype=np.float32)
    w, config = optim.adam(w, np.ones(3, dtype=np.float32), {"learning_rate": np.float64(0.1), "beta1": np.array(0.9)})
    assert type(config["learning_rate"]) is float and type(config["beta1"]) is float
    assert w.dtype == np.float32


def test_state_of_another_shape_and_non_arrays_are_explained():
    with pytest.raises(ValueError, match=r"config\['m'\] has shape \(4,\) but the parameter has shape \(3,\)"):
        optim.adam(np.ones(3), np.ones(3), {"m": np.zeros(4)})
    with pytest.raises(TypeError, match="dw must be a NumPy or CuPy array, got list"):
        optim.sgd(np.ones(3), [1.0, 2.0, 3.0])


def test_check_config_ignores_custom_rules_and_accepts_good_configs():
    optim.check_config(lambda w, dw, config: (w, config), {"anything": "goes"})
    optim.check_config(optim.adam, {"learning_rate": 5e-3})
    optim.check_config("adamw", None)
    with pytest.raises(ValueError, match=r"adam: unknown config key\(s\) \['lr'\]"):
        optim.check_config(optim.adam, {"lr": 0.1})
