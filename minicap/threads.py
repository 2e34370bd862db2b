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

- below ``SMALL_STEP`` multiply-adds: one thread, whatever the BLAS would use, so
  that a small run's result does not depend on the thread count;
- otherwise it measures: at the start of training and of every epoch, that
  product runs a few times on one thread and on the BLAS's own count (all cores
  by default), and the BLAS's count is kept only if it is at least ``MIN_GAIN``
  times faster right now (a low reading is taken again, see ``PROBES``). On an idle
  machine a large model keeps every core; beside another busy process it drops to
  one. The choice can differ between two runs, and with it the last bits of the
  weights: ``--threads N`` pins it.

Who decides, strongest first:

1. ``limit(n)`` (a context manager; ``--threads N`` on the command line): n threads.
2. The environment: ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``
   set the BLAS's count when the process starts; minicap never goes above it.
3. The size rule above, which can only lower the count.

docs/performance.md has the measurements behind ``SMALL_STEP``.
"""

import contextlib
import logging
import statistics
import threading
import time

import numpy as np

log = logging.getLogger(__name__)

# One step's recurrent product below this many multiply-adds runs on one thread. The
# demo's (50 x 64 x 256 = 0.8 M) gains nothing from two; a COCO model's
# (128 x 512 x 2048 = 134 M) gains about 1.6x (docs/performance.md).
SMALL_STEP = 2 ** 24

# Above SMALL_STEP, the BLAS's own count is kept only when it measures at least this much
# faster than one thread at the start of every epoch (a second process on the machine
# makes it slower than one).
MIN_GAIN = 1.2

PROBE_ROWS = 1024

# A measurement below MIN_GAIN is taken again before the policy settles on one thread:
# on a shared virtual machine a momentary disturbance spoils some measurements (2 of
# 20 on an idle 2-core AMD EPYC read 1.13-1.14 against 1.75-2.01 for the others), and
# one spoiled reading would cost a whole epoch its second core. A machine another
# process keeps busy reads low every time.
PROBES = 2

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


def for_model(model, rows):
    """A context manager: the block runs ``model``'s work on ``rows`` rows per step (a
    batch, or a batch times the beam) with the threads the rules above give. Its
    ``recheck()`` measures again (the solver calls it at every epoch). On the GPU, inside
    ``limit(n)``, or for a model that is not a ``CaptioningRNN`` (no recurrent cell to
    size): no change."""
    return _Policy(model, rows)


class _Policy:
    def __init__(self, model, rows):
        self.model, self.rows = model, rows
        self.choice = None  # the thread count set, or None for "left as it was"
        self._limiter = None

    def __enter__(self):
        self.recheck()
        return self

    def __exit__(self, *exc):
        self._restore()

    def recheck(self):
        """Choose again (another process may have started or stopped since)."""
        self._restore()
        if chosen() is not None or not hasattr(self.model, "cell") or self.model.device != "cpu":
            return
        H = self.model.hidden_dim
        G = self.model.cell.gates * H
        n = threads_for(self.rows, H, G)
        if n is None:  # measured on at most PROBE_ROWS rows: the product's shape, not its bulk
            n = _measured_choice(min(self.rows, PROBE_ROWS), H, G, self.model.dtype)
        if n is not None:
            self._limiter = _threadpool_limits(n)
        self.choice = n

    def _restore(self):
        if self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None


def _blas_count():
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else 1


def speedup(rows, H, G, dtype, n, repeats=5):
    """How much faster ``n`` BLAS threads run one (rows, H) @ (H, G) product than one
    thread, now: the median of ``repeats`` alternated timings of three products each."""
    a = np.full((rows, H), 0.01, dtype=dtype)
    w = np.full((H, G), 0.01, dtype=dtype)
    out = np.empty((rows, G), dtype=dtype)
    times = {1: [], n: []}
    for _ in range(repeats):
        for k in (1, n):
            with _threadpool_limits(k):
                start = time.perf_counter()
                for _ in range(3):
                    np.matmul(a, w, out=out)
                times[k].append(time.perf_counter() - start)
    return statistics.median(times[1]) / statistics.median(times[n])


def _measured_choice(rows, H, G, dtype):
    """None (the BLAS's own count) when it is clearly faster than one thread right now,
    else 1. On a machine another process keeps busy, the extra threads wait for a core
    and their spinning slows everything else down: one thread wins there."""
    n = _blas_count()
    if n <= 1:
        return None
    for _ in range(PROBES):
        gain = speedup(rows, H, G, dtype, n)
        log.debug("BLAS threads: %d threads are %.2fx as fast as one for a (%d, %d) @ (%d, %d) product now",
                  n, gain, rows, H, H, G)
        if gain >= MIN_GAIN:
            return None
    return 1

