"""Every input and parameter of every layer, checked against central differences in float64.

The numerical gradient of sum(outputs * upstream) is compared with what the
backward returns, for a random upstream gradient. Steps are held to a relative
error of 1e-7. The sequence functions (rnn, lstm, attention over T steps) are
held to 1e-6: their outputs are products of T Jacobians, and the finite
difference error of the recurrent weights grows with them (dWh typically lands
near 1e-8 but can reach ~1e-7 on unlucky draws).
"""


import numpy as np
import pytest

from minicap.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from minicap.layers import temporal_softmax_loss
from test_layers_cases import CASES, to_xp

PAIRS = [(case, i) for case in CASES for i in case.wrt]
PAIR_IDS = [f"{case.name}-{case.input_names()[i]}" for case, i in PAIRS]


def _flat_outputs(xp, outs):
    return xp.concatenate([o.reshape(-1) for o in outs])


@pytest.mark.parametrize("case, i", PAIRS, ids=PAIR_IDS)
def test_backward_matches_numerical_gradient(case, i, xp, rng):
    args = to_xp(xp, case.inputs(rng))
    outs, cache = case.run(*args)
    douts = tuple(xp.asarray(rng.standard_normal(o.shape)) for o in outs)
    analytic = case.back(douts, cache)[case.wrt.index(i)]

    def f(a):
        perturbed = list(args)
        perturbed[i] = a
        return _flat_outputs(xp, case.run(*perturbed)[0])

    numerical = eval_numerical_gradient_array(f, args[i], _flat_outputs(xp, douts))
    tol = 1e-6 if case.sequence else 1e-7
    assert rel_error(analytic, numerical) <= tol


@pytest.mark.parametrize("seed", [0, 1])
def test_temporal_softmax_loss_gradient(xp, seed):
    rng = np.random.default_rng(seed)
    N, T, V = 3, 4, 6
    x = xp.asarray(rng.standard_normal((N, T, V)))
    y = xp.asarray(rng.integers(0, V, size=(N, T)))
    mask = xp.asarray(rng.random((N, T)) < 0.7)
    mask[0] = False  # one fully masked row
    _, dx = temporal_softmax_loss(x, y, mask)
    numerical = eval_numerical_gradient(lambda a: temporal_softmax_loss(a, y, mask)[0], x)
    assert rel_error(dx, numerical) <= 1e-7
    assert float(abs(dx[0]).max()) == 0.0
