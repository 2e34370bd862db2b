"""Notebooks: percent scripts to nbformat 4.5, the exercise notebooks, figures shown inline,
and an assignment of some parts only."""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from minicap.teaching import show_figure
from minicap.teaching.exercises import EXERCISES, PARTS, exercises_of
from minicap.teaching.maker import MARKER, make_assignment
from minicap.teaching.notebooks import QUESTIONS, example_notebook, exercise_notebook, notebook, percent_to_cells
from minicap.teaching.regions import solution_bodies

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("[0-9]*.py"))


def test_percent_cells_split_code_and_markdown():
    text = "import x\n\n# %% [markdown]\n# # Title\n#\n# words\n\n# %%\ny = 1\n# a comment stays\n"
    assert percent_to_cells(text) == [("code", "import x"), ("markdown", "# Title\n\nwords"),
                                      ("code", "y = 1\n# a comment stays")]


def _assert_valid_v45(nb):
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] == 5
    ids = [cell["id"] for cell in nb["cells"]]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", i) for i in ids)
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("code", "markdown") and isinstance(cell["source"], list)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    json.dumps(nb)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_every_example_becomes_a_valid_notebook_with_all_its_code(script):
    nb = example_notebook(script)
    _assert_valid_v45(nb)
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    text = script.read_text()
    assert code.count("show_figure(") == text.count("show_figure(")
    assert nb["cells"][0]["cell_type"] == "markdown"


@pytest.mark.parametrize("part", PARTS)
def test_exercise_notebooks_check_each_function_after_it_in_course_order(part):
    nb = exercise_notebook(part)
    _assert_valid_v45(nb)
    checks = [re.fullmatch(r"check\('([\w.]+)'\)", "".join(c["source"])) for c in nb["cells"]]
    assert [m.group(1) for m in checks if m] == [e.name for e in exercises_of((part,))]
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert all(q in markdown for q in QUESTIONS.get(part, []))


def test_notebooks_validate_with_nbformat_when_it_is_installed():
    nbformat = pytest.importorskip("nbformat")
    for nb in [exercise_notebook(p) for p in PARTS] + [example_notebook(s) for s in EXAMPLES]:
        nbformat.validate(nbformat.from_dict(nb))


def test_the_same_input_gives_the_same_notebook():
    assert notebook([("code", "x = 1")], "a") == notebook([("code", "x = 1")], "a")


FAKE_KERNEL = {
    "ipykernel/__init__.py": "",
    "IPython/__init__.py": "",
    "IPython/display.py": (
        "import os\n"
        "class Image:\n"
        "    def __init__(self, filename):\n"
        "        self.filename = filename\n"
        "def display(obj):\n"
        "    with open(os.environ['SHOWN_LOG'], 'a') as f:\n"
        "        f.write(os.path.basename(obj.filename) + '\\n')\n"),
    "sitecustomize.py": "import ipykernel  # what a Jupyter kernel has loaded\n",
}


@pytest.fixture
def fake_kernel(tmp_path):
    root = tmp_path / "fake_kernel"
    for name, text in FAKE_KERNEL.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_show_figure_displays_only_inside_a_kernel(fake_kernel, tmp_path, monkeypatch):
    png = tmp_path / "f.png"
    png.write_bytes(b"png")
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)  # whatever another test imported
    assert show_figure(png) == png  # a script: nothing displayed, nothing printed
    log = tmp_path / "shown.txt"
    monkeypatch.setenv("SHOWN_LOG", str(log))
    monkeypatch.syspath_prepend(str(fake_kernel))
    for name in ("IPython", "IPython.display"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert show_figure(png) == png
    assert log.read_text() == "f.png\n"


@pytest.mark.slow
@pytest.mark.parametrize("script", ["01_data.py", "02_overfit.py"])
def test_examples_run_in_a_kernel_show_every_figure_they_write(script, fake_kernel, tmp_path):
    """Run as Jupyter would (ipykernel loaded, Jupyter's own -f argument): every PNG the
    example writes is also displayed."""
    log = tmp_path / "shown.txt"
    env = dict(os.environ, SHOWN_LOG=str(log), MINICAP_HOME=str(tmp_path / "home"), MPLBACKEND="Agg",
               OPENBLAS_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(fake_kernel), str(REPO)]))
    run = subprocess.run([sys.executable, str(REPO / "examples" / script), "--quick", "--out", str(tmp_path / "out"),
                          "-f", "kernel.json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    written = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert written and sorted(log.read_text().split()) == written


def test_an_assignment_of_some_parts_stubs_only_those(tmp_path):
    copy = tmp_path / "rnn_only"
    made = make_assignment(copy, parts=("model", "rnn"))
    assert made["parts"] == ["rnn", "model"]
    assert made["stubbed"] == [e.name for e in EXERCISES if e.part in ("rnn", "model")]
    assert made["notebooks"][:2] == ["1_rnn.ipynb", "2_model.ipynb"]
    assert json.loads((copy / "minicap" / MARKER).read_text()) == {"parts": ["rnn", "model"]}
    # the other parts' functions are the library's, unchanged
    lstm = "minicap/layers/lstm.py"
    assert solution_bodies((copy / lstm).read_text()) == solution_bodies((REPO / lstm).read_text())
    assert "raise NotImplementedError" in (copy / "minicap/layers/rnn.py").read_text()
    readme = (copy / "README.md").read_text()
    assert "`rnn_step_forward` in `minicap/layers/rnn.py`" in readme and "lstm_step_forward" not in readme
    # minicap check in the copy checks its parts by default
    run = subprocess.run([sys.executable, "-m", "minicap.cli", "check", "--quiet"], cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(copy)), capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    functions = re.findall(r"^(\S+) \[(\w+)\]", run.stdout, flags=re.M)
    assert {part for _, part in functions} == {"rnn", "model"}
    assert "score 0/" in run.stdout
