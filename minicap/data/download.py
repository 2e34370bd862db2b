"""Downloads of the published datasets: resumable, checked, atomic.

``download(url, dest)`` streams into ``dest.part`` (resuming it with an HTTP
Range request if an earlier attempt was cut off), checks the size and the
SHA-256, and only then renames the file to ``dest``: a file at ``dest`` is
always complete. The first successful download of a URL records its size and
SHA-256 in ``downloads.json`` in minicap's cache folder; every later download
of that URL must match the record, so a changed or tampered file is noticed.
HTTPS certificates are always verified (urllib's default context).

``download_dataset(name)`` fetches one of ``DATASETS`` into the cache (or a
folder of your choice) and unpacks archives atomically.
"""

import dataclasses
import errno
import hashlib
import http.client
import json
import logging
import os
import pathlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib

from minicap.atomic import atomic_open
from minicap.data.cache import cache_dir
from minicap.data.errors import DataError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
TIMEOUT_S = 30.0  # per socket operation: a dead connection fails instead of hanging


class DownloadError(OSError):
    """The file could not be fetched (offline, refused, HTTP error, cut off)."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A published file: where it comes from, its size, and what to do with it."""

    url: str
    filename: str
    size: int
    unpack_to: str = None  # for archives: the folder it becomes
    needs: tuple = ()  # files the archive must contain
    optional: tuple = ()  # of those, files only some loader options read: a folder may lack them


DATASETS = {
    "coco-cs231n": Dataset(
        url="https://cs231n.stanford.edu/coco_captioning.zip",
        filename="coco_captioning.zip",
        size=1_035_210_391,
        unpack_to="coco_captioning",
        # Every file load_coco_data reads (both feature widths): an archive that
        # lacks one is incomplete, and unpacking it would delete the zip.
        needs=(
            "coco2014_captions.h5",
            "coco2014_vocab.json",
            "train2014_vgg16_fc7_pca.h5",
            "val2014_vgg16_fc7_pca.h5",
            "train2014_vgg16_fc7.h5",
            "val2014_vgg16_fc7.h5",
            "train2014_urls.txt",
            "val2014_urls.txt",
        ),
        # The 4096-wide features (800 MB) are read only with pca_features=False: a folder
        # whose owner deleted them to save space still serves the default loader.
        optional=("train2014_vgg16_fc7.h5", "val2014_vgg16_fc7.h5"),
    ),
    "coco-eecs498": Dataset(
        url="https://web.eecs.umich.edu/~justincj/teaching/eecs498/coco.pt",
        filename="coco.pt",
        size=396_583_632,
    ),
}


def checksum_file():
    """The JSON record of the size and SHA-256 of every URL downloaded so far."""
    return cache_dir() / "downloads.json"


def _records_error(path, what):
    return DataError(f"{path} {what}; delete it (checksums are recorded again on the next download)")


def _read_records():
    path = checksum_file()
    if not path.is_file():
        return {}
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise _records_error(path, f"is unreadable ({err})") from None
    if not isinstance(records, dict):
        raise _records_error(path, "is not a JSON object")
    return records


def _record_of(url):
    """The recorded (size, sha256) of ``url``, (None, None) if none; a malformed entry is an error."""
    record = _read_records().get(url)
    if record is None:
        return None, None
    size, sha256 = (record.get("size"), record.get("sha256")) if isinstance(record, dict) else (None, None)
    if not (isinstance(size, int) and not isinstance(size, bool) and isinstance(sha256, str)):
        raise _records_error(checksum_file(), f"holds a malformed entry for {url}")
    return size, sha256


def _record(url, size, sha256):
    path = checksum_file()
    records = _read_records()
    records[url] = {"size": size, "sha256": sha256}
    with atomic_open(path, "w") as f:
        json.dump(records, f, indent=2, sort_keys=True)


def sha256_of(path):
    """A ``hashlib.sha256`` of the file's bytes, read in 1 MiB chunks (files can be large).

    The hash object, not its hex digest: a resumed download goes on updating it.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest


def _offline_error(url, dest, reason, expected_size):
    size = f" ({expected_size:,} bytes)" if expected_size else ""
    return DownloadError(
        f"cannot download {url}: {reason}. If this machine is offline, download that file on another one "
        f"and put it at {dest}{size}; minicap checks it and uses it as is."
    )


def _open(url, offset):
    """The HTTP response for ``url`` from byte ``offset`` on, and whether the server honoured the range."""
    request = urllib.request.Request(url, headers={"User-Agent": "minicap"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # default context: certificates verified
    resumed = offset > 0 and response.status == 206
    if resumed and not (response.headers.get("Content-Range") or "").startswith(f"bytes {offset}-"):
        response.close()
        raise DownloadError(f"the server answered the resume request for {url} with the wrong range")
    return response, resumed


def _fetch(url, part, expected_size, progress):
    """Fill ``part`` with the bytes of ``url``, resuming what is there. Returns the SHA-256 digest."""
    from tqdm.auto import tqdm

    if part.is_symlink():  # resuming would append to (or truncate) the file it points at
        part.unlink()
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()  # longer than the real file: not a prefix of it
        offset = 0
    try:
        response, resumed = _open(url, offset)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not offset:
            raise
        # Range not satisfiable: the part is complete if the server's size ("bytes */N") is its size.
        if (err.headers.get("Content-Range") or "") == f"bytes */{offset}":
            return sha256_of(part)
        part.unlink()
        response, resumed = _open(url, 0)
    with response:
        digest = sha256_of(part) if resumed else hashlib.sha256()
        start = offset if resumed else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        if expected_size is not None and total is not None and total != expected_size:
            raise DataError(
                f"{url} is {total:,} bytes on the server but {expected_size:,} are expected; "
                "the file has changed upstream or the URL is wrong"
            )
        if resumed:
            log.info("resuming %s at byte %d", url, start)
        with open(part, "ab" if resumed else "wb") as out, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, desc=part.name[: -len(".part")], disable=not progress
        ) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                # a server that sends no length (or another one) must not fill the disk
                if expected_size is not None and out.tell() + len(chunk) > expected_size:
                    out.close()
                    part.unlink()
                    raise DataError(f"{url} sends more than the {expected_size:,} bytes expected; the file has "
                                    "changed upstream or the URL is wrong (nothing was kept)")
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    if total is not None and part.stat().st_size < total:
        raise DownloadError(f"the connection closed after {part.stat().st_size:,} of {total:,} bytes")
    return digest


def _verify(path, size, sha256, checks):
    """Raise DataError if ``path`` (of ``size`` bytes, digest ``sha256``) fails one of ``checks``."""
    for what, want_size, want_sha in checks:
        if want_size is not None and size != want_size:
            raise DataError(f"{path} is {size:,} bytes, {what} size is {want_size:,}")
        if want_sha is not None and sha256 != want_sha.lower():
            raise DataError(f"{path} has SHA-256 {sha256}, {what} one is {want_sha}")


def download(url, dest, expected_size=None, sha256=None, progress=True):
    """Download ``url`` to ``dest`` (resumable, checked, atomic). Returns ``dest`` as a Path.

    A file already at ``dest`` is checked (size, SHA-256) and kept without
    touching the network: this is also how a file fetched by hand is used.
    Otherwise the bytes go to ``dest.part`` first; an interrupted download
    leaves it there and the next call resumes it. ``expected_size`` and
    ``sha256`` (hex), when given, must match, as must the size and SHA-256
    recorded for ``url`` by an earlier download.

    Raises ``DownloadError`` (an OSError) when the file cannot be fetched,
    with a message saying where to put it by hand, and ``DataError`` when
    what arrived is not the expected file (a ``.part`` too long or not
    matching the size or checksum is deleted so the next call starts afresh).
    An unreadable ``downloads.json`` is a ``DataError`` raised before anything
    is fetched, and deletes nothing.
    """
    dest = pathlib.Path(dest)
    # Read the records first: a broken downloads.json is its own error, and
    # must not be mistaken for a bad download (which is deleted).
    recorded_size, recorded_sha = _record_of(url)
    checks = [("the expected", expected_size, sha256)]
    if recorded_size is not None:
        checks.append((f"the recorded (in {checksum_file()})", recorded_size, recorded_sha))
    if dest.is_file():
        try:
            _verify(dest, dest.stat().st_size, sha256_of(dest).hexdigest(), checks)
        except DataError as err:
            raise DataError(f"{err}; it is not the file {url} serves: delete it and run this again") from None
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        digest = _fetch(url, part, expected_size, progress)
    except urllib.error.HTTPError as err:
        raise _offline_error(url, dest, f"HTTP {err.code} {err.reason}", expected_size) from None
    except urllib.error.URLError as err:
        raise _offline_error(url, dest, err.reason, expected_size) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as err:
        raise _offline_error(url, dest, f"{type(err).__name__}: {err} (run again to resume)", expected_size) from None
    except DownloadError as err:
        raise _offline_error(url, dest, f"{err} (run again to resume)", expected_size) from None
    try:
        _verify(part, part.stat().st_size, digest.hexdigest(), checks)
    except DataError as err:
        part.unlink()
        raise DataError(f"{err}; it is not the file {url} serves, so it was deleted: run this again") from None
    os.replace(part, dest)
    if recorded_size is None:
        _record(url, dest.stat().st_size, digest.hexdigest())
    return dest


# The published archive holds h5 files of features and caption ids, which deflate a little;
# an archive declaring far more than this (one value repeated compresses a thousandfold) is a bomb.
MAX_UNPACKED_RATIO = 20


def _check_unpacked_size(archive_path, archive, folder):
    """Refuse an archive whose members declare more bytes than it could hold, or than the disk has free."""
    declared = sum(info.file_size for info in archive.infolist())
    packed = archive_path.stat().st_size
    if declared > MAX_UNPACKED_RATIO * packed:
        raise DataError(f"{archive_path} would unpack to {declared:,} bytes, more than {MAX_UNPACKED_RATIO} times "
                        f"its {packed:,}: it is not the expected archive (a zip bomb?); delete it and download again")
    free = shutil.disk_usage(folder).free
    if declared > free:
        raise DataError(f"{archive_path} unpacks to {declared:,} bytes but only {free:,} are free in "
                        f"{folder.parent}: free some space and run this again (the zip is kept)")


def _safe_extract(archive_path, folder):
    """Extract a zip into ``folder``, refusing members that would land outside it, and bombs."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            for name in archive.namelist():
                target = (folder / name).resolve()
                if not target.is_relative_to(folder.resolve()):
                    raise DataError(f"{archive_path} holds {name!r}, which would be written outside {folder}")
            _check_unpacked_size(archive_path, archive, folder)
            archive.extractall(folder)
    except DataError:
        raise
    except OSError as err:
        # A full disk or an unwritable folder is not the zip's fault: keep the
        # (possibly 1 GB) zip and say what to fix instead.
        if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise DataError(
                f"no space left to unpack {archive_path} into {folder.parent}: free some space and run this again "
                "(the zip is kept)"
            ) from None
        if err.errno is not None and err.filename is not None and str(err.filename) != str(archive_path):
            raise DataError(f"cannot unpack {archive_path}: {err}; fix that and run this again (the zip is kept)") from None
        raise DataError(f"{archive_path} cannot be unpacked ({err}); delete it and download again") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as err:
        raise DataError(
            f"{archive_path} cannot be unpacked ({type(err).__name__}: {err}): it is damaged or truncated; "
            "delete it and download again"
        ) from None


def _unpack(archive_path, final, needs):
    """Unpack ``archive_path`` into the folder ``final``, which appears only once complete."""
    tmp = pathlib.Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        _safe_extract(archive_path, tmp)
        entries = list(tmp.iterdir())
        # Archives usually hold one top folder; its contents are the dataset.
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        missing = [n for n in needs if not (root / n).is_file()]
        if missing:
            raise DataError(
                f"{archive_path} does not hold {missing}: it is not the expected archive, or it is incomplete; "
                "delete it and download again"
            )
        os.replace(root, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_dataset(name, dest_dir=None, progress=True):
    """Fetch the published dataset ``name`` (a key of ``DATASETS``) and return its path.

    ``dest_dir`` defaults to ``cache_dir() / "datasets"`` ($MINICAP_HOME or
    ~/.cache/minicap). "coco-eecs498" gives the file ``coco.pt``;
    "coco-cs231n" gives the folder ``coco_captioning`` (its zip is unpacked
    atomically and then deleted). Anything already in place is reused.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    dest_dir = pathlib.Path(dest_dir) if dest_dir is not None else cache_dir() / "datasets"
    if dest_dir.exists() and not dest_dir.is_dir():
        raise NotADirectoryError(f"{dest_dir} is a file; the download goes into a folder (--dest): choose another")
    if spec.unpack_to is None:
        return download(spec.url, dest_dir / spec.filename, expected_size=spec.size, progress=progress)
    final = dest_dir / spec.unpack_to
    if final.is_dir():
        missing = [n for n in spec.needs if n not in spec.optional and not (final / n).is_file()]
        if missing:
            raise DataError(f"{final} exists but lacks {missing}; delete the folder and run this again")
        return final
    try:
        archive_path = download(spec.url, dest_dir / spec.filename, expected_size=spec.size, progress=progress)
    except DownloadError as err:
        raise DownloadError(f"{err} Or unpack it yourself so that {final} holds its files.") from None
    _unpack(archive_path, final, spec.needs)
    archive_path.unlink()
    return final
