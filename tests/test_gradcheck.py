import numpy as np

from minicap.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error


def test_numerical_gradient_of_known_function(rng):
    x = rng.standard_normal((3, 4))
    g = eval_numerical_gradient(lambda v: np.sum(v ** 3), x)
    # truncation error of central differences is h^2 f'''/6 ~ 1e-10 absolute here
    assert rel_error(g, 3 * x ** 2) < 1e-7


def test_numerical_gradient_array_is_vjp(rng):
    x = rng.standard_normal((2, 5))
    df = rng.standard_normal((2, 5))
    g = eval_numerical_gradient_array(np.sin, x, df)
    assert rel_error(g, np.cos(x) * df) < 1e-8


def test_checker_restores_input(rng):
    x = rng.standard_normal(6)
    before = x.copy()
    eval_numerical_gradient(lambda v: float(np.sum(v)), x)
    np.testing.assert_array_equal(x, before)


def test_rel_error_definition():
    assert rel_error(np.array([1.0]), np.array([1.0])) == 0.0
    assert abs(rel_error(np.array([1.0]), np.array([3.0])) - 0.5) < 1e-15
    # tiny values are compared against the 1e-8 floor, not divided by ~0
    assert rel_error(np.array([0.0]), np.array([1e-12])) < 1e-3


def test_input_is_restored_when_f_raises():
    import pytest

    for checker in (lambda f, x: eval_numerical_gradient(lambda v: float(f(v).sum()), x),
                    lambda f, x: eval_numerical_gradient_array(f, x, np.ones(3))):
        x = np.arange(3.0)
        calls = []

        def f(v):
            calls.append(1)
            if len(calls) == 2:  # fails on the x - h probe of entry 0
                raise RuntimeError("boom")
            return v.copy()

        with pytest.raises(RuntimeError, match="boom"):
            checker(f, x)
        np.testing.assert_array_equal(x, [0.0, 1.0, 2.0])


def test_non_float_inputs_are_refused_and_float32_warns():
    import pytest

    for bad in (np.array([1, 2, 3]), np.zeros(2, dtype=complex), np.array([True])):
        with pytest.raises(TypeError, match="real floating-point array"):
            eval_numerical_gradient(lambda v: 0.0, bad)
        with pytest.raises(TypeError, match="real floating-point array"):
            eval_numerical_gradient_array(lambda v: v, bad, np.ones(bad.shape))
    with pytest.raises(ValueError, match="positive"):
        eval_numerical_gradient(lambda v: 0.0, np.zeros(2), h=0.0)
    with pytest.warns(RuntimeWarning, match="float32.*float64"):
        g = eval_numerical_gradient(lambda v: float(np.sum(v * v)), np.ones(2, dtype=np.float32))
    assert g.dtype == np.float32


def test_shape_mismatches_are_errors_not_broadcasts():
    import pytest

    # (3, 1) against (3,) would broadcast to (3, 3) and could report 0.0
    with pytest.raises(ValueError, match=r"same shape, got \(3, 1\) and \(3,\)"):
        rel_error(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match=r"df must have the shape of f\(x\), \(2, 3\), got \(2, 1\)"):
        eval_numerical_gradient_array(np.sin, np.zeros((2, 3)), np.ones((2, 1)))
    with pytest.raises(TypeError, match="real arrays"):
        rel_error(np.array([1 + 5j]), np.array([1 + 0j]))
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    assert rel_error(1.0, 3.0) == 0.5
