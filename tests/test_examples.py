"""Every example script runs headless in quick mode and writes its outputs.

Each ``examples/*.py`` is run with ``--quick`` in a fresh Python process
(``sys.executable``), from a scratch working folder shared by this module, with
``MINICAP_HOME`` pointing into it (so the shapes world is generated once, there,
and never in the user's cache) and matplotlib forced to Agg. The scripts are run
without ``--out``, so they write to their default ``runs/examples/<name>/``
below that folder; that is also how ``06_results.py`` finds the checkpoint that
``05_attention.py`` saved. A script that is not there yet is skipped, with the
reason; one that is there but not listed below is still run.
"""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

# script -> files it must write (non-empty) in runs/examples/<script stem>/
EXPECTED = {
    "01_data.py": ["minibatch.png", "summary.json"],
    "02_overfit.py": ["loss_rnn.png"],
    "03_rnn.py": ["loss.png", "captions.png", "model.npz", "metrics.json"],
    "04_lstm.py": ["loss.png", "captions.png", "model.npz", "metrics.json"],
    "05_attention.py": ["loss.png", "captions.png", "attention.png", "model.npz", "metrics.json"],
    "06_results.py": ["metrics.json", "captions.png", "attention_0.png", "beam.png"],
    "07_gradcheck.py": ["errors.json"],
}
SCRIPTS = sorted(set(EXPECTED) | {p.name for p in EXAMPLES.glob("[0-9]*.py")})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("examples")


def _environment(workdir):
    env = dict(os.environ)
    env["MINICAP_HOME"] = str(workdir / "minicap_home")
    env["MPLBACKEND"] = "Agg"
    # The examples' matrices are small: on a few shared cores, BLAS threads only contend
    # (10x slower wall time under load was measured), so one thread unless the caller chose.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    # the checkout first, so the scripts import this minicap whether or not it is installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_in_quick_mode(script, workdir):
    path = EXAMPLES / script
    if not path.exists():
        pytest.skip(f"examples/{script} does not exist yet")
    result = subprocess.run(
        [sys.executable, str(path), "--quick"],
        cwd=workdir, env=_environment(workdir), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    out = workdir / "runs" / "examples" / path.stem
    assert out.is_dir(), f"{script} wrote nothing to {out}"
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and all(p.stat().st_size > 0 for p in written), f"{script} left empty outputs: {written}"
    for name in EXPECTED.get(script, []):
        assert (out / name).is_file(), f"{script} did not write {name}"
        assert (out / name).stat().st_size > 0, f"{script} wrote an empty {name}"
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png.name} is not a PNG"


def test_every_example_is_a_percent_notebook_with_quick_mode():
    """Cheap static checks that hold for every script (run even when slow tests are not)."""
    scripts = sorted(EXAMPLES.glob("[0-9]*.py"))
    if not scripts:
        pytest.skip("no example scripts yet")
    for path in scripts:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# %%"), f"{path.name} does not open with a jupytext cell marker"
        assert "# %% [markdown]" in text, f"{path.name} has no markdown cell"
        assert "--quick" in text and "parse_known_args" in text, f"{path.name} lacks --quick / parse_known_args"
        assert "import cupy" not in text, f"{path.name} imports cupy directly; use minicap.backend"
