"""Properties every layer must have, over random shapes (hypothesis).

Shapes include size 1 on every axis (one example, one step, H = 1) and
non-square attention grids. Word ids come from a few words, so they repeat.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicap.backend import to_numpy
from minicap.gradcheck import eval_numerical_gradient_array, rel_error
from minicap.layers import temporal_softmax_loss
from test_layers_cases import CASE_IDS, CASES, assert_tree_equal, snapshot, to_xp

dims = st.fixed_dictionaries({
    "N": st.integers(1, 3), "T": st.integers(1, 3), "D": st.integers(1, 3), "H": st.integers(1, 3),
    "V": st.integers(1, 4), "W": st.integers(1, 3), "Hs": st.integers(1, 3), "Ws": st.integers(1, 3),
})
seeds = st.integers(0, 2**32 - 1)
# The xp fixture only names a module, so reusing it across examples is safe.
small = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _forward_backward(case, xp, d, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    args = to_xp(xp, case.inputs(rng, d, dtype))
    outs, cache = case.run(*args)
    douts = tuple(xp.asarray(rng.standard_normal(o.shape).astype(dtype)) for o in outs)
    return args, outs, cache, douts


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@small
@given(d=dims, seed=seeds)
def test_backward_is_repeatable_and_mutates_nothing(case, xp, d, seed):
    args, outs, cache, douts = _forward_backward(case, xp, d, seed)
    before = snapshot((args, outs, cache, douts))
    first = case.back(douts, cache)
    assert_tree_equal((args, outs, cache, douts), before, "inputs, outputs, cache or upstream gradient")
    assert_tree_equal(case.back(douts, cache), first, "second backward")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@small
@given(d=dims, seed=seeds)
def test_float32_stays_float32(case, xp, d, seed):
    args, outs, cache, douts = _forward_backward(case, xp, d, seed, np.float32)
    grads = case.back(douts, cache)
    for k, a in enumerate((*outs, *grads)):
        assert a.dtype == np.float32, f"result {k} is {a.dtype}"
    # The same computation in float64 agrees to float32 precision.
    args64, outs64, cache64, douts64 = _forward_backward(case, xp, d, seed)
    grads64 = case.back(tuple(dd.astype(np.float64) for dd in douts), cache64)
    for a, b in zip((*outs, *grads), (*outs64, *grads64)):
        assert float(abs(a.astype(np.float64) - b).max()) <= 1e-4 * (1 + float(abs(b).max()))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(d=dims, seed=seeds)
def test_gradients_on_random_shapes(case, xp, d, seed):
    args, outs, cache, douts = _forward_backward(case, xp, d, seed)
    grads = case.back(douts, cache)
    flat_douts = xp.concatenate([o.reshape(-1) for o in douts])
    for i, analytic in zip(case.wrt, grads):
        def f(a, i=i):
            perturbed = list(args)
            perturbed[i] = a
            return xp.concatenate([o.reshape(-1) for o in case.run(*perturbed)[0]])

        numerical = eval_numerical_gradient_array(f, args[i], flat_douts)
        # rel_error is elementwise, and random draws put some entries near zero
        # (1e-7 and below), where the absolute error of central differences
        # (~1e-12, set by the array's scale) alone exceeds 1e-6 relative. So
        # each entry may also differ by 1e-7 of the array's largest entry; a
        # wrong backward misses by far more than either bound.
        a, n = to_numpy(analytic), to_numpy(numerical)
        bound = 1e-6 * (np.abs(a) + np.abs(n)) + 1e-7 * np.abs(n).max()
        assert np.all(np.abs(a - n) <= bound), f"input {i}: rel_error {rel_error(a, n):.1e}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(N=st.integers(1, 4), T=st.integers(1, 4), V=st.integers(1, 5), seed=seeds)
def test_loss_properties(xp, N, T, V, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, V)).astype(np.float32)
    y = rng.integers(0, V, size=(N, T))
    mask = rng.random((N, T)) < 0.6
    mask[rng.integers(0, N)] = False  # at least one fully masked row
    loss, dx = temporal_softmax_loss(xp.asarray(x), xp.asarray(y), xp.asarray(mask))
    assert loss.shape == () and loss.dtype == np.float32 and dx.dtype == np.float32
    dx = to_numpy(dx)
    assert float(loss) >= 0.0
    # Masked steps get no gradient; kept steps' gradients sum to zero over V
    # (p sums to one, the one-hot too) and are negative only at the target.
    assert np.all(dx[~mask] == 0)
    np.testing.assert_allclose(dx.sum(axis=2), 0, atol=1e-6)
    for n, t in zip(*np.nonzero(mask)):
        below = np.nonzero(dx[n, t] < 0)[0]
        assert set(below) <= {y[n, t]}
