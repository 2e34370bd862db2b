"""Decoding speed, memory per training step, and how a step grows with N, T, H, V.

Run by hand, not as a test (each part in fresh processes, thread count pinned):

    python benchmarks/decode_memory_scaling.py decode    # greedy and beam-3 images/s
    python benchmarks/decode_memory_scaling.py memory    # tracemalloc peak of one minicap step
    python benchmarks/decode_memory_scaling.py scaling   # lstm step time, one size varied at a time

Shapes are those of ``train_step.py`` (N=128, T=16, D=512, W=256, H=512, V=1004).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import SHAPES, _vocab, run_child  # noqa: E402


def _model_and_batch(cell, shapes):
    import numpy as np

    from minicap import CaptioningRNN

    s = shapes
    rng = np.random.default_rng(0)
    model = CaptioningRNN(_vocab(s["V"]), input_dim=s["D"], wordvec_dim=s["W"], hidden_dim=s["H"], cell_type=cell)
    shape = (s["N"], s["D"]) + ((s["grid"], s["grid"]) if cell == "attention" else ())
    features = rng.standard_normal(shape).astype(np.float32)
    captions = rng.integers(3, s["V"], size=(s["N"], s["T"] + 1))
    return model, features, captions


def decode_child(cell, repeats):
    """Images per second of greedy and beam-3 decoding to a fixed length.

    <END> is never produced on purpose here (random weights could stop early
    and flatter the numbers): every caption runs the full T steps.
    """
    model, features, _ = _model_and_batch(cell, SHAPES)
    model.params["b_vocab"][model.decoding_ids()[2]] = -1e4  # never choose <END>
    N, T = SHAPES["N"], SHAPES["T"]
    out = {}
    for name, run in (("greedy", lambda: model.sample(features, max_length=T)),
                      ("beam3", lambda: model.beam_search(features, beam_size=3, max_length=T))):
        run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        out[name] = N / statistics.median(times)
    return out


def memory_child(cell):
    """Peak bytes NumPy allocated during one step (loss, backward, Adam), by tracemalloc."""
    import tracemalloc

    from minicap import optim

    model, features, captions = _model_and_batch(cell, SHAPES)
    configs = {k: {} for k in model.params}

    def step():
        _, grads = model.loss(features, captions)
        for k, w in model.params.items():
            model.params[k], configs[k] = optim.adam(w, grads[k], configs[k])

    step()  # optimizer state exists before the measured step, as in training
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    params = sum(p.nbytes for p in model.params.values())
    return {"peak_mb": peak / 2**20, "params_mb": params / 2**20}


def child(args):
    if args.part == "decode":
        print(json.dumps(decode_child(args.cell, args.repeats)))
    else:
        print(json.dumps(memory_child(args.cell)))


def run(part, cell, args):
    env = {**os.environ, **{k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "MKL_NUM_THREADS")}}
    cmd = [sys.executable, os.path.abspath(__file__), part, "--child", "--cell", cell,
           "--repeats", str(args.repeats), "--threads", str(args.threads)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("decode", "memory", "scaling"))
    parser.add_argument("--cells", default="rnn,lstm,attention")
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per process (scaling)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    print(f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}")
    if args.part == "decode":
        print(f"{'cell':10s} {'greedy img/s':>13s} {'beam-3 img/s':>13s}   (N={SHAPES['N']}, {SHAPES['T']} words)")
        for cell in args.cells.split(","):
            r = run("decode", cell, args)
            print(f"{cell:10s} {r['greedy']:13.0f} {r['beam3']:13.0f}")
    elif args.part == "memory":
        print(f"{'cell':10s} {'step peak MB':>13s} {'params MB':>10s}")
        for cell in args.cells.split(","):
            r = run("memory", cell, args)
            print(f"{cell:10s} {r['peak_mb']:13.0f} {r['params_mb']:10.1f}")
    else:
        variations = {"N": (64, 256), "T": (8, 32), "H": (256, 1024), "V": (4004,)}
        rows = [("base", SHAPES)] + [(f"{k}={v}", {**SHAPES, k: v}) for k, vs in variations.items() for v in vs]
        print(f"lstm step, one size changed from {SHAPES}")
        print(f"{'shapes':10s} {'minicap ms':>11s} {'torch ms':>9s} {'ratio':>6s}")
        for name, shapes in rows:
            ours, err = run_child("minicap", "lstm", args, shapes)
            if err:
                sys.exit(f"minicap failed: {err}")
            theirs, err = run_child("torch", "lstm", args, shapes)
            b = f"{theirs['median'] * 1e3:9.0f} {ours['median'] / theirs['median']:6.2f}" if theirs else "        -      -"
            print(f"{name:10s} {ours['median'] * 1e3:11.0f} {b}")


if __name__ == "__main__":
    main()
