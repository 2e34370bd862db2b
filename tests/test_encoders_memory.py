"""The encoders' reused scratch memory: a buffer is handed out again only once nothing refers to it."""

import threading

import numpy as np
import pytest

from minicap.encoders import memory


@pytest.fixture(autouse=True)
def fresh_buffers(monkeypatch):
    monkeypatch.setattr(memory, "MIN_BYTES", 1 << 16)  # the sizes below are small, to keep the test light
    memory._LOCAL.buffers = {}
    yield
    memory._LOCAL.buffers = {}


def address(a):
    """Where a's data starts (holding the array itself would keep its buffer in use)."""
    return a.__array_interface__["data"][0]


def test_a_buffer_is_reused_once_its_arrays_are_gone():
    a = memory.empty((256, 100), np.float32)
    start = address(a)
    del a
    b = memory.empty((256, 100), np.float32)
    assert address(b) == start
    assert b.shape == (256, 100) and b.dtype == np.float32 and b.flags.c_contiguous


def test_a_buffer_in_use_is_not_handed_out_again():
    a = memory.empty((256, 100), np.float32)
    part = a[10:20, ::3]  # a view of the view keeps the buffer too
    del a
    b = memory.empty((256, 100), np.float32)
    assert not np.shares_memory(b, part)
    part[...] = 1.0
    b[...] = 2.0
    assert (part == 1.0).all()


def test_nearby_sizes_share_a_size_class_and_small_arrays_are_plain():
    a = memory.empty((95_000,), np.float32)  # 380,000 bytes: the class of 393,216 (3/4 of 2**19)
    start = address(a)
    del a
    assert address(memory.empty((90_000,), np.float32)) == start  # 360,000 bytes: the same class
    small = memory.empty((10,), np.float32)
    assert small.base is None  # NumPy's own allocation
    for n in [1 << 16, 100_000, 3 << 20, (1 << 26) + 1]:
        assert n <= memory._size_class(n) < 1.25 * n + 1


def test_each_thread_has_its_own_buffers():
    a = memory.empty((256, 100), np.float32)
    start = address(a)
    del a
    seen = []
    thread = threading.Thread(target=lambda: seen.append(address(memory.empty((256, 100), np.float32))))
    thread.start()
    thread.join()
    assert seen[0] != start
    assert address(memory.empty((256, 100), np.float32)) == start  # still this thread's


def test_a_thread_keeps_a_bounded_amount(monkeypatch):
    monkeypatch.setattr(memory, "MAX_KEPT_BYTES", 1 << 20)
    kept = [memory.empty((100_000,), np.float32) for _ in range(3)]  # 3 x 400 KB: the third clears the list
    assert sum(len(b) * s for s, b in memory._LOCAL.buffers.items()) <= 1 << 20
    assert not np.shares_memory(kept[0], kept[2])


def test_cupy_arrays_are_plain(xp):
    a = memory.empty((256, 100), np.float32, xp)
    assert isinstance(a, xp.ndarray) and a.shape == (256, 100)
