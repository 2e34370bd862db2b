"""Shared fixtures: the array-module fixture runs a test on NumPy and, when a
GPU works, on CuPy too (marked ``gpu``, skipped with the reason otherwise)."""

import numpy as np
import pytest

from minicap.backend import gpu_available


def _cupy_param():
    marks = [pytest.mark.gpu]
    if not gpu_available():
        marks.append(pytest.mark.skip(reason="no working CUDA device (minicap.backend.gpu_available() is False)"))
    return pytest.param("cupy", marks=marks, id="cupy")


@pytest.fixture(params=[pytest.param("numpy", id="numpy"), _cupy_param()])
def xp(request):
    """The array module under test: numpy, or cupy on a machine with a GPU."""
    if request.param == "numpy":
        return np
    import cupy

    return cupy


@pytest.fixture
def rng():
    """A fresh seeded generator per test, so tests do not depend on order."""
    return np.random.default_rng(0)
