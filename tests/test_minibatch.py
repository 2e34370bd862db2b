"""sample_coco_minibatch and the minibatch picture (local files and a 127.0.0.1 server only)."""

import http.server
import io
import socket
import threading

import numpy as np
import pytest

from minicap.data.minibatch import IMAGE, PANEL, plot_minibatch, sample_coco_minibatch

WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "img0", "img1", "img2", "img3", "img4"]
ROW_HEIGHT = 12 + 20 + IMAGE + 8 + 20 + 12  # pad, title, image, gap, one caption line, pad


def _data(n_images=5, captions_per_image=2, with_images=True, urls=None):
    """Caption k of image i reads "img{i}" so every caption names its image."""
    idxs = np.repeat(np.arange(n_images), captions_per_image).astype(np.int32)
    captions = np.zeros((len(idxs), 5), np.int32)
    captions[:, 0], captions[:, 1], captions[:, 2] = 1, 4 + idxs, 2
    data = {
        "train_captions": captions,
        "train_image_idxs": idxs,
        "train_features": np.arange(n_images, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32),
        "idx_to_word": WORDS,
        "word_to_idx": {w: i for i, w in enumerate(WORDS)},
    }
    if with_images:
        images = np.zeros((n_images, 3, 8, 8), np.uint8)
        images[:, 0] = 40 * np.arange(n_images)[:, None, None]  # red channel = 40 * image id
        data["train_images"] = images
    if urls is not None:
        data["train_urls"] = np.asarray(urls)
    return data


def test_sample_returns_matching_captions_features_and_images():
    data = _data()
    captions, features, images = sample_coco_minibatch(data, batch_size=40, rng=0)
    assert captions.shape == (40, 5) and features.shape == (40, 3) and images.shape == (40, 3, 8, 8)
    image_ids = captions[:, 1] - 4  # the image each caption names
    np.testing.assert_array_equal(features[:, 0], image_ids)
    np.testing.assert_array_equal(images[:, 0, 0, 0], 40 * image_ids)


def test_sample_is_reproducible_and_with_replacement():
    data = _data(n_images=3, captions_per_image=1)
    a = sample_coco_minibatch(data, batch_size=50, rng=np.random.default_rng(7))[0]
    b = sample_coco_minibatch(data, batch_size=50, rng=7)[0]
    np.testing.assert_array_equal(a, b)
    assert len(a) == 50  # more than the 3 captions there are


def test_sample_is_uniform_over_captions():
    data = _data(n_images=4, captions_per_image=1)
    captions = sample_coco_minibatch(data, batch_size=8000, rng=1)[0]
    counts = np.bincount(captions[:, 1] - 4, minlength=4)
    assert np.all(np.abs(counts - 2000) < 200), counts  # about 9 standard deviations of slack


def test_sample_urls_and_missing_features():
    urls = [f"http://example.invalid/{i}.jpg" for i in range(5)]
    data = _data(with_images=False, urls=urls)
    del data["train_features"]
    captions, features, got_urls = sample_coco_minibatch(data, batch_size=6, rng=0)
    assert features is None
    assert got_urls.tolist() == [urls[i] for i in captions[:, 1] - 4]


def test_sample_errors():
    data = _data()
    with pytest.raises(ValueError, match=r"no split 'val'; it has \['train'\]"):
        sample_coco_minibatch(data, split="val")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            sample_coco_minibatch(data, batch_size=bad)


def _read_png(path):
    import matplotlib.image

    return (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int)


def _box_pixel(png, k, ncols, dx=4, dy=4):
    """A pixel near the top-left corner of panel k's image box."""
    row, col = divmod(k, ncols)
    return png[row * ROW_HEIGHT + 12 + 20 + dy, col * PANEL + (PANEL - IMAGE) // 2 + dx]


def test_plot_with_images(tmp_path):
    data = _data()
    out = plot_minibatch(data, tmp_path / "sub" / "batch.png", batch_size=6, rng=3, ncols=4)
    png = _read_png(out)
    assert png.shape[:2] == (2 * ROW_HEIGHT, 4 * PANEL)
    captions = sample_coco_minibatch(data, batch_size=6, rng=3)[0]
    for k, image_id in enumerate(captions[:, 1] - 4):
        np.testing.assert_array_equal(_box_pixel(png, k, 4), [40 * image_id, 0, 0])
    assert list(tmp_path.joinpath("sub").iterdir()) == [out]  # no temporary file left


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.hits += 1
        if self.path != "/green.png":
            self.send_error(404)
            return
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (20, 20), (0, 200, 0)).save(buf, format="PNG")
        self.send_response(200)
        self.send_header("Content-Length", str(len(buf.getvalue())))
        self.end_headers()
        self.wfile.write(buf.getvalue())


@pytest.fixture
def image_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    srv.hits = 0
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    srv.shutdown()
    srv.server_close()


def test_plot_fetches_reachable_urls_and_marks_dead_links(tmp_path, image_server):
    base, _ = image_server
    with socket.socket() as s:  # a host:port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    urls = [f"{base}/green.png", f"{base}/gone.jpg", f"{dead}/x.jpg", "file:///etc/passwd", f"{base}/gone.jpg"]
    data = _data(with_images=False, urls=urls)
    out = plot_minibatch(data, tmp_path / "urls.png", batch_size=12, rng=0, ncols=4)
    png = _read_png(out)
    captions = sample_coco_minibatch(data, batch_size=12, rng=0)[0]
    assert set(captions[:, 1] - 4) >= {0, 1, 2, 3}  # every kind of URL was drawn
    for k, image_id in enumerate(captions[:, 1] - 4):
        want = [0, 200, 0] if urls[image_id].endswith("green.png") else [225, 225, 225]
        np.testing.assert_array_equal(_box_pixel(png, k, 4), want)


def test_plot_offline_gives_placeholders_without_waiting(tmp_path, monkeypatch):
    # "Without waiting": each fetch carries the given timeout, so an unreachable
    # host costs at most that, never the operating system's minutes.
    import urllib.request

    timeouts = []

    def refuse(request, timeout=None):
        timeouts.append(timeout)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    data = _data(with_images=False, urls=[f"http://127.0.0.1:9/{i}.jpg" for i in range(5)])
    out = plot_minibatch(data, tmp_path / "offline.png", batch_size=4, rng=0, timeout=2.0)
    assert timeouts and all(t == 2.0 for t in timeouts)
    png = _read_png(out)
    for k in range(4):
        np.testing.assert_array_equal(_box_pixel(png, k, 4), [225, 225, 225])


def test_plot_tries_each_unreachable_host_once(tmp_path, monkeypatch):
    import urllib.request

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    urls = [f"http://host{i % 2}.invalid/{i}.jpg" for i in range(5)]
    data = _data(with_images=False, urls=urls)
    plot_minibatch(data, tmp_path / "down.png", batch_size=10, rng=0)
    image_ids = sample_coco_minibatch(data, batch_size=10, rng=0)[0][:, 1] - 4
    assert len(calls) == len({i % 2 for i in image_ids})


def test_plot_errors(tmp_path):
    data = _data()
    with pytest.raises(ValueError, match=r"\.png"):
        plot_minibatch(data, tmp_path / "batch.jpg")
    del data["idx_to_word"]
    with pytest.raises(ValueError, match="idx_to_word"):
        plot_minibatch(data, tmp_path / "batch.png")


def test_plot_coco_pt_without_features(tmp_path):
    import pathlib

    from minicap.data.coco import load_coco_pt

    data = load_coco_pt(pathlib.Path(__file__).parent / "fixtures" / "tiny_coco.pt")
    out = plot_minibatch(data, tmp_path / "coco.png", batch_size=2, rng=0, ncols=2)
    png = _read_png(out)
    assert png.shape[:2] == (ROW_HEIGHT, 2 * PANEL)
    images = sample_coco_minibatch(data, batch_size=2, rng=0)[2]  # the batch the picture shows
    for k, image in enumerate(images):
        # An 8 x 8 image drawn in a 256 box: pixel (dy, dx) of the box shows image pixel (dy // 32, dx // 32).
        np.testing.assert_array_equal(_box_pixel(png, k, 2), image[:, 0, 0])
