"""How the encoders use several CPU cores: a few threads of their own, and BLAS on one thread.

A batch is split into chunks of whole images that run side by side (``Encoder``);
a single image is split instead inside each large block (``blocks``) and each large
lone convolution, into bands of output rows (``run_bands``). NumPy releases the GIL
inside its loops and BLAS calls, so Python threads really run in parallel there.

While they do, each BLAS call gets one thread (``one_blas_thread``): OpenBLAS's
own threads would compete with ours for the same cores, and on a busy machine a
small product then waits for a descheduled BLAS thread (measured: a 0.4 ms
product taking over 100 ms; 64 RegNet images 1.1 s instead of 0.25 s). The limit
uses threadpoolctl when it is installed and does nothing otherwise.
"""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

# A convolution's output is split into bands only above this many values: below
# it, handing a band to another thread (about 60 us) costs more than it saves.
PARALLEL_MIN_OUTPUTS = 1 << 15


class Workers:
    """``threads`` threads: the calling thread and a pool of ``threads - 1``, started on first use."""

    def __init__(self, threads, name="minicap"):
        self.threads = threads
        self._name = name
        self._pool = None

    def map(self, fn, items):
        """[fn(item) for item in items], computed by all the threads, each taking the next item when free.

        The calling thread works too: one hand-over fewer than waiting for the pool, and
        items of uneven cost still spread evenly.
        """
        items = list(items)
        if self.threads == 1 or len(items) < 2:
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix=self._name)
        results = [None] * len(items)
        order = iter(range(len(items)))
        lock = threading.Lock()

        def work():
            while True:
                with lock:
                    i = next(order, None)
                if i is None:
                    return
                results[i] = fn(items[i])

        helpers = [self._pool.submit(work) for _ in range(min(self.threads, len(items)) - 1)]
        work()
        for helper in helpers:
            helper.result()  # re-raises a helper's exception here
        return results


def splits(rows, outputs, workers):
    """Whether ``run_bands`` would split an output of ``rows`` rows and ``outputs`` values among ``workers``."""
    return workers is not None and workers.threads > 1 and outputs >= PARALLEL_MIN_OUTPUTS and rows >= 2


def run_bands(fn, rows, outputs, workers):
    """fn(r0, r1) over bands of ``rows`` output rows: one band per thread of ``workers``
    when the output (``outputs`` values) is large enough, else fn(0, rows) here."""
    if not splits(rows, outputs, workers):
        fn(0, rows)
        return
    parts = min(workers.threads, rows)
    bounds = [rows * i // parts for i in range(parts + 1)]
    workers.map(lambda i: fn(bounds[i], bounds[i + 1]), range(parts))


@contextlib.contextmanager
def one_blas_thread():
    """Within the block, BLAS (OpenBLAS, MKL, ...) runs each call on one thread, if threadpoolctl is installed."""
    controller = _controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


_CONTROLLER = []


def _controller():
    """threadpoolctl's controller (it inspects the loaded libraries once: about 60 ms), or None without it."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]
