"""The command line against hostile input: one line and exit 2 (or 130 for Ctrl-C), never a
traceback, and sizes checked against the machine before anything is allocated."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minicap.cli import main


def _one_line(stderr):
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and "Traceback" not in stderr


def test_ctrl_c_during_the_imports_exits_130_in_one_line(tmp_path):
    """Ctrl-C while NumPy is being imported (the first half second of every command)."""
    script = textwrap.dedent("""
        import builtins, sys
        real_import = builtins.__import__
        def interrupted(name, *args, **kwargs):
            if name == "numpy":
                raise KeyboardInterrupt
            return real_import(name, *args, **kwargs)
        builtins.__import__ = interrupted
        from minicap.cli import main
        sys.exit(main(["data", "shapes", "--num-train", "5"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MINICAP_HOME": str(tmp_path)})
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "minicap: interrupted"


# ---------------------------------------------------------------- sizes the machine cannot hold

TINY = ["--num-train", "40", "--cell", "lstm", "--hidden-dim", "8", "--wordvec-dim", "8", "--batch-size", "50"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", *TINY, "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    return out


def _refused(capsys, argv, *parts):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert _one_line(err), err
    for part in parts:
        assert part in err, err
    return err


@pytest.mark.parametrize("argv, name", [
    (["data", "shapes", "--num-train", "99999999999"], "num_train 99999999999"),
    (["train", "--num-train", "99999999999"], "num_train 99999999999"),
    (["train", *TINY, "--hidden-dim", "100000000"], "hidden_dim 100000000"),
    (["train", *TINY, "--wordvec-dim", "100000000"], "wordvec_dim 100000000"),
    (["train", *TINY, "--batch-size", "10000000000"], "batch_size 10000000000"),
], ids=["data-shapes", "train-num-train", "hidden-dim", "wordvec-dim", "batch-size"])
def test_sizes_that_cannot_fit_are_refused_before_allocating(tmp_path, capsys, argv, name):
    if argv[0] == "train":
        argv = [*argv, "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")]
    err = _refused(capsys, argv, name, "of memory, but this machine has", "is about the most that fits")
    assert not (tmp_path / "run").exists()
    del err


def test_a_beam_too_wide_for_memory_is_refused(tiny_run, capsys):
    _refused(capsys, ["evaluate", str(tiny_run), "--beam-size", "1000000000"], "beam_size 1000000000",
             "is about the most that fits")
    assert not list(tiny_run.glob("metrics-*.json"))


def test_a_memory_error_anywhere_is_one_line(tiny_run, capsys, monkeypatch):
    from minicap import runs

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 2.2 GiB for an array with shape (60000, 3, 112, 112)")

    monkeypatch.setattr(runs, "load_dataset", exhausted)
    _refused(capsys, ["evaluate", str(tiny_run)], "out of memory (Unable to allocate 2.2 GiB", "use smaller sizes")


@pytest.mark.parametrize("argv, message", [
    (["caption", "x.png", "--checkpoint", "RUN", "--max-length", "100000000"], "must be at most 1000 words"),
    (["visualize", "RUN", "--images", "100000"], "must be at most 64 images"),  # was a 162-megapixel PNG
    (["data", "show", "shapes", "--batch-size", "100000"], "must be at most 64 images"),
], ids=["caption-max-length", "visualize-images", "data-show-batch-size"])
def test_counts_that_would_run_for_minutes_have_an_upper_bound(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert _one_line(err) and message in err


def _png_header(path, width, height):
    """A PNG that declares width x height pixels and holds none (Pillow reads the size from the header)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_caption_refuses_a_decompression_bomb_in_one_line(tiny_run, tmp_path, capsys):
    image = tmp_path / "huge.png"
    _png_header(image, 40000, 40000)
    _refused(capsys, ["caption", str(image), "--checkpoint", str(tiny_run)], f"cannot read {image}",
             "scale the image down")


def test_caption_names_a_folder_as_a_folder(tiny_run, tmp_path, capsys):
    _refused(capsys, ["caption", str(tmp_path), "--checkpoint", str(tiny_run)],
             f"{tmp_path} is a folder, not an image file")


def test_check_size_names_the_largest_value_that_fits():
    from minicap.memcheck import NotEnoughMemoryError, check_size

    check_size("n", 55, lambda n: 10 * n, "a thing", available=555)  # fits: nothing raised
    with pytest.raises(NotEnoughMemoryError, match=r"^a thing with n 100 needs at least 1000 bytes of memory, "
                                                   r"but this machine has 555 bytes free; n 55 is about the most"):
        check_size("n", 100, lambda n: 10 * n, "a thing", available=555)
    with pytest.raises(NotEnoughMemoryError, match="it does not fit even with n 1"):
        check_size("n", 3, lambda n: 1000 + n, "a thing", available=555)


# ---------------------------------------------------------------- messages that say what was wrong


def test_help_texts_show_no_rst_markup(capsys):
    from minicap.cli import _COMMAND_NAMES

    for name in ("", *_COMMAND_NAMES):
        with pytest.raises(SystemExit):
            main([name, "--help"] if name else ["--help"])
        out = capsys.readouterr().out
        assert "usage: minicap" in out and "``" not in out, out


@pytest.mark.parametrize("argv, prog", [
    (["evaluate", "runs/demo", "--splt", "val"], "minicap evaluate"),
    (["data", "show", "shapes", "--bogus"], "minicap data show"),
])
def test_a_misspelt_option_points_at_the_subcommands_help(capsys, argv, prog):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert _one_line(err) and err.startswith(f"{prog}: error: unrecognized arguments") and f"(see {prog} --help)" in err


def test_out_options_that_name_the_wrong_kind_of_path(tiny_run, tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    _refused(capsys, ["train", *TINY, "--out", str(a_file)], f"{a_file} is a file, not a run folder")
    _refused(capsys, ["demo", "--quick", "--out", str(a_file)], f"{a_file} is a file, not a run folder")
    _refused(capsys, ["caption", "x.png", "--checkpoint", str(tiny_run), "--attention-out", str(a_file)],
             f"--attention-out {a_file} is a file")
    _refused(capsys, ["data", "show", "shapes", "--out", str(tmp_path)], f"--out {tmp_path} is a folder")
    assert a_file.read_text() == "mine"


def test_caption_checkpoint_given_the_model_file_says_to_pass_the_folder(tiny_run, capsys):
    _refused(capsys, ["caption", "x.png", "--checkpoint", str(tiny_run / "model.npz")],
             f"{tiny_run / 'model.npz'} is a file; pass the run folder that holds it ({tiny_run})")


@pytest.mark.parametrize("text", ['{"loss_history": [1.0', '{"loss_history": "x", "val_loss_history": [], '
                                  '"iterations_per_epoch": 1}', '{"loss_history": []}'],
                         ids=["truncated", "string", "missing-key"])
def test_visualize_names_a_damaged_history_file(tiny_run, tmp_path, capsys, text):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "history.json").write_text(text)
    _refused(capsys, ["visualize", str(run), "--images", "1"], f"{run / 'history.json'} is damaged")


def test_visualize_keeps_each_splits_figures_apart(tiny_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert main(["visualize", str(run), "--images", "2"]) == 0
    test_figure = (run / "captions.png").read_bytes()
    assert main(["visualize", str(run), "--split", "val", "--images", "2"]) == 0
    assert "figures of the val split" in capsys.readouterr().out
    assert (run / "captions.png").read_bytes() == test_figure  # the test split's figure was not replaced
    assert (run / "captions-val.png").is_file() and (run / "beam-val.png").is_file()


def test_a_nan_model_is_refused_instead_of_writing_empty_captions(tiny_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    arrays = dict(np.load(run / "model.npz"))
    arrays["param/W_vocab"] = np.full_like(arrays["param/W_vocab"], np.nan)
    np.savez(run / "model.npz", **arrays)
    _refused(capsys, ["evaluate", str(run)], "parameter 'W_vocab' holds", "NaN or infinite")


@pytest.mark.parametrize("field, value, expected", [
    ("dataset_options", "x", "expected a JSON object"),
    ("hidden_dim", "8", "expected a whole number >= 1"),
    ("dataset", "nope", "expected one of"),
    ("learning_rate_resets", "x", "expected a list of [epoch, rate] pairs"),
    ("grad_clip", -1, "expected a number >= 0 or null"),
])
def test_a_hand_edited_config_names_the_field(tiny_run, tmp_path, capsys, field, value, expected):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, field: value}))
    for argv in (["evaluate", str(run)], ["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]):
        _refused(capsys, argv, f"{run / 'config.json'} is not a valid run config: {field} is {value!r}, {expected}")


def test_json_nested_thousands_deep_is_named_as_damaged(tiny_run, tmp_path, capsys):
    """json.loads raises RecursionError, not ValueError, for such a document."""
    import shutil

    from minicap.checkpoint import CheckpointError, load_state, save_npz_atomic

    deep = "[" * 100_000 + "]" * 100_000
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "config.json").write_text(deep)
    _refused(capsys, ["evaluate", str(run)], f"{run / 'config.json'} is not a valid run config")
    shutil.copy(tiny_run / "config.json", run / "config.json")
    (run / "history.json").write_text(deep)
    _refused(capsys, ["visualize", str(run)], f"{run / 'history.json'} is damaged")
    save_npz_atomic(tmp_path / "c.npz", {"__json__": np.array(deep)})
    with pytest.raises(CheckpointError, match="the JSON part of .*c.npz is damaged"):
        load_state(tmp_path / "c.npz")


def test_download_dest_that_is_a_file_is_named(tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    _refused(capsys, ["data", "download", "coco-eecs498", "--dest", str(a_file)], f"{a_file} is a file")
    assert a_file.read_text() == "mine"


def test_caption_refuses_a_device_as_an_image(tiny_run, capsys):
    _refused(capsys, ["caption", "/dev/zero", "--checkpoint", str(tiny_run)], "/dev/zero is not a regular file")
