"""Where a two-thread LSTM step loses to PyTorch: the elementwise work, measured.

A training step is matrix products (OpenBLAS, on every thread) plus elementwise
work (NumPy, on one thread). This script times the pieces of the second kind at
the LSTM's per-step size, (N, 4H) = (128, 2048) float32, each against a peer in
the same process, and prints the ratios docs/performance.md quotes:

    python benchmarks/elementwise.py             # NumPy only
    python benchmarks/elementwise.py --torch     # plus PyTorch's tanh/sigmoid/exp, same threads

1. the transcendental functions of the gate arithmetic, per element;
2. an operation on an (N, H) column block of an (N, 4H) buffer against the
   same operation on a contiguous (N, H) array;
3. the second core after a matrix product: process CPU time over wall time
   while NumPy runs single-threaded tanh right after a product (OpenBLAS's
   worker thread keeps spinning, so the ratio is near 2 although NumPy uses one
   thread), against the same tanh with no product before it. This needs an
   otherwise idle machine: on a busy one the spinning thread yields its core
   to other processes and both ratios read about 1;
4. the embedding backward's sum of rows per word: ``backend.scatter_rows``
   against NumPy's ``add.at`` on the flattened table.

Set the thread count with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS as for
``train_step.py``; the numbers in the docs used 2.
"""

import argparse
import os
import sys
import time
import timeit

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minicap.backend import scatter_rows  # noqa: E402

N, T, H, V = 128, 16, 512, 1004


def best_us(fn, number=50, repeat=5):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def transcendentals(use_torch):
    x = np.random.default_rng(0).standard_normal(N * 4 * H).astype(np.float32)
    out = np.empty_like(x)
    print(f"1. per element, {x.size} float32 values (ns):")
    for name, fn in [("tanh", np.tanh), ("exp", np.exp)]:
        print(f"   numpy {name:8s} {best_us(lambda: fn(x, out=out)) * 1e3 / x.size:6.2f}")
    if use_torch:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        xt, outt = torch.from_numpy(x), torch.empty(x.size)
        for name, fn in [("tanh", torch.tanh), ("sigmoid", torch.sigmoid), ("exp", torch.exp)]:
            print(f"   torch {name:8s} {best_us(lambda: fn(xt, out=outt)) * 1e3 / x.size:6.2f}"
                  f"   ({torch.get_num_threads()} threads)")


def strided():
    rng = np.random.default_rng(0)
    wide, wide_out = rng.standard_normal((N, 4 * H), dtype=np.float32), np.empty((N, 4 * H), np.float32)
    a, b, out = (rng.standard_normal((N, H), dtype=np.float32) for _ in range(3))
    block = best_us(lambda: np.multiply(wide[:, :H], a, out=wide_out[:, :H]), number=300)
    contiguous = best_us(lambda: np.multiply(b, a, out=out), number=300)
    print(f"2. multiply on a (N, H) column block of (N, 4H): {block:.1f} us, contiguous (N, H): "
          f"{contiguous:.1f} us, ratio {block / contiguous:.2f}")


def spinning():
    rng = np.random.default_rng(0)
    h, Wh = rng.standard_normal((N, H), dtype=np.float32), rng.standard_normal((H, 4 * H), dtype=np.float32)
    x = rng.standard_normal((N, 4 * H), dtype=np.float32)

    def cpu_over_wall(fn, reps):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.process_time() - c0) / (time.perf_counter() - w0)

    def product_then_tanh():
        h @ Wh
        for _ in range(5):
            np.tanh(x)

    h @ Wh  # start the BLAS threads
    after = cpu_over_wall(product_then_tanh, 100)
    time.sleep(1.0)  # let the BLAS workers go to sleep
    alone = cpu_over_wall(lambda: np.tanh(x), 300)
    print(f"3. CPU time / wall time: tanh right after products {after:.2f}, tanh alone {alone:.2f}")


def row_sums():
    rng = np.random.default_rng(0)
    ids = rng.integers(3, V, size=(T, N))
    rows = rng.standard_normal((T, N, 4 * H), dtype=np.float32)

    def add_at():
        table = np.zeros((V * 4 * H,), np.float32)
        flat = (ids.reshape(-1, 1) * (4 * H) + np.arange(4 * H)).reshape(-1)
        np.add.at(table, flat, rows.reshape(-1))
        return table.reshape(V, 4 * H)

    assert np.allclose(add_at(), scatter_rows(ids, rows, V, np.float32), atol=1e-5)
    ours, theirs = best_us(lambda: scatter_rows(ids, rows, V, np.float32), 5), best_us(add_at, 5)
    print(f"4. sum of (N*T, 4H) rows per word: scatter_rows {ours / 1e3:.1f} ms, add.at {theirs / 1e3:.1f} ms, "
          f"ratio {ours / theirs:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch", action="store_true", help="also time PyTorch's elementwise functions")
    args = parser.parse_args()
    print(f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average {os.getloadavg()[0]:.1f}")
    transcendentals(args.torch)
    strided()
    spinning()
    row_sums()


if __name__ == "__main__":
    main()
