"""minicap on a shared machine: idle, and beside one other CPU-bound process.

Runs each command four ways in one invocation, alternated: with minicap's thread
policy (the default) and with it overridden to every core (``--threads
<cores>``, what NumPy does by default), each on an idle machine and with one
busy process (a Python loop) running beside it. Prints wall times and the ratio
busy / idle, which the policy should keep near 1 on a two-core machine. Run by
hand, not as a test:

    python benchmarks/shared_machine.py                  # the attention training run
    python benchmarks/shared_machine.py --demo           # and minicap demo (minutes)
    python benchmarks/shared_machine.py --rounds 3
    python benchmarks/shared_machine.py --demo --policy-only   # skip the slow every-core runs
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from machine import cpu_model

TRAIN = ["train", "--cell", "attention", "--num-train", "1000", "--epochs", "1", "--quiet"]
DEMO = ["demo", "--quiet"]


def run(args, home, out, extra):
    env = {**os.environ, "MINICAP_HOME": home}
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(k, None)  # the BLAS's own default, as a student's shell has it
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "minicap.cli", *args, "--out", out, "--overwrite", *extra],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"minicap {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="also time minicap demo")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--policy-only", action="store_true",
                        help="time only the policy, not --threads <cores> (the demo takes minutes that way when busy)")
    args = parser.parse_args()
    cores = os.cpu_count()
    print(f"CPU: {cpu_model()}; {cores} cores; load average before: {os.getloadavg()[0]:.1f}")
    commands = [("train attention 1000", TRAIN)] + ([("demo", DEMO)] if args.demo else [])
    with tempfile.TemporaryDirectory() as tmp:
        home = os.path.join(tmp, "home")
        # build the data once, untimed
        run(TRAIN[:3] + ["--num-train", "1000", "--epochs", "1", "--quiet"], home, os.path.join(tmp, "warm"), [])
        if args.demo:
            run(["demo", "--quick", "--quiet"], home, os.path.join(tmp, "warm_demo"), [])
        print(f"{'command':22s} {'threads':>10s} {'idle s':>8s} {'busy s':>8s} {'busy/idle':>10s}")
        for name, command in commands:
            ways = [("policy", [])] + ([] if args.policy_only else [(f"{cores} (off)", ["--threads", str(cores)])])
            for label, extra in ways:
                times = {"idle": [], "busy": []}
                for _ in range(args.rounds):
                    times["idle"].append(run(command, home, os.path.join(tmp, "out"), extra))
                    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    try:
                        times["busy"].append(run(command, home, os.path.join(tmp, "out"), extra))
                    finally:
                        busy.kill()
                        busy.wait()
                idle, loaded = statistics.median(times["idle"]), statistics.median(times["busy"])
                print(f"{name:22s} {label:>10s} {idle:8.1f} {loaded:8.1f} {loaded / idle:10.2f}")


if __name__ == "__main__":
    main()
