"""minicap.teaching: the solution regions, the grader's checks and reports, the command line.

The round trip through a student copy is in tests/test_assignment_roundtrip.py.
"""

import ast
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from minicap.cli import main
from minicap.teaching import grader, published
from minicap.teaching.checks import CHECKS, Row
from minicap.teaching.exercises import BY_NAME, EXERCISES, PARTS, parse_parts
from minicap.teaching.maker import exercise_regions
from minicap.teaching.regions import (
    BEGIN,
    RegionError,
    fill_regions,
    find_regions,
    replace_regions,
    solution_bodies,
    strip_markers,
)

REPO = pathlib.Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ the regions
def test_every_exercise_has_exactly_one_region_and_no_region_is_stray():
    assert exercise_regions(REPO / "minicap") == {e.name: 1 for e in EXERCISES}


@pytest.mark.parametrize("path", sorted({e.path for e in EXERCISES}))
def test_the_markers_do_not_change_the_library(path):
    """The markers are comment lines: the file parses to the same tree without them."""
    text = (REPO / path).read_text()
    assert BEGIN in text
    assert ast.dump(ast.parse(text)) == ast.dump(ast.parse(strip_markers(text)))


def test_every_exercise_has_checks_and_a_stub_text():
    for exercise in EXERCISES:
        assert CHECKS.get(exercise.name), exercise.name
        assert exercise.part in PARTS and "->" in exercise.todo and exercise.docs.startswith("docs/")


SOURCE = """\
def f(x):
    y = 2
    # BEGIN SOLUTION
    z = x * y
    # END SOLUTION
    return z


class C:
    def g(self):
        # BEGIN SOLUTION
        return 1
        # END SOLUTION
"""


def test_regions_are_found_in_their_function_with_their_indentation():
    regions = find_regions(SOURCE)
    assert [(r.function, r.begin, r.end, r.indent) for r in regions] == [("f", 2, 4, "    "), ("C.g", 10, 12, "        ")]
    assert solution_bodies(SOURCE) == {"f": ["    z = x * y"], "C.g": ["        return 1"]}


def test_replacing_and_filling_a_region_round_trips():
    stubbed = replace_regions(SOURCE, {"f": lambda r: [f"{r.indent}raise NotImplementedError"]})
    assert "z = x * y" not in stubbed and "    raise NotImplementedError" in stubbed
    assert "return 1" in stubbed  # C.g was not asked for
    assert fill_regions(stubbed, solution_bodies(SOURCE)) == SOURCE


@pytest.mark.parametrize("source, message", [
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    pass\n    # END SOLUTION\n", "line 3: BEGIN SOLUTION inside"),
    ("def f():\n    # BEGIN SOLUTION\n    x = 1\n", "line 2: BEGIN SOLUTION is never closed"),
    ("def f():\n    x = 1\n    # END SOLUTION\n", "line 3: END SOLUTION without"),
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "must be inside a function"),
])
def test_malformed_regions_name_the_file_and_line(source, message):
    with pytest.raises(RegionError, match=message):
        find_regions(source, "layer.py")


def test_asking_for_a_region_that_is_not_there_is_an_error():
    with pytest.raises(RegionError, match="no solution region in h"):
        replace_regions(SOURCE, {"h": lambda r: []})


# ----------------------------------------------------------------- the known values
@pytest.mark.parametrize("entry", published.KNOWN_VALUES, ids=lambda k: k.function)
def test_every_published_value_is_reproduced_by_the_library(entry):
    """Numbers copied from the notebooks: the library's own function must give them."""
    import importlib

    module = importlib.import_module(BY_NAME[entry.function].module)
    args, expected = entry.build()
    result = getattr(module, entry.function)(*args)
    for key, value in expected.items():
        got = (result[key] if isinstance(result, tuple) else result) if isinstance(key, int) else result[1][key]
        assert grader_rel_error(got, value) < entry.tolerance, (entry.function, key)


def grader_rel_error(a, b):
    from minicap.gradcheck import rel_error

    return rel_error(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


# ------------------------------------------------------------------------- grading
@pytest.fixture(scope="module")
def library_tests():
    """The library graded as it is: every check of every part (a few seconds)."""
    return grader.grade(PARTS)


def test_the_library_scores_full_marks(library_tests):
    failed = [(t.name, t.problem, [r for r in t.rows if not r.passed]) for t in library_tests if not t.passed]
    assert not failed
    assert library_tests[0].function == "affine_forward"
    assert {t.function for t in library_tests} == {e.name for e in EXERCISES}


def test_the_report_has_a_row_per_compared_array_and_the_points(library_tests):
    report = grader.format_report(library_tests)
    total = sum(t.max_score for t in library_tests)
    assert report.splitlines()[-1].startswith(f"score {total:g}/{total:g}: {len(library_tests)} of")
    block = report.split("lstm_step_backward [lstm]  2/2 points\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[2] for line in block[1:]] == ["dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"]
    assert all(line.endswith("pass") for line in block[1:])


def test_gradescope_results_have_one_test_per_function_and_kind(library_tests):
    results = grader.gradescope_results(library_tests)
    assert set(results) == {"score", "execution_time", "output", "tests"}
    assert results["output"] == grader.summary(library_tests)
    assert results["score"] == sum(t["max_score"] for t in results["tests"])
    names = [t["name"] for t in results["tests"]]
    assert len(names) == len(set(names)) == len(library_tests)
    for test, exercise_test in zip(results["tests"], library_tests):
        assert exercise_test.function in test["name"]
        assert set(test) == {"name", "score", "max_score", "status", "output"} and test["status"] == "passed"
        json.dumps(test)  # plain JSON values only


def _student_bug(x):
    return np.ones(3) @ np.ones((4, 5))  # a shape error, raised in this file


def test_an_exception_is_reported_as_its_first_line_and_the_students_file_and_line(monkeypatch):
    # This test file plays the student's file: the grader reports frames inside the minicap
    # package, so point it at the tests folder.
    monkeypatch.setattr(grader, "_package_root", lambda: REPO)
    monkeypatch.setattr(grader, "_is_student_file", lambda name: name == __file__)
    try:
        _student_bug(None)
    except ValueError as exc:
        text = grader.describe_exception(exc)
    line = next(i for i, l in enumerate(pathlib.Path(__file__).read_text().splitlines(), 1) if "np.ones(3) @" in l)
    assert text.startswith("ValueError: matmul:") and text.endswith(f"(tests/test_teaching.py, line {line})")
    assert "\n" not in text


def test_a_stub_scores_zero_without_stopping_the_others(monkeypatch):
    import minicap.layers.rnn as rnn

    def stub(*args):
        raise NotImplementedError("rnn_step_forward: not written yet")

    monkeypatch.setattr(rnn, "rnn_step_forward", stub)
    tests = {t.name: t for t in grader.grade(("rnn",))}
    assert tests["rnn_step_forward: known values"].problem == "not implemented: rnn_step_forward"
    assert tests["rnn_step_forward: known values"].score == 0
    assert not tests["rnn_backward: gradient check"].passed  # it runs through the stub
    assert "not implemented" in tests["rnn_backward: gradient check"].problem


def test_a_wrong_gradient_fails_its_check_and_names_what_it_runs_through(monkeypatch):
    import minicap.layers.rnn as rnn

    right = rnn.rnn_step_backward

    def wrong(dnext_h, cache):
        dx, dprev_h, dWx, dWh, db = right(dnext_h, cache)
        return dx, dprev_h, dWx * 1.01, dWh, db

    monkeypatch.setattr(rnn, "rnn_step_backward", wrong)
    tests = {t.name: t for t in grader.grade(("rnn",))}
    step = tests["rnn_step_backward: gradient check"]
    assert [r.what for r in step.rows if not r.passed] == ["dWx"]
    assert 1e-3 < next(r.error for r in step.rows if r.what == "dWx") < 1e-2  # 0.01 / 2.01
    sequence = tests["rnn_backward: gradient check"]
    assert not sequence.passed and "rnn_step_backward" in sequence.note
    assert tests["rnn_step_forward: known values"].passed and tests["rnn_forward: known values"].passed


def test_an_endless_loop_costs_its_test_only(monkeypatch):
    import minicap.optim as optim

    def forever(w, dw, config=None):
        while True:
            pass

    monkeypatch.setattr(optim, "rmsprop", forever)
    tests = {t.name: t for t in grader.grade(("optim",), time_limit=0.5)}
    assert "took longer than 0.5 s" in tests["rmsprop: known values"].problem
    assert tests["adam: known values"].passed and tests["sgd_momentum: known values"].passed


def test_a_row_with_nan_fails():
    assert not Row("dx", float("nan"), 1e-7).passed and Row("dx", 1e-9, 1e-7).passed


# ------------------------------------------------------------------ the command line
def test_parse_parts_keeps_course_order_and_refuses_unknown_parts():
    assert parse_parts("model,rnn") == ("rnn", "model")
    assert parse_parts("") == PARTS
    with pytest.raises(ValueError, match="unknown part 'gru': the parts are basics, rnn"):
        parse_parts("rnn,gru")


@pytest.mark.parametrize("argv, message", [
    (["check", "--parts", "gru"], "unknown part 'gru'"),
    (["check", "--time-limit", "-1"], "--time-limit must be"),
    (["assignment", "make", "DIR", "--parts", "lstms"], "unknown part 'lstms'"),
])
def test_usage_errors_exit_with_status_2_and_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "DIR").exists()


def test_json_into_a_folder_is_a_usage_error(capsys, tmp_path):
    assert main(["check", "--parts", "optim", "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_assignment_without_an_action_is_a_usage_error(capsys):
    assert main(["assignment"]) == 2
    assert "name an action: make or autograder" in capsys.readouterr().err


def test_check_exits_0_when_everything_passes_and_writes_results_json(capsys, tmp_path):
    path = tmp_path / "results.json"
    assert main(["check", "--parts", "optim", "--json", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "sgd_momentum [optim]  1/1 points" in out and "score 3/3" in out
    results = json.loads(path.read_text())
    assert results["score"] == 3 and [t["name"] for t in results["tests"]] == [
        "sgd_momentum: known values", "rmsprop: known values", "adam: known values"]


def test_check_exits_1_when_something_fails(monkeypatch, capsys):
    import minicap.optim as optim

    def lazy_adam(w, dw, config=None):
        return w, config

    monkeypatch.setattr(optim, "adam", lazy_adam)
    assert main(["check", "--parts", "optim", "--quiet"]) == 1
    assert "to fix: adam" in capsys.readouterr().out


def test_python_m_minicap_teaching_is_the_same_command(tmp_path):
    run = subprocess.run([sys.executable, "-m", "minicap.teaching", "check", "--parts", "optim", "--quiet"],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0 and "score 3/3" in run.stdout
    run = subprocess.run([sys.executable, "-m", "minicap.teaching", "check", "--parts", "nope"],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 2 and "unknown part 'nope'" in run.stderr


def test_check_in_a_notebook_reloads_the_students_files(tmp_path):
    """A kernel that imported an old (here: broken) function sees the file as it is now."""
    code = ("import minicap.optim as optim\n"
            "from minicap.teaching import check\n"
            "optim.rmsprop = lambda w, dw, config=None: (w, config)  # what the kernel had\n"
            "assert check('rmsprop', reload=False) is False\n"
            "assert check('rmsprop') is True\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("rmsprop [optim]") == 2 and "score 1/1" in run.stdout
