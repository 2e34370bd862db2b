"""The minicap command: help for every subcommand, one-line user errors with
status 2, and the main job end to end in quick mode."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from minicap.backend import gpu_available
from minicap.cli import COMMANDS, main

SUBCOMMANDS = ["demo", "data", "features", "train", "evaluate", "caption", "visualize", "assignment", "check"]


def run_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "minicap.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def _snapshot(folder):
    """Every file in a folder with its bytes: equal snapshots mean nothing changed."""
    return {p.name: p.read_bytes() for p in sorted(pathlib.Path(folder).iterdir())}


def _one_line(stderr):
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and "Traceback" not in stderr and "Warning" not in stderr


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
    # two images with the same file name get one overlay each, not one over the other
    (tmp_path / "other").mkdir()
    twin = tmp_path / "other" / "scene0.png"
    Image.fromarray(images[1].transpose(1, 2, 0)).save(twin)
    captioned = run_cli("caption", str(files[0]), str(twin), "--checkpoint", str(out),
                        "--attention-out", str(tmp_path / "twins"), env=env)
    assert captioned.returncode == 0, captioned.stderr
    assert sorted(p.name for p in (tmp_path / "twins").iterdir()) == ["0_scene0_attention.png", "1_scene0_attention.png"]
    assert (tmp_path / "twins" / "0_scene0_attention.png").read_bytes() != (tmp_path / "twins" / "1_scene0_attention.png").read_bytes()
    redrawn = run_cli("visualize", str(out), "--images", "2", env=env)
    assert redrawn.returncode == 0, redrawn.stderr
    # a second demo into the same folder is refused, with the folder untouched; --overwrite replaces it
    before = _snapshot(out)
    again = run_cli("demo", "--quick", "--quiet", "--out", str(out), env=env)
    assert again.returncode == 2 and _one_line(again.stderr)
    assert str(out) in again.stderr and "--overwrite" in again.stderr and "--resume" in again.stderr
    assert _snapshot(out) == before
    replaced = run_cli("demo", "--quick", "--quiet", "--overwrite", "--out", str(out), "--seed", "1", env=env)
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert not (out / "metrics-test.json").exists()  # the old run's files do not linger


@pytest.mark.slow
def test_train_then_resume_then_evaluate(tmp_path):
    env = {**__import__("os").environ, "MINICAP_HOME": str(tmp_path / "cache")}
    out = tmp_path / "run"
    args = ["train", "--num-train", "40", "--cell", "lstm", "--hidden-dim", "16", "--wordvec-dim", "8",
            "--batch-size", "50", "--lr-decay", "0.8", "--quiet", "--out", str(out)]
    first = run_cli(*args, "--epochs", "1", env=env)
    assert first.returncode == 0, first.stderr
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss_history"]) == 4  # 40 scenes x 5 captions / 50
    config = json.loads((out / "config.json").read_text())
    # --resume takes every setting from the run's config.json: only --epochs is given here
    resumed = run_cli("train", "--out", str(out), "--resume", "--epochs", "2", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {out / 'checkpoint.npz'} after epoch 1" in resumed.stderr  # INFO lines are shown
    assert "(Epoch 2 / 2)" in resumed.stderr
    assert json.loads((out / "config.json").read_text()) == {**config, "num_epochs": 2}
    continued = json.loads((out / "history.json").read_text())["loss_history"]
    straight_args = [a if a != str(out) else str(tmp_path / "straight") for a in args]
    straight = run_cli(*straight_args, "--epochs", "2", env=env)
    assert straight.returncode == 0, straight.stderr
    assert continued[:4] == history["loss_history"]
    assert continued == json.loads((tmp_path / "straight" / "history.json").read_text())["loss_history"]
    # a changed setting is refused with one clear line, and the run folder is left exactly as it was
    before = _snapshot(out)
    changed = run_cli("train", "--batch-size", "20", "--out", str(out), "--epochs", "3", "--resume", env=env)
    assert changed.returncode == 2 and _one_line(changed.stderr), changed.stderr
    assert "batch_size: checkpoint 50, now 20" in changed.stderr
    other_model = run_cli("train", "--cell", "attention", "--out", str(out), "--resume", env=env)
    assert other_model.returncode == 2 and "does not match this model" in other_model.stderr
    assert _snapshot(out) == before
    evaluated = run_cli("evaluate", str(out), "--split", "val", "--max-images", "3", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "truth" in evaluated.stdout


# ---------------------------------------------------------------- run folders and bad options
# A tiny lstm run (40 scenes, 4 iterations per epoch) trained once; tests that change a
# run work on copies of it.

TINY = ["--num-train", "40", "--cell", "lstm", "--hidden-dim", "8", "--wordvec-dim", "8", "--batch-size", "50"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return {**os.environ, "MINICAP_HOME": str(tmp_path_factory.mktemp("cache"))}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    done = run_cli("train", *TINY, "--epochs", "1", "--lr-decay", "0.8", "--quiet", "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    return pathlib.Path(shutil.copytree(tiny_run, tmp_path / "run"))


def test_train_refuses_to_replace_a_run_without_resume_or_overwrite(run_copy, env, tmp_path):
    before = _snapshot(run_copy)
    refused = run_cli("train", *TINY, "--epochs", "1", "--quiet", "--out", str(run_copy), env=env)
    assert refused.returncode == 2 and _one_line(refused.stderr), refused.stderr
    assert f"{run_copy} already holds a run" in refused.stderr
    assert "--resume" in refused.stderr and "--overwrite" in refused.stderr
    assert _snapshot(run_copy) == before
    # a finished run whose checkpoint is gone cannot be "resumed" into a new model over it
    (run_copy / "checkpoint.npz").unlink()
    before = _snapshot(run_copy)
    refused = run_cli("train", "--out", str(run_copy), "--resume", env=env)
    assert refused.returncode == 2 and "no checkpoint.npz to resume from" in refused.stderr
    assert _snapshot(run_copy) == before
    # --overwrite replaces it: a new run, and the old run's files are gone
    (run_copy / "metrics-test.json").write_text("{}")
    replaced = run_cli("train", *TINY, "--epochs", "2", "--quiet", "--overwrite", "--out", str(run_copy), env=env)
    assert replaced.returncode == 0, replaced.stderr
    assert len(json.loads((run_copy / "history.json").read_text())["loss_history"]) == 8
    assert not (run_copy / "metrics-test.json").exists()


def test_a_new_run_leaves_files_that_belong_to_no_run(tmp_path, env):
    # A folder without a run's config.json: the user's own loss.png and metrics.json
    # there are not an old run's files, and stay.
    out = tmp_path / "notes"
    out.mkdir()
    (out / "loss.png").write_bytes(b"my own figure")
    (out / "metrics.json").write_text('{"mine": 1}')
    done = run_cli("train", *TINY, "--epochs", "1", "--quiet", "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert (out / "metrics.json").read_text() == '{"mine": 1}'
    assert (out / "model.npz").is_file()


def test_demo_refuses_an_existing_run_before_doing_any_work(tmp_path, env):
    out = tmp_path / "old"
    out.mkdir()
    (out / "model.npz").write_bytes(b"a finished run")
    refused = run_cli("demo", "--quick", "--out", str(out), env=env)
    assert refused.returncode == 2 and _one_line(refused.stderr), refused.stderr
    assert str(out) in refused.stderr and "--overwrite" in refused.stderr
    assert f"minicap train --out {out} --resume" in refused.stderr
    assert _snapshot(out) == {"model.npz": b"a finished run"}


def test_a_refused_command_writes_nothing(run_copy, env, tmp_path):
    # the solver refuses these after the data are loaded: config.json must not be written first
    before = _snapshot(run_copy)
    for extra in (["--overwrite", "--grad-clip", "-1"], ["--resume", "--average-decay", "0.9"]):
        refused = run_cli("train", *TINY, "--quiet", "--out", str(run_copy), *extra, env=env)
        assert refused.returncode == 2 and _one_line(refused.stderr), refused.stderr
        assert _snapshot(run_copy) == before, extra
    new = tmp_path / "new"
    refused = run_cli("train", *TINY, "--grad-clip", "-1", "--out", str(new), env=env)
    assert refused.returncode == 2 and "grad_clip" in refused.stderr
    assert not new.exists()


def test_resume_with_lr_sets_the_current_learning_rate(run_copy, env):
    from minicap.checkpoint import load_state

    done = run_cli("train", "--out", str(run_copy), "--resume", "--epochs", "2", "--lr", "1e-4", "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    # 5e-3 decayed by 0.8 after epoch 1 is what the checkpoint held; --lr replaces it, even with --quiet
    assert "learning rate set to 0.0001 from the resumed 0.004" in done.stderr
    config = json.loads((run_copy / "config.json").read_text())
    assert config["learning_rate"] == 5e-3  # still the rate the run started with
    assert config["learning_rate_resets"] == [[1, 1e-4]]  # and when it was changed
    state = load_state(run_copy / "checkpoint.npz")
    assert state["epoch"] == 2
    for config in state["optim"].values():  # decayed once more at the end of epoch 2
        assert config["learning_rate"] == pytest.approx(1e-4 * 0.8, rel=1e-12)


def test_resume_of_a_missing_checkpoint_says_so(tmp_path, env):
    out = tmp_path / "typo"
    done = run_cli("train", *TINY, "--epochs", "1", "--out", str(out), "--resume", env=env)
    assert done.returncode == 0, done.stderr
    assert f"no checkpoint at {out / 'checkpoint.npz'}: starting from scratch" in done.stderr
    assert "(Epoch 1 / 1)" in done.stderr
    quiet = run_cli("train", *TINY, "--epochs", "1", "--out", str(tmp_path / "q"), "--quiet", env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_divergence_is_one_line_with_advice_that_can_be_followed(tmp_path, env):
    sgd = [*TINY, "--update-rule", "sgd", "--grad-clip", "0", "--quiet"]
    out = tmp_path / "diverged"
    failed = run_cli("train", *sgd, "--lr", "1e30", "--epochs", "1", "--out", str(out), env=env)
    assert failed.returncode == 2 and _one_line(failed.stderr), failed.stderr  # no RuntimeWarnings
    assert "no checkpoint was written" in failed.stderr and "resume" not in failed.stderr
    assert "Train again with a lower learning rate (--lr 1e+29) or --grad-clip 5." in failed.stderr
    out = tmp_path / "later"
    assert run_cli("train", *sgd, "--lr", "1e-3", "--epochs", "1", "--out", str(out), env=env).returncode == 0
    checkpoint = (out / "checkpoint.npz").read_bytes()
    failed = run_cli("train", "--out", str(out), "--resume", "--lr", "1e30", "--epochs", "2", "--quiet", env=env)
    notice, error = failed.stderr.strip().splitlines()  # the notice of the new rate, then the error
    assert failed.returncode == 2 and "Warning" not in failed.stderr, failed.stderr
    assert notice == "learning rate set to 1e+30 from the resumed 0.0009"
    assert f"the checkpoint {out / 'checkpoint.npz'} was left as it was" in failed.stderr
    assert f"Resume with a lower learning rate: minicap train --out {out} --resume --lr 1e+29" in failed.stderr
    assert (out / "checkpoint.npz").read_bytes() == checkpoint


@pytest.mark.parametrize("args, message", [
    (["train", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (["train", "--lr", "-1"], "argument --lr: must be a finite number > 0, got -1"),
    (["train", "--lr", "nan"], "argument --lr: must be a finite number > 0, got nan"),
    (["train", "--lr", "0"], "argument --lr: must be a finite number > 0, got 0"),
    (["evaluate", "RUN", "--max-images", "0"], "argument --max-images: must be at least 1, got 0"),
    (["evaluate", "RUN", "--max-images", "-498"], "argument --max-images: must be at least 1, got -498"),
    (["visualize", "RUN", "--images", "0"], "argument --images: must be at least 1, got 0"),
    (["visualize", "RUN", "--images", "-1"], "argument --images: must be at least 1, got -1"),
    (["caption", "x.png", "--checkpoint", "RUN", "--beam-size", "0"], "argument --beam-size: must be at least 1, got 0"),
])
def test_bad_numbers_are_refused_in_one_line(args, message, tmp_path, capsys):
    args = [str(tmp_path / "run") if a == "RUN" else a for a in args]
    with pytest.raises(SystemExit) as info:
        main([*args, "--out", str(tmp_path / "run")] if args[0] == "train" else args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"minicap {args[0]}: error: {message} (see minicap {args[0]} --help)\n"
    assert list(tmp_path.iterdir()) == []


def test_unfinished_run_says_how_to_continue(tmp_path, capsys):
    from dataclasses import asdict

    from minicap.runs import RunConfig, write_json

    run = tmp_path / "int"
    write_json(run / "config.json", asdict(RunConfig()))  # what Ctrl-C in the first epoch leaves
    (tmp_path / "x.png").write_bytes(b"")
    for args in (["evaluate", str(run)], ["visualize", str(run)], ["caption", str(tmp_path / "x.png"), "--checkpoint", str(run)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err == (f"minicap {args[0]}: error: training in {run} did not finish (it has config.json but no "
                       f"model.npz); continue it with: minicap train --out {run} --resume\n")


def test_visualize_rejects_an_unknown_split(tiny_run, env):
    before = _snapshot(tiny_run)
    refused = run_cli("visualize", str(tiny_run), "--split", "bogus", env=env)
    assert refused.returncode == 2 and _one_line(refused.stderr), refused.stderr
    assert "no 'bogus' split; choose one of ['test', 'train', 'val']" in refused.stderr
    assert _snapshot(tiny_run) == before


def test_caption_checks_attention_out_before_captioning(tiny_run, env, tmp_path):
    from PIL import Image

    image = tmp_path / "scene.png"
    Image.new("RGB", (112, 112), (200, 40, 40)).save(image)
    refused = run_cli("caption", str(image), "--checkpoint", str(tiny_run), "--attention-out", str(tmp_path / "ov"),
                      env=env)
    assert refused.returncode == 2 and _one_line(refused.stderr), refused.stderr
    assert "--attention-out needs an attention model" in refused.stderr and "'lstm'" in refused.stderr
    assert refused.stdout == "" and not (tmp_path / "ov").exists()


def test_overlay_names_keep_images_with_the_same_stem_apart():
    from minicap.cli.caption import overlay_names

    assert overlay_names(["a/x.png", "b/y.jpg"]) == ["x_attention.png", "y_attention.png"]
    assert overlay_names(["a/img.png", "b/img.png", "c.png"]) == [
        "0_img_attention.png", "1_img_attention.png", "2_c_attention.png"]


def test_encoder_goes_into_the_dataset_options(tmp_path, capsys):
    from minicap.cli import build_parser
    from minicap.cli.train import config_from_args

    def config(*args):
        return config_from_args(build_parser().parse_args(["train", "--out", str(tmp_path / "r"), *args]))

    assert config("--dataset", "coco-eecs498", "--data-path", "coco.pt").dataset_options == {"encoder": "mobilenet_v2"}
    chosen = config("--dataset", "coco-eecs498", "--data-path", "coco.pt", "--encoder", "regnet_x_400mf",
                    "--num-train", "10")
    assert chosen.dataset_options == {"encoder": "regnet_x_400mf", "num_train": 10}
    assert config().dataset_options == {}
    assert main(["train", "--encoder", "regnet_x_400mf", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == ("minicap train: error: --encoder chooses the features of coco.pt: "
                                       "it needs --dataset coco-eecs498, not 'shapes'\n")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------- review fixes: features and caption


def test_features_batch_size_is_checked_before_reading_coco_pt(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["features", str(tmp_path / "coco.pt"), "--batch-size", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err == ("minicap features: error: argument --batch-size: must be at least 1, got 0 "
                                       "(see minicap features --help)\n")
    assert list(tmp_path.iterdir()) == []


def test_caption_refuses_weights_for_a_run_without_a_cnn(tiny_run, tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "scene.png"
    Image.new("RGB", (112, 112), (200, 40, 40)).save(image)
    assert main(["caption", str(image), "--checkpoint", str(tiny_run), "--weights", str(tmp_path / "w.pth")]) == 2
    captured = capsys.readouterr()
    assert captured.err == ("minicap caption: error: weights choose the CNN of a coco-eecs498 run; "
                            "a shapes run has no CNN encoder\n")
    assert captured.out == ""


class _MeanEncoder:
    """Stands in for a CNN (tests never download one): each image's per-channel mean as a (3, 1, 1) map."""

    name, out_channels, stride = "fake", 3, 32

    def __call__(self, images):
        import numpy as np

        return images.astype(np.float32).mean(axis=(2, 3), keepdims=True)


@pytest.fixture
def coco_with_features(tmp_path, monkeypatch):
    """tiny_coco.pt with features made by `minicap features --weights used.pth`, and a run trained on them."""
    import minicap.encoders

    seen = []
    monkeypatch.setattr(minicap.encoders, "load_encoder", lambda name, weights=None: seen.append(weights) or _MeanEncoder())
    coco_pt = tmp_path / "coco.pt"
    shutil.copy(pathlib.Path(__file__).parent / "fixtures" / "tiny_coco.pt", coco_pt)
    used, other = tmp_path / "used.pth", tmp_path / "other.pth"
    used.write_bytes(b"the weights that made the training features")
    other.write_bytes(b"some other network")
    assert main(["features", str(coco_pt), "--weights", str(used), "--batch-size", "2"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--dataset", "coco-eecs498", "--data-path", str(coco_pt), "--cell", "lstm", "--epochs", "1",
                 "--hidden-dim", "4", "--wordvec-dim", "4", "--batch-size", "2", "--quiet", "--out", str(run)]) == 0
    return coco_pt, run, used, other, seen


def test_features_record_the_sha256_of_the_weights_file(coco_with_features):
    import hashlib

    from minicap.data.coco import features_path
    from minicap.encoders.extract import stored_weights_sha256

    coco_pt, _, used, _, seen = coco_with_features
    assert seen == [str(used)]
    assert stored_weights_sha256(features_path(coco_pt, "mobilenet_v2")) == hashlib.sha256(used.read_bytes()).hexdigest()


def test_features_without_weights_record_the_published_checkpoint(tmp_path, monkeypatch):
    import hashlib

    import minicap.encoders
    from minicap.data.coco import features_path
    from minicap.encoders.extract import stored_weights_sha256
    from minicap.encoders.weights import checkpoint_path

    monkeypatch.setenv("MINICAP_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(minicap.encoders, "load_encoder", lambda name, weights=None: _MeanEncoder())
    published = checkpoint_path("regnet_x_400mf")  # where load_encoder would have fetched it
    published.parent.mkdir(parents=True)
    published.write_bytes(b"published bytes")
    coco_pt = tmp_path / "coco.pt"
    shutil.copy(pathlib.Path(__file__).parent / "fixtures" / "tiny_coco.pt", coco_pt)
    assert main(["features", str(coco_pt), "--encoder", "regnet_x_400mf"]) == 0
    assert stored_weights_sha256(features_path(coco_pt, "regnet_x_400mf")) == hashlib.sha256(b"published bytes").hexdigest()


def test_caption_refuses_weights_other_than_those_of_the_training_features(coco_with_features, tmp_path, capsys):
    from PIL import Image

    from minicap.data.coco import features_path

    coco_pt, run, used, other, seen = coco_with_features
    image = tmp_path / "photo.png"
    Image.new("RGB", (112, 112), (200, 40, 40)).save(image)
    capsys.readouterr()
    assert main(["caption", str(image), "--checkpoint", str(run), "--weights", str(other)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith(f"minicap caption: error: the run's training features "
                                   f"({features_path(coco_pt, 'mobilenet_v2')}) were made with other mobilenet_v2 weights")
    assert captured.err.endswith(f"than --weights {other}; pass the same --weights that `minicap features` used\n")
    # the same weights: captioned, with that file given to the encoder
    seen.clear()
    assert main(["caption", str(image), "--checkpoint", str(run), "--weights", str(used)]) == 0
    assert seen == [used]
    assert capsys.readouterr().out.startswith(f"{image}: ")


def test_featurize_images_refuses_weights_for_a_run_without_a_cnn():
    import numpy as np

    from minicap.runs import RunConfig, featurize_images

    with pytest.raises(ValueError) as info:
        featurize_images(RunConfig(dataset="shapes"), np.zeros((1, 3, 112, 112), np.uint8), weights="w.pth")
    assert str(info.value) == "weights choose the CNN of a coco-eecs498 run; a shapes run has no CNN encoder"


@pytest.mark.parametrize("args", [["data", "shapes", "--num-train", "0"], ["data", "show", "shapes", "--batch-size", "-1"]])
def test_data_commands_refuse_counts_below_one(args, env):
    refused = run_cli(*args, env=env)
    assert refused.returncode == 2 and _one_line(refused.stderr), refused.stderr
    assert "must be at least 1" in refused.stderr
