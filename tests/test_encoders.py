"""The encoders without PyTorch: the committed torchvision fixture, architectures, weights errors."""

import hashlib
import json
import pathlib
import sys
import types

import numpy as np
import pytest

from minicap.backend import to_numpy
from minicap.encoders import WeightsError, load_encoder
from minicap.encoders import encoder, mobilenet_v2, regnet, weights
from minicap.encoders.regnet import RegNetConfig
from minicap.encoders.weights import checkpoint_path, fetch_checkpoint, read_state_dict

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "encoders"
CHECKPOINTS = {"mobilenet_v2": "mobilenet_v2_small.pth", "regnet_x_400mf": "regnet_x_small.pth"}


def fixture_arch(name):
    """The architecture options of the fixture networks, as ``load_encoder`` takes them."""
    options = json.loads((FIXTURES / "fixture.json").read_text())[name]
    if name == "regnet_x_400mf":
        return {"config": RegNetConfig(options["stem_width"], tuple(options["widths"]), tuple(options["depths"]), options["group_width"])}
    return {"width_mult": options["width_mult"], "setting": options["setting"]}


def specs_of(name, **arch):
    if name == "mobilenet_v2":
        stem, blocks, last = mobilenet_v2.plan(**arch)
        return [stem] + [s for block in blocks for s in block[:3] if s is not None] + [last]
    stem, blocks = regnet.plan(**arch)
    return [stem] + [s for block in blocks for s in block if s is not None]


def random_state(name, rng, **arch):
    """A state dict of the right names and shapes with random values (He-scaled convs, BN near identity)."""
    state = {}
    for spec in specs_of(name, **arch):
        for key, shape in spec.expected_shapes().items():
            if key.endswith("running_var"):
                state[key] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
            elif len(shape) == 4:
                fan_in = shape[1] * shape[2] * shape[3]
                state[key] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
            else:
                state[key] = rng.uniform(-0.2, 0.2, shape).astype(np.float32) + (1.0 if key.endswith(".weight") else 0.0)
    return state


@pytest.mark.parametrize("name", ["mobilenet_v2", "regnet_x_400mf"])
def test_matches_torchvision_outputs_saved_in_the_fixture(xp, name):
    images = np.load(FIXTURES / "images.npy")
    with np.load(FIXTURES / "outputs.npz") as f:
        expected = f[name]
    enc = load_encoder(name, weights=FIXTURES / CHECKPOINTS[name], **fixture_arch(name))
    out = enc(xp.asarray(images))
    assert isinstance(out, xp.ndarray)
    assert out.dtype == np.float32
    assert out.shape == expected.shape == (3, enc.out_channels, 3, 2)  # ceil(72 / 32), ceil(50 / 32)
    np.testing.assert_allclose(to_numpy(out), expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_npz_weights_work_like_the_torch_file(tmp_path):
    state = read_state_dict(FIXTURES / CHECKPOINTS["regnet_x_400mf"])
    np.savez(tmp_path / "w.npz", **state)
    images = np.load(FIXTURES / "images.npy")[:1]
    a = load_encoder("regnet_x_400mf", weights=tmp_path / "w.npz", **fixture_arch("regnet_x_400mf"))(images)
    b = load_encoder("regnet_x_400mf", weights=state, **fixture_arch("regnet_x_400mf"))(images)
    np.testing.assert_array_equal(a, b)


# torchvision's documented parameter counts of the whole classifiers, minus the
# final linear layer (1280 -> 1000 and 400 -> 1000, with biases): what the trunks hold.
PUBLISHED_TRUNK_PARAMS = {
    "mobilenet_v2": 3_504_872 - (1280 * 1000 + 1000),
    "regnet_x_400mf": 5_495_976 - (400 * 1000 + 1000),
}


@pytest.mark.parametrize("name", ["mobilenet_v2", "regnet_x_400mf"])
def test_default_architecture_has_the_published_size(name):
    # Trainable parameters: conv weights plus BN scale and shift (running statistics are not parameters).
    shapes = [shape for spec in specs_of(name) for key, shape in spec.expected_shapes().items() if not key.endswith(("running_mean", "running_var"))]
    assert sum(int(np.prod(shape)) for shape in shapes) == PUBLISHED_TRUNK_PARAMS[name]


@pytest.mark.parametrize("name, channels", [("mobilenet_v2", 1280), ("regnet_x_400mf", 400)])
def test_full_size_encoders_give_a_4x4_grid_for_112_pixel_images(xp, rng, name, channels):
    enc = load_encoder(name, weights=random_state(name, rng))
    images = rng.integers(0, 256, (2, 3, 112, 112), dtype=np.uint8)
    out = enc(xp.asarray(images))
    assert enc.out_channels == channels
    assert out.shape == (2, channels, 4, 4)
    assert out.dtype == np.float32
    assert bool(xp.isfinite(out).all())
    # Images are encoded independently: one alone gives the same features as in the batch
    # (up to float32 rounding: the products are summed in another order).
    alone = to_numpy(enc(xp.asarray(images[1:])))
    np.testing.assert_allclose(alone, to_numpy(out[1:]), rtol=0, atol=1e-4 * float(abs(out).max()))


@pytest.mark.parametrize("name", ["mobilenet_v2", "regnet_x_400mf"])
def test_chunks_and_threads_do_not_change_the_features(monkeypatch, rng, name):
    # A batch runs in chunks of whole images on several threads: any split gives the same maps.
    state = random_state(name, rng)
    images = rng.integers(0, 256, (5, 3, 64, 48), dtype=np.uint8)
    serial = load_encoder(name, weights=state, threads=1)(images)
    scale = 1e-5 * float(np.abs(serial).max())
    for threads, chunk_pixels in [(2, encoder.CHUNK_PIXELS), (3, encoder.CHUNK_PIXELS), (2, 64 * 48)]:
        enc = load_encoder(name, weights=state, threads=threads)
        monkeypatch.setattr(enc._networks["cpu"], "chunk_pixels", chunk_pixels)
        calls, pinned = [], []
        monkeypatch.setattr(enc._workers, "map", lambda fn, items, map=enc._workers.map: calls.append(len(items)) or map(fn, items))
        own_cores = enc._workers.own_cores
        monkeypatch.setattr(enc._workers, "own_cores", lambda: pinned.append(True) or own_cores())
        out = enc(images)
        assert calls == [min(5, threads if chunk_pixels > 64 * 48 else 5)]  # chunks: 2 or 3 by the threads, or one per image
        assert pinned == [True]  # the chunks' threads run on a CPU each (parallel.Workers.own_cores)
        np.testing.assert_allclose(out, serial, rtol=0, atol=scale)


@pytest.mark.parametrize("name", ["mobilenet_v2", "regnet_x_400mf"])
@pytest.mark.parametrize("way", ["BANDS", "BLAS", "ONE"])
def test_one_image_gives_the_same_features_whichever_way_the_threads_share_it(monkeypatch, rng, name, way):
    from minicap.encoders import parallel

    state = random_state(name, rng)
    image = rng.integers(0, 256, (1, 3, 160, 144), dtype=np.uint8)
    serial = load_encoder(name, weights=state, threads=1)(image)
    monkeypatch.setattr(parallel.Workers, "ways_for", lambda self, *size: [getattr(parallel, way)])
    bands = []
    run_bands = parallel.run_bands
    monkeypatch.setattr(parallel, "run_bands", lambda fn, rows, workers: bands.append(parallel.splits(rows, workers)) or run_bands(fn, rows, workers))
    out = load_encoder(name, weights=state, threads=2)(image)
    assert any(bands) is (way == "BANDS")  # the stem (80x72x32 outputs) in bands, or whole
    if way == "ONE":
        np.testing.assert_array_equal(out, serial)
    else:  # float32 rounding: a band's fewer rows may take another formulation of a conv (see
        # ops.Grouped), and OpenBLAS's threads sum some products in another order on some CPUs.
        # These random-weight networks amplify it: over 6 seeds, bands against one thread gave
        # MobileNet 6e-6 to 9e-6 of the largest feature before biases became shifts (ops), 6e-6
        # to 1.1e-5 after; RegNet 7e-7 to 1.3e-6. The published weights: 1.3e-6 against torchvision.
        np.testing.assert_allclose(out, serial, rtol=0, atol=2e-5 * float(np.abs(serial).max()))


def test_one_image_ways_are_timed_on_real_calls(monkeypatch, rng):
    from minicap.encoders import parallel

    monkeypatch.setattr(parallel, "other_running_tasks", lambda: 0)  # an idle machine
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 2)
    enc = load_encoder("mobilenet_v2", weights=random_state("mobilenet_v2", rng), threads=2)
    monkeypatch.setattr(mobilenet_v2.MobileNetV2, "bands_min_pixels", 64 * 64)
    image = rng.integers(0, 256, (1, 3, 64, 64), dtype=np.uint8)
    first = enc(image)
    calls = parallel.WARMUP + parallel.TRIALS
    for _ in range(3 * calls - 1):  # each way, in turn
        np.testing.assert_allclose(enc(image), first, rtol=0, atol=1e-5 * float(np.abs(first).max()))
    times = enc._workers._chooser._times[(64, 64)][1]
    assert {way: count for way, (count, best) in times.items()} == {way: calls for way in (parallel.BLAS, parallel.BANDS, parallel.ONE)}
    assert all(best > 0 for _, best in times.values())  # each timed after its first call


def test_normalize_is_torchvisions_arithmetic_channel_last(xp, rng):
    images = rng.integers(0, 256, (2, 3, 5, 7), dtype=np.uint8)
    mean = np.array(encoder.IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.array(encoder.IMAGENET_STD, np.float32)[:, None, None]
    expected = ((images.astype(np.float32) / np.float32(255) - mean) / std).transpose(0, 2, 3, 1)
    out = encoder.normalize(xp.asarray(images))
    assert out.dtype == np.float32 and out.shape == (2, 5, 7, 3)
    np.testing.assert_array_equal(to_numpy(out), expected)  # the same float32 operations: equal to the bit


def test_chunks_are_sized_from_the_image_size():
    assert encoder.images_per_chunk(112, 112) == 8
    assert encoder.images_per_chunk(224, 224) == 2
    assert encoder.images_per_chunk(448, 448) == 1
    assert encoder.images_per_chunk(1, 1) == encoder.CHUNK_PIXELS
    assert encoder.images_per_chunk(112, 112, 16 * 112 * 112) == 16  # a network's own size


@pytest.mark.parametrize("name, per_chunk", [("mobilenet_v2", 8), ("regnet_x_400mf", 16)])
def test_a_batch_runs_in_chunks_of_the_networks_size(monkeypatch, rng, name, per_chunk):
    enc = load_encoder(name, weights=random_state(name, rng), threads=1)
    sizes = []
    network = type(enc._networks["cpu"])
    monkeypatch.setattr(network, "features", lambda self, x, workers=None, call=network.features: sizes.append(len(x)) or call(self, x, workers))
    enc(rng.integers(0, 256, (20, 3, 112, 112), dtype=np.uint8))
    assert sizes == {8: [8, 8, 4], 16: [16, 4]}[per_chunk]


def test_wider_mobilenet_widens_the_last_layer_too(rng):
    stem, blocks, last = mobilenet_v2.plan(width_mult=1.4)
    assert last.out_channels == 1792  # 1280 * 1.4
    assert stem.out_channels == 48  # 32 * 1.4 = 44.8, to a multiple of 8


def test_missing_tensor_is_named(rng):
    state = random_state("mobilenet_v2", rng)
    del state["features.5.conv.1.0.weight"]
    del state["features.18.1.running_var"]
    with pytest.raises(WeightsError, match=r"2 tensor\(s\) missing: .*features\.5\.conv\.1\.0\.weight.*features\.18\.1\.running_var"):
        load_encoder("mobilenet_v2", weights=state)


def test_misshaped_tensor_is_named_with_both_shapes(rng):
    state = random_state("regnet_x_400mf", rng)
    state["trunk_output.block3.block3-2.f.b.0.weight"] = np.zeros((160, 8, 3, 3), np.float32)
    with pytest.raises(WeightsError, match=r"block3-2\.f\.b\.0\.weight: expected \(160, 16, 3, 3\), got \(160, 8, 3, 3\)"):
        load_encoder("regnet_x_400mf", weights=state)


def test_checkpoint_of_the_other_network_is_rejected():
    with pytest.raises(WeightsError, match="do not fit regnet_x"):
        load_encoder("regnet_x_400mf", weights=FIXTURES / CHECKPOINTS["mobilenet_v2"])


def test_extra_tensors_such_as_a_classifier_are_ignored(rng):
    arch = fixture_arch("regnet_x_400mf")
    state = random_state("regnet_x_400mf", rng, config=arch["config"])
    plain = load_encoder("regnet_x_400mf", weights=dict(state), **arch)
    state["fc.weight"] = np.ones((1000, 32), np.float32)
    state["stem.1.num_batches_tracked"] = np.array(7)
    extra = load_encoder("regnet_x_400mf", weights=state, **arch)
    images = rng.integers(0, 256, size=(1, 3, 32, 32), dtype=np.uint8)
    np.testing.assert_array_equal(extra(images), plain(images))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"name": "resnet50"}, ValueError, "unknown encoder 'resnet50'"),
        ({"name": "mobilenet_v2", "depth": 3}, ValueError, "does not take the architecture option"),
        ({"name": "mobilenet_v2", "width_mult": 0}, ValueError, "width_mult must be positive"),
        ({"name": "mobilenet_v2", "threads": 0}, ValueError, "threads must be a positive integer or None, got 0"),
        ({"name": "mobilenet_v2", "setting": [(6, 24, 2)]}, ValueError, "4 positive ints"),
        ({"name": "regnet_x_400mf", "weights": 3}, TypeError, "weights must be None, a file path or a dict"),
        ({"name": "regnet_x_400mf", "weights": "/nonexistent/w.pth"}, WeightsError, "does not exist"),
    ],
)
def test_load_encoder_rejects_bad_arguments(kwargs, error, message):
    kwargs.setdefault("weights", {})
    with pytest.raises(error, match=message):
        load_encoder(**kwargs)


def test_regnet_config_checks_group_width():
    with pytest.raises(ValueError, match="not a multiple of the group width"):
        RegNetConfig(widths=(24, 40), depths=(1, 1), group_width=16)


def test_unreadable_weights_file_gives_a_clear_error(tmp_path):
    bad = tmp_path / "weights.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="cannot read the weights file"):
        load_encoder("mobilenet_v2", weights=bad)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((3, 8, 8), np.uint8), r"add a batch axis"),
        (np.zeros((1, 1, 8, 8), np.uint8), r"\(N, 3, H, W\)"),
        (np.zeros((1, 3, 8, 8), np.float32), "must be uint8"),
    ],
)
def test_encoder_rejects_images_that_are_not_uint8_nchw_rgb(images, message):
    enc = load_encoder("mobilenet_v2", weights=FIXTURES / CHECKPOINTS["mobilenet_v2"], **fixture_arch("mobilenet_v2"))
    with pytest.raises(ValueError, match=message):
        enc(images)


def install_fake_download(monkeypatch, tmp_path, behaviour):
    """Point the cache at tmp_path and replace the download helper (tests never touch the network)."""
    monkeypatch.setenv("MINICAP_HOME", str(tmp_path))
    calls = []

    def download(url, dest, *args, **kwargs):
        calls.append(url)
        behaviour(pathlib.Path(dest))

    monkeypatch.setitem(sys.modules, "minicap.data.download", types.SimpleNamespace(download=download))
    return calls


def test_offline_download_says_where_to_put_the_file(monkeypatch, tmp_path):
    def offline(dest):
        # What minicap.data.download raises offline: an OSError naming the place for the file.
        raise OSError(f"cannot download: Name or service not known; put the file at {dest}")

    calls = install_fake_download(monkeypatch, tmp_path, offline)
    with pytest.raises(WeightsError) as info:
        load_encoder("mobilenet_v2")
    message = str(info.value)
    assert calls == ["https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"]
    assert str(tmp_path / "encoders" / "mobilenet_v2-b0353104.pth") in message
    assert "Name or service not known" in message and "weights=PATH" in message


def test_published_checkpoint_is_downloaded_once_then_used(monkeypatch, tmp_path):
    # Stand in for the published file: the fixture checkpoint, under a URL whose
    # name carries the start of its SHA-256 the way torchvision's do.
    content = (FIXTURES / CHECKPOINTS["mobilenet_v2"]).read_bytes()
    prefix = hashlib.sha256(content).hexdigest()[:8]
    monkeypatch.setitem(weights.CHECKPOINTS, "mobilenet_v2", f"https://example.invalid/models/mobilenet_v2-{prefix}.pth")

    def serve(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)

    calls = install_fake_download(monkeypatch, tmp_path, serve)
    images = np.load(FIXTURES / "images.npy")
    with np.load(FIXTURES / "outputs.npz") as f:
        expected = f["mobilenet_v2"]
    for _ in range(2):
        out = load_encoder("mobilenet_v2", **fixture_arch("mobilenet_v2"))(images)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    assert len(calls) == 1
    assert (tmp_path / "encoders" / f"mobilenet_v2-{prefix}.pth").read_bytes() == content


def test_cached_checkpoint_with_a_wrong_checksum_is_refused_without_downloading(monkeypatch, tmp_path):
    calls = install_fake_download(monkeypatch, tmp_path, lambda dest: pytest.fail("downloaded although present"))
    dest = checkpoint_path("regnet_x_400mf")
    assert dest == tmp_path / "encoders" / "regnet_x_400mf-adf1edd5.pth"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"an error page, not a checkpoint")
    with pytest.raises(WeightsError, match="is not torchvision's regnet_x_400mf checkpoint.*delete it"):
        fetch_checkpoint("regnet_x_400mf")
    assert calls == []


# ------------------------------------------------- review fixes: reading weights files


def _fixture_npz(tmp_path):
    state = read_state_dict(FIXTURES / CHECKPOINTS["regnet_x_400mf"])
    path = tmp_path / "regnet.npz"
    np.savez(path, **state)
    return path


def test_truncated_npz_weights_are_a_weights_error_naming_the_file(tmp_path):
    path = _fixture_npz(tmp_path)
    path.write_bytes(path.read_bytes()[:-100])  # no zip directory any more: BadZipFile before the fix
    with pytest.raises(WeightsError) as info:
        load_encoder("regnet_x_400mf", weights=path, **fixture_arch("regnet_x_400mf"))
    message = str(info.value)
    assert message.startswith(f"cannot read the weights file {path} as .npz (BadZipFile: ")
    assert message.endswith("delete it and fetch it again") and "\n" not in message


def test_npz_weights_with_a_damaged_member_are_a_weights_error(tmp_path):
    import zipfile

    path = _fixture_npz(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.infolist()[0]
    # one byte of the first member's data (after its local header), so only the CRC check notices
    data[info.header_offset + 30 + len(info.filename) + info.file_size - 1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"Bad CRC-32 .*delete it and fetch it again$"):
        load_encoder("regnet_x_400mf", weights=path, **fixture_arch("regnet_x_400mf"))


@pytest.mark.parametrize("keep", [0, 0.5, 0.99])
def test_truncated_or_empty_pth_is_a_weights_error(tmp_path, keep):
    data = (FIXTURES / CHECKPOINTS["regnet_x_400mf"]).read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(WeightsError) as info:
        load_encoder("regnet_x_400mf", weights=path, **fixture_arch("regnet_x_400mf"))
    message = str(info.value)
    assert message.startswith(f"cannot read the weights file {path} (DataError: ")
    assert message.count(str(path)) == 1  # the reader's own mention of the file is not repeated
    assert message.endswith("delete it and fetch it again")


def test_missing_weights_file_is_a_weights_error_saying_where_to_get_it(tmp_path):
    path = tmp_path / "gone.pth"
    with pytest.raises(WeightsError) as info:
        load_encoder("mobilenet_v2", weights=path)
    assert str(info.value) == (
        f"weights file {path} does not exist; pass the path of a torchvision checkpoint (.pth) or .npz, "
        "e.g. torchvision's published one from https://download.pytorch.org/models/mobilenet_v2-b0353104.pth")


def test_weights_error_shows_the_count_and_the_first_eight_names():
    state = read_state_dict(FIXTURES / CHECKPOINTS["mobilenet_v2"])
    specs = specs_of("mobilenet_v2", **fixture_arch("mobilenet_v2"))
    names = [name for spec in specs for name in spec.expected_shapes()]
    for name in names[:10]:
        del state[name]
    with pytest.raises(WeightsError) as info:
        weights.check_state_dict(state, specs, "the test network")
    line = str(info.value).splitlines()[1].strip()
    assert line == "10 tensor(s) missing: " + ", ".join(names[:8]) + " ..."


@pytest.mark.parametrize("shape", [(1, 3, 0, 32), (2, 3, 32, 0)])
def test_encoder_rejects_images_without_pixels(shape):
    enc = load_encoder("mobilenet_v2", weights=FIXTURES / CHECKPOINTS["mobilenet_v2"], **fixture_arch("mobilenet_v2"))
    with pytest.raises(ValueError, match=rf"images must be at least 1 x 1 pixels, got H={shape[2]}, W={shape[3]}"):
        enc(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("name", ["mobilenet_v2", "regnet_x_400mf"])
def test_moving_a_network_moves_every_array_it_keeps(monkeypatch, rng, name):
    # The GPU gets a copy of the network (Encoder's first CuPy call): every weight, shift and
    # repeated row must go with it. A stand-in device marks what was moved.
    from minicap.encoders import ops

    class Moved(np.ndarray):
        pass

    monkeypatch.setattr(ops, "to_device", lambda a, device: np.asarray(a).view(Moved))
    enc = load_encoder(name, weights=random_state(name, rng), threads=1)
    enc(rng.integers(0, 256, (1, 3, 64, 64), dtype=np.uint8))  # fills the caches of repeated rows
    network = enc._networks["cpu"]
    moved = network.to("elsewhere")
    arrays, seen = [], set()

    def walk(obj):
        if id(obj) in seen or obj is None or isinstance(obj, (str, int, float, tuple)):
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            arrays.append(obj)
        elif isinstance(obj, list):
            for item in obj:
                walk(item)
        elif isinstance(obj, dict):
            assert not obj, "a cache of arrays made on the old device was kept"
        elif hasattr(obj, "__dict__"):
            for value in vars(obj).values():
                walk(value)

    walk(moved)
    assert len(arrays) > 3 * len(network.layers)  # weights, biases, shifts, rows of every layer
    assert all(isinstance(a, Moved) for a in arrays)


@pytest.mark.parametrize("name", ["mobilenet_v2", "regnet_x_400mf"])
@pytest.mark.parametrize("images", [1, 2])
def test_features_are_the_networks_output_channels_first(rng, name, images):
    # MobileNet's last 1x1 conv writes NCHW itself for one image (ops.Pointwise.channels_first);
    # several images, and RegNet's output, are transposed.
    enc = load_encoder(name, weights=random_state(name, rng), threads=1)
    network = enc._networks["cpu"]
    x = rng.standard_normal((images, 64, 48, 3)).astype(np.float32)
    nhwc = network(x)
    nchw = network.features(x)
    assert nchw.shape == (images, nhwc.shape[3], nhwc.shape[1], nhwc.shape[2]) and nchw.flags.c_contiguous
    np.testing.assert_allclose(nchw, nhwc.transpose(0, 3, 1, 2), rtol=0, atol=1e-5 * float(np.abs(nhwc).max()))


@pytest.mark.parametrize("name", ["mobilenet_v2", "regnet_x_400mf"])
def test_features_never_hand_out_a_reused_buffer(rng, name):
    # 16x16 images end in 1x1 maps, whose transpose is already contiguous; so many of them make
    # a last map over memory.MIN_BYTES, from the reused buffers. The features must still be a
    # new array, not a view of that scratch memory.
    from minicap.encoders import memory

    enc = load_encoder(name, weights=random_state(name, rng), threads=1)
    images = -(-memory.MIN_BYTES // (4 * enc.out_channels)) + 1
    out = enc(rng.integers(0, 256, (images, 3, 16, 16), dtype=np.uint8))
    assert out.shape == (images, enc.out_channels, 1, 1)
    kept = [b for buffers in getattr(memory._LOCAL, "buffers", {}).values() for b in buffers]
    assert kept  # the scratch buffers this thread used
    assert not any(np.shares_memory(out, b) for b in kept)
