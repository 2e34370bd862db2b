"""``minicap assignment make DIR``: write a student project from the library.

The student project is this minicap with the solution regions of the chosen
parts replaced by stubs (``regions.stub_lines``), without the fast kernels
(which compute the same functions and would give the answers away), with the
model defaulting to ``impl="reference"`` so it trains through the student's
functions, plus notebooks, a README and the docs a student needs, with the
backward derivations left out. The tests, the benchmarks and the kernels'
docs stay behind.

A marker file (``minicap/_assignment.json``) says the copy is a student's:
``minicap check`` reads which parts it holds, and ``make`` refuses to run
from it (an assignment made from an assignment would have nothing to stub).

Everything is written into a temporary folder beside DIR and renamed into
place at the end, so a failure leaves no half-written project.
"""

import json
import os
import pathlib
import shutil
import sys
import tempfile

from .exercises import EXERCISES, PARTS, exercises_of
from .regions import find_regions, replace_regions, stub_lines

MARKER = "_assignment.json"

# Files of the student copy rewritten so that it runs without minicap/kernels,
# as (path in the package, text to find, replacement). Each must match exactly once.
_RETARGET = (
    ("model.py", 'cell_type="rnn", dtype=np.float32, seed=0, impl="fast"):',
     'cell_type="rnn", dtype=np.float32, seed=0, impl="reference"):'),
    ("implementations.py", 'IMPLEMENTATIONS = ("fast", "reference")',
     'IMPLEMENTATIONS = ("reference",)  # a student copy: the course layers only, no minicap.kernels'),
)

# The example scripts made into notebooks, after the exercises (numbered on from them).
_EXAMPLE_NOTEBOOKS = ("01_data.py", "02_overfit.py", "03_rnn.py", "04_lstm.py", "05_attention.py",
                      "06_results.py", "07_gradcheck.py")
_DOCS = ("conventions.md", "layers.md", "model.md", "training.md")


class AssignmentError(ValueError):
    """A request the maker refuses (a non-empty folder, a student copy)."""


def package_dir():
    return pathlib.Path(__file__).resolve().parents[1]


def student_copy_info(package=None):
    """The marker's contents when ``package`` (default: this minicap) is a student copy, else None."""
    marker = pathlib.Path(package or package_dir()) / MARKER
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"parts": list(PARTS)}


def exercise_regions(package=None):
    """{exercise name: number of solution regions in its function}, over the package's files.

    The library's contract (tested): exactly one region per exercise, and no
    region outside an exercise.
    """
    package = pathlib.Path(package or package_dir())
    counts = {e.name: 0 for e in EXERCISES}
    by_function = {(e.path, e.function): e.name for e in EXERCISES}
    stray = []
    for path in sorted({e.path for e in EXERCISES}):
        source = package.parent / path
        for region in find_regions(source.read_text(encoding="utf-8"), path):
            name = by_function.get((path, region.function))
            if name is None:
                stray.append(f"{path}: {region.function}")
            else:
                counts[name] += 1
    if stray:
        raise AssignmentError(f"solution regions outside any exercise: {', '.join(stray)} "
                              f"(add them to minicap/teaching/exercises.py)")
    return counts


def make_assignment(dest, parts=PARTS, source_root=None):
    """Write the student project for ``parts`` to ``dest`` (a new or empty folder).

    source_root: the folder holding the ``minicap`` package and, in a source
    checkout, ``examples/`` and ``docs/`` (default: where this minicap is).
    Returns a dict: the parts, the stubbed functions, the notebooks written.
    """
    dest = pathlib.Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise AssignmentError(f"{dest} exists and is not an empty folder; choose a new folder "
                              f"(nothing is ever written over an existing project)")
    if student_copy_info() is not None:
        raise AssignmentError("this minicap is a student copy (made by `minicap assignment make`): make "
                              "assignments with the instructor's minicap, where the solutions are")
    parts = tuple(p for p in PARTS if p in parts)
    root = pathlib.Path(source_root) if source_root else package_dir().parent
    counts = exercise_regions(root / "minicap")
    broken = {name: n for name, n in counts.items() if n != 1}
    if broken:
        raise AssignmentError(f"every exercise needs exactly one solution region; found {broken}")

    dest.parent.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        stubbed = _write_package(root / "minicap", work / "minicap", parts)
        resources = resource_root(root)
        notebooks = _write_notebooks(resources, work, parts)
        _write_docs(resources / "docs", work / "docs")
        _write_project_files(work, parts, notebooks)
        (work / "minicap" / MARKER).write_text(json.dumps({"parts": list(parts)}, indent=1) + "\n",
                                              encoding="utf-8")
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.replace(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {"parts": list(parts), "stubbed": stubbed, "notebooks": notebooks}


def _write_package(package, target, parts):
    def ignore(folder, names):
        skip = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
        if pathlib.Path(folder) == package:
            skip.add("kernels")  # the fast versions of the exercises
        return skip

    shutil.copytree(package, target, ignore=ignore)
    chosen = exercises_of(parts)
    stubbed = []
    for path in sorted({e.path for e in chosen}):
        file = target.parent / path
        bodies = {e.function: (lambda region, e=e: stub_lines(e, region.indent)) for e in chosen if e.path == path}
        file.write_text(replace_regions(file.read_text(encoding="utf-8"), bodies, path), encoding="utf-8")
        stubbed += [e.name for e in chosen if e.path == path]
    for name, old, new in _RETARGET:
        file = target / name
        text = file.read_text(encoding="utf-8")
        if text.count(old) != 1:
            raise AssignmentError(f"cannot make minicap/{name} run without the kernels: expected the line "
                                  f"{old!r} once (minicap/teaching/maker.py must follow the change)")
        file.write_text(text.replace(old, new), encoding="utf-8")
    return [e.name for e in chosen if e.name in stubbed]


def student_layers_doc(text):
    """docs/layers.md as a student reads it: the forward passes, not the backward derivations.

    Keeps the notation paragraph of the introduction, then each section up to
    the word "Backward" (the derivation that follows is the exercise); the
    sections after "Temporal softmax loss" are about the kernels and are dropped.
    """
    intro, *sections = text.split("\n## ")
    out = [intro.split("\n\n")[0]]
    for section in sections:
        heading = section.splitlines()[0]
        body = section[len(heading):]
        at = body.find("Backward")
        if at >= 0:
            body = body[:at].rstrip() + "\n\n" + _DERIVE
        out.append(f"## {heading}{body.rstrip()}")
        if heading.strip() == "Temporal softmax loss":
            break
    return "\n\n".join(out) + "\n"


_DERIVE = ("Backward: derive it yourself, that is the exercise; `minicap check` says when it is right.")


def resource_root(root):
    """Where ``docs/`` and ``examples/`` are: beside the package in a source checkout, or
    where a wheel installs them (``<prefix>/share/minicap``, setup.cfg's data_files)."""
    if (root / "docs").is_dir():
        return root
    installed = pathlib.Path(sys.prefix) / "share" / "minicap"
    return installed if (installed / "docs").is_dir() else root


def _write_docs(docs, target):
    """The docs a student needs; none when neither a checkout nor an install has them."""
    for name in _DOCS:
        source = docs / name
        if not source.is_file():
            continue
        target.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8")
        if name == "layers.md":
            text = student_layers_doc(text)
        (target / name).write_text(text, encoding="utf-8")


def _write_notebooks(root, work, parts):
    from .notebooks import dumps, exercise_notebook, example_notebook

    folder = work / "notebooks"
    folder.mkdir(parents=True)
    written = []
    for number, part in enumerate(parts, start=1):
        name = f"{number}_{part}.ipynb"
        (folder / name).write_text(dumps(exercise_notebook(part)), encoding="utf-8")
        written.append(name)
    examples = root / "examples"
    for script in _EXAMPLE_NOTEBOOKS:
        path = examples / script
        if path.is_file():
            name = f"example_{path.stem}.ipynb"
            (folder / name).write_text(dumps(example_notebook(path)), encoding="utf-8")
            written.append(name)
    return written


def _write_project_files(work, parts, notebooks):
    from .. import __version__
    from .readme import student_readme

    (work / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61", "wheel"]\nbuild-backend = "setuptools.build_meta"\n',
        encoding="utf-8")
    (work / "setup.cfg").write_text(f"""[metadata]
name = minicap
version = {__version__}+assignment
description = minicap, the captioning assignment (student copy)

[options]
packages = find:
python_requires = >=3.10
install_requires =
    numpy>=1.26
    matplotlib>=3.7
    tqdm>=4.60
    pillow>=9

[options.packages.find]
include = minicap*

[options.package_data]
minicap = py.typed, {MARKER}

[options.entry_points]
console_scripts =
    minicap = minicap.cli:main
""", encoding="utf-8")
    (work / "README.md").write_text(student_readme(parts, notebooks), encoding="utf-8")
