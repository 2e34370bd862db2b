"""Gradescope's autograder: ``minicap assignment autograder DIR`` and what runs on Gradescope.

DIR receives what Gradescope wants at the root of the uploaded zip:

- ``setup.sh``: run once when Gradescope builds the image; installs Python and
  the student project below (its dependencies come from PyPI);
- ``run_autograder``: run for every submission; it calls this module;
- ``assignment/``: a fresh student project of the same parts (``make_assignment``).

For a submission, ``main`` copies the student's exercise files into the
project (found by their path ``minicap/layers/rnn.py``, or by their file name
if the student uploaded the files alone), then runs ``python -m
minicap.teaching check --json results.json`` in a new process, and makes sure
a results.json exists even if that process dies: Gradescope shows "The
autograder failed to execute correctly" when it is missing.
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys

from .exercises import EXERCISES

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu 22.04).
set -euo pipefail
apt-get update
apt-get install -y python3 python3-pip
python3 -m pip install -e /autograder/source/assignment
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission; it always writes results/results.json.
# AUTOGRADER_ROOT and PYTHON let you try it anywhere: AUTOGRADER_ROOT=/tmp/ag ./run_autograder
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${PYTHON:-python3}"
cd "$ROOT/source" || exit 1
PYTHONPATH="$ROOT/source/assignment" "$PYTHON" -m minicap.teaching.autograder --root "$ROOT"
"""


def exercise_files():
    """The files a student edits, relative to the project: minicap/layers/rnn.py, ..."""
    return sorted({e.path for e in EXERCISES})


def make_autograder(dest, parts):
    """Write setup.sh, run_autograder and assignment/ (a student project of ``parts``) to ``dest``."""
    from .maker import AssignmentError, make_assignment

    dest = pathlib.Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise AssignmentError(f"{dest} exists and is not an empty folder; choose a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        made = make_assignment(dest / "assignment", parts)
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            (dest / name).write_text(text, encoding="utf-8")
            os.chmod(dest / name, 0o755)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return made


def collect(submission, project):
    """Copy the student's exercise files from ``submission`` into ``project``; returns
    {file: where it came from, or None when the submission lacks it (the stub stays)}."""
    submission, project = pathlib.Path(submission), pathlib.Path(project)
    files = [p for p in submission.rglob("*.py") if p.is_file()]
    found = {}
    for path in exercise_files():
        by_path = [p for p in files if p.as_posix().endswith("/" + path)]
        by_name = [p for p in files if p.name == pathlib.PurePosixPath(path).name]
        source = (by_path or by_name or [None])[0]
        if source is not None:
            shutil.copyfile(source, project / path)
        found[path] = source
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minicap.teaching.autograder")
    parser.add_argument("--root", default="/autograder", help="Gradescope's folder (default /autograder)")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per test")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.root)
    project = root / "source" / "assignment"
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    found = collect(root / "submission", project)
    missing = [path for path, source in found.items() if source is None]
    env = dict(os.environ, PYTHONPATH=str(project))
    run = subprocess.run([sys.executable, "-m", "minicap.teaching", "check", "--quiet", "--json", str(results),
                          "--time-limit", str(args.time_limit)], cwd=project, env=env, capture_output=True,
                         text=True)
    print(run.stdout)
    if not results.is_file() or run.returncode not in (0, 1):
        tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-5:])
        results.write_text(json.dumps({"score": 0, "output": f"the autograder could not run your code:\n{tail}",
                                       "tests": []}, indent=1) + "\n", encoding="utf-8")
        return 0
    if missing:
        data = json.loads(results.read_text(encoding="utf-8"))
        data["output"] = (data.get("output", "") + "\nnot in your submission (graded as not written): "
                          + ", ".join(missing)).strip()
        results.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
