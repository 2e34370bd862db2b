"""minicap.heap: freed memory is kept for the next training step instead of being
faulted in again, where the C library is glibc and the environment has not decided."""

import os
import subprocess
import sys

import numpy as np
import pytest

from minicap import CaptioningSolver, heap
from test_solver_toy import ToyCaptioner, toy_data

# A training step's pattern: several large temporaries alive at once, then all freed.
# The child prints the minor page faults of 5 such steps after 2 warm-up steps.
STEPS = """
import resource, sys
import numpy as np
from minicap import heap
if sys.argv[1] == "keep":
    assert heap.keep_freed_memory()
def step():
    arrays = [np.ones(2 << 20, np.float32) for _ in range(4)]  # 4 x 8 MiB
    del arrays
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(heap._glibc() is None, reason="glibc's malloc only")


def _faults(mode, **env):
    clean = {k: v for k, v in os.environ.items() if k not in heap._ENVIRONMENT}
    out = subprocess.run([sys.executable, "-c", STEPS, mode], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout
    return int(out)


@glibc_only
def test_kept_memory_is_reused_without_page_faults():
    # 5 steps of 32 MiB are 40,000 pages: glibc's defaults fault most of them in again,
    # kept memory none (a few for Python's own small objects).
    assert _faults("default") > 5000
    assert _faults("keep") < 200


@glibc_only
def test_the_environment_decides_when_it_tunes_malloc():
    code = "from minicap import heap; print(heap.keep_freed_memory())"
    for name, value in (("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072"),
                        ("MALLOC_TRIM_THRESHOLD_", "131072")):
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, name: value},
                             capture_output=True, text=True, check=True).stdout
        assert out.strip() == "False"


def test_training_keeps_freed_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "keep_freed_memory", lambda: calls.append(1))
    CaptioningSolver(ToyCaptioner(), toy_data(), batch_size=5, num_epochs=1, verbose=False).train()
    assert calls


def test_the_image_encoders_keep_freed_memory(monkeypatch, rng):
    from minicap.encoders import load_encoder
    from test_encoders import random_state

    calls = []
    monkeypatch.setattr(heap, "keep_freed_memory", lambda: calls.append(1))
    enc = load_encoder("regnet_x_400mf", weights=random_state("regnet_x_400mf", rng), threads=1)
    enc(rng.integers(0, 256, (1, 3, 32, 32), dtype=np.uint8))
    assert calls


def test_every_cli_command_keeps_freed_memory(monkeypatch, tmp_path, capsys):
    from minicap.cli import main

    calls = []
    monkeypatch.setattr(heap, "keep_freed_memory", lambda: calls.append(1))
    assert main(["evaluate", str(tmp_path / "missing")]) == 2  # fails inside the command: after the call
    assert calls
