"""Downloads against a local HTTP server on 127.0.0.1 (never the network):
full download, resume, dropped connections, size and checksum checks,
offline errors, and dataset unpacking."""

import dataclasses
import errno
import hashlib
import http.server
import io
import json
import threading
import zipfile

import pytest

from minicap.data import download as dl
from minicap.data.errors import DataError

BLOB = bytes(range(256)) * 40 + b"tail"  # 10,244 bytes, every byte value


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` with optional Range support and a simulated connection drop."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and srv.honour_range:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        if not srv.no_length:  # without it, HTTP/1.0 ends the body when the connection closes
            self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if srv.cut_after is not None:  # promise everything, send part, hang up
            payload = payload[: srv.cut_after]
            srv.cut_after = None
        self.wfile.write(payload)
        srv.sent += len(payload)


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICAP_HOME", str(tmp_path / "home"))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.honour_range, srv.cut_after, srv.sent = {"/blob.bin": BLOB}, [], True, None, 0
    srv.no_length = False
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _records():
    return json.loads(dl.checksum_file().read_text())


def test_full_download_is_checked_and_recorded(server, tmp_path):
    dest = tmp_path / "out" / "blob.bin"
    got = dl.download(server.url + "/blob.bin", dest, expected_size=len(BLOB), progress=False)
    assert got == dest and dest.read_bytes() == BLOB
    assert not dest.with_name("blob.bin.part").exists()
    assert _records()[server.url + "/blob.bin"] == {"size": len(BLOB), "sha256": hashlib.sha256(BLOB).hexdigest()}


def test_existing_file_is_reused_without_a_request(server, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.write_bytes(BLOB)  # put there by hand
    assert dl.download(server.url + "/blob.bin", dest, expected_size=len(BLOB), progress=False) == dest
    assert server.requests == []


def test_existing_wrong_file_is_reported_not_replaced(server, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"something else")
    with pytest.raises(DataError, match="delete it"):
        dl.download(server.url + "/blob.bin", dest, expected_size=len(BLOB), progress=False)
    assert dest.read_bytes() == b"something else"


@pytest.mark.parametrize("honour_range", [True, False], ids=["range", "server-ignores-range"])
def test_resume_after_a_partial_file(server, tmp_path, honour_range):
    server.honour_range = honour_range
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(BLOB[:3000])
    dl.download(server.url + "/blob.bin", dest, sha256=hashlib.sha256(BLOB).hexdigest(), progress=False)
    assert dest.read_bytes() == BLOB
    assert server.requests == [("/blob.bin", "bytes=3000-")]
    assert server.sent == (len(BLOB) - 3000 if honour_range else len(BLOB))


def test_dropped_connection_keeps_the_part_and_the_next_call_resumes(server, tmp_path):
    server.cut_after = 4000
    dest = tmp_path / "blob.bin"
    with pytest.raises(dl.DownloadError, match="run again to resume"):
        dl.download(server.url + "/blob.bin", dest, progress=False)
    part = dest.with_name("blob.bin.part")
    assert part.read_bytes() == BLOB[:4000] and not dest.exists()
    dl.download(server.url + "/blob.bin", dest, progress=False)
    assert dest.read_bytes() == BLOB and not part.exists()
    assert server.requests[-1] == ("/blob.bin", "bytes=4000-")


def test_complete_part_is_finished_on_416(server, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(BLOB)
    dl.download(server.url + "/blob.bin", dest, progress=False)
    assert dest.read_bytes() == BLOB


def test_size_mismatch_is_an_error_and_leaves_no_file(server, tmp_path):
    dest = tmp_path / "blob.bin"
    with pytest.raises(DataError, match=f"{len(BLOB):,} bytes on the server but 99 are expected"):
        dl.download(server.url + "/blob.bin", dest, expected_size=99, progress=False)
    assert not dest.exists()


def test_checksum_mismatch_deletes_the_part(server, tmp_path):
    dest = tmp_path / "blob.bin"
    with pytest.raises(DataError, match="SHA-256"):
        dl.download(server.url + "/blob.bin", dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not dest.with_name("blob.bin.part").exists()


def test_recorded_checksum_catches_a_changed_file(server, tmp_path):
    url = server.url + "/blob.bin"
    dl.download(url, tmp_path / "first.bin", progress=False)
    server.files["/blob.bin"] = BLOB[::-1]  # same size, other bytes
    with pytest.raises(DataError, match="recorded"):
        dl.download(url, tmp_path / "second.bin", progress=False)
    assert not (tmp_path / "second.bin").exists()


@pytest.mark.parametrize("records", ["{not json", "[1, 2]", '{"URL": "not a record"}', '{"URL": {"size": 10244}}'])
def test_broken_records_file_is_reported_and_deletes_no_download(server, tmp_path, records):
    url = server.url + "/blob.bin"
    dl.checksum_file().parent.mkdir(parents=True)
    dl.checksum_file().write_text(records.replace("URL", url))
    dest = tmp_path / "blob.bin"
    part = dest.with_name("blob.bin.part")
    part.write_bytes(BLOB[:3000])  # an interrupted download, to be resumed later
    with pytest.raises(DataError, match="downloads.json .*; delete it .checksums are recorded again") as err:
        dl.download(url, dest, expected_size=len(BLOB), progress=False)
    assert "it is not the file" not in str(err.value)
    assert part.read_bytes() == BLOB[:3000] and not dest.exists()
    assert server.requests == []  # checked before fetching: no bytes thrown away
    dest.write_bytes(BLOB)  # a complete, good file already in place
    with pytest.raises(DataError, match="downloads.json") as err:
        dl.download(url, dest, expected_size=len(BLOB), progress=False)
    assert "it is not the file" not in str(err.value)
    assert dest.read_bytes() == BLOB and part.read_bytes() == BLOB[:3000]


def test_http_error_names_the_file_and_where_to_put_it(server, tmp_path):
    dest = tmp_path / "missing.bin"
    with pytest.raises(dl.DownloadError, match="HTTP 404") as err:
        dl.download(server.url + "/missing.bin", dest, progress=False)
    assert f"put it at {dest}" in str(err.value)


def test_unreachable_host_gives_the_offline_message_without_waiting(tmp_path, monkeypatch):
    # "Without waiting": every connection attempt carries the module's timeout, so an
    # unreachable host costs at most TIMEOUT_S, never the operating system's minutes.
    import urllib.error
    import urllib.request

    monkeypatch.setenv("MINICAP_HOME", str(tmp_path / "home"))
    timeouts = []

    def refuse(request, timeout=None):
        timeouts.append(timeout)
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    dest = tmp_path / "coco.pt"
    with pytest.raises(dl.DownloadError) as err:
        dl.download("http://127.0.0.1:9/coco.pt", dest, expected_size=1234, progress=False)
    assert timeouts and all(t == dl.TIMEOUT_S for t in timeouts)
    message = str(err.value)
    assert "offline" in message and f"put it at {dest} (1,234 bytes)" in message
    assert isinstance(err.value, OSError)


def _fake_cs231n_zip(names=dl.DATASETS["coco-cs231n"].needs, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name in names:
            z.writestr(f"coco_captioning/{name}", b"{}" if name.endswith(".json") else name.encode() * 50)
    return buf.getvalue()


def _serve_cs231n(server, monkeypatch, blob):
    """The real coco-cs231n entry (its ``needs``), served locally with ``blob`` as the zip."""
    server.files["/coco.zip"] = blob
    spec = dataclasses.replace(dl.DATASETS["coco-cs231n"], url=server.url + "/coco.zip", size=len(blob))
    monkeypatch.setitem(dl.DATASETS, "coco-cs231n", spec)


def test_download_dataset_unpacks_atomically(server, tmp_path, monkeypatch):
    _serve_cs231n(server, monkeypatch, _fake_cs231n_zip())
    folder = dl.download_dataset("coco-cs231n", tmp_path / "data", progress=False)
    assert folder == tmp_path / "data" / "coco_captioning"
    assert (folder / "coco2014_vocab.json").read_bytes() == b"{}"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["coco_captioning"]  # no zip, no temp dir
    assert dl.download_dataset("coco-cs231n", tmp_path / "data", progress=False) == folder
    assert len(server.requests) == 1


def test_download_dataset_refuses_the_wrong_archive(server, tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("other/readme.txt", b"hi")
    server.files["/coco.zip"] = buf.getvalue()
    spec = dl.Dataset(server.url + "/coco.zip", "coco_captioning.zip", len(buf.getvalue()), "coco_captioning",
                      ("coco2014_captions.h5",))
    monkeypatch.setitem(dl.DATASETS, "coco-cs231n", spec)
    with pytest.raises(DataError, match="not the expected archive"):
        dl.download_dataset("coco-cs231n", tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "coco_captioning").exists()
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["coco_captioning.zip"]


def test_archive_without_every_file_the_loader_reads_is_refused_and_kept(server, tmp_path, monkeypatch):
    _serve_cs231n(server, monkeypatch, _fake_cs231n_zip(["coco2014_captions.h5", "coco2014_vocab.json"]))
    with pytest.raises(DataError) as err:
        dl.download_dataset("coco-cs231n", tmp_path / "data", progress=False)
    message = str(err.value)
    for name in ("train2014_vgg16_fc7_pca.h5", "val2014_vgg16_fc7_pca.h5", "train2014_urls.txt", "val2014_urls.txt"):
        assert name in message
    assert "coco_captioning.zip does not hold" in message and "delete it and download again" in message
    # No folder that later runs would take as complete, and the zip is still there.
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["coco_captioning.zip"]


def test_incomplete_folder_is_not_taken_as_done(tmp_path):
    folder = tmp_path / "coco_captioning"
    folder.mkdir()
    for name in ("coco2014_captions.h5", "coco2014_vocab.json"):
        (folder / name).write_bytes(b"x")
    with pytest.raises(DataError, match=r"exists but lacks \['train2014_vgg16_fc7_pca.h5'"):
        dl.download_dataset("coco-cs231n", tmp_path, progress=False)


def test_folder_without_the_optional_wide_features_is_done(tmp_path):
    # The 4096-wide fc7 files are read only with pca_features=False; deleting them to
    # save space must not make the next download call ask for 1 GB again.
    spec = dl.DATASETS["coco-cs231n"]
    folder = tmp_path / "coco_captioning"
    folder.mkdir()
    for name in spec.needs:
        if name not in spec.optional:
            (folder / name).write_bytes(b"x")
    assert set(spec.optional) == {"train2014_vgg16_fc7.h5", "val2014_vgg16_fc7.h5"}
    assert dl.download_dataset("coco-cs231n", tmp_path, progress=False) == folder


def _damage_first_deflate_stream(blob):
    data = bytearray(blob)
    start = 30 + len("coco_captioning/" + dl.DATASETS["coco-cs231n"].needs[0])  # past the local header
    for i in range(start + 2, start + 12):
        data[i] ^= 0x55
    return bytes(data)


def test_damaged_zip_placed_by_hand_is_a_clear_error_and_kept(server, tmp_path, monkeypatch):
    blob = _damage_first_deflate_stream(_fake_cs231n_zip(compression=zipfile.ZIP_DEFLATED))
    _serve_cs231n(server, monkeypatch, blob)
    data = tmp_path / "data"
    data.mkdir()
    (data / "coco_captioning.zip").write_bytes(blob)  # right size, so it is used as is
    with pytest.raises(DataError, match="coco_captioning.zip cannot be unpacked .*damaged or truncated; delete it and download again"):
        dl.download_dataset("coco-cs231n", data, progress=False)
    assert [p.name for p in data.iterdir()] == ["coco_captioning.zip"]  # no temporary folder left
    assert server.requests == []


def test_full_disk_while_unpacking_keeps_the_zip(server, tmp_path, monkeypatch):
    _serve_cs231n(server, monkeypatch, _fake_cs231n_zip())

    def full(self, path=None, members=None, pwd=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(zipfile.ZipFile, "extractall", full)
    with pytest.raises(DataError, match="no space left to unpack") as err:
        dl.download_dataset("coco-cs231n", tmp_path / "data", progress=False)
    assert "delete" not in str(err.value) and "the zip is kept" in str(err.value)
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["coco_captioning.zip"]


def test_zip_slip_is_refused(server, tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../escaped.txt", b"x")
    server.files["/coco.zip"] = buf.getvalue()
    spec = dl.Dataset(server.url + "/coco.zip", "c.zip", len(buf.getvalue()), "coco_captioning", ())
    monkeypatch.setitem(dl.DATASETS, "coco-cs231n", spec)
    with pytest.raises(DataError, match="outside"):
        dl.download_dataset("coco-cs231n", tmp_path / "data", progress=False)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "data" / "escaped.txt").exists()


def test_download_dataset_single_file_and_default_folder(server, tmp_path, monkeypatch):
    server.files["/coco.pt"] = BLOB
    monkeypatch.setitem(dl.DATASETS, "coco-eecs498", dl.Dataset(server.url + "/coco.pt", "coco.pt", len(BLOB)))
    path = dl.download_dataset("coco-eecs498", progress=False)
    assert path == tmp_path / "home" / "datasets" / "coco.pt" and path.read_bytes() == BLOB


def test_unknown_dataset_lists_the_names():
    with pytest.raises(ValueError, match="coco-cs231n"):
        dl.download_dataset("imagenet")


def test_registry_sizes_match_the_published_files():
    # The published sizes, from the project's reference notes on the two course files
    # (coco_captioning.zip: 1,035,210,391 bytes; coco.pt: 396,583,632 bytes), typed in
    # here independently of the registry: a typo in either place fails this test.
    assert dl.DATASETS["coco-cs231n"].size == 1_035_210_391
    assert dl.DATASETS["coco-eecs498"].size == 396_583_632
    assert all(spec.url.startswith("https://") for spec in dl.DATASETS.values())


# ---------------------------------------------------------------- hostile servers and archives


def test_a_server_sending_more_than_expected_is_cut_off(server, tmp_path):
    """No Content-Length: the body runs until the server hangs up; it is never written past the expected size."""
    server.no_length = True
    server.files["/blob.bin"] = BLOB * 3
    dest = tmp_path / "blob.bin"
    with pytest.raises(DataError, match="sends more than the 10,244 bytes expected"):
        dl.download(server.url + "/blob.bin", dest, expected_size=len(BLOB), progress=False)
    assert not dest.exists() and not dest.with_name("blob.bin.part").exists()


def test_a_zip_bomb_is_refused_before_unpacking_and_kept(server, tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in dl.DATASETS["coco-cs231n"].needs:
            z.writestr(f"coco_captioning/{name}", bytes(8 << 20))  # 64 MiB of zeros in ~64 KB
    _serve_cs231n(server, monkeypatch, buf.getvalue())
    data = tmp_path / "data"
    with pytest.raises(DataError, match=r"would unpack to 67,108,864 bytes, more than 20 times .* zip bomb"):
        dl.download_dataset("coco-cs231n", data, progress=False)
    assert [p.name for p in data.iterdir()] == ["coco_captioning.zip"]  # nothing unpacked, no temporary folder


def test_unpacking_checks_the_free_disk_space_first(server, tmp_path, monkeypatch):
    _serve_cs231n(server, monkeypatch, _fake_cs231n_zip())
    real = dl.shutil.disk_usage
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: real(path)._replace(free=100))
    with pytest.raises(DataError, match=r"but only 100 are free .*\(the zip is kept\)"):
        dl.download_dataset("coco-cs231n", tmp_path / "data", progress=False)
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["coco_captioning.zip"]


def test_a_part_file_that_is_a_link_is_replaced_not_written_through(server, tmp_path):
    """A planted blob.bin.part -> victim would have had the download appended to the victim."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    dest = tmp_path / "data" / "blob.bin"
    dest.parent.mkdir()
    dest.with_name("blob.bin.part").symlink_to(victim)
    dl.download(server.url + "/blob.bin", dest, expected_size=len(BLOB), progress=False)
    assert victim.read_bytes() == b"precious"
    assert dest.read_bytes() == BLOB and not dest.is_symlink()
