"""The generated notebooks run in a real Jupyter kernel (ipykernel, through nbclient):
a student's stubbed copy reports "not implemented" in its check cells instead of
stopping, the solved library passes them, and an example's figure shows inline.
Skipped where nbclient or ipykernel are not installed (.ci/run installs them)."""

import importlib.util
import os
import pathlib

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
# Not imported here: the kernel process imports it; this process must stay "not a kernel"
# (minicap.teaching.show_figure looks for ipykernel in sys.modules).
if importlib.util.find_spec("ipykernel") is None:
    pytest.skip("ipykernel is not installed", allow_module_level=True)

from minicap.teaching.maker import make_assignment  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def _execute(path, pythonpath):
    """Run the notebook in a fresh python3 kernel whose `import minicap` finds ``pythonpath``."""
    nb = nbformat.read(path, as_version=4)
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(pythonpath)  # the kernel process inherits the environment
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = previous
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    errors = [f"{o['ename']}: {o['evalue']}" for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    return errors, text, images


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assignment") / "student"
    make_assignment(folder, parts=("basics",))
    return folder


@pytest.mark.slow
def test_the_exercise_notebook_runs_on_stubs_and_on_the_solution(copy):
    errors, text, _ = _execute(copy / "notebooks" / "1_basics.ipynb", copy)
    assert errors == [], errors
    assert "not implemented: affine_forward" in text
    errors, text, _ = _execute(copy / "notebooks" / "1_basics.ipynb", REPO)
    assert errors == [], errors
    assert "not implemented" not in text and "score" in text


@pytest.mark.slow
def test_an_example_notebook_shows_its_figure_inline(copy):
    errors, _, images = _execute(copy / "notebooks" / "example_01_data.ipynb", copy)
    assert errors == [], errors
    assert images >= 1
