"""The grader: run every exercise's checks on the importable minicap, score them, report.

One *test* is one exercise and one kind of check ("rnn_step_backward:
gradient check"), worth the points ``checks.CHECKS`` gives it: all of them
when every row passes, none otherwise. A test whose function raises
NotImplementedError (a stub) scores 0 and says "not implemented"; any other
exception is reported as its first line and the student's file and line, and
the remaining tests run all the same. Each test runs under a time limit, so a
student's endless loop costs that test, not the whole submission.

``grade`` returns the tests; ``format_report`` prints the per-function table;
``gradescope_results`` gives the dict of Gradescope's ``results.json``.
"""

import contextlib
import math
import pathlib
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field

from .checks import CHECKS
from .exercises import EXERCISES, exercises_of


@dataclass
class Test:
    function: str
    part: str
    kind: str
    max_score: float
    rows: list = field(default_factory=list)
    problem: str = ""  # "not implemented", or the exception and where it happened
    seconds: float = 0.0
    note: str = ""  # the functions this one runs through that failed too

    @property
    def name(self):
        return f"{self.function}: {self.kind}"

    @property
    def passed(self):
        return not self.problem and bool(self.rows) and all(row.passed for row in self.rows)

    @property
    def score(self):
        return self.max_score if self.passed else 0.0

    def output(self):
        """The test's lines of the report, as Gradescope shows them."""
        lines = [f"{row.what}: {_number(row.error)} (must be < {row.tolerance:.0e}) "
                 f"{'pass' if row.passed else 'FAIL'}" for row in self.rows]
        if self.problem:
            lines.append(self.problem)
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


class _TimeLimit(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds):
    """Interrupt the block after ``seconds`` (POSIX, main thread); elsewhere no limit."""
    usable = seconds and hasattr(signal, "setitimer") and _main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise _TimeLimit(f"took longer than {seconds:g} s: is there an endless loop?")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()


def _package_root():
    """The folder that holds the ``minicap`` package (paths are reported relative to it)."""
    return pathlib.Path(__file__).resolve().parents[2]


def describe_exception(exc):
    """``"ValueError: ... (minicap/layers/rnn.py, line 31)"``: the first line of the
    message and the innermost place in the student's files (minicap outside
    ``minicap/teaching``) where it happened."""
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    where = None
    if isinstance(exc, SyntaxError) and exc.filename:
        where = (exc.filename, exc.lineno)
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            if _is_student_file(frame.filename):
                where = (frame.filename, frame.lineno)
    if where:
        text += f" ({_relative(where[0])}, line {where[1]})"
    return text


def _is_student_file(filename):
    path = pathlib.Path(filename).resolve()
    package = _package_root() / "minicap"
    return package in path.parents and (package / "teaching") not in path.parents


def _relative(filename):
    path = pathlib.Path(filename).resolve()
    try:
        return path.relative_to(_package_root()).as_posix()
    except ValueError:
        return str(filename)


def grade(parts, time_limit=120.0, progress=None, only=None):
    """Run the checks of ``parts`` in course order; returns the list of ``Test``s.

    progress: called with each finished Test (the CLI prints as it goes);
    only: the name of one exercise to check alone.
    """
    tests = []
    for exercise in exercises_of(parts):
        if only is not None and exercise.name != only:
            continue
        for kind, points, check in CHECKS.get(exercise.name, []):
            test = Test(exercise.name, exercise.part, kind, float(points))
            started = time.perf_counter()
            try:
                with _time_limit(time_limit):
                    test.rows = list(check())
            except NotImplementedError as exc:
                test.problem = _not_implemented(exc)
            except (Exception, _TimeLimit) as exc:  # a student's bug of any kind: report it, go on
                test.problem = describe_exception(exc)
            test.seconds = time.perf_counter() - started
            tests.append(test)
            if progress:
                progress(test)
    _note_failed_dependencies(tests)
    return tests


def _not_implemented(exc):
    where = describe_exception(exc)
    name = str(exc).split(":")[0] if str(exc) else ""
    return f"not implemented: {name}" if name else f"not implemented ({where})"


def _note_failed_dependencies(tests):
    """A test that ran and failed learns which of the functions it runs through failed too."""
    failed = {t.function for t in tests if not t.passed}
    uses = {e.name: e.uses for e in EXERCISES}
    for test in tests:
        if test.passed or test.problem.startswith("not implemented"):
            continue
        others = [f for f in uses.get(test.function, ()) if f in failed and f != test.function]
        if others:
            listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            test.note = f"this check runs through {listed}, which failed too: fix those first"


def _number(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.1e}"


def format_report(tests):
    """The table printed by ``minicap check``: per function, each row checked, then totals."""
    lines = []
    by_function = {}
    for test in tests:
        by_function.setdefault(test.function, []).append(test)
    header = f"    {'check':15s} {'what':44s} {'error':>8s}  {'tolerance':>9s}  result"
    for function, function_tests in by_function.items():
        score = sum(t.score for t in function_tests)
        total = sum(t.max_score for t in function_tests)
        lines.append(f"{function} [{function_tests[0].part}]  {score:g}/{total:g} points")
        lines.append(header)
        for test in function_tests:
            for row in test.rows:
                lines.append(f"    {test.kind:15s} {row.what[:44]:44s} {_number(row.error):>8s}  "
                             f"{'< ' + format(row.tolerance, '.0e'):>9s}  {'pass' if row.passed else 'FAIL'}")
            if test.problem:
                lines.append(f"    {test.kind:15s} {test.problem}")
            if test.note:
                lines.append(f"    {'':15s} ({test.note})")
        lines.append("")
    lines.append(summary(tests))
    return "\n".join(lines)


def summary(tests):
    score = sum(t.score for t in tests)
    total = sum(t.max_score for t in tests)
    failed = list(dict.fromkeys(t.function for t in tests if not t.passed))
    passed = sum(t.passed for t in tests)
    seconds = sum(t.seconds for t in tests)
    text = f"score {score:g}/{total:g}: {passed} of {len(tests)} tests passed in {seconds:.1f} s"
    return text + ("" if not failed else f"; to fix: {', '.join(failed)}")


def gradescope_results(tests):
    """The ``results.json`` layout of Gradescope's autograder specification."""
    return {
        "score": sum(t.score for t in tests),
        "execution_time": round(sum(t.seconds for t in tests), 3),
        "output": summary(tests),
        "tests": [{"name": t.name, "score": t.score, "max_score": t.max_score,
                   "status": "passed" if t.passed else "failed", "output": t.output()} for t in tests],
    }


def print_progress(test, stream=None):
    stream = stream or sys.stdout
    print(f"  {'pass' if test.passed else 'FAIL'}  {test.name} ({test.seconds:.1f} s)", file=stream, flush=True)


# The exercise modules in dependency order: a module is reloaded after the ones it imports from.
_RELOAD_ORDER = ("minicap.layers.affine", "minicap.layers.embedding", "minicap.layers.loss", "minicap.layers.rnn",
                 "minicap.layers.lstm", "minicap.layers.attention", "minicap.layers.attention_lstm",
                 "minicap.optim", "minicap.model")


def reload_exercises():
    """Re-read the student's files, so a notebook sees the code as it is saved now."""
    import importlib

    for name in _RELOAD_ORDER:
        if name in sys.modules:
            importlib.reload(sys.modules[name])


def check(name=None, parts=None, reload=True):
    """Check one exercise (``check("rnn_step_forward")``) or whole parts (``check(parts="rnn")``)
    and print the table; for notebooks. Returns True when everything passed."""
    from .exercises import BY_NAME, parse_parts

    if reload:
        reload_exercises()
    if name is not None:
        if name not in BY_NAME:
            raise ValueError(f"no exercise called {name!r}; the exercises are {', '.join(BY_NAME)}")
        tests = [t for t in grade((BY_NAME[name].part,), only=name)]
    else:
        tests = grade(parse_parts(parts))
    print(format_report(tests))
    return all(t.passed for t in tests)
