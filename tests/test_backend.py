import numpy as np
import pytest

from minicap import backend
from minicap.backend import get_array_module, scatter_add, to_device, to_numpy


def test_get_array_module_numpy_and_non_arrays():
    assert get_array_module(np.zeros(2), None, 3.0) is np
    assert get_array_module() is np


def test_array_module_fixture_matches_arrays(xp):
    a = xp.ones((2, 3))
    assert get_array_module(a) is xp
    assert get_array_module(None, a) is xp


def test_to_device_round_trip_nested(xp):
    device = "cpu" if xp is np else "cuda"
    tree = {"w": np.arange(6.0).reshape(2, 3), "rest": [np.ones(2), ("name", 3)]}
    moved = to_device(tree, device)
    assert get_array_module(moved["w"]) is xp
    assert moved["rest"][1] == ("name", 3)
    back = to_numpy(moved)
    assert isinstance(back["w"], np.ndarray)
    np.testing.assert_array_equal(back["w"], tree["w"])
    np.testing.assert_array_equal(back["rest"][0], tree["rest"][0])


def test_to_device_rejects_unknown_device():
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        to_device(np.zeros(1), "gpu")


def test_cuda_without_gpu_is_a_clear_error():
    if backend.gpu_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="cuda"):
        to_device(np.zeros(1), "cuda")


def test_scatter_add_accumulates_repeated_indices(xp):
    dst = xp.zeros((4, 2))
    idx = xp.asarray([1, 1, 3, 1])
    src = xp.ones((4, 2))
    scatter_add(dst, idx, src)
    expected = np.zeros((4, 2))
    for i, j in enumerate([1, 1, 3, 1]):  # a plain loop as the independent answer
        expected[j] += 1
    np.testing.assert_array_equal(to_numpy(dst), expected)


def test_gpu_available_is_cached_bool():
    assert backend.gpu_available() in (True, False)
    assert backend.gpu_available() is backend.gpu_available()


def test_to_device_keeps_named_tuples():
    import collections

    Batch = collections.namedtuple("Batch", "features captions")
    moved = to_numpy(Batch(np.zeros(2), [np.ones(1), "name"]))
    assert type(moved) is Batch
    np.testing.assert_array_equal(moved.features, np.zeros(2))
    assert moved.captions[1] == "name"


def test_add_at_distinct_equals_scatter_add_for_distinct_positions(xp):
    rng = np.random.default_rng(0)
    # whole rows at distinct row ids (the kept rows of the scores' backward)
    rows = xp.asarray(rng.permutation(10)[:6])
    src = xp.asarray(rng.standard_normal((6, 3)))
    start = xp.asarray(rng.standard_normal((10, 3)))
    got = backend.add_at_distinct(start.copy(), rows, src)
    assert xp.array_equal(got, scatter_add(start.copy(), rows, src))
    # one element per row (the loss's one-hot term)
    cols = xp.asarray(rng.integers(0, 3, 10))
    vals = xp.asarray(rng.standard_normal(10))
    got = backend.add_at_distinct(start.copy(), (xp.arange(10), cols), vals)
    assert xp.array_equal(got, scatter_add(start.copy(), (xp.arange(10), cols), vals))
    assert not xp.array_equal(got, start)
