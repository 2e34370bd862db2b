"""The command line against hostile input: one line and exit 2 (or 130 for Ctrl-C), never a
traceback, and sizes checked against the machine before anything is allocated."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minicap.cli import main


def _one_line(stderr):
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and "Traceback" not in stderr


def test_ctrl_c_during_the_imports_exits_130_in_one_line(tmp_path):
    """Ctrl-C while NumPy is being imported (the first half second of every command)."""
    script = textwrap.dedent("""
        import builtins, sys
        real_import = builtins.__import__
        def interrupted(name, *args, **kwargs):
            if name == "numpy":
                raise KeyboardInterrupt
            return real_import(name, *args, **kwargs)
        builtins.__import__ = interrupted
        from minicap.cli import main
        sys.exit(main(["data", "shapes", "--num-train", "5"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MINICAP_HOME": str(tmp_path)})
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "minicap: interrupted"
