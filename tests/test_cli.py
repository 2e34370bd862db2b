"""The minicap command: help for every subcommand, one-line user errors with
status 2, and the main job end to end in quick mode."""

import json
import subprocess
import sys

import pytest

from minicap.backend import gpu_available
from minicap.cli import COMMANDS, main

SUBCOMMANDS = ["demo", "data", "features", "train", "evaluate", "caption", "visualize"]


def run_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "minicap.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_every_subcommand_has_help(capsys):
    assert len(COMMANDS) == len(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert name in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_missing_run_is_one_line_and_status_2(tmp_path):
    result = run_cli("evaluate", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no config.json" in lines[0]


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("--debug", "evaluate", str(tmp_path / "nowhere"))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_cuda_without_gpu_is_a_user_error(tmp_path):
    if gpu_available():
        pytest.skip("this machine has a GPU")
    result = run_cli("train", "--device", "cuda", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "no working CUDA device" in result.stderr and "Traceback" not in result.stderr


def test_bad_checkpoint_is_a_user_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": "shapes"}))
    (run / "model.npz").write_bytes(b"garbage")
    result = run_cli("evaluate", str(run))
    assert result.returncode == 2
    assert "model.npz" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_demo_quick_writes_a_complete_run_folder(tmp_path):
    env = {**__import__("os").environ, "MINICAP_HOME": str(tmp_path / "cache")}
    out = tmp_path / "demo"
    result = run_cli("demo", "--quick", "--quiet", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D", "ROUGE-L", "truth", "grounding", "split", "seconds"):
        assert key in metrics
    assert metrics["split"] == "test"
    for name in ("loss.png", "captions.png", "attention_0.png", "beam.png", "model.npz", "config.json"):
        assert (out / name).stat().st_size > 0, name
    assert "BLEU-4" in result.stdout
    # the run folder works with the other subcommands
    evaluated = run_cli("evaluate", str(out), "--beam-size", "1", "--max-images", "5", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((out / "metrics-test.json").read_text())["images"] == 5
    # and captions image files, with attention overlays
    from PIL import Image

    from minicap.data import load_shapes

    images = load_shapes(num_train=200, num_val=50, num_test=50, seed=0)["test_images"][:2]
    files = []
    for k, image in enumerate(images):
        files.append(tmp_path / f"scene{k}.png")
        Image.fromarray(image.transpose(1, 2, 0)).save(files[-1])
    captioned = run_cli("caption", *map(str, files), "--checkpoint", str(out),
                        "--attention-out", str(tmp_path / "overlays"), env=env)
    assert captioned.returncode == 0, captioned.stderr
    assert captioned.stdout.count("scene") >= 2
    assert (tmp_path / "overlays" / "scene0_attention.png").stat().st_size > 0
    redrawn = run_cli("visualize", str(out), "--images", "2", env=env)
    assert redrawn.returncode == 0, redrawn.stderr


@pytest.mark.slow
def test_train_then_resume_then_evaluate(tmp_path):
    env = {**__import__("os").environ, "MINICAP_HOME": str(tmp_path / "cache")}
    out = tmp_path / "run"
    args = ["train", "--num-train", "40", "--cell", "lstm", "--hidden-dim", "16", "--wordvec-dim", "8",
            "--batch-size", "50", "--quiet", "--out", str(out)]
    first = run_cli(*args, "--epochs", "1", env=env)
    assert first.returncode == 0, first.stderr
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss_history"]) == 4  # 40 scenes x 5 captions / 50
    # --resume with more epochs continues exactly where an uninterrupted run would be
    resumed = run_cli(*args, "--epochs", "2", "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    continued = json.loads((out / "history.json").read_text())["loss_history"]
    straight_args = [a if a != str(out) else str(tmp_path / "straight") for a in args]
    straight = run_cli(*straight_args, "--epochs", "2", env=env)
    assert straight.returncode == 0, straight.stderr
    assert continued[:4] == history["loss_history"]
    assert continued == json.loads((tmp_path / "straight" / "history.json").read_text())["loss_history"]
    # a changed setting is refused with one clear line
    changed = run_cli(*args[:-2], "--batch-size", "20", "--out", str(out), "--epochs", "3", "--resume", env=env)
    assert changed.returncode == 2 and "Traceback" not in changed.stderr, changed.stderr
    evaluated = run_cli("evaluate", str(out), "--split", "val", "--max-images", "3", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "truth" in evaluated.stdout
