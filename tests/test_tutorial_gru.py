"""docs/tutorial_gru.md cannot rot: its Python blocks run, and the GRU they define is checked.

The tutorial's code blocks are extracted from the Markdown and executed in order in one
namespace (they contain their own asserts). The functions they define are then held to the
same standard as minicap's layers: the forward against a scalar computation written out here
in plain Python, the sequence against stepping, and every gradient against central
differences in float64 (relative error <= 1e-7), on shapes and seeds the tutorial does not use.
"""

import contextlib
import io
import math
import pathlib
import re

import numpy as np
import pytest

from minicap.cells import cell_names, unregister_cell
from minicap.gradcheck import eval_numerical_gradient_array, rel_error

TUTORIAL = pathlib.Path(__file__).resolve().parents[1] / "docs" / "tutorial_gru.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _code_blocks():
    return _BLOCK.findall(TUTORIAL.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def gru():
    """The tutorial's namespace after running every block (its prints captured).

    The last blocks register the GRU as a cell and train, caption, save and load a
    model with it; the registration is undone afterwards, so other tests see only
    minicap's own cells."""
    namespace = {"__name__": "tutorial_gru"}
    try:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            for i, block in enumerate(_code_blocks()):
                exec(compile(block, f"{TUTORIAL.name}[block {i}]", "exec"), namespace)
        namespace["printed"] = printed.getvalue()
        yield namespace
    finally:
        if "gru" in cell_names():
            unregister_cell("gru")


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def _reference_step(x, prev_h, Wx, Wh, b):
    """One GRU step with explicit loops over units: r, z, n gates, reset after Wh, z keeps."""
    N, D = x.shape
    H = prev_h.shape[1]
    out = np.empty((N, H))
    for i in range(N):
        for j in range(H):
            def parts(gate):
                col = gate * H + j
                from_x = b[col] + sum(x[i, d] * Wx[d, col] for d in range(D))
                from_h = sum(prev_h[i, k] * Wh[k, col] for k in range(H))
                return from_x, from_h
            xr, hr = parts(0)
            xz, hz = parts(1)
            xn, hn = parts(2)
            r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
            n = math.tanh(xn + r * hn)
            out[i, j] = (1 - z) * n + z * prev_h[i, j]
    return out


def _draw(rng, N, T, D, H):
    return {
        "x": rng.standard_normal((N, T, D)) if T else rng.standard_normal((N, D)),
        "h": rng.standard_normal((N, H)),
        "Wx": rng.standard_normal((D, 3 * H)) / math.sqrt(D),
        "Wh": rng.standard_normal((H, 3 * H)) / math.sqrt(H),
        "b": rng.standard_normal(3 * H),
    }


def test_the_tutorial_trains_captions_saves_and_loads_a_gru_model(gru):
    """Its last section registers the cell and uses it end to end (its own asserts check
    the gradients, the falling loss and the round trip; here: it really did run them)."""
    assert gru["model"].cell_type == "gru" and gru["loaded"].cell_type == "gru"
    assert "the GRU model's gradients check out" in gru["printed"]
    assert "saved and loaded: gru.npz" in gru["printed"]
    captions = [line for line in gru["printed"].splitlines() if line.startswith(("a ", "an ", "the ", "two "))]
    assert captions, gru["printed"]


def test_adding_the_cell_needed_no_edit_of_the_model_decoders_or_cli():
    """The extension point is the registry: model.py, decoding.py and cli/ name no cell."""
    root = TUTORIAL.parents[1] / "minicap"
    for path in [root / "model.py", root / "decoding.py", *sorted((root / "cli").glob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        assert '== "lstm"' not in text and '== "rnn"' not in text and '== "attention"' not in text, path


def test_tutorial_has_code_and_states_its_convention():
    blocks = _code_blocks()
    assert len(blocks) >= 6
    text = TUTORIAL.read_text(encoding="utf-8")
    assert "**r, z, n**" in text and "next_h = (1 - z) * n + z * prev_h" in text


def test_tutorial_defines_the_four_functions(gru):
    for name in ("gru_step_forward", "gru_step_backward", "gru_forward", "gru_backward"):
        assert callable(gru.get(name)), f"the tutorial no longer defines {name}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_step_matches_plain_python(gru, seed):
    p = _draw(np.random.default_rng(seed), N=2, T=0, D=3, H=2)
    next_h, _ = gru["gru_step_forward"](p["x"], p["h"], p["Wx"], p["Wh"], p["b"])
    expected = _reference_step(p["x"], p["h"], p["Wx"], p["Wh"], p["b"])
    assert np.allclose(next_h, expected, rtol=1e-12, atol=1e-12)


def test_sequence_matches_plain_python_stepping(gru):
    p = _draw(np.random.default_rng(3), N=2, T=4, D=2, H=3)
    h, _ = gru["gru_forward"](p["x"], p["h"], p["Wx"], p["Wh"], p["b"])
    state = p["h"]
    for t in range(4):
        state = _reference_step(p["x"][:, t], state, p["Wx"], p["Wh"], p["b"])
        assert np.allclose(h[:, t], state, rtol=1e-12, atol=1e-12)


# Fixed draws: an entry of a gradient that happens to be near zero (~1e-5) can
# push the relative error past 1e-7 with a correct backward (about one draw in ten).
@pytest.mark.parametrize("N, D, H, seed", [(1, 1, 1, 0), (3, 4, 5, 1), (4, 2, 3, 2)])
def test_step_gradients(gru, xp, N, D, H, seed):
    rng = np.random.default_rng(seed)
    p = _draw(rng, N, 0, D, H)
    inputs = [xp.asarray(p[k]) for k in ("x", "h", "Wx", "Wh", "b")]
    out, cache = gru["gru_step_forward"](*inputs)
    dout = xp.asarray(rng.standard_normal(out.shape))
    grads = gru["gru_step_backward"](dout, cache)
    assert len(grads) == 5
    for value, analytic in zip(inputs, grads):
        numerical = eval_numerical_gradient_array(lambda _: gru["gru_step_forward"](*inputs)[0], value, dout)
        assert analytic.shape == value.shape
        assert rel_error(analytic, numerical) <= 1e-7


@pytest.mark.parametrize("N, T, D, H, seed", [(2, 1, 3, 2, 3), (3, 6, 4, 5, 4)])
def test_sequence_gradients(gru, xp, N, T, D, H, seed):
    rng = np.random.default_rng(seed)
    p = _draw(rng, N, T, D, H)
    inputs = [xp.asarray(p[k]) for k in ("x", "h", "Wx", "Wh", "b")]
    h, cache = gru["gru_forward"](*inputs)
    dh = xp.asarray(rng.standard_normal(h.shape))
    grads = gru["gru_backward"](dh, cache)
    assert len(grads) == 5
    for value, analytic in zip(inputs, grads):
        numerical = eval_numerical_gradient_array(lambda _: gru["gru_forward"](*inputs)[0], value, dh)
        assert analytic.shape == value.shape
        assert rel_error(analytic, numerical) <= 1e-7


def test_the_check_catches_the_bug_the_tutorial_describes(gru):
    """Dropping r from the n block of dah (the tutorial's suggested mistake) must fail the check."""
    rng = np.random.default_rng(7)
    p = _draw(rng, 3, 0, 4, 5)
    inputs = [p[k] for k in ("x", "h", "Wx", "Wh", "b")]
    out, cache = gru["gru_step_forward"](*inputs)
    dout = rng.standard_normal(out.shape)
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    H = prev_h.shape[1]
    _, dah, _ = gru["_gru_cell_backward"](np, dout, prev_h, r, z, n, hn)
    wrong = dah.copy()
    wrong[:, 2 * H :] /= r
    numerical = eval_numerical_gradient_array(lambda _: gru["gru_step_forward"](*inputs)[0], Wh, dout)
    assert rel_error(prev_h.T @ dah, numerical) <= 1e-7
    assert rel_error(prev_h.T @ wrong, numerical) > 1e-3


def test_sequence_backward_does_not_touch_its_cache(gru):
    p = _draw(np.random.default_rng(5), 2, 3, 2, 4)
    h, cache = gru["gru_forward"](p["x"], p["h"], p["Wx"], p["Wh"], p["b"])
    before = [np.array(a, copy=True) for a in cache]
    dh = np.random.default_rng(6).standard_normal(h.shape)
    first = gru["gru_backward"](dh, cache)
    second = gru["gru_backward"](dh, cache)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert all(np.array_equal(a, b) for a, b in zip(before, cache))


@pytest.mark.parametrize("bad, message", [
    ({"Wh": np.zeros((4, 8))}, "Wh must have shape (H, 3H)"),
    ({"Wx": np.zeros((2, 9))}, "Wx must have shape (D, 3H)"),
    ({"b": np.zeros(11)}, "b must have shape (3H,)"),
    ({"x": np.zeros((2, 3, 5))}, "x must have shape (N, T, D)"),
    ({"h": np.zeros((3, 4))}, "h0 must have shape (N, H)"),
])
def test_sequence_rejects_mismatched_shapes(gru, bad, message):
    p = {**_draw(np.random.default_rng(0), 2, 3, 2, 4), **bad}
    with pytest.raises(ValueError, match=re.escape(message)):
        gru["gru_forward"](p["x"], p["h"], p["Wx"], p["Wh"], p["b"])
