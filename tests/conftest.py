"""Shared fixtures: the array-module fixture runs a test on NumPy and, when a
GPU works, on CuPy too (marked ``gpu``, skipped with the reason otherwise); and
every test runs with its own MINICAP_HOME, never the user's ~/.cache/minicap."""

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


@pytest.fixture(scope="session", autouse=True)
def isolated_minicap_home(tmp_path_factory):
    """MINICAP_HOME in a temporary folder for the whole session.

    A stale or damaged cache in the user's home must not change a result, and
    the tests must not fill it. Shared by the session, so a dataset cached by
    one test is reused by the next; tests that need a fresh home set their own.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINICAP_HOME", str(tmp_path_factory.mktemp("minicap_home")))
        yield
