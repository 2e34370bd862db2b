"""What machine a benchmark ran on, printed with its numbers (CPU families differ tenfold
in float32 tanh, so a ratio means little without the CPU beside it)."""

import platform


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
