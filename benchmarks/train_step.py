"""Training-step speed: minicap against plain PyTorch on the same shapes, same threads.

One training step = loss, backward, and an Adam update of every parameter, at
the shapes of a realistic COCO run (N=128, T=16, D=512, W=256, H=512, V=1004,
float32; the attention cell over a 4x4 grid of D=512 features). minicap's step
runs as ``CaptioningSolver.train`` runs it: inside the thread policy
(``minicap.threads.for_model``) and with freed memory kept (``minicap.heap``).

Each measurement runs in its own process, alternating minicap and PyTorch
(A B A B ...); the script prints medians, the ratio minicap / PyTorch (below 1
means minicap is faster), the achieved GFLOP/s against the float32
matrix-multiply peak measured in the same run, and each process's peak memory.
Run by hand, not as a test:

    python benchmarks/train_step.py                          # all cells, 3 rounds
    python benchmarks/train_step.py --cells lstm --rounds 5 --steps 10 --threads 1
    python benchmarks/train_step.py --device cuda            # CuPy vs PyTorch CUDA
    python benchmarks/train_step.py --baseline ../old-checkout   # before/after, same run
    python benchmarks/train_step.py --impl reference         # the course layers instead of the kernels

``--baseline PATH`` also times the minicap of another checkout (its folder goes
first on PYTHONPATH in those processes), alternated with the others, and prints
this checkout's time over the baseline's.

PyTorch is optional: without it only minicap's times are printed. With
``--device cuda`` both sides are timed on the GPU (CuPy through
``cupyx.profiler.benchmark``, PyTorch with CUDA events).
"""

import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

from machine import cpu_model

SHAPES = dict(N=128, T=16, D=512, W=256, H=512, V=1004, grid=4)


def step_flops(cell, N, T, D, W, H, V, grid=4):
    """Multiply-adds x 2 of the matrix products in one training step (estimate).

    The backward of every product costs two products of the same size (one for
    each operand's gradient), so a step is three times the forward's products,
    less the gradient of the features, which no one needs.
    """
    G = 1 if cell == "rnn" else 4
    L = grid * grid if cell == "attention" else 1
    proj = 2 * N * L * D * H
    fwd = proj + 2 * N * T * (W * G * H + H * G * H + H * V)
    if cell == "attention":
        fwd += 2 * N * T * (H * 4 * H + 2 * L * H)  # attn @ Wattn, scores and context
    return 3 * fwd - proj


def _captions(rng_integers, s, padding):
    """(N, T + 1) captions of random words; with ``padding`` > 0, each row ends at a random
    length so that about that fraction of the targets are <NULL> (COCO's batches: 0.3)."""
    import numpy as np

    N, T, V = s["N"], s["T"], s["V"]
    captions = np.asarray(rng_integers(3, V, (N, T + 1)))
    if padding > 0:
        # lengths uniform in [lo, T] with mean T * (1 - padding); the longest row keeps every column
        lo = max(1, round(2 * T * (1 - padding) - T))
        lengths = np.random.default_rng(1).integers(lo, T + 1, N)
        lengths[0] = T
        for row, length in enumerate(lengths):
            captions[row, length + 1:] = 0
    return captions


def _vocab(V):
    return {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, V)}}


def minicap_step_times(cell, steps, shapes, device="cpu", impl="fast", padding=0.0):
    import numpy as np

    from minicap import CaptioningRNN, optim
    from minicap.backend import to_device

    try:  # what CaptioningSolver.train does first; a --baseline checkout may predate it
        from minicap.heap import keep_freed_memory
    except ImportError:
        pass
    else:
        keep_freed_memory()
    s = shapes
    rng = np.random.default_rng(0)
    options = {} if impl == "fast" else {"impl": impl}  # a baseline checkout may predate impl
    model = CaptioningRNN(_vocab(s["V"]), input_dim=s["D"], wordvec_dim=s["W"], hidden_dim=s["H"],
                          cell_type=cell, **options).to(device)
    shape = (s["N"], s["D"]) + ((s["grid"], s["grid"]) if cell == "attention" else ())
    features = to_device(rng.standard_normal(shape).astype(np.float32), device)
    captions = to_device(_captions(rng.integers, s, padding), device)
    configs = {k: {} for k in model.params}

    def step():
        _, grads = model.loss(features, captions)
        for k, w in model.params.items():
            model.params[k], configs[k] = optim.adam(w, grads[k], configs[k])

    if device == "cuda":
        from cupyx.profiler import benchmark

        result = benchmark(step, n_repeat=steps, n_warmup=2)
        return [float(t) for t in result.gpu_times[0]]
    try:  # the thread policy CaptioningSolver.train runs in; a --baseline checkout may predate it
        from minicap.threads import for_model
    except ImportError:
        policy = contextlib.nullcontext()
    else:
        policy = for_model(model, s["N"])
    times = []
    with policy:
        for _ in range(steps + 2):  # two warm-up steps
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    return times[2:]


def torch_step_times(cell, steps, shapes, device="cpu", padding=0.0):
    import torch

    s = shapes
    N, T, D, W, H, V = (s[k] for k in "NTDWHV")
    g = torch.Generator().manual_seed(0)
    embed = torch.nn.Embedding(V, W)
    proj = torch.nn.Linear(D, H)
    vocab = torch.nn.Linear(H, V)
    modules = [embed, proj, vocab]
    if cell == "rnn":
        rnn = torch.nn.RNN(W, H, batch_first=True)
        modules.append(rnn)
    elif cell == "lstm":
        rnn = torch.nn.LSTM(W, H, batch_first=True)
        modules.append(rnn)
    else:  # no built-in attention LSTM: the explicit loop a user would write
        cell_x = torch.nn.Linear(W, 4 * H)
        cell_h = torch.nn.Linear(H, 4 * H, bias=False)
        cell_a = torch.nn.Linear(H, 4 * H, bias=False)
        modules += [cell_x, cell_h, cell_a]
    for m in modules:
        m.to(device)
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    shape = (N, D) + ((s["grid"], s["grid"]) if cell == "attention" else ())
    features = torch.randn(shape, generator=g).to(device)
    captions = torch.as_tensor(_captions(lambda lo, hi, size: torch.randint(lo, hi, size, generator=g).numpy(),
                                         s, padding)).to(device)

    def loss_fn():
        x = embed(captions[:, :-1])
        if cell == "attention":
            A = proj(features.flatten(2).transpose(1, 2))  # (N, L, H)
            h = c = A.mean(dim=1)
            xa = cell_x(x)
            hs = []
            for t in range(T):
                w = torch.softmax(torch.bmm(A, h.unsqueeze(2)).squeeze(2) / math.sqrt(H), dim=1)
                attn = torch.bmm(w.unsqueeze(1), A).squeeze(1)
                a = xa[:, t] + cell_h(h) + cell_a(attn)
                i, f, o, gg = a.chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                h = torch.sigmoid(o) * torch.tanh(c)
                hs.append(h)
            out = torch.stack(hs, dim=1)
        else:
            h0 = proj(features).unsqueeze(0)
            state = h0 if cell == "rnn" else (h0, torch.zeros_like(h0))
            out, _ = rnn(x, state)
        scores = vocab(out)
        targets = captions[:, 1:]
        nll = torch.nn.functional.cross_entropy(scores.reshape(-1, V), targets.reshape(-1), ignore_index=0,
                                                reduction="sum")
        return nll / N

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()

    times = []
    for i in range(steps + 2):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    return times[2:]


def matmul_peak(impl, device="cpu", n=2048, repeats=5):
    """Best float32 (n, n) @ (n, n) rate in GFLOP/s with this process's threads."""
    if impl == "torch":
        import torch

        a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)
        mm = (lambda: (a @ b, torch.cuda.synchronize())) if device == "cuda" else (lambda: a @ b)
    else:
        import numpy as np

        from minicap.backend import to_device

        a = to_device(np.random.default_rng(0).random((n, n), dtype=np.float32), device)
        b = a.T.copy()
        if device == "cuda":
            import cupy

            mm = lambda: (a @ b, cupy.cuda.Device().synchronize())  # noqa: E731
        else:
            mm = lambda: a @ b  # noqa: E731
    mm()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        mm()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def elementwise_ns(n=1 << 20, repeats=7):
    """NumPy's float32 tanh and exp, in ns per element (best of ``repeats``): the cell
    arithmetic's cost, which differs by a factor of ten between CPU families."""
    import numpy as np

    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    out = np.empty_like(x)
    result = []
    for fn in (np.tanh, np.exp):
        fn(x, out=out)
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x, out=out)
            best = min(best, time.perf_counter() - start)
        result.append(best / n * 1e9)
    return result


def blas_info():
    """Which BLAS and kernel NumPy runs (threadpoolctl), as one short string."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')} "
                     f"threads={i.get('num_threads')}" for i in threadpool_info())


def child(args):
    shapes = json.loads(args.shapes)
    if args.impl == "torch":
        import torch

        torch.set_num_threads(args.threads)
    if args.what == "peak":
        result = {"gflops": matmul_peak(args.impl, args.device)}
        if args.impl == "minicap":
            result["blas"] = blas_info()
            if args.device == "cpu":
                result["tanh_ns"], result["exp_ns"] = elementwise_ns()
    else:
        if args.impl == "minicap":
            times = minicap_step_times(args.what, args.steps, shapes, args.device, args.model_impl, args.padding)
        else:
            times = torch_step_times(args.what, args.steps, shapes, args.device, args.padding)
        result = {"median": statistics.median(times)}
    # ru_maxrss is in KiB on Linux: the process's peak resident memory.
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(impl, what, args, shapes=SHAPES, pythonpath=None):
    """Run one measurement in a fresh process with the thread count pinned
    (``pythonpath``: a checkout whose minicap that process imports)."""
    env = {**os.environ, **{k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "MKL_NUM_THREADS")}}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(pythonpath), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", impl, "--what", what, "--steps", str(args.steps),
           "--threads", str(args.threads), "--device", args.device, "--shapes", json.dumps(shapes),
           "--impl", "fast" if pythonpath else args.model_impl, "--padding", str(args.padding)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return None, lines[-1] if lines else "failed"
    return json.loads(result.stdout.strip().splitlines()[-1]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default="rnn,lstm,attention")
    parser.add_argument("--rounds", type=int, default=3, help="A B pairs per cell")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--impl", choices=("fast", "reference"), default="fast", dest="model_impl",
                        help="minicap's layer functions: the kernels (fast) or the course layers (reference)")
    parser.add_argument("--baseline", metavar="PATH", help="another minicap checkout to time alongside")
    parser.add_argument("--padding", type=float, default=0.0,
                        help="fraction of <NULL> targets, rows ending at random lengths (COCO: about 0.3)")
    parser.add_argument("--child", choices=("minicap", "torch"), dest="impl", help=argparse.SUPPRESS)
    parser.add_argument("--what", help=argparse.SUPPRESS)
    parser.add_argument("--shapes", default=json.dumps(SHAPES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.impl:
        return child(args)

    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores visible")
    peaks = {}
    for impl in ("minicap", "torch"):
        result, err = run_child(impl, "peak", args)
        peaks[impl] = result
        if result:
            extra = f" ({result['blas']})" if "blas" in result else ""
            print(f"{impl} float32 matmul peak: {result['gflops']:.1f} GFLOP/s{extra}")
            if "tanh_ns" in result:
                print(f"NumPy float32 tanh {result['tanh_ns']:.2f} ns/element, exp {result['exp_ns']:.2f} ns/element")
    print(f"shapes {SHAPES}, padding {args.padding:.0%}, float32, {args.device}, {args.threads} threads, "
          f"{args.rounds} alternated rounds x {args.steps} steps, load average {os.getloadavg()[0]:.1f}")
    print(f"{'cell':10s} {'minicap ms':>11s} {'torch ms':>9s} {'ratio':>6s} {'GFLOP/s ours/torch':>19s} "
          f"{'maxrss MB ours/torch':>21s}")
    for cell in args.cells.split(","):
        ours, theirs, base, rss, note = [], [], [], {"minicap": [], "torch": []}, ""
        for _ in range(args.rounds):
            result, err = run_child("minicap", cell, args)
            if err:
                sys.exit(f"minicap failed: {err}")
            ours.append(result["median"])
            rss["minicap"].append(result["maxrss_mb"])
            if args.baseline:
                result, err = run_child("minicap", cell, args, pythonpath=args.baseline)
                if err:
                    sys.exit(f"the baseline's minicap failed: {err}")
                base.append(result["median"])
            result, err = run_child("torch", cell, args)
            if err:
                note = f"(torch: {err})"
            else:
                theirs.append(result["median"])
                rss["torch"].append(result["maxrss_mb"])
        flops = step_flops(cell, **SHAPES)
        a = statistics.median(ours)
        if theirs:
            b = statistics.median(theirs)
            print(f"{cell:10s} {a * 1e3:11.1f} {b * 1e3:9.1f} {a / b:6.2f} {flops / a / 1e9:9.1f} /{flops / b / 1e9:6.1f}"
                  f"   {max(rss['minicap']):9.0f} /{max(rss['torch']):6.0f}")
        else:
            print(f"{cell:10s} {a * 1e3:11.1f} {'-':>9s} {'-':>6s} {flops / a / 1e9:9.1f} /     -"
                  f"   {max(rss['minicap']):9.0f} /     - {note}")
        print(f"{'':10s} rounds ms: minicap {[round(t * 1e3) for t in ours]} torch {[round(t * 1e3) for t in theirs]}")
        if base:
            b = statistics.median(base)
            print(f"{'':10s} baseline {args.baseline}: {b * 1e3:.1f} ms, this checkout / baseline = {a / b:.3f} "
                  f"(rounds ms: {[round(t * 1e3) for t in base]})")


if __name__ == "__main__":
    main()
