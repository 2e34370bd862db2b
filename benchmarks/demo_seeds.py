"""How much the main job's scores depend on the seed.

``minicap demo --seed k`` changes both the shapes world it generates and the
model's initial weights. This script runs the demo for several seeds, each in
its own process, and prints one row per seed and the worst case, so a change
to the recipe (minicap/demo.py) is judged on all of them, not on seed 0.

Run by hand, not as a test (each run takes minutes):

    python benchmarks/demo_seeds.py --seeds 0 1 2 3 4              # one run at a time
    python benchmarks/demo_seeds.py --seeds 0 1 2 3 4 --jobs 2     # two at once, one thread each

With ``--jobs 2`` the runs share the machine, so their ``seconds`` are not the
demo's time on an idle machine; measure that with ``--jobs 1``.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

COLUMNS = ("truth", "grounding", "BLEU-4", "CIDEr-D", "seconds")


def run_seed(seed, out_root, threads):
    out = pathlib.Path(out_root) / f"seed_{seed}"
    env = dict(os.environ)
    if threads:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    code = ("import sys, json; from minicap.demo import run_demo; "
            "print(json.dumps(run_demo(out=sys.argv[1], seed=int(sys.argv[2]), verbose=False)))")
    done = subprocess.run([sys.executable, "-c", code, str(out), str(seed)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"seed {seed} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--out", default=None, help="where the run folders go (default: a temporary folder)")
    args = parser.parse_args(argv)
    threads = 1 if args.jobs > 1 else None
    with tempfile.TemporaryDirectory() as tmp:
        out_root = args.out or tmp
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda s: run_seed(s, out_root, threads), args.seeds))
    print(f"{'seed':>4}  " + "  ".join(f"{c:>9}" for c in COLUMNS))
    for seed, metrics in zip(args.seeds, results):
        print(f"{seed:>4}  " + "  ".join(f"{metrics[c]:>9.3f}" for c in COLUMNS))
    worst = {c: (max if c == "seconds" else min)(m[c] for m in results) for c in COLUMNS}
    print(f"{'worst':>4}  " + "  ".join(f"{worst[c]:>9.3f}" for c in COLUMNS))


if __name__ == "__main__":
    main()
