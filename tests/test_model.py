"""CaptioningRNN: parameters, loss and gradients, input checks, persistence."""

import math

import numpy as np
import pytest

from minicap import CaptioningRNN
from minicap.backend import to_device, to_numpy
from minicap.data import decode_captions
from minicap.gradcheck import eval_numerical_gradient, rel_error
from minicap.model import CheckpointError

from reference_captioner import caption_loss

CELLS = ["rnn", "lstm", "attention"]
VOCAB = {"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3, "a": 4, "red": 5, "circle": 6}


def make_inputs(cell, rng, N=3, D=4, T=5, grid=(2, 3), V=len(VOCAB)):
    shape = (N, D) + (grid if cell == "attention" else ())
    features = rng.standard_normal(shape)
    captions = rng.integers(0, V, size=(N, T + 1))
    captions[:, 0] = 1
    captions[0, 3:] = 0  # a padded caption: these targets are masked
    return features, captions


def small_model(cell, dtype=np.float64, **kw):
    kw = {"input_dim": 4, "wordvec_dim": 5, "hidden_dim": 6, **kw}
    return CaptioningRNN(VOCAB, cell_type=cell, dtype=dtype, **kw)


@pytest.mark.parametrize("cell", CELLS)
def test_param_keys_shapes_and_init(cell):
    m = CaptioningRNN(VOCAB, input_dim=8, wordvec_dim=5, hidden_dim=6, cell_type=cell)
    g = 1 if cell == "rnn" else 4
    V = len(VOCAB)
    expected = {"W_embed": (V, 5), "W_proj": (8, 6), "b_proj": (6,), "Wx": (5, g * 6), "Wh": (6, g * 6),
                "b": (g * 6,), "W_vocab": (6, V), "b_vocab": (V,)}
    if cell == "attention":
        expected["Wattn"] = (6, 24)
    assert {k: v.shape for k, v in m.params.items()} == expected
    assert all(v.dtype == np.float32 for v in m.params.values())
    for name in ("b_proj", "b", "b_vocab"):
        assert not m.params[name].any()
    # W_embed is scaled down by 100 relative to a unit normal, Wx by sqrt(W)
    assert 0.001 < m.params["W_embed"].std() < 0.03
    assert 0.2 < m.params["Wx"].std() < 0.7


def test_same_seed_same_weights_other_seed_differs():
    a, b, c = (CaptioningRNN(VOCAB, seed=s, input_dim=4, hidden_dim=3, wordvec_dim=2) for s in (1, 1, 2))
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["Wx"], c.params["Wx"])


def test_bad_cell_type_and_vocab():
    with pytest.raises(ValueError, match="cell_type"):
        CaptioningRNN(VOCAB, cell_type="transformer")
    with pytest.raises(ValueError, match="<NULL>"):
        CaptioningRNN({"cat": 1})


def test_cs231n_vocab_needs_only_null():
    with pytest.warns(UserWarning, match=r"V = 3 .*'dog' \(id 3\)"):
        m = CaptioningRNN({"<NULL>": 0, "cat": 2, "dog": 3}, input_dim=4, wordvec_dim=3, hidden_dim=5,
                          dtype=np.float64)
    assert m.vocab_size == 3  # len(word_to_idx), as in both courses
    features = np.ones((2, 4))
    loss, grads = m.loss(features, np.array([[0, 2, 1], [1, 2, 0]]))
    assert math.isfinite(float(loss)) and set(grads) == set(m.params)
    with pytest.raises(ValueError, match=r"\[0, 3\) \(V = len\(word_to_idx\)\), found id 3 \('dog'\)"):
        m.loss(features, np.array([[0, 2, 3], [3, 2, 0]]))
    with pytest.raises(ValueError, match="<START> and <END>"):
        m.sample(features)


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("cell, features_range, expected", [
    ("rnn", (-1.5, 0.3), 9.83235591003),
    ("lstm", (-0.5, 1.7), 9.82445935443),
])
def test_cs231n_published_model_loss(impl, cell, features_range, expected):
    """The CS231n notebooks' CaptioningRNN loss check, as published (V = len(word_to_idx) = 3)."""
    N, D, W, H, T = 10, 20, 30, 40, 13
    word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
    with pytest.warns(UserWarning):
        model = CaptioningRNN(word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell,
                              dtype=np.float64, impl=impl)
    for k, v in model.params.items():
        model.params[k] = np.linspace(-1.4, 1.3, num=v.size).reshape(*v.shape)
    features = np.linspace(*features_range, num=N * D).reshape(N, D)
    captions = (np.arange(N * T, dtype=np.int32) % len(word_to_idx)).reshape(N, T)
    loss, _ = model.loss(features, captions)
    assert abs(float(loss) - expected) < 1e-9


def test_a_vocabulary_with_gaps_never_decodes_a_missing_id(rng):
    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 9, "b": 3, "c": 5}  # V = 6: ids 4 and 9 have no use
    with pytest.warns(UserWarning, match=r"'a' \(id 9\)"):
        m = CaptioningRNN(vocab, input_dim=4, wordvec_dim=3, hidden_dim=5, dtype=np.float64)
    assert m.vocab_size == 6 and m.idx_to_word[4] is None
    m.params["b_vocab"][4] = 100.0  # the untrained model would pick id 4 every time
    features = rng.standard_normal((3, 4))
    for captions in (m.sample(features, max_length=6), m.beam_search(features, beam_size=2, max_length=6)):
        assert not np.isin(captions, [1, 4]).any()
        decode_captions(captions, m.idx_to_word)  # every emitted id has a word


def test_a_huge_id_is_out_of_range_not_a_memory_error():
    with pytest.warns(UserWarning, match=r"'w' \(id 1000000000\)"):
        m = CaptioningRNN({"<NULL>": 0, "w": 10**9}, input_dim=2, wordvec_dim=2, hidden_dim=2)
    assert m.params["W_embed"].shape == (2, 2)
    with pytest.raises(ValueError, match=r"found id 1000000000 \('w'\)"):
        m.loss(np.ones((1, 2)), np.array([[0, 10**9]]))


@pytest.mark.parametrize("cell", CELLS)
def test_loss_matches_independent_forward(cell, rng):
    m = small_model(cell)
    features, captions = make_inputs(cell, rng)
    loss, _ = m.loss(features, captions)
    assert abs(float(loss) - caption_loss(m.params, cell, features, captions)) < 1e-10


@pytest.mark.parametrize("cell", CELLS)
def test_grads_match_numerical_gradient_of_independent_loss(cell, rng):
    """Whole-model gradient check in float64 for every parameter. The
    numerical side differentiates the plain reference forward, so a bug
    shared by the model's forward and backward cannot hide."""
    m = small_model(cell)
    for v in m.params.values():  # nonzero biases so their gradients are exercised
        v += 0.1 * rng.standard_normal(v.shape)
    features, captions = make_inputs(cell, rng)
    _, grads = m.loss(features, captions)
    assert set(grads) == set(m.params)
    for name, param in m.params.items():
        num = eval_numerical_gradient(lambda _: caption_loss(m.params, cell, features, captions), param)
        # Whole-model losses are ~10, so each central difference carries
        # ~1e-10 of float64 round-off: entries of size ~1e-5 (LSTM recurrent
        # weights) can show elementwise rel_error ~1e-5 even when right. Check
        # the whole gradient tightly (observed <= 1.2e-8) and the elementwise
        # course measure loosely (observed <= 5e-5).
        norm_err = np.linalg.norm(num - grads[name]) / np.linalg.norm(num)
        assert norm_err < 1e-7, (name, norm_err)
        assert rel_error(num, grads[name]) < 1e-3, name
        assert grads[name].shape == param.shape and grads[name].dtype == param.dtype


@pytest.mark.parametrize("cell", CELLS)
def test_loss_reads_params_live(cell, rng):
    m = small_model(cell)
    features, captions = make_inputs(cell, rng)
    before = float(m.loss(features, captions)[0])
    m.params["b_vocab"][4] += 3.0  # in place, as a gradient checker does
    assert float(m.loss(features, captions)[0]) != before


@pytest.mark.parametrize("cell", CELLS)
def test_initial_loss_is_log_v_per_kept_target(cell, rng):
    m = small_model(cell, hidden_dim=16)
    m.params["W_vocab"] *= 1e-4  # near-uniform predictions
    features, captions = make_inputs(cell, rng, N=8)
    kept = (captions[:, 1:] != 0).sum()
    expected = kept / 8 * math.log(len(VOCAB))
    assert abs(float(m.loss(features, captions)[0]) - expected) < 1e-2 * expected


@pytest.mark.parametrize("cell", CELLS)
def test_float32_stays_float32(cell, rng):
    m = small_model(cell, dtype=np.float32)
    features, captions = make_inputs(cell, rng)
    loss, grads = m.loss(features.astype(np.float32), captions)
    assert loss.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("cell", CELLS)
def test_bad_inputs_raise_clear_errors(cell, rng):
    m = small_model(cell)
    features, captions = make_inputs(cell, rng)
    wrong_d = np.ones(features.shape[:1] + (7,) + features.shape[2:])
    with pytest.raises(ValueError, match="input_dim"):
        m.loss(wrong_d, captions)
    other_rank = np.ones((3, 4, 2, 2)) if cell != "attention" else np.ones((3, 4))
    with pytest.raises(ValueError, match="cell_type"):
        m.loss(other_rank, captions)
    for bad_id in (-1, len(VOCAB)):
        bad = captions.copy()
        bad[1, 2] = bad_id
        with pytest.raises(ValueError, match=r"\[0, 7\)"):
            m.loss(features, bad)
    with pytest.raises(ValueError, match="integer"):
        m.loss(features, captions.astype(np.float64))
    with pytest.raises(ValueError, match="N = 3"):
        m.loss(features, captions[:2])
    nan = features.copy()
    nan.flat[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.loss(nan, captions)


@pytest.mark.parametrize("cell", CELLS)
def test_save_load_round_trip_is_exact(cell, tmp_path, rng):
    m = small_model(cell, dtype=np.float32)
    for v in m.params.values():
        v += rng.standard_normal(v.shape).astype(np.float32)
    path = tmp_path / "model.npz"
    m.save(path)
    back = CaptioningRNN.load(path)
    assert back.config() == m.config()
    for k in m.params:
        assert back.params[k].dtype == m.params[k].dtype
        np.testing.assert_array_equal(back.params[k], m.params[k])
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"], "no temporary file left behind"


def test_load_rejects_truncated_foreign_and_missing_files(tmp_path):
    m = small_model("lstm")
    good = tmp_path / "m.npz"
    m.save(good)
    truncated = tmp_path / "t.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    foreign = tmp_path / "f.npz"
    np.savez(foreign, weights=np.ones(3))
    junk = tmp_path / "j.npz"
    junk.write_bytes(b"not a zip at all")
    for path in (truncated, foreign, junk):
        with pytest.raises(CheckpointError, match=str(path.name)):
            CaptioningRNN.load(path)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        CaptioningRNN.load(tmp_path / "missing.npz")


def test_from_arrays_names_misshaped_parameter():
    arrays = small_model("rnn").to_arrays()
    arrays["param/Wh"] = np.ones((2, 2))
    with pytest.raises(CheckpointError, match="Wh"):
        CaptioningRNN.from_arrays(arrays)


def test_to_cuda_without_gpu_is_clear():
    from minicap.backend import gpu_available

    if gpu_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="cuda"):
        small_model("rnn").to("cuda")


@pytest.mark.parametrize("cell", CELLS)
def test_same_loss_on_every_backend(cell, xp, rng):
    if xp is np:
        pytest.skip("the NumPy model is the reference here: only the CuPy instance compares anything")
    device = "cuda"
    m = small_model(cell)
    features, captions = make_inputs(cell, rng)
    ref_loss, ref_grads = m.loss(features, captions)
    m.to(device)
    assert m.device == device
    loss, grads = m.loss(to_device(features, device), to_device(captions, device))
    assert abs(float(loss) - float(ref_loss)) < 1e-10
    for k in grads:
        assert rel_error(to_numpy(grads[k]), ref_grads[k]) < 1e-8
    # saving never moves the model
    m.to_arrays()
    assert m.device == device


def test_features_on_other_device_are_rejected(xp):
    if xp is np:
        pytest.skip("needs a GPU to have two devices")
    m = small_model("rnn").to("cuda")
    with pytest.raises(ValueError, match="to_device"):
        m.loss(np.ones((2, 4)), xp.ones((2, 3), dtype=xp.int64))


@pytest.mark.parametrize("cell", CELLS)
def test_trailing_padding_changes_nothing(cell, rng):
    """Extra all-<NULL> columns (padding to a longer dataset maximum) give
    the same loss and gradients: the model may skip those steps."""
    m = small_model(cell)
    features, captions = make_inputs(cell, rng)
    captions[:, -1] = 0  # the batch's last column is padding already
    padded = np.concatenate([captions, np.zeros((3, 4), dtype=captions.dtype)], axis=1)
    loss, grads = m.loss(features, captions)
    loss_p, grads_p = m.loss(features, padded)
    assert float(loss_p) == float(loss)
    for k in grads:
        np.testing.assert_array_equal(grads_p[k], grads[k])
    all_null = np.zeros((3, 6), dtype=captions.dtype)
    all_null[:, 0] = 1
    assert float(m.loss(features, all_null)[0]) == 0.0


# ---------------------------------------------------------------- review fixes


def test_numpy_integer_seed_is_stored_as_int_and_saves(tmp_path):
    # a NumPy seed used to reach json.dumps in save(): "Object of type int64 is not JSON serializable"
    model = small_model("rnn", seed=np.int64(7))
    assert type(model.seed) is int and model.seed == 7
    back = CaptioningRNN.load(model.save(tmp_path / "m.npz"))
    assert back.seed == 7
    assert all(np.array_equal(back.params[k], model.params[k]) for k in model.params)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_bad_seed_is_a_value_error(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0 or None, got "):
        small_model("rnn", seed=seed)


def test_bool_hidden_dim_is_refused():
    with pytest.raises(ValueError, match="hidden_dim must be a positive integer, got True"):
        small_model("rnn", hidden_dim=True)


def test_non_string_words_are_refused():
    # str(1) == "1" used to collapse two entries and leave id 5 without a word
    with pytest.raises(ValueError, match="word_to_idx keys must be strings .* got 1 of type int"):
        CaptioningRNN({"<NULL>": 0, 1: 5, "1": 6}, input_dim=4)


def test_non_ascii_vocabulary_survives_save_and_load(tmp_path):
    vocab = {**VOCAB, "café": 7, "日本": 8}
    model = CaptioningRNN(vocab, input_dim=4, wordvec_dim=5, hidden_dim=6, dtype=np.float64)
    back = CaptioningRNN.load(model.save(tmp_path / "u.npz"))
    assert back.word_to_idx == vocab and back.idx_to_word[8] == "日本" and back.dtype == np.float64


def test_lists_instead_of_arrays_are_a_type_error_with_the_fix(rng):
    model = small_model("rnn")
    features, captions = make_inputs("rnn", rng)
    with pytest.raises(TypeError, match=r"features must be a NumPy or CuPy array, got list; convert it with numpy.asarray"):
        model.sample(features.tolist())
    with pytest.raises(TypeError, match=r"captions must be a NumPy or CuPy array, got list"):
        model.loss(features, captions.tolist())


def test_infinite_features_are_refused_like_nan(rng):
    model = small_model("lstm")
    features, captions = make_inputs("lstm", rng)
    features[1, 2] = np.inf  # used to give a NaN loss and NaN gradients without a word
    with pytest.raises(ValueError, match="features contain NaN or infinite values"):
        model.loss(features, captions)


def test_empty_batch_and_empty_grid_are_explained(rng):
    model = small_model("rnn")
    with pytest.raises(ValueError, match=r"empty \(N = 0\)"):
        model.loss(np.zeros((0, 4)), np.zeros((0, 3), dtype=np.int64))
    attention = small_model("attention")
    with pytest.raises(ValueError, match=r"a grid of at least 1 x 1 .* got \(1, 4, 0, 0\)"):
        attention.sample(np.zeros((1, 4, 0, 0)))


def test_attention_for_checks_the_captions(rng):
    model = small_model("attention")
    features, _ = make_inputs("attention", rng, N=2)
    # an out-of-range id raised IndexError on NumPy and would wrap around silently on CuPy
    with pytest.raises(ValueError, match=r"caption ids must lie in \[0, 7\) .*found id 9; the ids range over \[2, 9\]"):
        model.attention_for(features, np.array([[4, 9], [5, 2]]))
    with pytest.raises(ValueError, match="integer word ids"):
        model.attention_for(features, np.array([[4.0, 2.0], [5.0, 2.0]]))
    with pytest.raises(ValueError, match=r"shape \(N, T\) with N = 2"):
        model.attention_for(features, np.array([4, 2]))
    assert model.attention_for(features, np.array([[4, 2], [5, 2]])).shape == (2, 2, 2, 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"beam_size": True}, "beam_size must be a positive integer, got True"),
    ({"length_penalty": float("nan")}, "length_penalty must be a finite number >= 0"),
    ({"length_penalty": "1"}, "length_penalty must be a finite number >= 0"),
])
def test_beam_search_arguments_are_checked(rng, kwargs, match):
    model = small_model("rnn")
    features, _ = make_inputs("rnn", rng)
    with pytest.raises(ValueError, match=match):
        model.beam_search(features, **kwargs)


def test_loading_a_solver_checkpoint_as_a_model_says_how(tmp_path):
    from minicap.checkpoint import save_state

    model = small_model("rnn")
    path = save_state(tmp_path / "checkpoint.npz", {"format": "minicap-solver-checkpoint", "model": model.to_arrays()})
    with pytest.raises(CheckpointError, match=r"is a CaptioningSolver checkpoint, not a model file: resume it with"):
        CaptioningRNN.load(path)
