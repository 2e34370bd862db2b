"""Shape and dtype validation shared by the layers.

A shape mistake inside a layer surfaces deep in NumPy as "matmul: Input operand 1
has a mismatch in its core dimension 0", which names neither the argument nor the
fix. These helpers fail first, with a message such as::

    x must have shape (N, T, D) = (N, T, 4) to match Wx (4, 12), got (2, 5, 3)

Expected sizes are given per axis; ``None`` means "any size" and is shown by its
letter. Only shapes and dtypes are inspected, so the checks never touch the data
(no host-device sync) and cost a few microseconds.
"""


def shape_of(name, a):
    """``"name (2, 5, 4)"``: how an argument is quoted in an error message."""
    return f"{name} {tuple(a.shape)}"


def _tuple_text(parts):
    """Parts written as Python writes a tuple: (N, T, D), (H,)."""
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def expect_shape(name, a, letters, sizes, match=""):
    """Raise ValueError unless ``a`` is an array whose shape fits ``sizes``.

    letters: the axis names, e.g. ``("N", "T", "D")``; sizes: one int or None per axis.
    match: what the sizes were taken from, e.g. ``"Wx (4, 12)"``.
    Returns ``a.shape`` so callers can unpack the free sizes.
    """
    wanted = _tuple_text(letters)
    if any(s is not None for s in sizes):
        wanted += " = " + _tuple_text([l if s is None else str(s) for l, s in zip(letters, sizes)])
    if match:
        wanted += f" to match {match}"
    shape = getattr(a, "shape", None)
    if shape is None:
        raise ValueError(f"{name} must be an array of shape {wanted}, got {type(a).__name__}")
    fits = len(shape) == len(sizes) and all(s is None or s == d for s, d in zip(sizes, shape))
    if not fits:
        raise ValueError(f"{name} must have shape {wanted}, got {tuple(shape)}")
    return tuple(shape)


def expect_lstm_weights(Wx, Wh, b, Wattn=None):
    """Check LSTM parameters and return (D, H): Wh (H, 4H), Wx (D, 4H), b (4H,).

    Wh fixes H because it is the only parameter whose shape determines it alone.
    """
    H = expect_recurrent_weights(Wh)
    D, _ = expect_shape("Wx", Wx, ("D", "4H"), (None, 4 * H), match=shape_of("Wh", Wh))
    expect_shape("b", b, ("4H",), (4 * H,), match=shape_of("Wh", Wh))
    if Wattn is not None:
        expect_shape("Wattn", Wattn, ("H", "4H"), (H, 4 * H), match=shape_of("Wh", Wh))
    return D, H


def expect_recurrent_weights(Wh):
    """Check an LSTM's Wh (H, 4H) and return H."""
    expect_shape("Wh", Wh, ("H", "4H"), (None, None))
    H = Wh.shape[0]
    if Wh.shape[1] != 4 * H:
        raise ValueError(
            f"Wh must have shape (H, 4H) with the gates i, f, o, g side by side, "
            f"got {tuple(Wh.shape)} ({Wh.shape[1]} != 4 * {H})"
        )
    return H


def expect_rnn_recurrent_weights(Wh):
    """Check a vanilla RNN's Wh (H, H) and return H."""
    expect_shape("Wh", Wh, ("H", "H"), (None, None))
    H = Wh.shape[0]
    if Wh.shape[1] != H:
        raise ValueError(f"Wh must be square, shape (H, H), got {tuple(Wh.shape)}")
    return H


def expect_rnn_weights(Wx, Wh, b):
    """Check vanilla RNN parameters and return (D, H): Wh (H, H), Wx (D, H), b (H,)."""
    H = expect_rnn_recurrent_weights(Wh)
    D, _ = expect_shape("Wx", Wx, ("D", "H"), (None, H), match=shape_of("Wh", Wh))
    expect_shape("b", b, ("H",), (H,), match=shape_of("Wh", Wh))
    return D, H


def expect_projected_inputs(a, N, G, against):
    """Check the input of a sequence loop: a (T, N, G), time-major; returns T.

    The loops take a[t] = x[:, t] @ Wx + b stacked over time first, so the
    usual slip is a batch-major (N, T, G) array, which the message names.
    """
    T, _, _ = expect_shape("a", a, ("T", "N", "G"), (None, N, G), match=against)
    return T


def expect_float(name, a):
    """Raise ValueError unless ``a`` holds floating-point numbers."""
    if a.dtype.kind != "f":
        raise ValueError(f"{name} must be a float array (float32 or float64), got dtype {a.dtype}")


def expect_int(name, a, what):
    """Raise ValueError unless ``a`` holds integers (``what`` says which)."""
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer {what}, got dtype {a.dtype}")


def expect_ids_below(name, ids, V, against):
    """Raise ValueError unless every id is in [0, V).

    NumPy would raise IndexError later, but CuPy wraps out-of-range indices
    around silently, so this is checked explicitly. One host sync on the GPU.
    """
    if bool(((ids < 0) | (ids >= V)).any()):
        lo, hi = int(ids.min()), int(ids.max())
        raise ValueError(
            f"{name} must hold ids in [0, {V}) to match {against}, got values in [{lo}, {hi}]"
        )


def expect_grad(name, grad, shape, of):
    """Raise ValueError unless the upstream gradient ``grad`` has ``shape``, the
    shape of the forward's output ``of``.

    A backward multiplies its upstream gradient elementwise with cached arrays,
    so a gradient of another shape would broadcast (or be reshaped) without an
    error and give silently wrong results; a (T, N, V) gradient for an (N, T, V)
    output, for example.
    """
    got = getattr(grad, "shape", None)
    if got is None:
        raise ValueError(f"{name} must be an array of shape {tuple(shape)} (the shape of {of}), "
                         f"got {type(grad).__name__}")
    if tuple(got) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, the shape of {of} from the forward, "
                         f"got {tuple(got)}")


# --- whole calls: each layer (and its fast kernel) checks its arguments in one line -----

def check_temporal_affine(x, w, b):
    """temporal_affine_forward's arguments; returns (N, T, H, V)."""
    H, V = expect_shape("w", w, ("H", "V"), (None, None))
    expect_shape("b", b, ("V",), (V,), match=shape_of("w", w))
    N, T, _ = expect_shape("x", x, ("N", "T", "H"), (None, None, H), match=shape_of("w", w))
    return N, T, H, V


def check_rnn_step(x, prev_h, Wx, Wh, b):
    """rnn_step_forward's arguments; returns (N, D, H)."""
    D, H = expect_rnn_weights(Wx, Wh, b)
    N, _ = expect_shape("x", x, ("N", "D"), (None, D), match=shape_of("Wx", Wx))
    expect_shape("prev_h", prev_h, ("N", "H"), (N, H), match=f"{shape_of('x', x)} and {shape_of('Wh', Wh)}")
    return N, D, H


def check_sequence(x, h0, Wx, Wh, b, gates):
    """rnn_forward's (gates=1) or lstm_forward's (gates=4) arguments; returns (N, T, D, H)."""
    D, H = expect_rnn_weights(Wx, Wh, b) if gates == 1 else expect_lstm_weights(Wx, Wh, b)
    N, T, _ = expect_shape("x", x, ("N", "T", "D"), (None, None, D), match=shape_of("Wx", Wx))
    expect_shape("h0", h0, ("N", "H"), (N, H), match=f"{shape_of('x', x)} and {shape_of('Wh', Wh)}")
    return N, T, D, H


def check_lstm_step(x, prev_h, prev_c, Wx, Wh, b, attn=None, Wattn=None):
    """lstm_step_forward's arguments, or with attn and Wattn attention_lstm_step_forward's;
    returns (N, D, H)."""
    D, H = expect_lstm_weights(Wx, Wh, b, Wattn)
    N, _ = expect_shape("x", x, ("N", "D"), (None, D), match=shape_of("Wx", Wx))
    match = f"{shape_of('x', x)} and {shape_of('Wh', Wh)}"
    states = (("prev_h", prev_h), ("prev_c", prev_c)) + ((("attn", attn),) if Wattn is not None else ())
    for name, arr in states:
        expect_shape(name, arr, ("N", "H"), (N, H), match=match)
    return N, D, H


def check_attention_sequence(x, A, Wx, Wh, Wattn, b):
    """attention_forward's arguments; returns (N, T, D, H)."""
    D, H = expect_lstm_weights(Wx, Wh, b, Wattn)
    N, T, _ = expect_shape("x", x, ("N", "T", "D"), (None, None, D), match=shape_of("Wx", Wx))
    expect_shape("A", A, ("N", "H", "Hs", "Ws"), (N, H, None, None),
                 match=f"{shape_of('x', x)} and {shape_of('Wh', Wh)}")
    return N, T, D, H


def check_attention(prev_h, A):
    """dot_product_attention_forward's arguments; returns (N, H, Hs, Ws)."""
    N, H, Hs, Ws = expect_shape("A", A, ("N", "H", "Hs", "Ws"), (None, None, None, None))
    expect_shape("prev_h", prev_h, ("N", "H"), (N, H), match=shape_of("A", A))
    return N, H, Hs, Ws


def check_softmax_loss(x, y, mask):
    """temporal_softmax_loss's arguments; returns (N, T, V)."""
    N, T, V = expect_shape("x", x, ("N", "T", "V"), (None, None, None))
    expect_float("x", x)
    match = shape_of("x", x)
    expect_shape("y", y, ("N", "T"), (N, T), match=match)
    expect_int("y", y, "target ids")
    expect_shape("mask", mask, ("N", "T"), (N, T), match=match)
    if mask.dtype.kind not in "biu":
        raise ValueError(f"mask must be boolean (e.g. captions_out != NULL), got dtype {mask.dtype}")
    expect_ids_below("y", y, V, match)
    return N, T, V
