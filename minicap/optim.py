"""First-order update rules, one function per rule, CS231n's signature.

Every rule is ``rule(w, dw, config=None) -> (next_w, config)``:

- ``w``, ``dw``: a parameter and its gradient, same shape, NumPy or CuPy;
- ``config``: the rule's hyperparameters *and* its state (velocity, moments, step count),
  created on the first call with the parameter's own array module, so a model on the GPU
  keeps its optimizer state there. Pass the returned config back on the next call.

Updates work in place: ``next_w`` is ``w`` itself, modified (so are the state arrays). All
hyperparameters are Python floats, which keeps float32 parameters float32 under both NumPy 1
and NumPy 2 promotion rules.

The formulas are written out in ``docs/training.md``. The rules come first; the checks
every rule runs on its config (``_prepare``, ``check_config``) are at the end of the file.
"""

import math
import numbers

import numpy as np

from .backend import device_of, get_array_module

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam", "adamw", "RULES", "check_config"]


def _zeros(w):
    return get_array_module(w).zeros_like(w)


# Each rule's hyperparameters with their defaults (the course's values), and the state
# it keeps, as a function of w making the initial value.
_ADAM_DEFAULTS = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
_ADAM_STATE = {"m": _zeros, "v": _zeros, "t": lambda w: 0}
_SPECS = {
    "sgd": ({"learning_rate": 1e-2}, {}),
    "sgd_momentum": ({"learning_rate": 1e-2, "momentum": 0.9}, {"velocity": _zeros}),
    "rmsprop": ({"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}, {"cache": _zeros}),
    "adam": (_ADAM_DEFAULTS, _ADAM_STATE),
    "adamw": ({**_ADAM_DEFAULTS, "weight_decay": 1e-2}, _ADAM_STATE),
}


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: w -= learning_rate * dw.

    config: learning_rate (default 1e-2).
    """
    config = _prepare(w, dw, config, "sgd", *_SPECS["sgd"])
    w -= config["learning_rate"] * dw
    return w, config


def sgd_momentum(w, dw, config=None):
    """SGD with momentum: v = momentum * v - learning_rate * dw; w += v.

    config: learning_rate (1e-2), momentum (0.9); state: velocity (zeros like w).
    """
    config = _prepare(w, dw, config, "sgd_momentum", *_SPECS["sgd_momentum"])
    # BEGIN SOLUTION
    v = config["velocity"]
    v *= config["momentum"]
    v -= config["learning_rate"] * dw
    w += v
    # END SOLUTION
    return w, config


def rmsprop(w, dw, config=None):
    """RMSProp: cache = decay_rate * cache + (1 - decay_rate) * dw**2;
    w -= learning_rate * dw / (sqrt(cache) + epsilon).

    config: learning_rate (1e-2), decay_rate (0.99), epsilon (1e-8); state: cache.
    """
    config = _prepare(w, dw, config, "rmsprop", *_SPECS["rmsprop"])
    # BEGIN SOLUTION
    xp = get_array_module(w, dw)
    decay = config["decay_rate"]
    cache = config["cache"]
    cache *= decay
    cache += (1.0 - decay) * dw * dw
    w -= config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"])
    # END SOLUTION
    return w, config


def _adam_step(w, dw, config):
    """The Adam moment updates and step, shared by adam and adamw.

    Every product is formed in one of two scratch arrays with ``out=``, so a step
    allocates two arrays instead of one per operation; the arithmetic, and its
    order, is that of the formula in the docstring of ``adam``.
    """
    # BEGIN SOLUTION
    xp = get_array_module(w, dw)
    beta1, beta2 = config["beta1"], config["beta2"]
    config["t"] += 1  # incremented first: the bias corrections below use t >= 1
    t = config["t"]
    m, v = config["m"], config["v"]
    tmp, denom = xp.empty_like(m), xp.empty_like(v)
    m *= beta1
    m += xp.multiply(1.0 - beta1, dw, out=tmp)
    v *= beta2
    xp.multiply(1.0 - beta2, dw, out=tmp)
    v += xp.multiply(tmp, dw, out=tmp)
    # Bias correction folded into the step size (Kingma & Ba, end of section 2), a Python
    # float so that it cannot promote float32 arrays.
    step = config["learning_rate"] * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    xp.sqrt(v, out=denom)
    denom += config["epsilon"]
    xp.multiply(step, m, out=tmp)
    w -= xp.divide(tmp, denom, out=tmp)
    # END SOLUTION
    return w, config


def adam(w, dw, config=None):
    """Adam with bias correction (CS231n form).

    t += 1; m = beta1 m + (1 - beta1) dw; v = beta2 v + (1 - beta2) dw**2;
    w -= learning_rate * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + epsilon).

    config: learning_rate (1e-3), beta1 (0.9), beta2 (0.999), epsilon (1e-8);
    state: m, v (zeros like w), t (0).
    """
    config = _prepare(w, dw, config, "adam", *_SPECS["adam"])
    return _adam_step(w, dw, config)


def adamw(w, dw, config=None):
    """Adam with decoupled weight decay (Loshchilov & Hutter):
    w *= 1 - learning_rate * weight_decay, then the Adam step.

    config: adam's, plus weight_decay (1e-2). The decay does not go through the moments,
    unlike L2 regularisation added to dw. It applies to every parameter it is given.
    """
    config = _prepare(w, dw, config, "adamw", *_SPECS["adamw"])
    w *= 1.0 - config["learning_rate"] * config["weight_decay"]
    return _adam_step(w, dw, config)


RULES = {rule.__name__: rule for rule in (sgd, sgd_momentum, rmsprop, adam, adamw)}


# ------------------------------------------------------------------ checking a config
# Every rule starts with _prepare: a typo in a key (``lr`` for ``learning_rate``) or a
# value out of range (``beta1 = 1`` divides by zero) is reported here, by name, instead
# of being ignored or failing deep inside NumPy.

# Allowed values of every hyperparameter: a test and how the error message says it.
_IN_UNIT = (lambda v: 0.0 <= v < 1.0, "in [0, 1)")
_NON_NEGATIVE = (lambda v: 0.0 <= v < math.inf, "a finite number >= 0")
_POSITIVE = (lambda v: 0.0 < v < math.inf, "a finite number > 0")
_RANGES = {
    "learning_rate": _NON_NEGATIVE,
    "momentum": _IN_UNIT,
    "decay_rate": _IN_UNIT,
    "beta1": _IN_UNIT,
    "beta2": _IN_UNIT,
    "epsilon": _POSITIVE,
    "weight_decay": _NON_NEGATIVE,
}


def _hyperparameter(rule, key, value):
    """``value`` as a Python float, or a TypeError / ValueError that names the key and the allowed range."""
    is_number = isinstance(value, numbers.Real) or (
        isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu")
    if isinstance(value, (bool, np.bool_)) or not is_number:
        raise TypeError(f"{rule}: config[{key!r}] must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    allowed, meaning = _RANGES[key]
    if not allowed(value):
        raise ValueError(f"{rule}: config[{key!r}] must be {meaning}, got {value!r}")
    return value


def _check_keys(rule, config, defaults, state):
    if not isinstance(config, dict):
        raise TypeError(f"{rule}: config must be a dict or None, got {type(config).__name__}")
    unknown = sorted(set(config) - set(defaults) - set(state))
    if unknown:
        raise ValueError(
            f"{rule}: unknown config key(s) {unknown}; valid hyperparameters are {sorted(defaults)}"
        )


def _prepare(w, dw, config, rule, defaults, state):
    """Check the gradient, fill in default hyperparameters and zero state.

    ``defaults`` maps hyperparameter names to default values, ``state`` maps state names to
    a function of ``w`` making its initial value. A key that is neither is a typo worth
    reporting (``lr`` instead of ``learning_rate`` would otherwise be silently ignored).
    Hyperparameters must be numbers in their range (a string or None would otherwise fail
    deep inside NumPy, and beta1 = 1 divides by zero); they are stored as Python floats.
    """
    for name, value in (("w", w), ("dw", dw)):
        if not hasattr(value, "shape"):
            raise TypeError(f"{rule}: {name} must be a NumPy or CuPy array, got {type(value).__name__}")
    if dw.shape != w.shape:
        raise ValueError(f"{rule}: gradient shape {dw.shape} does not match parameter shape {w.shape}")
    device = device_of(w)
    if device_of(dw) != device:
        raise ValueError(f"{rule}: the gradient is on '{device_of(dw)}' but the parameter is on '{device}'; "
                         "compute the gradient where the parameter lives")
    config = {} if config is None else config
    _check_keys(rule, config, defaults, state)
    for key, value in defaults.items():
        config[key] = _hyperparameter(rule, key, config.get(key, value))
    for key, make in state.items():
        if key not in config:
            config[key] = make(w)
        elif hasattr(config[key], "shape") and config[key].shape != w.shape:
            raise ValueError(f"{rule}: config[{key!r}] has shape {config[key].shape} but the parameter has shape "
                             f"{w.shape}; give every parameter its own config")
        elif hasattr(config[key], "shape") and device_of(config[key]) != device:
            # a parameter moved by model.to(device) after its state was made
            raise ValueError(f"{rule}: config[{key!r}] is on '{device_of(config[key])}' but the parameter is on "
                             f"'{device}'; move the state with minicap.backend.to_device(config, '{device}') "
                             "(CaptioningSolver.train() does this for the model's parameters)")
    return config


def check_config(rule, config):
    """Check a config's keys and hyperparameter values for a rule of ``RULES`` (a name or the
    function) without a parameter; raises as the rule's first call would. For other callables
    it does nothing (their hyperparameters are their own business)."""
    name = rule if isinstance(rule, str) else getattr(rule, "__name__", None)
    if name not in _SPECS or (not isinstance(rule, str) and RULES.get(name) is not rule):
        return
    defaults, state = _SPECS[name]
    config = {} if config is None else config
    _check_keys(name, config, defaults, state)
    for key in defaults:
        if key in config:
            _hyperparameter(name, key, config[key])
