"""Every example script runs headless in quick mode and writes its outputs.

Each ``examples/*.py`` is run with ``--quick`` in a fresh Python process
(``sys.executable``), from a scratch working folder shared by this module, with
``MINICAP_HOME`` pointing into it (so the shapes world is generated once, there,
and never in the user's cache) and matplotlib forced to Agg. The scripts are run
without ``--out``, so they write to their default ``runs/examples/<name>/``
below that folder; that is also how ``06_results.py`` finds the checkpoint that
``05_attention.py`` saved. A script that is not there yet is skipped, with the
reason; one that is there but not listed below is still run.

The training examples use the library for references, captions and metrics
(``minicap.evaluation``) and 05 trains with the main job's settings
(``minicap.demo``); the checks below hold them to that.
"""

import json
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
# script -> keys its metrics.json must hold (06: under each decoding's entry)
METRIC_KEYS = {
    "03_rnn.py": ["BLEU-4", "CIDEr-D", "ROUGE-L", "truth", "final_val_loss"],
    "04_lstm.py": ["BLEU-4", "CIDEr-D", "ROUGE-L", "truth", "final_val_loss"],
    "05_attention.py": ["BLEU-4", "CIDEr-D", "truth", "grounding", "grounding_phrase", "final_val_loss"],
    "06_results.py": ["BLEU-4", "CIDEr-D", "truth", "grounding", "grounding_phrase", "seconds"],
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
    assert path.exists(), f"examples/{script} is missing"  # SCRIPTS names every script the docs promise
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
    if script in METRIC_KEYS:
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        entries = [v for v in metrics.values() if isinstance(v, dict)] if script == "06_results.py" else [metrics]
        assert entries, f"{script}: metrics.json holds no results: {metrics}"
        for entry in entries:
            missing = [k for k in METRIC_KEYS[script] if k not in entry]
            assert not missing, f"{script}: metrics.json lacks {missing}"
            assert 0.0 <= entry["BLEU-4"] <= 1.0
    if script == "05_attention.py":
        from minicap import CaptioningRNN
        from minicap.demo import QUICK_CONFIG

        model = CaptioningRNN.load(out / "model.npz")
        assert model.cell_type == "attention"
        # quick mode trains with the demo's quick settings, not numbers of its own
        assert (model.wordvec_dim, model.hidden_dim) == (QUICK_CONFIG["wordvec_dim"], QUICK_CONFIG["hidden_dim"])


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_refuses_an_unknown_option(script, workdir):
    """A mistyped flag (--quik) is argparse's usage error, not a silent full run."""
    path = EXAMPLES / script
    assert path.exists(), f"examples/{script} is missing"
    result = subprocess.run(
        [sys.executable, str(path), "--quik", "--out", str(workdir / "refused" / path.stem)],
        cwd=workdir, env=_environment(workdir), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, f"{script} accepted --quik:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert "unrecognized arguments: --quik" in result.stderr
    assert not (workdir / "refused" / path.stem).exists(), f"{script} wrote output before refusing"


@pytest.mark.slow
def test_example_ignores_jupyters_own_arguments(workdir):
    """Under a Jupyter kernel (ipykernel imported) the kernel's -f FILE is dropped silently."""
    path = EXAMPLES / "01_data.py"
    out = workdir / "under_jupyter"
    code = ("import runpy, sys, types; sys.modules.setdefault('ipykernel', types.ModuleType('ipykernel')); "
            f"sys.argv = [{str(path)!r}, '-f', 'kernel-1234.json', '--quick', '--out', {str(out)!r}]; "
            f"runpy.run_path({str(path)!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=_environment(workdir),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"01_data.py failed under a Jupyter-like argv:\n{result.stderr[-3000:]}"
    assert (out / "summary.json").is_file()


def test_every_example_is_a_percent_notebook_with_quick_mode():
    """Cheap static checks that hold for every script (run even when slow tests are not)."""
    scripts = sorted(EXAMPLES.glob("[0-9]*.py"))
    assert [p.name for p in scripts] == sorted(EXPECTED)  # the seven scripts examples/README.md describes
    for path in scripts:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# %%"), f"{path.name} does not open with a jupytext cell marker"
        assert "# %% [markdown]" in text, f"{path.name} has no markdown cell"
        assert "--quick" in text and "parse_known_args" in text, f"{path.name} lacks --quick / parse_known_args"
        assert "import cupy" not in text, f"{path.name} imports cupy directly; use minicap.backend"


def test_training_examples_use_the_library_for_references_and_metrics():
    """No local copies of what minicap.evaluation provides; 05 takes the demo's settings."""
    for name in ("03_rnn.py", "04_lstm.py", "05_attention.py", "06_results.py"):
        path = EXAMPLES / name
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        assert "evaluate_model(" in text, f"{name} does not use minicap.evaluation.evaluate_model"
        for local in ("def references(", "def caption_block(", "json.dumps("):
            assert local not in text, f"{name} defines its own {local!r}; use minicap.evaluation / minicap.runs"
    attention = EXAMPLES / "05_attention.py"
    if attention.exists():
        text = attention.read_text(encoding="utf-8")
        assert "DEMO_CONFIG" in text, "05_attention.py must train with minicap.demo.DEMO_CONFIG"
        for literal in ("5e-3", "1e-2", "lr_decay=0.", "grad_clip=5"):
            assert literal not in text, f"05_attention.py hard-codes {literal!r}; read it from DEMO_CONFIG"
