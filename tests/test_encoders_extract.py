"""Batched feature extraction, feature files and image files."""

import os
import pathlib

import numpy as np
import pytest

from minicap.encoders import extract_features, load_encoder, load_features, load_image, save_features

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "encoders"


@pytest.fixture(scope="module")
def encoder():
    """The fixture's small RegNet: fast, and its output channels (32) are not the full 400."""
    from minicap.encoders.regnet import RegNetConfig

    config = RegNetConfig(stem_width=8, widths=(8, 16, 24, 32), depths=(1, 2, 2, 1), group_width=8)
    return load_encoder("regnet_x_400mf", weights=FIXTURES / "regnet_x_small.pth", config=config)


@pytest.fixture(scope="module")
def images():
    return np.load(FIXTURES / "images.npy")  # uint8 (3, 3, 72, 50)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 64])
def test_batches_give_the_same_features_as_one_pass(xp, encoder, images, batch_size):
    device = "cpu" if xp is np else "cuda"
    spatial, pooled = extract_features(images, encoder, batch_size=batch_size, device=device, progress=False)
    whole = encoder(images)
    assert isinstance(spatial, np.ndarray) and isinstance(pooled, np.ndarray)
    assert spatial.dtype == pooled.dtype == np.float32
    assert spatial.shape == (3, 32, 3, 2) and pooled.shape == (3, 32)
    np.testing.assert_allclose(spatial, whole, rtol=1e-5, atol=1e-6)
    expected_pooled = whole.astype(np.float64).reshape(3, 32, 6).sum(axis=2) / 6
    np.testing.assert_allclose(pooled, expected_pooled, rtol=1e-5, atol=1e-6)


def test_progress_bar_counts_images(encoder, images, capsys):
    extract_features(images, encoder, batch_size=2, progress=True)
    err = capsys.readouterr().err
    assert "3/3" in err and "img" in err


def test_shallower_network_gives_a_finer_grid(images):
    # The fixture RegNet's first three stages (its fourth is ignored): stride 16,
    # so 72x50 images give a 5x4 grid.
    from minicap.encoders.regnet import RegNetConfig

    config = RegNetConfig(stem_width=8, widths=(8, 16, 24), depths=(1, 2, 2), group_width=8)
    shallow = load_encoder("regnet_x_400mf", weights=FIXTURES / "regnet_x_small.pth", config=config)
    assert shallow.stride == 16
    spatial, pooled = extract_features(images, shallow, batch_size=2, progress=False)
    assert spatial.shape == (3, 24, 5, 4) and pooled.shape == (3, 24)
    np.testing.assert_allclose(spatial, shallow(images), rtol=1e-5, atol=1e-6)


def test_no_images_gives_empty_arrays(encoder):
    spatial, pooled = extract_features(np.zeros((0, 3, 64, 64), np.uint8), encoder, progress=False)
    assert spatial.shape == (0, 32, 2, 2) and pooled.shape == (0, 32)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"batch_size": 0}, "batch_size must be a positive int"), ({"device": "gpu"}, "device must be 'cpu' or 'cuda'")],
)
def test_extract_rejects_bad_arguments(encoder, images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        extract_features(images, encoder, progress=False, **kwargs)


def test_feature_file_round_trip(tmp_path, rng):
    features = {"train_pooled": rng.standard_normal((4, 5)).astype(np.float32), "val_spatial": rng.standard_normal((2, 5, 3, 3)).astype(np.float32)}
    path = save_features(tmp_path / "sub" / "feats.npz", features, "mobilenet_v2")
    loaded = load_features(path, encoder_name="mobilenet_v2")
    assert sorted(loaded) == sorted(features)
    for key, value in features.items():
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == np.float32
    assert os.listdir(tmp_path / "sub") == ["feats.npz"]  # no temporary file left behind


def test_feature_file_of_another_encoder_is_refused(tmp_path):
    path = save_features(tmp_path / "feats.npz", {"x": np.zeros(2)}, "regnet_x_400mf")
    with pytest.raises(ValueError, match="holds regnet_x_400mf features, not mobilenet_v2"):
        load_features(path, encoder_name="mobilenet_v2")


def _flip_middle_byte(data):
    data = bytearray(data)
    data[len(data) // 2] ^= 1  # inside the stored bytes of "x": the zip's CRC no longer matches
    return bytes(data)


@pytest.mark.parametrize(
    "damage, reason",
    [(lambda data: data[: len(data) // 2], "BadZipFile: File is not a zip file"), (_flip_middle_byte, "BadZipFile: Bad CRC-32")],
    ids=["truncated", "bad-crc"],
)
def test_damaged_feature_file_says_to_extract_again(tmp_path, damage, reason):
    path = save_features(tmp_path / "feats.npz", {"x": np.arange(1000.0)}, "mobilenet_v2")
    damaged = damage(path.read_bytes())
    path.write_bytes(damaged)
    with pytest.raises(ValueError) as err:
        load_features(path, encoder_name="mobilenet_v2")
    assert str(err.value).startswith(f"cannot read the feature file {path} ({reason}")
    assert str(err.value).endswith("it is damaged: delete it and extract again")
    assert path.read_bytes() == damaged  # reported, not deleted


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_features(tmp_path / "feats.npz", {"x": np.arange(3.0)}, "mobilenet_v2")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        save_features(path, {"x": np.arange(5.0)}, "mobilenet_v2")
    monkeypatch.undo()
    np.testing.assert_array_equal(load_features(path)["x"], np.arange(3.0))
    assert os.listdir(tmp_path) == ["feats.npz"]


@pytest.mark.parametrize(
    "path, features, error, message",
    [
        ("feats.h5", {"x": np.zeros(1)}, ValueError, "feature files are .npz"),
        ("feats.npz", {"encoder": np.zeros(1)}, ValueError, "reserved"),
        ("feats.npz", {"x": [1, 2]}, TypeError, "must be a NumPy array"),
    ],
)
def test_save_features_rejects_bad_input(tmp_path, path, features, error, message):
    with pytest.raises(error, match=message):
        save_features(tmp_path / path, features, "mobilenet_v2")


def test_load_features_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_features(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="cannot read the feature file"):
        load_features(tmp_path / "bad.npz")


@pytest.mark.parametrize("mode, colour, rgb", [("RGB", (200, 30, 90), (200, 30, 90)), ("L", 77, (77, 77, 77)), ("RGBA", (10, 20, 30, 0), (10, 20, 30))])
def test_load_image_converts_and_resizes(tmp_path, mode, colour, rgb):
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "img.png"
    pil.new(mode, (40, 25), colour).save(path)
    image = load_image(path, 16)
    assert image.shape == (3, 16, 16) and image.dtype == np.uint8
    # A flat colour stays exactly that colour through any resampling filter.
    np.testing.assert_array_equal(image, np.broadcast_to(np.array(rgb, np.uint8)[:, None, None], (3, 16, 16)))


def test_load_image_keeps_the_layout(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:, 16:, 0] = 255  # right half red
    pixels[16:, :, 2] = 255  # bottom half blue
    path = tmp_path / "img.jpg"
    pil.fromarray(pixels).save(path, quality=95)
    image = load_image(path, 8).astype(int)
    assert image[0, :, 6:].min() > 200 and image[0, :, :2].max() < 50  # red on the right only
    assert image[2, 6:, :].min() > 200 and image[2, :2, :].max() < 50  # blue at the bottom only


def test_load_image_errors(tmp_path):
    pytest.importorskip("PIL")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image(tmp_path / "none.png", 16)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read .* as an image"):
        load_image(tmp_path / "notes.png", 16)
    with pytest.raises(ValueError, match="size must be a positive int"):
        load_image(tmp_path / "notes.png", 0)


# ------------------------------------------------- review fixes


def test_numpy_integer_batch_size_is_accepted(encoder, images):
    want, _ = extract_features(images, encoder, batch_size=2, progress=False)
    got, _ = extract_features(images, encoder, batch_size=np.int64(2), progress=False)
    np.testing.assert_array_equal(got, want)
    for bad in (True, np.int64(0), 2.0):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            extract_features(images, encoder, batch_size=bad, progress=False)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "grey16.png"
    pixels = np.full((20, 40), 30000, np.uint16)
    pixels[:, 20:] = 65535
    pil.fromarray(pixels).save(path)
    assert pil.open(path).mode.startswith("I")  # what Pillow makes of it: 16 bits per sample
    image = load_image(path, 8)
    # round(30000 * 255 / 65535) = 117 (it came out 255, clipped); full scale stays 255
    np.testing.assert_array_equal(image[:, :, :2], 117)
    np.testing.assert_array_equal(image[:, :, -2:], 255)


def test_32_bit_float_image_is_refused_in_one_line(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "float.tif"
    pil.fromarray(np.full((8, 8), 0.5, np.float32)).save(path)
    with pytest.raises(ValueError, match=r"32-bit floating-point image, which has no fixed range.*save it as"):
        load_image(path, 4)


def test_exif_orientation_is_applied(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, 20:, 2] = 255  # blue on the right half, as stored
    path = tmp_path / "phone.png"
    image = pil.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    image.save(path, exif=exif.tobytes())
    loaded = load_image(path, 8).astype(int)
    # displayed, the image is portrait with the blue half at the bottom (it was on the right)
    assert loaded[2, 5:, :].min() > 200 and loaded[2, :3, :].max() < 30


def test_features_keep_the_sha256_of_their_weights(tmp_path):
    from minicap.encoders.extract import stored_weights_sha256

    features = {"train_pooled": np.arange(6, dtype=np.float32).reshape(2, 3)}
    plain = save_features(tmp_path / "a.npz", features, "regnet_x_400mf")
    assert stored_weights_sha256(plain) is None  # files written before the digest existed
    digest = "ab" * 32
    direct = save_features(tmp_path / "b.npz", features, "regnet_x_400mf", weights_sha256=digest)
    assert stored_weights_sha256(direct) == digest
    loaded = load_features(direct, "regnet_x_400mf")
    assert list(loaded) == ["train_pooled"]  # the digest is not a feature
    np.testing.assert_array_equal(loaded["train_pooled"], features["train_pooled"])
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(ValueError, match="'weights_sha256' is reserved"):
        save_features(tmp_path / "c.npz", {"weights_sha256": np.zeros(1)}, "regnet_x_400mf")
