"""A recurrent loop run as independent loops over blocks of the batch, on several threads.

Inside a recurrence the N rows of a batch never meet: step t of row n reads
only row n of step t - 1 (and the weights, which the loop does not change). So
the T steps over all N rows are the same work as the T steps over rows [0, N/2)
followed by the T steps over rows [N/2, N), and the two halves can run at the
same time. NumPy releases the GIL inside its elementwise loops and BLAS calls,
so Python threads really run side by side there.

Why not leave the second core to the BLAS, as the batched products do? A BLAS
thread helps with each step's (N, H) @ (H, G) product, but the gate arithmetic
between the products (a dozen elementwise passes a step, a third of an LSTM
loop's time at COCO sizes) runs on one core. With a block of rows per thread,
each thread's products run on one BLAS thread and both halves of the gate
arithmetic run at once: docs/kernels.md measures it.

One catch: after a threaded product, OpenBLAS's worker threads spin on their
cores for about 0.1 s, waiting for the next one, and a recurrent loop follows a
large threaded product. Left spinning, they take the core our second thread
needs, and the split loop is slower than the whole one (docs/performance.md).
``threads.one_blas_thread()`` therefore stops them; OpenBLAS starts them again at
its next threaded product.

A loop splits only when the thread policy allows more than one thread
(``threads.row_workers()``: the policy of ``CaptioningSolver.train`` on a large
model and an idle machine, or ``threads.limit(n)``); everywhere else, and always
on the GPU, it runs as one block in the calling thread. The results are the same
either way, bit for bit, for everything but the weight gradients summed over
rows after the loop, which the BLAS adds in another order when it has one thread.
"""

from concurrent.futures import ThreadPoolExecutor

from .. import threads
from ..backend import device_of

# Fewer rows than this per block and the hand-over between threads (tens of
# microseconds a loop) is not worth it.
MIN_ROWS = 16

_pool = {}


def over_rows(buffer, run, N):
    """``run(rows)`` for slices ``rows`` that cover range(N): one per thread that
    ``threads.row_workers()`` allows, or ``run(slice(0, N))`` here.

    ``run`` must write only its own rows of shared buffers. ``buffer``: one of them,
    which tells the device (a loop on the GPU always runs as one block).
    """
    blocks = min(threads.row_workers(), N // MIN_ROWS) if device_of(buffer) == "cpu" else 1
    if blocks <= 1:
        run(slice(0, N))
        return
    bounds = [N * i // blocks for i in range(blocks + 1)]
    rows = [slice(bounds[i], bounds[i + 1]) for i in range(blocks)]
    with threads.one_blas_thread():  # the threads are the parallelism now
        others = [_executor(blocks - 1).submit(run, r) for r in rows[1:]]
        try:
            run(rows[0])  # the calling thread takes a block too
        finally:
            for other in others:
                other.result()  # waits, and re-raises a block's exception here


def _executor(n):
    """A pool of ``n`` threads, made on first use and kept for the next loop."""
    if n not in _pool:
        _pool[n] = ThreadPoolExecutor(n, thread_name_prefix="minicap-rows")
    return _pool[n]
