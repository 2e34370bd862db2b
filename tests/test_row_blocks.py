"""The recurrent loops split by rows among threads (kernels/_row_blocks.py).

A loop split into blocks of rows must give exactly what the whole loop gives,
bit for bit: the rows never meet inside a recurrence. Only the weight gradient
summed over the rows after the loop may differ in its last bits (the BLAS adds
in another order on one thread). And while our threads run, OpenBLAS's own idle
workers must be gone, or they spin on the cores our threads need.
"""

import os
import threading

import numpy as np
import pytest

from minicap import threads
from minicap.kernels import _row_blocks
from minicap.kernels.attention_lstm import attention_loop_backward, attention_loop_forward
from minicap.kernels.lstm import lstm_loop_backward, lstm_loop_forward
from minicap.kernels.rnn import rnn_loop_backward, rnn_loop_forward

N, T, H, L = 37, 5, 6, 4  # 37 rows: two blocks of unequal size


def _inputs(cell, dtype):
    rng = np.random.default_rng(0)
    G = {"rnn": H, "lstm": 4 * H, "attention": 4 * H}[cell]
    a = rng.standard_normal((T, N, G)).astype(dtype)
    dh = rng.standard_normal((N, T, H)).astype(dtype)
    if cell == "rnn":
        h0, Wh = rng.standard_normal((N, H)).astype(dtype), rng.standard_normal((H, G)).astype(dtype) / 3
        return a, (h0, Wh), dh
    if cell == "lstm":
        h0, Wh = rng.standard_normal((N, H)).astype(dtype), rng.standard_normal((H, G)).astype(dtype) / 3
        return a, (h0, Wh), dh
    A = rng.standard_normal((N, H, 2, 2)).astype(dtype)
    Wh, Wattn = (rng.standard_normal((H, G)).astype(dtype) / 3 for _ in range(2))
    return a, (A, Wh, Wattn), dh


LOOPS = {
    "rnn": (rnn_loop_forward, rnn_loop_backward),
    "lstm": (lstm_loop_forward, lstm_loop_backward),
    "attention": (attention_loop_forward, attention_loop_backward),
}


def _run(cell, dtype, n_threads):
    forward, backward = LOOPS[cell]
    a, args, dh = _inputs(cell, dtype)
    with threads.limit(n_threads):
        h, cache = forward(a, *args)
        h = h.copy()
        grads = backward(dh, cache)
    return h, grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", sorted(LOOPS))
def test_a_split_loop_gives_what_the_whole_loop_gives(cell, dtype):
    h1, grads1 = _run(cell, dtype, 1)
    h2, grads2 = _run(cell, dtype, 2)
    np.testing.assert_array_equal(h2, h1)
    da1, *rest1 = grads1
    da2, *rest2 = grads2
    np.testing.assert_array_equal(da2, da1)  # every step's gradient: computed inside the loop
    if cell != "attention":
        np.testing.assert_array_equal(rest2[0], rest1[0])  # dh0, likewise
    for got, want in zip(rest2, rest1):  # the weight gradients: sums over rows after the loop
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_the_blocks_cover_the_rows_once_on_as_many_threads():
    seen = []
    lock = threading.Lock()

    def run(rows):
        with lock:
            seen.append((rows, threading.current_thread().name))

    with threads.limit(2):
        _row_blocks.over_rows(np.empty(0), run, N)
    covered = sorted(r for rows, _ in seen for r in range(N)[rows])
    assert covered == list(range(N))
    assert len({name for _, name in seen}) == 2  # the calling thread and one pool thread


@pytest.mark.parametrize("n, rows", [(1, 100), (2, 2 * _row_blocks.MIN_ROWS - 1)])
def test_one_thread_or_few_rows_run_as_one_block_here(n, rows):
    seen = []
    with threads.limit(n):
        _row_blocks.over_rows(np.empty(0), lambda r: seen.append((r, threading.current_thread().name)), rows)
    assert seen == [(slice(0, rows), threading.current_thread().name)]


def test_an_exception_in_a_block_reaches_the_caller():
    def run(rows):
        if rows.start > 0:
            raise ValueError("block failed")

    with threads.limit(2), pytest.raises(ValueError, match="block failed"):
        _row_blocks.over_rows(np.empty(0), run, 64)


def _openblas_pthreads():
    from threadpoolctl import threadpool_info

    return any(i.get("internal_api") == "openblas" and i.get("threading_layer") == "pthreads"
               for i in threadpool_info())


def _task_count():
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or not _openblas_pthreads(),
                    reason="counts OpenBLAS's worker threads through /proc")
def test_openblas_workers_are_stopped_while_our_threads_run_and_come_back():
    a = np.full((512, 512), 0.5, np.float32)
    with threads.limit(2):
        a @ a  # OpenBLAS starts its worker thread (if it had none)
        with_workers = _task_count()
        with threads.one_blas_thread():
            assert _task_count() == with_workers - 1  # the one worker of two BLAS threads is gone
            np.testing.assert_array_equal(a @ a, np.full((512, 512), 128.0, np.float32))
        np.testing.assert_array_equal(a @ a, np.full((512, 512), 128.0, np.float32))
        assert _task_count() == with_workers  # started again by the threaded product
