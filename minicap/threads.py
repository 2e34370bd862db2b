"""How many BLAS threads minicap's matrix products use.

A second BLAS thread only pays for products large enough to split. For the
small models students train (the demo's hidden size 64, batches of 50) it buys
nothing even on an idle machine, and on a shared one it costs a great deal:
OpenBLAS's worker thread spins after every product, waiting for the next one,
so with another busy process on a two-core machine every product waits for a
core. And it changes the results: with two threads OpenBLAS splits a long
reduction (a weight gradient summed over N*T rows) between them and adds the
halves in another order, so the same run trains to different weights.

So minicap decides, from the size of the recurrent product it is about to run
step after step (rows x H x G multiply-adds: batch x hidden x gate width):

- below ``SMALL_STEP`` multiply-adds: one thread, whatever the BLAS would use;
- otherwise: the BLAS's own count (all cores by default).

Who decides, strongest first:

1. ``limit(n)`` (a context manager; ``--threads N`` on the command line): n threads.
2. The environment: ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``
   set the BLAS's count when the process starts; minicap never goes above it.
3. The size rule above, which can only lower the count.

docs/performance.md has the measurements behind ``SMALL_STEP``.
"""

import contextlib
import os
import threading

# One step's recurrent product below this many multiply-adds runs on one thread. The
# demo's (50 x 64 x 256 = 0.8 M) gains nothing from two; a COCO model's
# (128 x 512 x 2048 = 134 M) gains about 1.6x (docs/performance.md).
SMALL_STEP = 2 ** 24

ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")

_chosen = threading.local()


def _threadpool_limits(n):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


@contextlib.contextmanager
def limit(n):
    """Run the block with ``n`` BLAS threads, overriding minicap's own choice.

    ``limit(None)`` changes nothing. Nested blocks: the innermost wins.
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be a positive integer, got {n!r}")
    previous = getattr(_chosen, "n", None)
    _chosen.n = n
    try:
        with _threadpool_limits(n):
            yield
    finally:
        _chosen.n = previous


def chosen():
    """The count set by an enclosing ``limit(n)``, or None."""
    return getattr(_chosen, "n", None)


def threads_for(rows, hidden_dim, gate_width):
    """What the size rule picks for a recurrent product of rows x hidden_dim x gate_width:
    1, or None for "the BLAS's own count"."""
    return 1 if rows * hidden_dim * gate_width < SMALL_STEP else None


@contextlib.contextmanager
def for_model(model, rows):
    """The block runs ``model``'s work on ``rows`` rows per step (a batch, or a batch
    times the beam) with the threads the rules above give. On the GPU: no change."""
    if chosen() is not None or model.device != "cpu":
        yield
        return
    H = model.hidden_dim
    n = threads_for(rows, H, model.cell.gates * H)
    if n is None:
        yield
        return
    with _threadpool_limits(n):
        yield


def describe():
    """One line: the BLAS libraries NumPy uses and their thread counts, and the environment."""
    from threadpoolctl import threadpool_info

    blas = "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')}): "
                     f"{i.get('num_threads')} threads" for i in threadpool_info() if i.get("user_api") == "blas")
    env = ", ".join(f"{k}={os.environ[k]}" for k in ENV_VARS if k in os.environ)
    return f"{blas or 'no BLAS found'}" + (f" [{env}]" if env else "")
