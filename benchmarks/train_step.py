"""Training-step speed: minicap against plain PyTorch on the same shapes, same threads.

One training step = loss, backward, and an Adam update of every parameter, at
the shapes of a realistic COCO run (N=128, T=16, D=512, W=256, H=512, V=1004,
float32; the attention cell over a 4x4 grid of D=512 features).

Each measurement runs in its own process, alternating minicap and PyTorch
(A B A B ...), and the script prints medians and the ratio minicap / PyTorch
(below 1 means minicap is faster). Run by hand, not as a test:

    python benchmarks/train_step.py                 # all cells, 3 rounds
    python benchmarks/train_step.py --cells lstm --rounds 5 --steps 10

PyTorch is optional: without it only minicap's times are printed.
"""

import argparse
import json
import math
import statistics
import subprocess
import sys
import time

SHAPES = dict(N=128, T=16, D=512, W=256, H=512, V=1004, grid=4)


def minicap_step_times(cell, steps, threads):
    import numpy as np

    from minicap import CaptioningRNN, optim

    s = SHAPES
    rng = np.random.default_rng(0)
    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, s["V"])}}
    model = CaptioningRNN(vocab, input_dim=s["D"], wordvec_dim=s["W"], hidden_dim=s["H"], cell_type=cell)
    shape = (s["N"], s["D"]) + ((s["grid"], s["grid"]) if cell == "attention" else ())
    features = rng.standard_normal(shape).astype(np.float32)
    captions = rng.integers(3, s["V"], size=(s["N"], s["T"] + 1))
    configs = {k: {} for k in model.params}
    times = []
    for _ in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        _, grads = model.loss(features, captions)
        for k, w in model.params.items():
            model.params[k], configs[k] = optim.adam(w, grads[k], configs[k])
        times.append(time.perf_counter() - start)
    return times[2:]


def torch_step_times(cell, steps, threads):
    import torch

    torch.set_num_threads(threads)
    s = SHAPES
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
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    shape = (N, D) + ((s["grid"], s["grid"]) if cell == "attention" else ())
    features = torch.randn(shape, generator=g)
    captions = torch.randint(3, V, (N, T + 1), generator=g)

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
        mask = targets != 0
        nll = torch.nn.functional.cross_entropy(scores.reshape(-1, V), targets.reshape(-1), reduction="none")
        return (nll * mask.reshape(-1)).sum() / N

    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return times[2:]


def child(args):
    import os

    fn = minicap_step_times if args.impl == "minicap" else torch_step_times
    times = fn(args.cell, args.steps, args.threads)
    print(json.dumps({"median": statistics.median(times), "pid": os.getpid()}))


def measure(impl, cell, steps, threads):
    env_threads = {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    import os

    cmd = [sys.executable, __file__, "--child", impl, "--cells", cell, "--steps", str(steps), "--threads", str(threads)]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env_threads})
    if result.returncode != 0:
        return None, result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"
    return json.loads(result.stdout.strip().splitlines()[-1])["median"], None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default="rnn,lstm,attention")
    parser.add_argument("--rounds", type=int, default=3, help="A B pairs per cell")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=("minicap", "torch"), dest="impl")
    args = parser.parse_args()
    if args.impl:
        args.cell = args.cells
        return child(args)
    print(f"shapes {SHAPES}, float32, {args.threads} threads, {args.rounds} alternated rounds x {args.steps} steps")
    print(f"{'cell':10s} {'minicap ms':>11s} {'torch ms':>9s} {'ratio':>6s}")
    for cell in args.cells.split(","):
        ours, theirs, note = [], [], ""
        for _ in range(args.rounds):
            t, err = measure("minicap", cell, args.steps, args.threads)
            if err:
                sys.exit(f"minicap failed: {err}")
            ours.append(t)
            t, err = measure("torch", cell, args.steps, args.threads)
            if err:
                note = f"(torch: {err})"
            else:
                theirs.append(t)
        a = statistics.median(ours) * 1e3
        if theirs:
            b = statistics.median(theirs) * 1e3
            print(f"{cell:10s} {a:11.1f} {b:9.1f} {a / b:6.2f}")
        else:
            print(f"{cell:10s} {a:11.1f} {'-':>9s} {'-':>6s} {note}")


if __name__ == "__main__":
    main()
