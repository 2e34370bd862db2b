"""Which of several equivalent formulations of a layer runs fastest here, timed once per shape.

Some trade-offs flip from one CPU to another. RegNet's grouped 3x3 convs (16 channels
per group) as shifted products or through im2col (``ops.Grouped``), one thread, us,
shifted / im2col:

- 2-core AMD EPYC Zen 4 (AVX-512; OpenBLAS's SkylakeX kernels): 8 images of 14x14x64
  544 / 625, of 7x7x160 405 / 333;
- 2-core AMD EPYC Zen 3 (AVX2; OpenBLAS's Haswell kernels): 8 images of 14x14x64
  1342 / 672, one image of 14x14x400 836 / 526, of 28x28x160 1188 / 841.

The shifted products are products with only 16 terms per sum, which one set of kernels
runs well and the other does not. So instead of a size rule tuned on one machine,
``fastest`` runs every formulation on the first call at a shape, twice each, on the
real input, and keeps the one with the best time (best of two: the first run of each
also pays for its fresh buffers). Later calls at that shape run only that one, so a
process gives the same result for the same input from its second call on; two
processes may choose differently where the times are close, and then differ in the last
float32 bits.
"""

import math
import time

TRIALS = 2
# Shapes remembered at most (images of many sizes in one process): then it starts afresh.
MAX_KEYS = 4096

_chosen = {}  # key -> the name of the fastest formulation


def fastest(key, formulations, clock=time.perf_counter):
    """The result of the fastest of ``formulations`` ({name: function of no arguments}, all
    computing the same thing) at ``key`` (a shape: what the times depend on). The first
    call at a key times each formulation ``TRIALS`` times and returns the chosen one's result."""
    name = _chosen.get(key)
    if name is not None:
        return formulations[name]()
    best, results = {}, {}
    for _ in range(TRIALS):
        for name, compute in formulations.items():
            start = clock()
            results[name] = compute()
            best[name] = min(best.get(name, math.inf), clock() - start)
    if len(_chosen) >= MAX_KEYS:
        _chosen.clear()
    # setdefault: where two threads timed the same key at once, both keep the first choice stored.
    return results[_chosen.setdefault(key, min(best, key=best.get))]


def chosen(key):
    """The formulation chosen at ``key``, or None before its first call."""
    return _chosen.get(key)
