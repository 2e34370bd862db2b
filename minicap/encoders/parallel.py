"""How the encoders use several CPU cores: chunks of images on threads of their own, or BLAS's threads.

A batch is split into chunks of whole images that run side by side (``Encoder``),
each calling BLAS on one thread (``one_blas_thread``): OpenBLAS's own threads would
compete with ours for the same cores, and on a busy machine a small product then
waits for a descheduled BLAS thread (measured: a 0.4 ms product taking over 100 ms;
64 RegNet images 1.1 s instead of 0.25 s). NumPy releases the GIL inside its loops
and BLAS calls, so Python threads really run in parallel there.

A single image is shared in one of three ways, *timed* rather than predicted
(``Workers.sharing_one_image``, ``WayChooser``): each way runs the first calls at an image
size (the very first untimed: it pays one-time costs), and then the fastest runs, with
now and then a call of another way (at doubling intervals), until ``RETRY_S`` seconds
later all are timed again.

- ``BANDS``, for images of at least the network's ``bands_min_pixels`` (256x256): each
  layer is split into bands of output rows, one or more per thread (``run_bands``,
  ``blocks``), BLAS on one thread: every pass of the layer (products, depthwise taps,
  bias, activation) is shared, and each thread keeps working on its own rows. All the
  threads run the network's code together, as a ``Team``, and meet once per layer;
- ``BLAS``: each layer runs whole on the calling thread with BLAS on all the threads: only
  the products are shared, but OpenBLAS hands work to its threads in microseconds (they
  spin while waiting), where handing a band to a Python thread costs about 60 us (a
  wake-up through the kernel), more than the 7x7 and 14x14 blocks of a 224x224 image
  (0.4 to 0.6 ms each) can spare;
- ``ONE``: the calling thread alone.

Why timed: which way wins depends on where the machine's CPUs sit, which a cloud VM does
not say and which changes while it runs. On the 2-core AMD EPYC VM, writing 5.6 MB that
the other CPU had just read took 2,200 us, against 130 us after a read by the same CPU:
BLAS's threads pass every product's operands and results between the CPUs that way (a
448x448 stem's im2col copy: 0.8 ms on one thread, 4.7 ms when BLAS's worker had read the
buffer last). Half an hour earlier the same RegNet image ran far faster through BLAS's
threads (37 ms against 61), most likely with the CPUs closer together (not measured
then). One image, best of 12 calls (ms), one thread / BLAS / bands:

    earlier:     RegNet 448x448 51 / 37 / 39;  RegNet 224x224 16 / 13 / 18
    CPUs apart:  RegNet 448x448 51 / 61 / 42;  RegNet 224x224 16 / 19 / 22;
                 MobileNet v2 448x448 53 / 58 / 39;  MobileNet v2 224x224 14 / 15 / 16

The three ways agree to float32 rounding: a band's fewer rows may take another formulation
of a grouped conv (``ops.Grouped``), a differently ordered sum, and OpenBLAS's threads gave
the same bits as one thread on an AMD EPYC Zen 4 (AVX-512 kernels), but not on a Zen 3
(Haswell kernels: about half the features differ in their last bits).

OpenBLAS's threads keep spinning for about 0.1 s after their last product, so bands
started meanwhile share a core with them (measured: a 14x14x400 block in bands 1.6 ms,
2.4 ms right after a threaded product). So ``BLAS`` is timed last, and each way's best
call counts: a MobileNet v2 448x448 image timed in bands right after BLAS's threads read
52.8 ms, against 38.6.

While our own threads share the work (a batch's chunks, an image's bands), each runs on a
CPU of its own (``Workers.own_cores``): after the process has been idle, the scheduler
first stacks a woken thread on the CPU of the thread that woke it, and the first call then
ran little faster than one thread.

BLAS's threads only pay while the other cores are free. Beside another busy process
OpenBLAS's second thread waits for a core, and its spinning worker takes one from the
busy process in turn (measured, one 224x224 image beside a CPU-bound Python loop, 2
threads: RegNet 29.5 ms, spikes to 166, against 17.3 ms on one thread; MobileNet 38.5,
spikes to 208, against 16.1). So a single image is shared at all (by BLAS's threads or in
bands) only when a core is free for each thread (``other_running_tasks``: the other
processes' running threads, from /proc on Linux); the answer is kept for ``RECHECK_S``
seconds, so that captioning images one by one looks about every other second, not at
every image. Elsewhere the training thread policy's
probe decides (``threads.speedup`` on a product of an image's size): BLAS's threads must
measure at least ``threads.MIN_GAIN`` times faster than one. (A short probe is a weak witness: right after
sleeping, OpenBLAS's worker is scheduled ahead of the busy process for a few milliseconds,
so beside a CPU-bound loop the probe measured 1.7-2.0 for the two threads that then ran a
whole image twice as slowly as one.)

The limits use threadpoolctl when it is installed and do nothing otherwise.
"""

import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from minicap import threads as thread_policy

# How long a measurement of BLAS's threads stands (seconds).
RECHECK_S = 2.0
# The ways to share one image (see the module's docstring).
ONE, BLAS, BANDS = "one thread", "BLAS's threads", "bands"
# Calls per way before the fastest is chosen: WARMUP untimed, then TRIALS timed; and how
# long a choice stands (seconds). A way's first call at an image size pays one-time costs
# that its later calls do not: the trials of ``ops.Grouped``'s formulations at each band
# shape, the rows of repeated weights and biases, the memory pool's buffers. Timed, they
# decided against the faster way: in fresh processes, first and second call (ms),
# MobileNet v2 448x448 in bands 121 and 60 (then 41), RegNet 448x448 105 and 51 (then 43).
WARMUP = 1
TRIALS = 2
RETRY_S = 30.0
# After the trials, one call of another way (each in turn) at the 4th, 8th, 16th ... call
# (doubling, then every 256th), so that a way whose trials met a slow spell of the machine
# gets another chance: its best only improves. Measured, in a benchmark run where the
# host slowed down during the trials, MobileNet v2 448x448 kept BLAS's threads at 54.6 ms
# for the whole case against 40 in bands.
FIRST_PROBE, LAST_PROBE_GAP = 4, 256
# A probe of another way waits until BLAS's threads, if they ran the call before, have
# stopped spinning (about 0.1 s after their last product; see above): beside the spinning
# worker, bands of a RegNet 448x448 image were slowed and never beat BLAS's threads in
# their probes, though they were faster (38-40 ms against about 41.7).
BLAS_SPIN_S = 0.15
# The probe where /proc cannot tell (``threads.speedup``): a (M, K) @ (K, K) float32
# product, about the size of RegNet's 1x1 convs on a 224x224 image (0.3 ms on one core),
# large enough for OpenBLAS to split.
PROBE_M, PROBE_K = 784, 160


class Workers:
    """``threads`` threads: the calling thread and a pool of ``threads - 1``, started on first use."""

    def __init__(self, threads, name="minicap"):
        self.threads = threads
        self._name = name
        self._pool = None
        self._pool_ids = []  # the pool threads' native ids, for ``own_cores``
        self._bands = True  # in bands of rows, or whole (see ``sharing_one_image``)
        self._blas_pays = None  # (when measured, whether BLAS's threads paid then)
        self._chooser = WayChooser()

    @contextlib.contextmanager
    def sharing_one_image(self, height, width, bands_min_pixels=None):
        """Within the block, the threads share the layers of one height x width image in the
        way ``WayChooser`` picks among ``ways_for``'s, and the block's time is recorded for it.
        BLAS gets back the thread count it had on leaving."""
        ways = self.ways_for(height, width, bands_min_pixels)
        way = self._chooser.pick((height, width), ways)
        with one_blas_thread():
            self._bands = way == BANDS
            if way == BLAS:
                set_blas_threads(self.threads)
            try:
                with self.own_cores() if way == BANDS else contextlib.nullcontext():
                    start = time.perf_counter()
                    yield self
                    self._chooser.record((height, width), way, time.perf_counter() - start)
            finally:
                self._bands = True

    def ways_for(self, height, width, bands_min_pixels=None):
        """The ways a height x width image may be shared now, in the order they are timed:
        ``ONE`` alone on one thread or with another process running (``blas_threads_pay``);
        else ``ONE`` and ``BLAS``, after ``BANDS`` for an image of at least ``bands_min_pixels``
        pixels (None: never)."""
        if self.threads < 2 or not self.blas_threads_pay():
            return [ONE]
        # BLAS last: its threads spin on for a while after it, and would slow the way timed next.
        bands = bands_min_pixels is not None and height * width >= bands_min_pixels
        return [BANDS, ONE, BLAS] if bands else [ONE, BLAS]

    @contextlib.contextmanager
    def own_cores(self):
        """Within the block, the calling thread and each pool thread run on a CPU of their own
        (Linux; elsewhere, or with fewer CPUs than threads, nothing changes). Each thread gets
        back the CPUs it was allowed before.

        Why: the threads hand work to each other at every layer, and after the process has
        been idle for a while the scheduler puts a woken thread beside the one that woke it
        (its load history has decayed) and spreads them again only some milliseconds later.
        The first call after a pause then ran no faster than one thread. Measured on the
        2-core AMD EPYC, first call after 0.5 s idle, best / median of 6 (ms): MobileNet v2 on
        one 448x448 image 51.5-59.2 / 63.7-65.0 unpinned, 37.3-44.2 / 47.1-50.5 pinned (back to
        back, both about 36-44); RegNet on 64 images of 112x112 149-172 / 178-182 unpinned,
        146-155 / 149-169 pinned.
        """
        threads = [threading.get_native_id()] + self._ensure_pool_ids()
        try:
            allowed = sorted(os.sched_getaffinity(0))
        except AttributeError:  # no sched_getaffinity: not Linux
            yield
            return
        if self.threads < 2 or len(allowed) < len(threads):
            yield
            return
        before = {}
        try:
            for tid, cpu in zip(threads, allowed):
                before[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, {cpu})
        except OSError:  # a thread gone, or a CPU taken away meanwhile: leave the placement to the OS
            pass
        try:
            yield
        finally:
            for tid, cpus in before.items():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(tid, cpus)

    def _ensure_pool_ids(self):
        """The native ids of the pool's threads, starting the pool (and all its threads) if needed."""
        if self.threads > 1 and self._pool is None:
            started = threading.Barrier(self.threads)

            def record():  # each pool thread's first act: report its id, then wait for the others
                self._pool_ids.append(threading.get_native_id())
                started.wait()

            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix=self._name, initializer=record)
            for _ in range(self.threads - 1):
                self._pool.submit(lambda: None)
            started.wait()  # every pool thread exists and has recorded its id
        return list(self._pool_ids)

    def blas_threads_pay(self):
        """Whether BLAS's threads would speed up an image right now: a free core for each of
        them where /proc says how many other threads run, else a probe product at least
        ``threads.MIN_GAIN`` times faster on ``threads`` threads. Looked at most every
        ``RECHECK_S`` seconds."""
        now = time.monotonic()
        if self._blas_pays is None or now - self._blas_pays[0] > RECHECK_S:
            others = other_running_tasks()
            if others is not None:  # a core for each of our threads beside the others'
                pays = others + self.threads <= usable_cpus()
            else:
                gain = thread_policy.speedup(PROBE_M, PROBE_K, PROBE_K, np.float32, self.threads)
                pays = gain >= thread_policy.MIN_GAIN
            self._blas_pays = (now, pays)
        return self._blas_pays[1]

    def bands_for(self, rows):
        """Whether a single image's layer with ``rows`` output rows is split into bands of rows on the threads."""
        return self._bands and self.threads > 1 and rows >= 2

    def map(self, fn, items):
        """[fn(item) for item in items], computed by all the threads, each taking the next item when free.

        The calling thread works too: one hand-over fewer than waiting for the pool, and
        items of uneven cost still spread evenly.
        """
        items = list(items)
        if self.threads == 1 or len(items) < 2:
            return [fn(item) for item in items]
        self._ensure_pool_ids()
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

    def shared(self, make):
        """make(): outside a ``Team`` only this thread runs the layer's code."""
        return make()

    def run(self, network, x):
        """network(x, ...) for a single image: in bands, by all the threads at once (``team``),
        else here, with BLAS's threads or without."""
        if self._bands and self.threads > 1:
            return self.team(lambda team: network(x, team))
        return network(x, self)

    def team(self, fn):
        """fn(team) on every thread at once, this one and the pool's, all sharing one ``Team``;
        returns this thread's result. An exception in any thread is raised here, once all
        have stopped (the others leave their next meeting with ``BrokenBarrierError``)."""
        self._ensure_pool_ids()
        team = Team(self.threads)

        def run():
            try:
                return fn(team)
            except BaseException:
                team.abort()
                raise

        helpers = [self._pool.submit(run) for _ in range(self.threads - 1)]
        errors, result = [], None
        try:
            result = run()
        except BaseException as err:  # noqa: BLE001 - raised below, after the helpers have stopped
            errors.append(err)
        for helper in helpers:
            try:
                helper.result()
            except BaseException as err:  # noqa: BLE001
                errors.append(err)
        if errors:  # the first error that is not just another thread's aborted meeting
            raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
        return result


class Team:
    """The threads of ``Workers.team``: each runs the same layer code on one image, and they
    meet once per layer instead of handing each layer over.

    A layer sees a ``Team`` where it would see ``Workers``: ``map(fn, items)``, called by
    every thread, computes each item once, on whichever thread takes it first, and returns
    when all the items are done; ``shared(make)`` gives every thread the object that the
    first thread to get there made (the layer's output buffer). Calls are matched by their
    order, which is the same on every thread, as the layer code is.

    Why: handing a block to a pool thread and waiting for it woke a sleeping thread twice
    per block (about 30 us each on the 2-core AMD EPYC VM) and went through the pool's
    queue; threads that only meet at a barrier wake once. Measured (scratch prototype,
    448x448, 2 threads, best of 12 ms): RegNet 39.7 against 41.2 with a hand-over per block.
    """

    def __init__(self, threads):
        self.threads = threads
        self._barrier = threading.Barrier(threads)
        self._lock = threading.Lock()
        self._entries = {}  # call number -> [the shared object, threads yet to take it]
        self._local = threading.local()

    def bands_for(self, rows):
        return self.threads > 1 and rows >= 2

    def shared(self, make):
        calls = getattr(self._local, "calls", 0)
        self._local.calls = calls + 1
        with self._lock:
            entry = self._entries.get(calls)
            if entry is None:
                entry = self._entries[calls] = [make(), self.threads]
            entry[1] -= 1
            if not entry[1]:  # every thread has it: drop ours, so that its buffer can be reused
                del self._entries[calls]
        return entry[0]

    def map(self, fn, items):
        items = list(items)
        state = self.shared(lambda: {"next": 0, "results": [None] * len(items)})
        while True:
            with self._lock:
                i = state["next"]
                state["next"] = i + 1
            if i >= len(items):
                break
            state["results"][i] = fn(items[i])
        self._barrier.wait()
        return state["results"]

    def abort(self):
        """Release the other threads from their meeting (after an error in this one)."""
        self._barrier.abort()


class WayChooser:
    """The fastest way to share an image of each size, from the times of real calls.

    ``pick(key, ways)`` returns a way with fewer than ``WARMUP + TRIALS`` calls if there
    is one (in the order given), else the way with the best time, but at the
    ``FIRST_PROBE``-th call after that and every doubling (then every ``LAST_PROBE_GAP``
    calls) one of the others, in turn (a probe other than BLAS's threads waits for a call
    at least ``BLAS_SPIN_S`` seconds after one through BLAS's threads). ``record(key, way, seconds)`` counts a call, and its
    time once the way's first ``WARMUP`` calls are past. ``RETRY_S`` seconds after a key's
    timings began, every way is timed again, so that the choice follows the machine. A
    single call is a noisy witness; each way's best is taken, as benchmarks do.
    """

    def __init__(self):
        self._times = {}  # key -> (start of the period, {way: (calls, best seconds or None)})
        self._picks = {}  # key -> [calls since the trials, probes so far, a probe is due]
        self._last = (None, 0.0)  # the way of the last recorded call, and when it ended

    def pick(self, key, ways):
        if len(ways) == 1:
            return ways[0]
        now = time.monotonic()
        start, times = self._times.get(key, (None, None))
        if start is None or now - start > RETRY_S:
            start, times = self._times[key] = (now, {})
            self._picks[key] = [0, 0, False]
        for way in ways:
            if times.get(way, (0, None))[0] < WARMUP + TRIALS:
                return way
        best = min(ways, key=lambda way: times[way][1])
        counts = self._picks[key]
        counts[0] += 1
        calls = counts[0]
        if calls >= FIRST_PROBE and (calls & (calls - 1) == 0 or calls % LAST_PROBE_GAP == 0):
            counts[2] = True
        if counts[2]:
            others = [way for way in ways if way != best]
            probe = others[counts[1] % len(others)]
            last_way, last_end = self._last
            if probe != BLAS and last_way == BLAS and now - last_end < BLAS_SPIN_S:
                return best  # BLAS's worker may still spin: probe at a later call
            counts[1] += 1
            counts[2] = False
            return probe
        return best

    def fastest(self, key):
        """The way with the best time at ``key`` in the current period, and that time in
        seconds; (None, None) before any call was timed."""
        timed = {way: best for way, (_, best) in self._times.get(key, (None, {}))[1].items() if best is not None}
        if not timed:
            return None, None
        way = min(timed, key=timed.get)
        return way, timed[way]

    def record(self, key, way, seconds):
        self._last = (way, time.monotonic())
        if key in self._times:
            times = self._times[key][1]
            calls, best = times.get(way, (0, None))
            if calls >= WARMUP:
                best = seconds if best is None else min(best, seconds)
            times[way] = (calls + 1, best)


def splits(rows, workers):
    """Whether ``run_bands`` splits an output of ``rows`` rows among ``workers`` (see ``Workers.bands_for``)."""
    return workers is not None and workers.bands_for(rows)


def shared(workers, make):
    """make(), or the object one thread of a ``Team`` made for all (see ``Team.shared``)."""
    return make() if workers is None else workers.shared(make)


def run_bands(fn, rows, workers):
    """fn(r0, r1) over bands of ``rows`` output rows: one band per thread of ``workers``
    when the output is large enough (``splits``), else fn(0, rows) once (in a ``Team``, by
    the first thread to get there, while the others wait: fn may write a buffer they share)."""
    if not splits(rows, workers):
        if workers is None:
            fn(0, rows)
        else:
            workers.map(lambda _: fn(0, rows), [None])
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


def other_running_tasks(samples=3, interval_s=0.001):
    """How many threads of other processes are running or waiting for a core now (Linux), or
    None where /proc cannot tell.

    /proc/loadavg counts the runnable threads of the whole machine; this process's own
    (this thread, and OpenBLAS's workers, which spin for a while after each product) are
    subtracted. The least of a few samples a millisecond apart, so that a passing task
    (a kernel worker, a shell command) does not count as a busy process.
    """
    counts = []
    try:
        for i in range(samples):
            if i:
                time.sleep(interval_s)
            # Our spinning threads can change state while we read: count each of ours that
            # runs just before or just after the machine's count.
            before = _running_threads_here()
            with open("/proc/loadavg", encoding="ascii") as f:
                runnable = int(f.read().split()[3].split("/")[0])
            ours = len(before | _running_threads_here())
            counts.append(max(0, runnable - ours))
    except (OSError, ValueError, IndexError):
        return None
    return min(counts)


def usable_cpus():
    """How many CPUs this process may run on (its affinity on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _running_threads_here():
    """The ids of this process's threads that are running or runnable (Linux's /proc)."""
    running = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii", errors="replace") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "R":
                    running.add(tid)
        except FileNotFoundError:  # a thread that has just ended
            pass
    return running


def set_blas_threads(count):
    """Give BLAS ``count`` threads from now on (if threadpoolctl is installed): a few microseconds,
    unlike entering threadpoolctl's ``limit``, so it can change from one layer to the next."""
    controller = _controller()
    if controller is not None:
        for lib in controller.select(user_api="blas").lib_controllers:
            lib.set_num_threads(count)


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
