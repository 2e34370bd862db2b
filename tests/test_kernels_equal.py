"""Two speeds, one truth: every fast kernel equals the course function it replaces.

For each function ``minicap.kernels`` shares with ``minicap.layers`` (same name,
same signature), both run on the same random inputs over random shapes
(hypothesis), in float64: every output and every gradient agree to 1e-10. The
deferred embedding (``kernels.WordVectors``) feeding a sequence kernel, both
fold routes, is held to the course's embedding followed by the course sequence.
Then the whole model: ``impl="fast"`` and ``impl="reference"`` give the same loss,
gradients and captions for every cell.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minicap.kernels as K
import minicap.layers as L
from minicap import CaptioningRNN
from minicap.backend import to_numpy
from minicap.kernels import embed_project
from test_layers_cases import COURSE_CASES, KERNEL_CASES, to_xp

_ROUTE = embed_project.embed_project_forward
KERNEL = {c.name: c for c in KERNEL_CASES}
PAIRS = [(c, KERNEL["kernels." + c.name]) for c in COURSE_CASES]
shapes = st.fixed_dictionaries({
    "N": st.integers(1, 4), "T": st.integers(1, 5), "D": st.integers(1, 5), "H": st.integers(1, 5),
    "V": st.integers(1, 7), "W": st.integers(1, 4), "Hs": st.integers(1, 3), "Ws": st.integers(1, 3),
})
examples = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _assert_equal(got, want, what):
    assert len(got) == len(want), what
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-10, atol=1e-12, err_msg=f"{what} {k}")


def test_every_shared_name_is_compared():
    shared = {n for n in L.__all__ if n in K.__all__}
    compared = {f.__name__ for course, _ in PAIRS for f in (course.forward, course.backward)}
    assert shared - {"temporal_softmax_loss"} == compared  # the loss has its own tests below
    assert set(L.__all__) <= set(K.__all__)  # every course function has a fast version


@pytest.mark.parametrize("course, kernel", PAIRS, ids=[c.name for c, _ in PAIRS])
@examples
@given(d=shapes, seed=st.integers(0, 2**32 - 1))
def test_kernel_equals_course(xp, course, kernel, d, seed):
    args = to_xp(xp, course.inputs(np.random.default_rng(seed), d))
    outs, cache = course.run(*args)
    fast_outs, fast_cache = kernel.run(*args)
    _assert_equal(fast_outs, outs, "output")
    rng = np.random.default_rng(seed + 1)
    douts = tuple(xp.asarray(rng.standard_normal(o.shape)) for o in outs)
    _assert_equal(kernel.back(douts, fast_cache), course.back(douts, cache), "gradient")


@examples
@given(N=st.integers(1, 4), T=st.integers(1, 5), V=st.integers(1, 7), seed=st.integers(0, 2**32 - 1))
def test_softmax_loss_kernel_equals_course(xp, N, T, V, seed):
    rng = np.random.default_rng(seed)
    x = xp.asarray(rng.standard_normal((N, T, V)) * 5)
    y = xp.asarray(rng.integers(0, V, (N, T)))
    mask = xp.asarray(rng.random((N, T)) < 0.7)
    _assert_equal(K.temporal_softmax_loss(x, y, mask), L.temporal_softmax_loss(x, y, mask), "loss, dx")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "attention"])
@pytest.mark.parametrize("fold", [True, False])
@examples
@given(d=shapes, seed=st.integers(0, 2**32 - 1))
def test_deferred_embedding_into_a_sequence_equals_the_course(monkeypatch, cell, fold, d, seed):
    """ids -> kernels.word_embedding -> kernels.<cell>_forward (which projects the table or
    the vectors) equals ids -> layers.word_embedding -> layers.<cell>_forward."""
    monkeypatch.setattr(embed_project, "embed_project_forward", lambda *a: _ROUTE(*a, fold=fold))
    words = KERNEL[f"kernels.words_{cell}"]
    inputs = words.inputs(np.random.default_rng(seed), d)
    ids, W_embed, *rest = inputs
    (h_fast,), caches = words.run(*inputs)
    course_forward = {"rnn": L.rnn_forward, "lstm": L.lstm_forward, "attention": L.attention_forward}[cell]
    course_backward = {"rnn": L.rnn_backward, "lstm": L.lstm_backward, "attention": L.attention_backward}[cell]
    x, embed_cache = L.word_embedding_forward(ids, W_embed)
    h, cache = course_forward(x, *rest)
    _assert_equal((h_fast,), (h,), "h")
    dh = np.random.default_rng(seed + 1).standard_normal(h.shape)
    dx, *grads = course_backward(dh, cache)
    _assert_equal(words.back((dh,), caches), (L.word_embedding_backward(dx, embed_cache), *grads), "gradient")


@pytest.mark.parametrize("kept_fraction", [0.0, 0.3, 0.7, 1.0])
@examples
@given(N=st.integers(1, 4), T=st.integers(1, 5), H=st.integers(1, 4), V=st.integers(1, 7),
       seed=st.integers(0, 2**32 - 1))
def test_scores_for_kept_targets_only_equal_the_course(xp, kept_fraction, N, T, H, V, seed):
    """kernels.temporal_affine -> kernels.temporal_softmax_loss -> kernels.temporal_affine_backward
    scores only the kept rows; loss and every gradient equal the course's full computation."""
    rng = np.random.default_rng(seed)
    x, w, b = (xp.asarray(rng.standard_normal(shape)) for shape in ((N, T, H), (H, V), (V,)))
    y = xp.asarray(rng.integers(0, V, (N, T)))
    mask = xp.asarray(rng.random((N, T)) < kept_fraction)
    scores, cache = L.temporal_affine_forward(x, w, b)
    loss, dscores = L.temporal_softmax_loss(scores, y, mask)
    fast_scores, fast_cache = K.temporal_affine_forward(x, w, b)
    fast_loss, fast_dscores = K.temporal_softmax_loss(fast_scores, y, mask)
    assert isinstance(fast_dscores, K.KeptRowGradients)
    _assert_equal((fast_loss,), (loss,), "loss")
    _assert_equal(K.temporal_affine_backward(fast_dscores, fast_cache), L.temporal_affine_backward(dscores, cache),
                  "gradient")
    np.testing.assert_allclose(to_numpy(fast_scores.compute()), to_numpy(scores), rtol=1e-12)


VOCAB = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, 11)}}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "attention"])
@pytest.mark.parametrize("N, T", [(2, 4), (30, 3)])  # few words (no fold) and more words than V (fold)
def test_model_fast_and_reference_agree(cell, N, T):
    rng = np.random.default_rng(N + T)
    model = CaptioningRNN(VOCAB, input_dim=6, wordvec_dim=5, hidden_dim=4, cell_type=cell, dtype=np.float64)
    features = rng.standard_normal((N, 6, 2, 3) if cell == "attention" else (N, 6))
    captions = rng.integers(0, len(VOCAB), (N, T + 1))
    captions[:, 0] = 1
    loss, grads = model.loss(features, captions)
    greedy, beams = model.sample(features, max_length=5), model.beam_search(features, beam_size=3, max_length=5)
    model.impl = "reference"
    ref_loss, ref_grads = model.loss(features, captions)
    assert abs(float(loss) - float(ref_loss)) <= 1e-10 * abs(float(ref_loss))
    for name in model.params:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(model.sample(features, max_length=5), greedy)
    np.testing.assert_array_equal(model.beam_search(features, beam_size=3, max_length=5), beams)
