"""``minicap train --resume`` on hand-edited checkpoints: valid zips whose JSON fields are wrong
are refused in one line that names the file and the field (minicap.checkpoint.check_training_state)."""

import shutil

import numpy as np
import pytest

from minicap.checkpoint import load_state, save_state
from minicap.cli import main

# 40 scenes of 5 captions: an epoch's order is a permutation of 200 caption rows
TINY = ["--num-train", "40", "--cell", "lstm", "--hidden-dim", "8", "--wordvec-dim", "8", "--batch-size", "10"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", *TINY, "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    return out


def _edited(finished, tmp_path, **fields):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    state = load_state(run / "checkpoint.npz")
    state.update(fields)
    save_state(run / "checkpoint.npz", state)
    return run


@pytest.mark.parametrize("fields, named", [
    ({"loss_history": "abc"}, "'loss_history' is 'abc', expected a list of numbers"),
    ({"epoch": "1"}, "'epoch' is '1', expected a whole number >= 0"),
    ({"position": -5}, "'position' is -5, expected a whole number >= 0"),
    ({"order": np.r_[np.arange(199), 10**9], "position": 3}, "'order' is an array int64 (200,), expected a permutation"),
    ({"order": np.arange(200), "position": 201}, "'position' is 201, expected at most the 200 rows"),
    ({"position": 7}, "'position' is 7, expected 0 between epochs"),
    ({"rng_state": {"x": 1}}, "'rng_state' is {'x': 1}, expected the state of a PCG64 generator"),
    ({"best_params": {"W_embed": 1}}, "'best_params' is {'W_embed': 1}, expected null or a dict of arrays"),
    ({"val_loss_history": [None]}, "'val_loss_history' is [None], expected a list of numbers"),
    ({"iteration": 10**12}, "'iteration' is 1000000000000, expected the length of loss_history (20)"),
    ({"epoch": 10**9}, "'epoch' is 1000000000, expected at most the iteration count (20)"),
], ids=["loss-history-string", "epoch-string", "negative-position", "order-index", "position-past-order",
        "position-without-order", "rng-state", "best-params", "val-loss-none", "iteration-huge",
        "epoch-huge"])
def test_edited_fields_are_refused_naming_file_and_field(finished, tmp_path, capsys, fields, named):
    run = _edited(finished, tmp_path, **fields)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{run / 'checkpoint.npz'} is damaged or was edited: its {named}" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing written


def test_a_valid_mid_epoch_order_still_resumes(finished, tmp_path, capsys):
    run = _edited(finished, tmp_path, order=np.random.default_rng(5).permutation(200), position=10)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 0


def _with_optim(finished, **changes):
    optim = load_state(finished / "checkpoint.npz")["optim"]
    return {**optim, "W_vocab": {**optim["W_vocab"], **changes}}


@pytest.mark.parametrize("edit, named", [
    (lambda run: {"optim": _with_optim(run, m=np.zeros(1, np.float32))},
     "'optim/W_vocab/m' is an array float32 (1,), expected finite values (an array of W_vocab's shape (8, "),
    (lambda run: {"optim": _with_optim(run, v=np.full_like(_with_optim(run)["W_vocab"]["v"], np.nan))},
     "'optim/W_vocab/v' is an array float32 (8, "),
    (lambda run: {"optim": _with_optim(run, learning_rate=float("nan"))}, "'optim/W_vocab/learning_rate' is nan"),
    (lambda run: {"best_params": {**load_state(run / "checkpoint.npz")["best_params"],
                                  "b_vocab": np.full(3, np.inf, np.float32)}}, "'best_params/b_vocab' is an array"),
    (lambda run: {"average": {"decay": 0.9, "steps": "x", "sums": None}}, "'average' is {'decay': 0.9, 'steps': 'x'"),
], ids=["moment-shape", "moment-nan", "lr-nan", "best-params-inf", "average-steps"])
def test_arrays_that_would_broadcast_or_spread_nan_are_refused(finished, tmp_path, capsys, edit, named):
    """A moment of shape (1,) broadcasts against any parameter, a NaN spreads: both would train on silently."""
    run = _edited(finished, tmp_path, **edit(finished))
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"is damaged or was edited: its {named}" in err, err
