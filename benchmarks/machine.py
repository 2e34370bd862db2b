"""What machine a benchmark ran on, printed with its numbers (CPU families differ tenfold
in float32 tanh, so a ratio means little without the CPU beside it)."""

import platform
import subprocess


def cpu_model():
    """The CPU's model name from /proc/cpuinfo or lscpu (Linux), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
