"""The bottleneck block computed in bands of rows equals the same convs on the whole map."""

import numpy as np
import pytest

from minicap.encoders import blocks, parallel
from minicap.encoders.ops import make_conv


def direct(x, pre, mid, post, shortcut, activation):
    """act(post(mid(pre(x))) + shortcut(x)), each conv on the whole map."""
    y = post(mid(x if pre is None else pre(x)))
    if shortcut == "identity":
        y = y + x
    elif shortcut is not None:
        y = y + shortcut(x)
    return np.maximum(y, 0) if activation == "relu" else y


def layers(rng, c, mid_kind, stride, shortcut):
    hidden = 12
    pre = make_conv(rng.standard_normal((hidden, c, 1, 1)), rng.standard_normal(hidden), activation="relu6")
    if mid_kind == "depthwise":
        mid = make_conv(rng.standard_normal((hidden, 1, 3, 3)), rng.standard_normal(hidden), stride, 1, hidden, "relu6")
    else:
        mid = make_conv(rng.standard_normal((hidden, 4, 3, 3)), rng.standard_normal(hidden), stride, 1, 3, "relu")
    out = c if shortcut == "identity" else 6
    post = make_conv(rng.standard_normal((out, hidden, 1, 1)), rng.standard_normal(out))
    proj = make_conv(rng.standard_normal((out, c, 1, 1)), rng.standard_normal(out), stride) if shortcut == "proj" else shortcut
    return pre, mid, post, proj


CASES = [  # mid, stride, shortcut, activation: MobileNet's and RegNet's block kinds
    ("depthwise", 1, "identity", None),
    ("depthwise", 2, None, None),
    ("grouped", 1, "identity", "relu"),
    ("grouped", 2, "proj", "relu"),
]


@pytest.mark.parametrize("mid_kind, stride, shortcut, activation", CASES)
@pytest.mark.parametrize("how", ["rows on threads", "rows for the cache"])
def test_pieces_equal_the_whole_block(monkeypatch, rng, mid_kind, stride, shortcut, activation, how):
    pre, mid, post, proj = layers(rng, 8, mid_kind, stride, shortcut)
    x = rng.standard_normal((2 if how == "rows for the cache" else 1, 21, 11, 8))
    expected = direct(x, pre, mid, post, proj, activation)
    block = blocks.Bottleneck(pre, mid, post, proj, activation)
    monkeypatch.setattr(blocks, "MIN_BAND_ROWS", 2)
    workers = parallel.Workers(3)
    if how == "rows for the cache":  # two images, so no threads: bands small enough for the cache, one after the other
        monkeypatch.setattr(blocks, "BAND_VALUES", 2 * 11 * 12 * 4)
    seen = []
    monkeypatch.setattr(workers, "map", lambda fn, items, map=workers.map: seen.append(len(items)) or map(fn, items))
    out = block(x, workers=workers)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert seen == ([] if how == "rows for the cache" else [3])  # a band per thread


def test_small_image_runs_whole_with_blas_threads(monkeypatch, rng):
    pre, mid, post, proj = layers(rng, 8, "grouped", 1, "identity")
    x = rng.standard_normal((1, 21, 11, 8))
    workers = parallel.Workers(3)
    monkeypatch.setattr(workers, "map", lambda fn, items: pytest.fail("a small image's block was handed to threads"))
    with workers.sharing_one_image(21, 11):
        out = blocks.Bottleneck(pre, mid, post, proj, "relu")(x, workers=workers)
    np.testing.assert_allclose(out, direct(x, pre, mid, post, proj, "relu"), rtol=1e-12, atol=1e-12)


def test_band_count_follows_the_size(monkeypatch, rng):
    pre, mid, post, proj = layers(rng, 8, "depthwise", 1, "identity")
    calls = []
    original = pre.__class__.__call__
    # pre is the only 1x1 conv asked for a padded output: count its calls and their input rows
    monkeypatch.setattr(pre.__class__, "__call__", lambda self, x, *a, **k: (k.get("pad_out") and calls.append(x.shape[1])) or original(self, x, *a, **k))
    x = rng.standard_normal((2, 32, 11, 8))
    block = blocks.Bottleneck(pre, mid, post, proj)
    block(x)  # 2 * 34 * 13 * 12 values: far below BAND_VALUES
    assert calls == [32]
    calls.clear()
    monkeypatch.setattr(blocks, "BAND_VALUES", 2 * 34 * 13 * 12 // 4)  # a quarter of mid's padded input per band
    block(x)
    assert calls == [9, 10, 10, 9]  # 8 output rows each, plus the halo rows inside the image
    calls.clear()
    monkeypatch.setattr(blocks, "BAND_VALUES", 1)  # no band under MIN_BAND_ROWS output rows
    block(x)
    assert len(calls) == 32 // blocks.MIN_BAND_ROWS


def test_first_block_reads_a_padded_input_as_it_is(rng):
    # MobileNet's first block has no pre: the stem hands it the zero-bordered map.
    _, mid, post, _ = layers(rng, 12, "depthwise", 1, None)
    x = rng.standard_normal((1, 9, 7, 12))
    padded = np.zeros((1, 11, 9, 12))
    padded[:, 1:-1, 1:-1] = x
    block = blocks.Bottleneck(None, mid, post)
    np.testing.assert_allclose(block(padded, padded=True), post(mid(x)), rtol=1e-12)
    np.testing.assert_allclose(block(x), post(mid(x)), rtol=1e-12)


@pytest.mark.parametrize("images, in_place", [(1, True), (2, False)])
def test_one_image_bands_are_written_where_the_output_lies(monkeypatch, rng, images, in_place):
    # post writes a single image's band of rows straight into the block's output, and the
    # block finishes it there; several images' bands lie apart, so they are copied.
    pre, mid, post, proj = layers(rng, 8, "depthwise", 1, "identity")
    block = blocks.Bottleneck(pre, mid, post, proj)
    monkeypatch.setattr(blocks, "MIN_BAND_ROWS", 2)
    monkeypatch.setattr(blocks, "BAND_VALUES", images * 8 * 13 * 12)  # about 6 output rows per band
    outs = []
    original = type(block.post)._rows
    monkeypatch.setattr(type(block.post), "_rows", lambda self, x, r0, r1, out=None: (self is block.post and outs.append(out)) or original(self, x, r0, r1, out))
    x = rng.standard_normal((images, 21, 11, 8))
    result = block(x)
    np.testing.assert_allclose(result, direct(x, pre, mid, post, proj, None), rtol=1e-12, atol=1e-12)
    assert len(outs) > 1
    assert all((out is not None and np.shares_memory(out, result)) if in_place else out is None for out in outs)


def test_a_block_needs_a_plain_1x1_post(rng):
    pre, mid, post, _ = layers(rng, 8, "depthwise", 1, None)
    with pytest.raises(ValueError, match="post must be a 1x1 conv with stride 1"):
        blocks.Bottleneck(pre, mid, mid)
