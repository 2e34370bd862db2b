"""The BLAS thread policy (minicap/threads.py): small models run on one thread, so a
run's result does not depend on how many threads the BLAS was started with."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from minicap import CaptioningRNN, threads


def _blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_the_size_rule():
    assert threads.threads_for(50, 64, 256) == 1  # the demo's recurrent product
    assert threads.threads_for(128, 512, 2048) is None  # a COCO model's: the BLAS decides
    assert threads.threads_for(1, 1, threads.SMALL_STEP - 1) == 1
    assert threads.threads_for(1, 1, threads.SMALL_STEP) is None


def test_for_model_lowers_the_count_for_a_small_model_only(monkeypatch):
    # The large model's choice is measured; the measurement is stood in for (an idle
    # machine where the threads pay), so that a noisy machine cannot fail the test.
    monkeypatch.setattr(threads, "speedup", lambda *args: 2.0)
    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2}
    small = CaptioningRNN(vocab, input_dim=4, wordvec_dim=4, hidden_dim=8, cell_type="lstm")
    before = _blas_threads()
    with threads.for_model(small, rows=50):
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before
    large = CaptioningRNN(vocab, input_dim=4, wordvec_dim=4, hidden_dim=1024, cell_type="lstm")
    with threads.for_model(large, rows=128):
        assert _blas_threads() == before


def test_limit_overrides_the_rule_and_nests():
    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2}
    small = CaptioningRNN(vocab, input_dim=4, wordvec_dim=4, hidden_dim=8)
    with threads.limit(2):
        assert threads.chosen() == 2
        with threads.for_model(small, rows=50):  # the user's choice wins over the rule
            assert set(_blas_threads()) == {2}
        with threads.limit(1):
            assert set(_blas_threads()) == {1}
        assert threads.chosen() == 2
    assert threads.chosen() is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_limit_refuses_a_bad_count(bad):
    with pytest.raises(ValueError, match="positive integer"):
        with threads.limit(bad):
            pass


def _train_and_evaluate(tmp_path, blas_threads):
    out = tmp_path / f"run{blas_threads}"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(blas_threads), "OMP_NUM_THREADS": str(blas_threads),
           "MINICAP_HOME": str(tmp_path / "home")}
    common = [sys.executable, "-m", "minicap.cli"]
    # the demo's model sizes (attention, H = 64, W = 32, batches of 50) on a smaller world
    train = subprocess.run(common + ["train", "--num-train", "200", "--epochs", "2", "--cell", "attention",
                                     "--hidden-dim", "64", "--wordvec-dim", "32", "--batch-size", "50",
                                     "--quiet", "--out", str(out)], env=env, capture_output=True, text=True)
    assert train.returncode == 0, train.stderr
    evaluate = subprocess.run(common + ["evaluate", str(out), "--beam-size", "2"], env=env, capture_output=True,
                              text=True)
    assert evaluate.returncode == 0, evaluate.stderr
    params = dict(np.load(out / "model.npz"))
    metrics = json.loads((out / "metrics-test.json").read_text(encoding="utf-8"))
    return params, metrics


@pytest.mark.slow
def test_a_small_run_is_the_same_with_one_or_two_blas_threads(tmp_path):
    params1, metrics1 = _train_and_evaluate(tmp_path, 1)
    params2, metrics2 = _train_and_evaluate(tmp_path, 2)
    assert metrics1 == metrics2
    for name in params1:
        if name.startswith("param/"):
            np.testing.assert_array_equal(params1[name], params2[name], err_msg=name)


@pytest.mark.parametrize("gain, expected", [(1.6, None), (1.0, 1), (0.5, 1)])
def test_a_large_model_keeps_the_blas_threads_only_where_they_measure_faster(monkeypatch, gain, expected):
    """Above SMALL_STEP the choice is measured: a machine where the extra threads are not
    clearly faster (another busy process) gets one thread."""
    measured = []
    monkeypatch.setattr(threads, "_blas_count", lambda: 2)
    monkeypatch.setattr(threads, "speedup", lambda *args: measured.append(args) or gain)
    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2}
    large = CaptioningRNN(vocab, input_dim=4, wordvec_dim=4, hidden_dim=1024, cell_type="lstm")
    with threads.for_model(large, rows=128) as policy:
        assert policy.choice == expected
        assert measured and measured[0][:3] == (128, 1024, 4096)
        if expected == 1:
            assert set(_blas_threads()) == {1}


@pytest.mark.parametrize("gains, expected", [([1.0, 1.6], None), ([1.0, 1.1], 1)])
def test_a_low_reading_is_taken_again_before_settling_on_one_thread(monkeypatch, gains, expected):
    """One spoiled measurement on an idle machine must not cost the run its second core;
    a busy machine reads low every time."""
    readings = iter(gains)
    monkeypatch.setattr(threads, "_blas_count", lambda: 2)
    monkeypatch.setattr(threads, "speedup", lambda *args: next(readings))
    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2}
    large = CaptioningRNN(vocab, input_dim=4, wordvec_dim=4, hidden_dim=1024, cell_type="lstm")
    with threads.for_model(large, rows=128) as policy:
        assert policy.choice == expected
    assert next(readings, "all read") == "all read"  # both readings were taken, no more


def test_the_policy_is_measured_again_at_every_epoch(monkeypatch):
    from minicap import CaptioningSolver
    from test_solver_toy import toy_data

    gains = iter([2.0, 0.9, 0.9, 2.0])  # epoch 1 reads low twice
    monkeypatch.setattr(threads, "_blas_count", lambda: 2)
    monkeypatch.setattr(threads, "threads_for", lambda *args: None)  # treat the toy model as large
    monkeypatch.setattr(threads, "speedup", lambda *args: next(gains))
    data = toy_data()
    model = CaptioningRNN(data["word_to_idx"], input_dim=4, wordvec_dim=3, hidden_dim=5)
    choices = []
    original = threads._Policy.recheck

    def recheck(self):
        original(self)
        choices.append(self.choice)
    monkeypatch.setattr(threads._Policy, "recheck", recheck)
    CaptioningSolver(model, data, batch_size=8, num_epochs=3, verbose=False).train()
    assert choices == [None, 1, None]  # at the start, then after epochs 1 and 2


def test_speedup_measures_a_real_product():
    gain = threads.speedup(64, 32, 128, np.float32, 1, repeats=2)
    assert gain > 0
