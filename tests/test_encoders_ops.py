"""conv2d against a direct loop in each of its formulations, bands of rows, padded outputs,
batch-norm folding against conv-then-BN, activations."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicap.backend import to_numpy
from minicap.encoders import formulations, ops, parallel
from minicap.encoders.ops import Depthwise, Grouped, Pointwise, conv2d, fold_batch_norm, make_conv, relu, relu6


def conv_loop(x, w, b, stride, padding, groups):
    """The definition, one output position at a time, in float64, channel-last: x (N, H, W, C), w (F, C/G, KH, KW)."""
    n, h, wd, c = x.shape
    f, cg, kh, kw = w.shape
    xpad = np.zeros((n, h + 2 * padding, wd + 2 * padding, c))
    xpad[:, padding : padding + h, padding : padding + wd] = x
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, ho, wo, f))
    per_group = f // groups
    for k in range(f):
        g = k // per_group
        for i in range(ho):
            for j in range(wo):
                patch = xpad[:, i * stride : i * stride + kh, j * stride : j * stride + kw, g * cg : (g + 1) * cg]
                out[:, i, j, k] = (patch * w[k].transpose(1, 2, 0)).sum(axis=(1, 2, 3)) + (0.0 if b is None else b[k])
    return out


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cg, fg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * padding), 7))
    wd = draw(st.integers(max(1, kw - 2 * padding), 7))
    n = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return n, h, wd, groups * cg, groups * fg, cg, kh, kw, stride, padding, groups, bias, seed


@settings(max_examples=60, deadline=None)
@given(conv_cases())
def test_conv2d_matches_the_loop_definition(case):
    n, h, wd, c, f, cg, kh, kw, stride, padding, groups, bias, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, wd, c))
    w = rng.standard_normal((f, cg, kh, kw))
    b = rng.standard_normal(f) if bias else None
    out = conv2d(x, w, b, stride=stride, padding=padding, groups=groups)
    np.testing.assert_allclose(out, conv_loop(x, w, b, stride, padding, groups), rtol=1e-10, atol=1e-10)


def test_each_shape_gets_its_formulation(rng):
    assert isinstance(make_conv(np.ones((4, 3, 1, 1)), np.zeros(4)), Pointwise)
    assert isinstance(make_conv(np.ones((4, 3, 1, 1)), np.zeros(4), stride=2), Pointwise)
    assert isinstance(make_conv(np.ones((6, 1, 3, 3)), np.zeros(6), padding=1, groups=6), Depthwise)
    assert isinstance(make_conv(np.ones((6, 1, 3, 3)), np.zeros(6), padding=1, groups=3), Grouped)  # two filters per channel
    assert isinstance(make_conv(np.ones((8, 4, 3, 3)), np.zeros(8), padding=1, groups=2), Grouped)
    assert isinstance(make_conv(np.ones((4, 3, 1, 1)), np.zeros(4), padding=1), Grouped)  # a padded 1x1 conv


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("channels", [1, 6, 96])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel, padding", [(1, 0), (3, 0), (3, 1), (5, 2), (3, 2)])
def test_depthwise_formulations_match_the_loop(rng, dtype, channels, stride, kernel, padding):
    # Odd sizes, so that neither the rows nor the columns divide evenly by the stride.
    x = rng.standard_normal((2, 9, 7, channels))
    w = rng.standard_normal((channels, 1, kernel, kernel))
    b = rng.standard_normal(channels)
    out = conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), stride=stride, padding=padding, groups=channels)
    assert out.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, conv_loop(x, w, b, stride, padding, channels), rtol=tol, atol=tol)


@pytest.mark.parametrize("stride, row_taps", [(1, True), (2, False), (3, False)])
def test_depthwise_formulation_is_chosen_from_the_stride(monkeypatch, rng, stride, row_taps):
    calls = []
    taps = Depthwise._row_taps
    monkeypatch.setattr(Depthwise, "_row_taps", lambda self, *a: calls.append(a[1:]) or taps(self, *a))
    layer = make_conv(rng.standard_normal((8, 1, 3, 3)), np.zeros(8), stride, 1, 8)
    layer(rng.standard_normal((1, 7, 6, 8)))
    assert calls == ([(0, 7)] if row_taps else [])


def test_row_taps_are_the_rows_of_each_tap(rng):
    # [n, i, p, q] of the view is input row r0 + i + p from column q on, Wo pixels of C channels.
    layer = make_conv(rng.standard_normal((4, 1, 3, 2)), np.zeros(4), 1, 0, 4)
    x = rng.standard_normal((2, 7, 6, 4))
    taps = layer._row_taps(x, 2, 5)
    assert taps.shape == (2, 3, 3, 2, 5 * 4)
    for i in range(3):
        for p in range(3):
            for q in range(2):
                np.testing.assert_array_equal(taps[:, i, p, q], x[:, 2 + i + p, q : q + 5].reshape(2, 20))


def test_depthwise_row_taps_read_a_non_contiguous_input(rng):
    # A view whose pixels do not lie side by side (every other channel) is copied first, not misread.
    x = rng.standard_normal((2, 6, 5, 8))[..., ::2]
    w = rng.standard_normal((4, 1, 3, 3))
    out = conv2d(x, w, None, stride=1, padding=1, groups=4)
    np.testing.assert_allclose(out, conv_loop(x, w, None, 1, 1, 4), rtol=1e-10, atol=1e-10)


def test_depthwise_bands_of_rows_equal_the_whole_output(rng):
    layer = make_conv(rng.standard_normal((5, 1, 3, 3)), rng.standard_normal(5), 1, 0, 5)
    x = rng.standard_normal((2, 11, 9, 5))
    whole = layer._rows(x, 0, 9)
    np.testing.assert_array_equal(np.concatenate([layer._rows(x, 0, 4), layer._rows(x, 4, 9)], axis=1), whole)


@pytest.mark.parametrize(
    "size, stride, candidates",
    [((14, 14), 1, ["_shifted_products", "_im2col"]), ((7, 7), 1, ["_im2col"]), ((3, 3), 1, ["_im2col"]), ((14, 14), 2, ["_im2col"])],
)
@pytest.mark.parametrize("groups", [1, 3])
def test_grouped_formulations_match_the_loop_and_the_candidates_come_from_the_shape(monkeypatch, rng, size, stride, candidates, groups):
    # Stride 1 on a map whose padded grid is at most 1.5 times the output (14x14: 256 / 196):
    # shifted products or im2col, whichever is timed faster; else im2col (7x7: 81 / 49).
    monkeypatch.setattr(formulations, "_chosen", {})
    x = rng.standard_normal((2, *size, 6))
    w = rng.standard_normal((6, 6 // groups, 3, 3))
    b = rng.standard_normal(6)
    used = []
    for name in ("_shifted_products", "_im2col"):
        method = getattr(Grouped, name)
        monkeypatch.setattr(Grouped, name, lambda self, *a, name=name, method=method: used.append(name) or method(self, *a))
    ref = conv_loop(x, w, b, stride, 1, groups)
    for call in range(2):
        used.clear()
        out = conv2d(x, w, b, stride=stride, padding=1, groups=groups)
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
        if len(candidates) == 1:
            assert used == candidates
        elif call == 0:  # the first call at this shape times each candidate twice
            assert used == candidates * formulations.TRIALS
        else:  # then runs the one chosen
            assert len(used) == 1 and used[0] in candidates


def test_the_fastest_formulation_is_timed_once_per_key_then_kept(monkeypatch):
    monkeypatch.setattr(formulations, "_chosen", {})
    now = [0.0]
    cost = {"a": 2.0, "b": 1.0}  # seconds per call, on a fake clock
    calls = []

    def formulation(name):
        def compute():
            calls.append(name)
            now[0] += cost[name]
            return name.upper()
        return compute

    def run(key):
        return formulations.fastest(key, {n: formulation(n) for n in "ab"}, clock=lambda: now[0])

    assert run("k") == "B" and calls == ["a", "b"] * formulations.TRIALS  # each timed, the faster one's result
    assert formulations.chosen("k") == "b" and formulations.chosen("other") is None
    calls.clear()
    cost["b"] = 5.0  # kept even if it later slows: the same result from call to call
    assert [run("k") for _ in range(3)] == ["B"] * 3 and calls == ["b"] * 3
    cost["a"] = 1.0
    calls.clear()
    assert run("other") == "A" and calls == ["a", "b"] * formulations.TRIALS  # each key on its own
    monkeypatch.setattr(formulations, "MAX_KEYS", 2)
    run("third")  # bounded: a third key starts afresh
    assert formulations.chosen("k") is None and formulations.chosen("third") == "a"


@pytest.mark.parametrize("stride", [1, 2])  # depthwise (groups=8): row taps, windows
@pytest.mark.parametrize("groups", [1, 2, 8])
def test_conv2d_backends_agree_and_float32_stays_float32(xp, rng, groups, stride):
    x = rng.standard_normal((2, 10, 9, 8)).astype(np.float32)
    w = rng.standard_normal((8, 8 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    out = conv2d(xp.asarray(x), xp.asarray(w), xp.asarray(b), stride=stride, padding=1, groups=groups)
    assert isinstance(out, xp.ndarray)
    assert out.dtype == np.float32
    assert out.shape == ((2, 10, 9, 8) if stride == 1 else (2, 5, 5, 8))
    ref = conv_loop(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride, 1, groups)
    np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-4, atol=1e-4)


def test_windows_are_the_receptive_fields(rng):
    x = rng.standard_normal((2, 5, 6, 4))
    view = ops.windows(x, 2, 3, stride=2)  # Ho = 2, Wo = 2
    assert view.shape == (2, 2, 2, 2, 3, 4)
    assert np.shares_memory(view, x)
    # image 1, output position (i, j) = (1, 0): rows 2..3, columns 0..2
    np.testing.assert_array_equal(view[1, 1, 0], x[1, 2:4, 0:3])


LAYERS = {
    "pointwise": ((12, 8, 1, 1), 1, 0, 1),
    "pointwise, stride 2": ((12, 8, 1, 1), 2, 0, 1),
    "depthwise, taps": ((8, 1, 3, 3), 1, 1, 8),
    "depthwise, einsum": ((8, 1, 3, 3), 2, 1, 8),
    "grouped, im2col": ((12, 4, 3, 3), 2, 1, 2),
    "grouped, shifted products": ((12, 4, 3, 3), 1, 1, 2),
    "one group, im2col of whole window rows": ((12, 8, 3, 3), 2, 1, 1),
}


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("pad_out", [0, 1])
def test_bands_of_rows_on_threads_equal_the_whole_output(monkeypatch, rng, name, pad_out):
    # A single image's large convs are split into bands of rows, one per thread.
    shape, stride, padding, groups = LAYERS[name]
    layer = make_conv(rng.standard_normal(shape), rng.standard_normal(shape[0]), stride, padding, groups, "relu")
    x = rng.standard_normal((1, 11, 7, 8))
    whole = layer(x)
    bands = []
    run_bands = parallel.run_bands
    monkeypatch.setattr(parallel, "run_bands", lambda fn, *args: run_bands(lambda r0, r1: bands.append((r0, r1)) or fn(r0, r1), *args))
    banded = layer(x, pad_out=pad_out, workers=parallel.Workers(3))
    assert sorted(bands) == ([(0, 3), (3, 7), (7, 11)] if stride == 1 else [(0, 2), (2, 4), (4, 6)])  # 11 or 6 rows, 3 threads
    inside = banded[:, pad_out : banded.shape[1] - pad_out, pad_out : banded.shape[2] - pad_out]
    np.testing.assert_allclose(inside, whole, rtol=1e-12, atol=1e-12)
    if pad_out:
        border = np.ones(banded.shape[:3], bool)
        border[:, 1:-1, 1:-1] = False
        assert not banded[border].any()


def test_run_bands_covers_every_row_once():
    rows = []
    parallel.run_bands(lambda r0, r1: rows.extend(range(r0, r1)), 10, parallel.Workers(3))
    assert sorted(rows) == list(range(10))
    bands = []
    parallel.run_bands(lambda r0, r1: bands.append((r0, r1)), 1, parallel.Workers(3))
    assert bands == [(0, 1)]  # one row: nothing to split
    parallel.run_bands(lambda r0, r1: bands.append((r0, r1)), 10, parallel.Workers(1))
    assert bands == [(0, 1), (0, 10)]  # one thread


@pytest.mark.parametrize("side, least, ways", [(256, 256 * 256, ["BANDS", "ONE", "BLAS"]),  # BLAS's threads timed last
                                               (255, 256 * 256, ["ONE", "BLAS"]), (999, None, ["ONE", "BLAS"])])
def test_an_image_may_go_in_bands_from_its_size_else_through_blas_or_one_thread(monkeypatch, side, least, ways):
    monkeypatch.setattr(parallel, "other_running_tasks", lambda: 0)  # an idle machine
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 3)  # with a core for each thread
    assert parallel.Workers(3).ways_for(side, 256, least) == [getattr(parallel, way) for way in ways]
    assert parallel.Workers(1).ways_for(side, 256, least) == [parallel.ONE]


@pytest.mark.parametrize("way, bands, blas", [("BANDS", True, []), ("BLAS", False, [3]), ("ONE", False, [])])
def test_sharing_one_image_takes_the_chosen_way_and_times_it(monkeypatch, way, bands, blas):
    calls, recorded = [], []
    monkeypatch.setattr(parallel, "set_blas_threads", calls.append)
    workers = parallel.Workers(3)
    monkeypatch.setattr(workers, "ways_for", lambda *size: [getattr(parallel, way)])
    monkeypatch.setattr(workers._chooser, "record", lambda *args: recorded.append(args))
    with workers.sharing_one_image(300, 300, 256 * 256):
        assert workers.bands_for(100) is bands
    assert calls == blas  # BLAS gets the threads only in that way
    assert workers.bands_for(100) is True  # outside: bands whenever workers are given
    assert [args[:2] for args in recorded] == [((300, 300), getattr(parallel, way))] and recorded[0][2] >= 0


def test_a_failed_call_is_not_timed(monkeypatch):
    workers = parallel.Workers(2)
    monkeypatch.setattr(workers, "ways_for", lambda *size: [parallel.ONE, parallel.BLAS])
    with pytest.raises(ValueError), workers.sharing_one_image(300, 300):
        raise ValueError("a bad image")
    assert workers._chooser.pick((300, 300), [parallel.ONE, parallel.BLAS]) == parallel.ONE  # still untimed


def test_way_chooser_times_each_way_then_takes_the_fastest_and_times_all_again_later(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(parallel.time, "monotonic", lambda: now[0])
    chooser, ways, key = parallel.WayChooser(), ["a", "b", "c"], (224, 224)
    seconds = {"a": 0.03, "b": 0.01, "c": 0.02}
    first = {"a": 0.001, "b": 1.0, "c": 1.0}  # a first call's time does not count, however short or long
    tried = []
    calls = parallel.WARMUP + parallel.TRIALS
    for _ in range(calls * len(ways)):  # every way its calls, in the order given
        way = chooser.pick(key, ways)
        chooser.record(key, way, first[way] if way not in tried else seconds[way])
        tried.append(way)
    assert tried == [w for w in ways for _ in range(calls)]
    assert [chooser.pick(key, ways) for _ in range(3)] == ["b"] * 3  # then the fastest
    assert chooser.fastest(key) == ("b", 0.01) and chooser.fastest((1, 1)) == (None, None)
    assert chooser.pick((448, 448), ways) == "a"  # each size on its own
    assert chooser.pick(key, ["c"]) == "c"  # a single way needs no timing
    seconds["b"] = 0.05  # the machine changed
    now[0] += parallel.RETRY_S + 1
    for _ in range(calls * len(ways)):
        way = chooser.pick(key, ways)
        chooser.record(key, way, seconds[way])
    assert chooser.pick(key, ways) == "c"


def test_a_busy_machine_leaves_one_thread_only(monkeypatch):
    monkeypatch.setattr(parallel, "other_running_tasks", lambda: 1)
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 2)
    assert parallel.Workers(2).ways_for(448, 448, 256 * 256) == [parallel.ONE]


@pytest.mark.parametrize("others, cpus, speedup, pays", [(0, 2, None, True), (1, 2, None, False), (3, 2, None, False),
                                                         (1, 4, None, True), (3, 4, None, False),
                                                         (None, 2, 1.9, True), (None, 2, 1.1, False)])
def test_threads_are_used_only_with_a_free_core_for_each(monkeypatch, others, cpus, speedup, pays):
    probes = []
    monkeypatch.setattr(parallel, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(parallel, "other_running_tasks", lambda: probes.append("proc") or others)
    monkeypatch.setattr(parallel.thread_policy, "speedup", lambda *shape_and_count: probes.append("probe") or speedup)
    workers = parallel.Workers(2)
    for _ in range(3):  # looked at once, then kept for RECHECK_S seconds
        assert (workers.ways_for(224, 224) != [parallel.ONE]) is pays
    assert probes == (["proc"] if others is not None else ["proc", "probe"])


def test_the_answer_is_looked_at_again_after_recheck_s(monkeypatch):
    answers = iter([0, 1])
    monkeypatch.setattr(parallel, "other_running_tasks", lambda: next(answers))
    clock = iter([100.0, 100.0 + parallel.RECHECK_S + 0.1])
    monkeypatch.setattr(parallel.time, "monotonic", lambda: next(clock))
    workers = parallel.Workers(2)
    assert workers.blas_threads_pay() is True
    assert workers.blas_threads_pay() is False  # another process started meanwhile


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="Linux's /proc")
def test_other_running_tasks_sees_a_busy_process():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started and spinning
        assert parallel.other_running_tasks() >= 1
    finally:
        busy.kill()
        busy.wait()


_AFFINITY = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2


@pytest.mark.skipif(not _AFFINITY, reason="needs Linux's sched_setaffinity and two CPUs")
def test_own_cores_gives_each_thread_a_cpu_of_its_own_and_then_gives_them_back():
    workers = parallel.Workers(2)
    before = os.sched_getaffinity(0)
    with workers.own_cores():
        ids = [threading.get_native_id()] + workers._pool_ids
        inside = [os.sched_getaffinity(tid) for tid in ids]
        # and the pool still works, pinned
        assert workers.map(lambda v: v + 1, range(5)) == [1, 2, 3, 4, 5]
    assert len(ids) == 2 and all(len(cpus) == 1 for cpus in inside)
    assert inside[0] != inside[1]
    assert [os.sched_getaffinity(tid) for tid in ids] == [before, before]


@pytest.mark.skipif(not _AFFINITY, reason="needs Linux's sched_setaffinity")
def test_own_cores_changes_nothing_with_more_threads_than_cpus():
    workers = parallel.Workers(len(os.sched_getaffinity(0)) + 1)
    before = os.sched_getaffinity(0)
    with workers.own_cores():
        assert os.sched_getaffinity(0) == before
        assert all(os.sched_getaffinity(tid) == before for tid in workers._pool_ids)


def test_own_cores_is_a_no_op_without_sched_getaffinity(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    workers = parallel.Workers(2)
    with workers.own_cores():
        assert workers.map(lambda v: 2 * v, [1, 2, 3]) == [2, 4, 6]


def test_batches_and_banded_images_run_on_own_cores_blas_threaded_ones_do_not(monkeypatch, rng):
    pinned = []
    original = parallel.Workers.own_cores

    def spy(self):
        pinned.append(True)
        return original(self)

    monkeypatch.setattr(parallel.Workers, "own_cores", spy)
    workers = parallel.Workers(2)
    for way in (parallel.BANDS, parallel.BLAS, parallel.ONE):
        monkeypatch.setattr(workers, "ways_for", lambda *size, way=way: [way])
        with workers.sharing_one_image(448, 448, 256 * 256):
            pass
    assert pinned == [True]  # in bands only


def test_workers_map_keeps_the_order():
    assert parallel.Workers(2).map(lambda v: v * v, range(7)) == [v * v for v in range(7)]
    assert parallel.Workers(1).map(lambda v: -v, [3, 4]) == [-3, -4]


def test_padded_input_is_read_as_it_is(rng):
    # A layer told its input is padded must not pad again: the output keeps the padded size.
    layer = make_conv(rng.standard_normal((4, 1, 3, 3)), np.zeros(4), 1, 1, 4)
    x = rng.standard_normal((1, 5, 6, 4))
    np.testing.assert_allclose(layer(ops.pad(x, 1), padded=True), layer(x), rtol=1e-12)


def test_one_blas_thread_is_harmless_without_threadpoolctl(monkeypatch):
    monkeypatch.setattr(parallel, "_CONTROLLER", [None])
    with parallel.one_blas_thread():
        assert np.ones((3, 3)) @ np.ones(3) == pytest.approx([3, 3, 3])


def test_one_blas_thread_limits_blas_to_one_thread():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    parallel._controller()
    with parallel.one_blas_thread():
        inside = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    assert inside and set(inside) == {1}


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, message",
    [
        ((3, 4, 4), (2, 3, 3, 3), {}, "x must be"),
        ((1, 4, 4, 3), (2, 3, 3), {}, "w must be"),
        ((1, 4, 4, 3), (2, 2, 3, 3), {}, "needs 3"),
        ((1, 4, 4, 4), (3, 2, 3, 3), {"groups": 2}, "must divide"),
        ((1, 2, 2, 3), (2, 3, 3, 3), {}, "does not fit"),
        ((1, 4, 4, 3), (2, 3, 3, 3), {"stride": 0}, "stride"),
        ((1, 4, 4, 3), (2, 3, 3, 3), {"padding": -1}, "padding"),
        ((1, 4, 4, 3), (2, 3, 3, 3), {"groups": 0}, "groups"),
    ],
)
def test_conv2d_rejects_bad_arguments_clearly(x_shape, w_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv2d(np.zeros(x_shape), np.zeros(w_shape), **kwargs)


def test_conv2d_rejects_integer_input():
    with pytest.raises(ValueError, match="must be floating point, got uint8"):
        conv2d(np.zeros((1, 4, 4, 3), np.uint8), np.zeros((2, 3, 3, 3)))


def test_conv2d_accepts_numpy_integers_as_settings(rng):
    x = rng.standard_normal((1, 5, 5, 2))
    w = rng.standard_normal((2, 1, 3, 3))
    out = conv2d(x, w, stride=np.int64(2), padding=np.int32(1), groups=np.int64(2))
    np.testing.assert_allclose(out, conv_loop(x, w, None, 2, 1, 2), rtol=1e-10, atol=1e-10)


def test_conv2d_rejects_a_misshaped_bias():
    with pytest.raises(ValueError, match=r"b must have shape \(2,\)"):
        conv2d(np.zeros((1, 4, 4, 3)), np.zeros((2, 3, 3, 3)), np.zeros(3))


@pytest.mark.parametrize("conv_bias", [False, True])
def test_folded_batch_norm_equals_conv_then_batch_norm(rng, conv_bias):
    x = rng.standard_normal((2, 6, 6, 4))
    w = rng.standard_normal((6, 2, 3, 3))
    b = rng.standard_normal(6) if conv_bias else None
    gamma, beta, mean = rng.standard_normal((3, 6))
    var = rng.uniform(0.1, 3.0, 6)
    eps = 1e-3
    y = conv2d(x, w, b, stride=1, padding=1, groups=2)
    expected = gamma * (y - mean) / np.sqrt(var + eps) + beta
    wf, bf = fold_batch_norm(w, gamma, beta, mean, var, eps, b=b)
    assert wf.dtype == np.float32 and bf.dtype == np.float32
    out = conv2d(x, wf.astype(np.float64), bf.astype(np.float64), stride=1, padding=1, groups=2)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_activations(xp):
    values = np.array([-7.0, -1.0, 0.0, 0.5, 6.0, 6.5, 100.0], dtype=np.float32)
    x = xp.asarray(values)
    np.testing.assert_array_equal(to_numpy(relu(x)), [0, 0, 0, 0.5, 6, 6.5, 100])
    np.testing.assert_array_equal(to_numpy(relu6(x)), [0, 0, 0, 0.5, 6, 6, 6])
    np.testing.assert_array_equal(to_numpy(x), values)  # not in place by default
    relu6(x, inplace=True)
    np.testing.assert_array_equal(to_numpy(x), [0, 0, 0, 0.5, 6, 6, 6])


@pytest.mark.parametrize("activation, clip", [(None, None), ("relu", (0, None)), ("relu6", (0, 6))])
def test_conv_layer_pads_to_same_size_and_applies_its_activation(rng, activation, clip):
    x = rng.standard_normal((1, 7, 7, 2)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 3
    b = rng.standard_normal(4).astype(np.float32)
    out = make_conv(w, b, stride=2, padding=1, activation=activation)(x)
    raw = conv_loop(x, w, b, 2, 1, 1)
    expected = raw if clip is None else np.clip(raw, *clip)
    assert out.shape == (1, 4, 4, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_conv_layer_rejects_an_unknown_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        make_conv(np.zeros((1, 1, 1, 1)), np.zeros(1), activation="gelu")


SHIFT_CASES = [  # (F, C/G, KH, KW), stride, padding, groups: each formulation (see make_conv)
    ((6, 5, 1, 1), 1, 0, 1),  # Pointwise
    ((6, 5, 1, 1), 2, 0, 1),  # strided Pointwise
    ((5, 1, 3, 3), 1, 1, 5),  # Depthwise, row taps
    ((5, 1, 3, 3), 2, 1, 5),  # Depthwise, windows
    ((6, 2, 3, 3), 1, 1, 3),  # Grouped
    ((6, 5, 3, 3), 2, 1, 1),  # Grouped, strided, one group
]


@pytest.mark.parametrize("shape, stride, padding, groups", SHIFT_CASES)
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
@pytest.mark.parametrize("pad_out", [0, 1])
def test_a_shifted_conv_stores_the_true_output_minus_its_shift(rng, shape, stride, padding, groups, activation, pad_out):
    # Input stored as true - s (with the border -s), output as true - shift: adding the shift back
    # gives the plain layer's output, the bias is no longer added, and a border reads as zero.
    w = rng.standard_normal(shape)
    b = rng.standard_normal(shape[0]) * 3  # biases large enough that relu and relu6 cut on both sides
    c = shape[1] * groups
    x = rng.standard_normal((2, 7, 6, c)) * 3
    s = rng.standard_normal(c) * 2
    plain = make_conv(w, b, stride, padding, groups, activation)
    layer = plain.shifted(s)
    expected = plain(x, pad_out=pad_out)
    out = layer(x - s, pad_out=pad_out)  # the layer pads its input with -s itself
    np.testing.assert_allclose(out + layer.shift, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.shift, b + conv_loop(np.broadcast_to(s, (1, *shape[2:], c)), w, None, 1, 0, groups)[0, 0, 0], rtol=1e-12)
    if pad_out:
        np.testing.assert_array_equal(out[:, 0] + layer.shift, 0)  # the border is true zeros
    # Fed its border from the layer before (padded=True), it computes the same.
    if padding:
        np.testing.assert_allclose(layer(ops.pad(x - s, padding, -s), padded=True), out[:, pad_out : out.shape[1] - pad_out, pad_out : out.shape[2] - pad_out], rtol=1e-12, atol=1e-12)


def test_an_unshifted_input_gives_the_bias_as_the_shift(rng):
    w, b = rng.standard_normal((4, 3, 1, 1)), rng.standard_normal(4)
    layer = make_conv(w, b, activation="relu").shifted(None)
    np.testing.assert_array_equal(layer.shift, b)
    x = rng.standard_normal((1, 2, 2, 3))
    np.testing.assert_allclose(layer(x) + b, make_conv(w, b, activation="relu")(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_shifted_activation_on_whole_rows_and_on_scattered_pixels(rng, activation):
    beta = rng.standard_normal(4) * 3
    floor, ceiling = ops.RowCache(-beta), ops.RowCache(6 - beta)
    y = rng.standard_normal((2, 3, 5, 8)) * 5
    true = {None: lambda v: v, "relu": lambda v: np.maximum(v, 0), "relu6": lambda v: np.clip(v, 0, 6)}[activation]
    rows = ops.shifted_activation(y[..., :4].copy(), np.empty((2, 3, 5, 4)), activation, floor, ceiling)
    scattered = y[..., ::2]  # every other channel: no contiguous rows, so per pixel
    out = ops.shifted_activation(scattered, np.empty((2, 3, 5, 4)), activation, floor, ceiling)
    np.testing.assert_allclose(rows + beta, true(y[..., :4] + beta), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out + beta, true(scattered + beta), rtol=1e-12, atol=1e-12)


def test_way_chooser_tries_the_other_ways_now_and_then_and_a_better_time_wins(monkeypatch):
    monkeypatch.setattr(parallel.time, "monotonic", lambda: 100.0)
    chooser, ways, key = parallel.WayChooser(), ["a", "b", "c"], (448, 448)
    seconds = {"a": 0.05, "b": 0.03, "c": 0.04}  # "a"'s trials met a slow spell: it really takes 0.02
    for _ in range((parallel.WARMUP + parallel.TRIALS) * len(ways)):
        way = chooser.pick(key, ways)
        chooser.record(key, way, seconds[way])
    seconds["a"] = 0.02
    picked = []
    for _ in range(3 * parallel.FIRST_PROBE):
        way = chooser.pick(key, ways)
        picked.append(way)
        chooser.record(key, way, seconds[way])
    probe = parallel.FIRST_PROBE - 1  # the first probe: "a", the first of the others
    assert picked[:probe] == ["b"] * probe and picked[probe] == "a"
    later = [way for i, way in enumerate(picked[probe + 1 :], start=probe + 2) if i & (i - 1)]  # less the probes
    assert later == ["a"] * len(later)  # its better time now wins
    assert chooser.fastest(key) == ("a", 0.02)
    # Probes come at doubling intervals, then every LAST_PROBE_GAP calls, taking the others in turn.
    chooser = parallel.WayChooser()
    for _ in range((parallel.WARMUP + parallel.TRIALS) * len(ways)):
        way = chooser.pick(key, ways)
        chooser.record(key, way, {"a": 0.03, "b": 0.01, "c": 0.02}[way])
    picks = {i: chooser.pick(key, ways) for i in range(1, 3 * parallel.LAST_PROBE_GAP + 1)}
    probes = [i for i, way in picks.items() if way != "b"]
    doubling = [2**k for k in range(2, 20) if 2**k <= parallel.LAST_PROBE_GAP]
    assert probes == doubling + [2 * parallel.LAST_PROBE_GAP, 3 * parallel.LAST_PROBE_GAP]
    assert [picks[i] for i in probes] == ["a", "c"] * (len(probes) // 2) + ["a"] * (len(probes) % 2)  # in turn


def test_a_team_computes_each_item_once_and_every_thread_leaves_a_map_with_all_done():
    workers = parallel.Workers(3)
    seen, after = [], []

    def step(team):
        buffer = team.shared(lambda: [None] * 10)  # every thread gets this one list
        done = team.map(lambda i: seen.append((i, threading.get_native_id())) or buffer.__setitem__(i, i * i), range(10))
        after.append(list(buffer))  # leaving map, each thread sees every item done
        return buffer, done

    buffer, done = workers.team(step)
    assert sorted(i for i, _ in seen) == list(range(10))  # each item once
    assert buffer == [i * i for i in range(10)] and done == [None] * 10
    assert after == [buffer] * 3


def test_a_team_shares_what_the_first_thread_makes_in_call_order_and_lets_it_go():
    workers = parallel.Workers(2)
    made, got, teams = [], [], []

    def step(team):
        teams.append(team)
        first = team.shared(lambda: made.append("first") or object())
        second = team.shared(lambda: made.append("second") or object())
        got.append((first, second))
        team.map(lambda i: None, range(2))  # meet before returning

    workers.team(step)
    assert sorted(made) == ["first", "second"]  # each made once, by whichever thread came first
    assert got[0] == got[1] and got[0][0] is not got[0][1]
    assert teams[0] is teams[1] and not teams[0]._entries  # nothing kept once both have taken it


def test_an_error_in_one_thread_of_a_team_is_raised_and_frees_the_others():
    workers = parallel.Workers(2)
    main = threading.get_native_id()

    def step(team):
        if threading.get_native_id() != main:
            raise ValueError("a helper failed")
        team.map(lambda i: time.sleep(0.01), range(2))  # would wait for the helper forever

    with pytest.raises(ValueError, match="a helper failed"):
        workers.team(step)
    assert workers.team(lambda team: team.map(lambda i: i + 1, range(3))) == [1, 2, 3]  # the pool still works


@pytest.mark.parametrize("way, team", [("BANDS", True), ("BLAS", False), ("ONE", False)])
def test_one_image_in_bands_runs_as_a_team(monkeypatch, rng, way, team):
    workers = parallel.Workers(2)
    monkeypatch.setattr(workers, "ways_for", lambda *size: [getattr(parallel, way)])
    calls = []
    monkeypatch.setattr(workers, "team", lambda fn, team=workers.team: calls.append(True) or team(fn))
    network = lambda x, w: (w.bands_for(10), x)  # noqa: E731
    with workers.sharing_one_image(300, 300, 256 * 256):
        split, x = workers.run(network, "x")
    assert x == "x" and split is team and calls == ([True] if team else [])


def test_a_probe_waits_until_blas_threads_have_stopped_spinning(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(parallel.time, "monotonic", lambda: now[0])
    chooser, ways, key = parallel.WayChooser(), [parallel.BANDS, parallel.ONE, parallel.BLAS], (448, 448)
    seconds = {parallel.BANDS: 0.042, parallel.ONE: 0.06, parallel.BLAS: 0.041}

    def call():
        way = chooser.pick(key, ways)
        chooser.record(key, way, seconds[way])
        return way

    for _ in range((parallel.WARMUP + parallel.TRIALS) * len(ways)):
        call()
    back_to_back = [call() for _ in range(2 * parallel.FIRST_PROBE)]  # each right after the last
    assert back_to_back == [parallel.BLAS] * len(back_to_back)  # the due probe of the bands waits
    now[0] += parallel.BLAS_SPIN_S  # a pause: BLAS's worker has stopped
    assert call() == parallel.BANDS  # the probe, now
    assert call() == parallel.BLAS


def test_pointwise_writes_into_a_given_output_only_if_it_fits(rng):
    conv = make_conv(rng.standard_normal((4, 3, 1, 1)), rng.standard_normal(4))
    x = rng.standard_normal((1, 5, 6, 3))
    out = np.empty((1, 5, 6, 4))
    assert conv._rows(x, 0, 5, out) is out
    np.testing.assert_allclose(out, np.einsum("nhwc,fc->nhwf", x, conv.weight.T), rtol=1e-12)
    with pytest.raises(ValueError, match=r"out must have shape \(1, 5, 6, 4\), got \(1, 5, 6, 3\)"):
        conv._rows(x, 0, 5, np.empty((1, 5, 6, 3)))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        conv._rows(x, 0, 5, np.empty((1, 5, 12, 4))[:, :, ::2])


def test_an_unsplit_band_runs_once_in_a_team():
    # A layer too small to split still runs once in a Team, not once per thread: its band may
    # write a buffer the threads share (a 1x1 conv's channels-first output adds its bias in place).
    calls = []
    parallel.Workers(3).team(lambda team: parallel.run_bands(lambda r0, r1: calls.append((r0, r1)), 1, team))
    assert calls == [(0, 1)]


def test_channels_first_of_a_single_row_on_a_team_adds_its_bias_once(monkeypatch, rng):
    conv = make_conv(rng.standard_normal((5, 4, 1, 1)), np.ones(5))
    x = rng.standard_normal((1, 1, 6, 4))
    add = np.add

    def slow_add(*args, **kwargs):  # widen the window in which a second thread could add again
        time.sleep(0.02)
        return add(*args, **kwargs)

    monkeypatch.setattr(np, "add", slow_add)
    out = parallel.Workers(3).team(lambda team: conv.channels_first(x, team))
    monkeypatch.setattr(np, "add", add)
    np.testing.assert_allclose(out, conv(x).transpose(0, 3, 1, 2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("images, threads", [(2, None), (1, None), (1, 3)])
@pytest.mark.parametrize("activation", [None, "relu6"])
def test_a_1x1_conv_can_write_its_output_channels_first(rng, images, threads, activation):
    # The encoders' last 1x1 conv writes NCHW directly: the product W^T @ x^T per image.
    conv = make_conv(rng.standard_normal((5, 4, 1, 1)), rng.standard_normal(5) * 3, activation=activation)
    x = rng.standard_normal((images, 7, 6, 4)) * 3
    workers = None if threads is None else parallel.Workers(threads)  # bands of rows: blocks of columns of W^T @ x^T
    out = conv.channels_first(x, workers)
    assert out.shape == (images, 5, 7, 6) and out.flags.c_contiguous
    np.testing.assert_allclose(out, conv(x).transpose(0, 3, 1, 2), rtol=1e-12, atol=1e-12)


def test_channels_first_needs_true_input_values(rng):
    conv = make_conv(rng.standard_normal((5, 4, 1, 1)), rng.standard_normal(5)).shifted(rng.standard_normal(4))
    with pytest.raises(ValueError, match="needs a layer that reads true values"):
        conv.channels_first(rng.standard_normal((1, 3, 3, 4)))
