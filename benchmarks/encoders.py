"""minicap's encoders against torchvision's on the CPU: time, peak memory, agreement, side by side.

Needs torch and torchvision (the speed section of docs/encoders.md used torch 2.14.1,
torchvision 0.29.1):

    python benchmarks/encoders.py                   # threads: the CPUs this process may use
    python benchmarks/encoders.py --threads 1 --repeat 5
    python benchmarks/encoders.py --device cuda     # CuPy against torchvision on the GPU

On the GPU both libraries get the same uint8 images already on the device, each call
ends with a device synchronisation, and the peak-memory table is left out (it measures
the CPU process).

Both libraries get the same thread count (``torch.set_num_threads`` and
``load_encoder(threads=)``), the same weights (torchvision's architecture with its
random initialisation and random batch-norm statistics, so nothing is downloaded)
and the same uint8 images, normalised inside the timed call by both (torchvision's
way, ``torch_input``, on its threads: 0.1 ms for a 224x224 image, 0.2-0.4 for 448x448,
1.1-2.6 for 64 images of 112x112 on the 2-core AMD EPYC). Timings come in
``--repeat`` rounds after a warm-up, each round one batch (or 4 single images) of
minicap then of torchvision, each library's calls started once the CPUs are idle (up
to ``--wait-idle`` seconds; the table says how many rounds found them busy), so that
neither runs beside the other's spinning BLAS or OpenMP threads; the best of each
library is reported: on a shared machine the best is the least disturbed. The ratio is
minicap / torchvision: below 1 minicap is faster.

Peak memory: each library runs a 2-image warm-up and then one 64-image 112x112
batch in a fresh child process (torchvision normalising inside, as minicap does);
the figure is the child's peak resident size during both (VmHWM, reset through
/proc/self/clear_refs) minus its resident size before them (weights and uint8
images already loaded).

Agreement: max |minicap - torchvision| / max |torchvision| over the whole output.
"minicap's way": for a single image, the way its threads shared it in its fastest calls
(``parallel.WayChooser``: bands, BLAS's threads or one thread); "-" for a batch.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from machine import cpu_model  # noqa: E402
from minicap.backend import to_numpy  # noqa: E402
from minicap.encoders import load_encoder  # noqa: E402
from minicap.encoders.encoder import IMAGENET_MEAN, IMAGENET_STD, default_threads  # noqa: E402

ENCODERS = ("mobilenet_v2", "regnet_x_400mf")
CASES = ((64, 112), (1, 224), (1, 448))  # (images, side): coco.pt batches, `minicap caption`, a larger photo


def torchvision_trunk(name, seed=1):
    """torchvision's network with random batch-norm statistics, in eval mode: (trunk, state dict as NumPy)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=generator)
                m.bias.uniform_(-0.3, 0.3, generator=generator)
                m.running_mean.uniform_(-0.3, 0.3, generator=generator)
                m.running_var.uniform_(0.5, 2.0, generator=generator)
    model.eval()
    trunk = model.features if name == "mobilenet_v2" else torch.nn.Sequential(model.stem, model.trunk_output)
    return trunk, {k: v.numpy() for k, v in model.state_dict().items()}


def torch_input(images):
    """uint8 (N, 3, H, W) images (a NumPy array or a torch tensor, on any device) as torchvision's
    models take them: (x / 255 - mean) / std per channel, float32."""
    import torch

    x = (torch.from_numpy(images) if isinstance(images, np.ndarray) else images).float() / 255
    mean = torch.tensor(IMAGENET_MEAN, device=x.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=x.device)[:, None, None]
    return (x - mean) / std


def cpu_busy(interval=0.5):
    """The fraction of the machine's CPU time spent busy over ``interval`` seconds (from /proc/stat), or None."""
    def snapshot():
        with open("/proc/stat", encoding="utf-8") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # all, idle + iowait

    try:
        total0, idle0 = snapshot()
        time.sleep(interval)
        total1, idle1 = snapshot()
    except OSError:
        return None
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_until_idle(limit_s):
    """Wait up to ``limit_s`` seconds for other processes to leave the CPUs; True if they did."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        busy = cpu_busy()
        if busy is None or busy < 0.15:
            return True
    return False


def seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare_speed(threads, repeat, wait_s, device="cpu", encoders=ENCODERS):
    import torch

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    if device == "cuda":
        import cupy

        def on_device(a):
            return cupy.asarray(a)

        def synchronized(fn):
            def call():
                out = fn()
                cupy.cuda.Device().synchronize()
                torch.cuda.synchronize()
                return out
            return call
    else:
        def on_device(a):
            return a

        def synchronized(fn):
            return fn
    for name in encoders:
        trunk, state = torchvision_trunk(name)
        trunk = trunk.to(device)
        enc = load_encoder(name, weights=state, threads=threads)
        for n, side in CASES:
            host_images = rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8)
            images = on_device(host_images)
            torch_images = torch.from_numpy(host_images).to(device)

            @synchronized
            def forward():  # from the same uint8 images as minicap, normalised inside the call
                with torch.no_grad():
                    return trunk(torch_input(torch_images))

            ours_call = synchronized(lambda: enc(images))
            expected = forward().cpu().numpy()
            got = to_numpy(ours_call())
            agreement = float(np.abs(got - expected).max() / np.abs(expected).max())
            calls = 1 if n > 1 else 4
            ours, theirs, busy = [], [], 0
            for _ in range(repeat):  # rounds of a few calls each, alternating, so that both see the same machine
                # Each library starts once the other's idle threads have stopped spinning
                # (OpenBLAS's and OpenMP's wait for work that way for up to about 0.1 s).
                idle = wait_until_idle(wait_s)
                ours += [seconds(ours_call) for _ in range(calls)]
                idle = wait_until_idle(wait_s) and idle
                theirs += [seconds(forward) for _ in range(calls)]
                busy += not idle
            way = enc._workers._chooser.fastest((side, side))[0] if n == 1 and device == "cpu" else None
            rows.append((name, f"{n} x {side}x{side}", min(ours) * 1e3, min(theirs) * 1e3, agreement, busy, way or "-"))
            print(f"  {rows[-1][0]:15s} {rows[-1][1]:12s} done", file=sys.stderr, flush=True)
    return rows


def peak_memory_child(lib, name, weights, threads):
    """Peak resident size increase (MiB) of one 64-image batch, in a fresh process."""
    code = f"""
import sys
import numpy as np
sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})
images = np.random.default_rng(0).integers(0, 256, (64, 3, 112, 112), dtype=np.uint8)
if {lib!r} == "minicap":
    from minicap.encoders import load_encoder
    enc = load_encoder({name!r}, weights={weights!r}, threads={threads})
    run = lambda batch: enc(batch)
else:
    import torch
    sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
    from encoders import torchvision_trunk, torch_input
    torch.set_num_threads({threads})
    trunk, _ = torchvision_trunk({name!r})
    def run(batch):
        with torch.no_grad():
            return trunk(torch_input(batch))
def status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
before = status_kib("VmRSS")
try:  # reset the peak to now (Linux >= 4.0), so that loading the weights does not count
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
run(images[:2])  # a warm-up, as in the timings: threads started, memory kept for reuse
out = run(images)
print((status_kib("VmHWM") - before) / 1024)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def compare_memory(threads, encoders=ENCODERS):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in encoders:
            _, state = torchvision_trunk(name)
            weights = os.path.join(tmp, f"{name}.npz")
            np.savez(weights, **state)
            rows.append((name, peak_memory_child("minicap", name, weights, threads), peak_memory_child("torch", name, weights, threads)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=default_threads(), help="threads for both libraries")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: minicap on CuPy arrays against torchvision on the GPU")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per case: one batch, or 4 single images, per library")
    parser.add_argument("--wait-idle", type=float, default=10.0, metavar="S",
                        help="before each round, wait up to S seconds for other processes to leave the CPUs (0: never)")
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=ENCODERS, help="which encoders to compare (default: both)")
    args = parser.parse_args()
    import torch
    import torchvision

    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; threads: {args.threads} for both")
    print(f"NumPy {np.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}, Python {platform.python_version()}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.device == "cuda":
        from minicap.backend import require_device

        try:
            require_device("cuda")
        except RuntimeError as exc:  # a clear message, not a traceback, without a working GPU
            sys.exit(f"encoders.py: {exc}")
        print(f"GPU: {torch.cuda.get_device_name()}")
    speed = compare_speed(args.threads, args.repeat, args.wait_idle, args.device, args.encoders)
    print()
    print("| encoder | images | minicap (ms) | torchvision (ms) | ratio | agreement | rounds on a busy machine | minicap's way |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, case, ours, theirs, agreement, busy, way in speed:
        print(f"| {name} | {case} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} | {agreement:.1e} | {busy} of {args.repeat} | {way} |")
    if args.device == "cuda":
        return
    print()
    print("| encoder | peak memory of 64 images of 112x112, minicap (MiB) | torchvision (MiB) |")
    print("| --- | --- | --- |")
    for name, ours, theirs in compare_memory(args.threads, args.encoders):
        print(f"| {name} | {ours:.0f} | {theirs:.0f} |")
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
