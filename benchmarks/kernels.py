"""Each fast kernel against the course function it replaces, same process, same inputs.

For every function ``minicap.kernels`` shares with ``minicap.layers``: forward
plus backward at the shapes of a COCO training step (N=128, T=16, W=256, H=512,
V=1004, a 4x4 grid), float32, medians of alternated repeats, and the ratio
kernel / course (below 1: the kernel is faster). Then the model's whole loss
with the embedding folded into the projection and without. Run by hand:

    python benchmarks/kernels.py                 # every pair, 5 repeats
    python benchmarks/kernels.py --repeats 9 --only lstm,attention

Thread count: set OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS) before running;
the script prints what NumPy reports.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from machine import cpu_model  # noqa: E402
import minicap.kernels as K  # noqa: E402
import minicap.layers as L  # noqa: E402
from minicap import CaptioningRNN  # noqa: E402
from minicap.kernels import embed_project  # noqa: E402

N, T, W, H, V, GRID = 128, 16, 256, 512, 1004, 4


def inputs(rng):
    f32 = np.float32

    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(f32)

    x = rng.standard_normal((N, T, W)).astype(f32)
    h0 = rng.standard_normal((N, H)).astype(f32)
    A = rng.standard_normal((N, H, GRID, GRID)).astype(f32)
    ids = rng.integers(3, V, (N, T))
    return {
        "word_embedding": ((ids, w(V, W)), (N, T, W)),
        "rnn": ((x, h0, w(W, H), w(H, H), np.zeros(H, f32)), (N, T, H)),
        "lstm": ((x, h0, w(W, 4 * H), w(H, 4 * H), np.zeros(4 * H, f32)), (N, T, H)),
        "attention": ((x, A, w(W, 4 * H), w(H, 4 * H), w(H, 4 * H), np.zeros(4 * H, f32)), (N, T, H)),
        "lstm_step": ((x[:, 0], h0, h0, w(W, 4 * H), w(H, 4 * H), np.zeros(4 * H, f32)), None),
        "temporal_softmax_loss": ((rng.standard_normal((N, T, V)).astype(f32), rng.integers(0, V, (N, T)),
                                   rng.random((N, T)) < 0.8), None),
    }


def runner(ns, name, args, out_shape, rng):
    forward = getattr(ns, f"{name}_forward", None)
    if name == "temporal_softmax_loss":
        return lambda: ns.temporal_softmax_loss(*args)
    if name == "lstm_step":
        dh = rng.standard_normal((N, H)).astype(np.float32)

        def step():
            _, _, cache = ns.lstm_step_forward(*args)
            ns.lstm_step_backward(dh, dh, cache)
        return step
    backward = getattr(ns, f"{name}_backward")
    dout = rng.standard_normal(out_shape).astype(np.float32)

    def run():
        out, cache = forward(*args)
        if hasattr(out, "lookup"):
            out = out.lookup()  # the deferred lookup, gathered as the course's forward does
        backward(dout, cache)
    return run


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", help="comma-separated names, e.g. lstm,attention")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cases = inputs(rng)
    names = args.only.split(",") if args.only else list(cases) + ["model_fold"]
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    print(f"CPU: {cpu_model()}; NumPy {np.__version__}; BLAS threads: {threads}")
    print(f"shapes N={N} T={T} W={W} H={H} V={V} grid={GRID}x{GRID}, float32, forward + backward, "
          f"median of {args.repeats}, alternated")
    print(f"{'function':24s} {'course ms':>10s} {'kernel ms':>10s} {'kernel/course':>14s}")
    for name in names:
        if name == "model_fold":
            continue
        call_args, out_shape = cases[name]
        slow = runner(L, name, call_args, out_shape, np.random.default_rng(1))
        fast = runner(K, name, call_args, out_shape, np.random.default_rng(1))
        a, b = [], []
        for _ in range(args.repeats):  # alternate, so that load changes hit both sides
            a += timed(slow, 1)
            b += timed(fast, 1)
        ta, tb = statistics.median(a), statistics.median(b)
        print(f"{name:24s} {ta * 1e3:10.1f} {tb * 1e3:10.1f} {tb / ta:14.2f}")
    if "model_fold" in names:
        route = embed_project.embed_project_forward
        vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, V)}}
        model = CaptioningRNN(vocab, input_dim=512, wordvec_dim=W, hidden_dim=H, cell_type="lstm")
        features = rng.standard_normal((N, 512)).astype(np.float32)
        captions = rng.integers(3, V, (N, T + 1))
        times = {True: [], False: []}
        for _ in range(args.repeats):
            for fold in (True, False):
                embed_project.embed_project_forward = lambda *a, fold=fold: route(*a, fold=fold)
                times[fold] += timed(lambda: model.loss(features, captions), 1)
        embed_project.embed_project_forward = route
        folded, plain = statistics.median(times[True]), statistics.median(times[False])
        print(f"{'lstm model.loss, folded':24s} {plain * 1e3:10.1f} {folded * 1e3:10.1f} {folded / plain:14.2f}"
              "   (course column: the same kernels with the fold turned off)")


if __name__ == "__main__":
    main()
