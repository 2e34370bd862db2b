"""The round trip of docs/teaching.md: make an assignment, grade it stubbed, solved, and broken.

The student copy is graded in a fresh Python process with the copy first on
PYTHONPATH, so ``import minicap`` is the copy, exactly as after
``pip install -e DIR`` (one test does the real install into a virtual
environment). One copy is made per module and graded three times:

- as made, every exercise is a stub: 0 points, exit status 1;
- with the solution regions put back: full marks, exit status 0;
- with one gradient of ``lstm_backward`` scaled by 1.01: exactly that
  function's gradient check fails, every other test passes.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import venv

import pytest

from minicap.teaching.exercises import EXERCISES, PARTS
from minicap.teaching.maker import MARKER, make_assignment
from minicap.teaching.regions import fill_regions, find_regions, solution_bodies

REPO = pathlib.Path(__file__).resolve().parents[1]
EXERCISE_FILES = sorted({e.path for e in EXERCISES})


def _env(copy, home):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy)  # the copy alone: not this checkout's minicap
    env["MINICAP_HOME"] = str(home)
    env["OPENBLAS_NUM_THREADS"] = env.get("OPENBLAS_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    return env


def check(copy, tmp, *args, python=sys.executable, module="minicap.cli"):
    """Run ``minicap check --json`` on the copy; returns (exit status, results.json, stdout)."""
    results = tmp / f"results-{len(list(tmp.glob('results-*')))}.json"
    run = subprocess.run([python, "-m", module, "check", "--quiet", "--json", str(results), *args],
                         cwd=tmp, env=_env(copy, tmp / "home"), capture_output=True, text=True, timeout=600)
    data = json.loads(results.read_text()) if results.exists() else None
    return run.returncode, data, run.stdout + run.stderr


def _outside_regions(text):
    lines = text.splitlines()
    inside = {i for r in find_regions(text) for i in range(r.begin + 1, r.end)}
    return "\n".join(line for i, line in enumerate(lines) if i not in inside)


def put_back_solutions(copy, edit=None):
    """Fill every stubbed region of the copy with the library's solution (``edit`` may change one first)."""
    for path in EXERCISE_FILES:
        bodies = solution_bodies((REPO / path).read_text(), path)
        if edit:
            bodies = edit(path, bodies)
        target = copy / path
        target.write_text(fill_regions(target.read_text(), bodies, path))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("assignment")
    copy = tmp / "student"
    summary = make_assignment(copy)
    return tmp, copy, summary


def test_the_copy_is_a_complete_project_without_the_kernels(made):
    _, copy, summary = made
    assert summary["parts"] == list(PARTS)
    assert summary["stubbed"] == [e.name for e in EXERCISES]
    for name in ("README.md", "setup.cfg", "pyproject.toml", f"minicap/{MARKER}", "docs/layers.md"):
        assert (copy / name).is_file(), name
    assert not (copy / "minicap" / "kernels").exists()
    assert not (copy / "tests").exists() and not (copy / "benchmarks").exists()
    assert json.loads((copy / "minicap" / MARKER).read_text())["parts"] == list(PARTS)
    assert 'impl="reference"):' in (copy / "minicap" / "model.py").read_text()
    # outside the regions (the argument checks above, the return below) every file is the library's
    for path in EXERCISE_FILES:
        ours, theirs = (REPO / path).read_text(), (copy / path).read_text()
        assert _outside_regions(theirs) == _outside_regions(ours).replace('impl="fast"):', 'impl="reference"):')
    # every exercise's region is now a stub that raises NotImplementedError naming the function
    for exercise in EXERCISES:
        text = (copy / exercise.path).read_text()
        region = next(r for r in find_regions(text) if r.function == exercise.function)
        body = "\n".join(region.body(text.splitlines()))
        assert f'raise NotImplementedError("{exercise.name}:' in body and f"TODO ({exercise.name})" in body
        assert exercise.docs in " ".join(line.strip().lstrip("# ") for line in region.body(text.splitlines()))


def test_nothing_in_the_copy_gives_a_solution_away(made):
    """No line of a solution region appears anywhere in the copy, unless the copy's other code
    shows it outside the regions anyway (the forward equations in docstrings, a softmax's shift
    in the decoder: given on purpose, as the courses give them); the docs keep no backward
    derivation."""
    _, copy, _ = made
    solution_lines, given = set(), []
    for file in sorted((REPO / "minicap").rglob("*.py")):
        if "kernels" in file.parts:
            continue  # not in the copy
        text = file.read_text()
        lines = text.splitlines()
        regions = find_regions(text, str(file))
        for region in regions:
            solution_lines |= {line.strip() for line in region.body(lines)
                               if len(line.strip()) > 20 and not line.strip().startswith("#")}
        inside = {i for r in regions for i in range(r.begin, r.end + 1)}
        given += [line for i, line in enumerate(lines) if i not in inside]
    given = "\n".join(given) + (REPO / "docs" / "layers.md").read_text().split("Backward")[0]
    secret = {line for line in solution_lines if line not in given}
    assert len(secret) > 100
    for file in copy.rglob("*"):
        if file.is_file() and file.suffix in (".py", ".md", ".ipynb", ".cfg", ".json"):
            text = file.read_text()
            leaked = [line for line in secret if line in text]
            assert not leaked, f"{file.relative_to(copy)} holds solution lines: {leaked[:3]}"
    layers_doc = (copy / "docs" / "layers.md").read_text()
    assert "dWx" not in layers_doc and "Backward: derive it yourself" in layers_doc
    assert "## Temporal softmax loss" in layers_doc and "## Why the sequence" not in layers_doc


def test_stubbed_copy_scores_zero_on_every_function(made):
    tmp, copy, _ = made
    status, results, output = check(copy, tmp)
    assert status == 1, output
    assert results["score"] == 0
    assert {t["name"].split(":")[0] for t in results["tests"]} == {e.name for e in EXERCISES}
    assert all(t["score"] == 0 and "not implemented" in t["output"] for t in results["tests"])


def test_solutions_put_back_score_full_marks_and_a_scaled_gradient_fails_only_its_check(made):
    tmp, copy, _ = made
    solved = tmp / "solved"
    shutil.copytree(copy, solved)
    put_back_solutions(solved)
    status, results, output = check(solved, tmp)
    assert status == 0, output
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) > 0
    assert all(t["status"] == "passed" for t in results["tests"])

    def scale_dh0(path, bodies):
        if path == "minicap/layers/lstm.py":
            body = bodies["lstm_backward"]
            assert body.count("    dh0 = dprev_h") == 1
            bodies["lstm_backward"] = [line.replace("dh0 = dprev_h", "dh0 = 1.01 * dprev_h") for line in body]
        return bodies

    broken = tmp / "broken"
    shutil.copytree(copy, broken)
    put_back_solutions(broken, edit=scale_dh0)
    status, results, output = check(broken, tmp)
    assert status == 1
    failed = [t for t in results["tests"] if t["status"] == "failed"]
    assert [t["name"] for t in failed] == ["lstm_backward: gradient check"], output
    assert "dh0" in failed[0]["output"] and "FAIL" in failed[0]["output"]
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) - failed[0]["max_score"]


def test_a_broken_file_is_reported_with_its_line_and_the_rest_still_runs(made):
    """A syntax error in one layer file: results.json is still written by ``python -m
    minicap.teaching check`` (the command Gradescope runs), naming the file and line."""
    tmp, copy, _ = made
    broken = tmp / "syntax"
    shutil.copytree(copy, broken)
    put_back_solutions(broken)
    rnn = broken / "minicap" / "layers" / "rnn.py"
    lines = rnn.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "next_h = xp.tanh(" in line)
    lines[at] = lines[at].replace("xp.tanh(", "xp.tanh((")
    rnn.write_text("\n".join(lines) + "\n")
    status, results, output = check(broken, tmp, module="minicap.teaching")
    assert status == 1 and results is not None, output
    by_name = {t["name"]: t for t in results["tests"]}
    assert f"(minicap/layers/rnn.py, line {at + 1})" in by_name["rnn_step_forward: known values"]["output"]
    assert by_name["sgd_momentum: known values"]["status"] == "passed"  # optim does not import the layers


def test_make_refuses_a_non_empty_folder_and_a_student_copy(made, tmp_path):
    tmp, copy, _ = made
    (tmp_path / "keep.txt").write_text("mine")
    run = subprocess.run([sys.executable, "-m", "minicap.cli", "assignment", "make", str(tmp_path)],
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert run.returncode == 2 and "not an empty folder" in run.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    run = subprocess.run([sys.executable, "-m", "minicap.cli", "assignment", "make", str(tmp_path / "again")],
                         cwd=tmp_path, env=_env(copy, tmp / "home"), capture_output=True, text=True)
    assert run.returncode == 2 and "student copy" in run.stderr, run.stdout + run.stderr
    assert not (tmp_path / "again").exists()


def _can_build_offline():
    """pip install -e --no-build-isolation builds with this environment's setuptools: it needs
    PEP 660 (setuptools >= 64) and bdist_wheel (setuptools >= 70.1, or the wheel package)."""
    import importlib.util

    try:
        import setuptools
    except ImportError:
        return False
    major = int(setuptools.__version__.split(".")[0])
    has_wheel = importlib.util.find_spec("wheel") is not None
    return major >= 64 and (has_wheel or importlib.util.find_spec("setuptools.command.bdist_wheel") is not None)


@pytest.mark.slow
@pytest.mark.skipif(not _can_build_offline(), reason="needs setuptools >= 64 with bdist_wheel to build offline")
def test_pip_install_e_of_the_copy_gives_the_minicap_command(made, tmp_path):
    """The student's steps: a virtual environment, ``pip install -e DIR``, ``minicap check``.
    The new environment reads this one's packages (numpy, pip, setuptools) through a .pth line,
    so nothing is downloaded; the .pth files of this environment are not run, so a minicap
    installed here in editable mode stays out of it."""
    _, copy, _ = made
    student = tmp_path / "student"
    shutil.copytree(copy, student)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    site_dir = next(env_dir.glob("lib/python*/site-packages"))
    # this interpreter's package folders (not the checkout, which holds a minicap of its own)
    packages = [p for p in sys.path if pathlib.Path(p).name in ("site-packages", "dist-packages")]
    (site_dir / "outer_packages.pth").write_text("\n".join(packages) + "\n")
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--no-index", "-e", str(student)], cwd=tmp_path, env=env, capture_output=True,
                             text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    run = subprocess.run([str(env_dir / "bin" / "minicap"), "check", "--parts", "optim", "--quiet"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "score 0/3" in run.stdout and "not implemented: sgd_momentum" in run.stdout
    where = subprocess.run([str(python), "-c", "import minicap; print(minicap.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert pathlib.Path(where.stdout.strip()).resolve().is_relative_to(student.resolve()), where.stdout


def test_the_gradescope_autograder_grades_a_submission_and_always_writes_results(tmp_path):
    """``minicap assignment autograder DIR``, then its run_autograder as Gradescope runs it (with
    AUTOGRADER_ROOT standing in for /autograder): a submission of the solved files gets full
    marks, one of loose files too, and an empty submission 0 with a results.json all the same."""
    upload = tmp_path / "upload"
    run = subprocess.run([sys.executable, "-m", "minicap.cli", "assignment", "autograder", str(upload), "--parts",
                          "basics,optim"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in upload.iterdir()) == ["assignment", "run_autograder", "setup.sh"]
    assert os.access(upload / "run_autograder", os.X_OK) and (upload / "run_autograder").read_text().startswith("#!")

    def grade(submitted):
        root = tmp_path / f"autograder-{len(list(tmp_path.glob('autograder-*')))}"
        shutil.copytree(upload, root / "source")
        (root / "submission").mkdir()
        for relative, text in submitted.items():
            (root / "submission" / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / "submission" / relative).write_text(text)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(AUTOGRADER_ROOT=str(root), PYTHON=sys.executable, OPENBLAS_NUM_THREADS="1")
        done = subprocess.run([str(root / "source" / "run_autograder")], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return json.loads((root / "results" / "results.json").read_text())

    solved = {}
    for path in EXERCISE_FILES:
        copy_text = (upload / "assignment" / path).read_text()
        solved[path] = fill_regions(copy_text, solution_bodies((REPO / path).read_text(), path), path)
    # a whole project submitted, its grader "improved" by the student: only the exercise files count
    tampered = {f"project/{path}": text for path, text in solved.items()}
    tampered["project/minicap/teaching/checks.py"] = "raise SystemExit('graded by me')\n"
    full = grade(tampered)
    assert full["score"] == sum(t["max_score"] for t in full["tests"]) > 0
    assert {t["name"].split(":")[0] for t in full["tests"]} == {
        e.name for e in EXERCISES if e.part in ("basics", "optim")}
    loose = grade({pathlib.PurePosixPath(path).name: text for path, text in solved.items()})
    assert loose["score"] == full["score"]
    empty = grade({})
    assert empty["score"] == 0 and "not in your submission" in empty["output"]
    # the grader itself broken: results.json still says why, with a score of 0
    (upload / "assignment" / "minicap" / "teaching" / "command.py").write_text("def broken(:\n")
    crashed = grade({})
    assert crashed["score"] == 0 and "could not run your code" in crashed["output"]
    assert "SyntaxError" in crashed["output"]


def test_a_failed_make_leaves_nothing_behind(tmp_path):
    """The maker writes into a temporary folder renamed at the end: a failure (here a model.py
    the maker cannot retarget to the course layers) leaves neither DIR nor the temporary folder."""
    root = tmp_path / "source"
    shutil.copytree(REPO / "minicap", root / "minicap", ignore=shutil.ignore_patterns("__pycache__"))
    model = root / "minicap" / "model.py"
    model.write_text(model.read_text().replace('impl="fast"):', 'impl="quick"):'))
    with pytest.raises(ValueError, match="cannot make minicap/model.py run without the kernels"):
        make_assignment(tmp_path / "out" / "student", source_root=root)
    assert list((tmp_path / "out").iterdir()) == []


def test_without_the_examples_only_the_exercise_notebooks_are_written(tmp_path, monkeypatch):
    """A package without examples/ or docs/ beside it or under sys.prefix: the exercise
    notebooks still come, and no empty docs folder."""
    root = tmp_path / "source"
    shutil.copytree(REPO / "minicap", root / "minicap", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "empty_prefix"))
    made = make_assignment(tmp_path / "student", parts=("optim",), source_root=root)
    assert made["notebooks"] == ["1_optim.ipynb"]
    assert not (tmp_path / "student" / "docs").exists()


def test_a_wheel_install_takes_docs_and_examples_from_its_data_files(tmp_path, monkeypatch):
    """setup.cfg installs docs/ and examples/ under <prefix>/share/minicap; the maker reads them there."""
    root = tmp_path / "site-packages"
    shutil.copytree(REPO / "minicap", root / "minicap", ignore=shutil.ignore_patterns("__pycache__"))
    prefix = tmp_path / "prefix"
    shutil.copytree(REPO / "docs", prefix / "share" / "minicap" / "docs", ignore=shutil.ignore_patterns("images"))
    shutil.copytree(REPO / "examples", prefix / "share" / "minicap" / "examples")
    monkeypatch.setattr(sys, "prefix", str(prefix))
    made = make_assignment(tmp_path / "student", parts=("lstm",), source_root=root)
    assert (tmp_path / "student" / "docs" / "layers.md").is_file()
    assert any(name.startswith("example_") for name in made["notebooks"])
    setup = (REPO / "setup.cfg").read_text(encoding="utf-8")
    assert "share/minicap/docs = docs/*.md" in setup and "share/minicap/examples = examples/*.py" in setup
