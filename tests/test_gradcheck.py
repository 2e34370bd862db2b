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
