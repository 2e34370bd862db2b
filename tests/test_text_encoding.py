"""Every text file minicap reads or writes is UTF-8, whatever the locale.

Under ``LANG=C`` (or a Windows code page) Python's default text encoding is not
UTF-8, so an ``open()`` without ``encoding=`` reads and writes accented words
(the tokeniser keeps "café" whole) differently from another machine, or fails.

1. Static: every text-mode ``open`` / ``read_text`` / ``write_text`` /
   ``fdopen`` / ``TextIOWrapper`` / ``np.loadtxt`` in minicap/, examples/ and
   benchmarks/ names its encoding (checked with ``ast``; the detector is
   checked on bad snippets).
2. End to end: the command line, run under ``LANG=C LC_ALL=C PYTHONUTF8=0``,
   makes features, trains, evaluates and captions with a vocabulary of
   accented words, in folders with accented names.
"""

import ast
import codecs
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SOURCES = sorted(p for folder in ("minicap", "examples", "benchmarks") for p in (ROOT / folder).rglob("*.py"))

# Calls that open text unless told otherwise, and where their mode argument sits.
_OPENERS = {"open": 1, "fdopen": 1, "TextIOWrapper": None, "read_text": None, "write_text": None,
            "loadtxt": None, "savetxt": None, "genfromtxt": None}


def _binary(mode):
    """True when every string the mode expression can take holds a 'b'."""
    texts = [n.value for n in ast.walk(mode) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return bool(texts) and all("b" in t for t in texts)


def encoding_violations(source):
    """Lines of ``source`` that open a text file without naming its encoding."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name == "open" and isinstance(func, ast.Attribute) and not (
                isinstance(func.value, ast.Name) and func.value.id in ("io", "os", "builtins", "codecs")):
            # obj.open(...): Image.open, ZipFile.open and tarfile take no encoding; a
            # Path.open with a literal text mode is still checked
            literal = [a for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if not literal or _binary(literal[0]):
                continue
            keywords = {k.arg for k in node.keywords}
            if "encoding" not in keywords:
                found.append(f"line {node.lineno}: .open({literal[0].value!r}) without encoding=")
            continue
        if name not in _OPENERS:
            continue
        if name == "open" and isinstance(func, ast.Attribute) and func.value.id == "os":
            continue  # os.open returns a file descriptor, not a text stream
        keywords = {k.arg: k.value for k in node.keywords}
        position = _OPENERS[name]
        mode = keywords.get("mode")
        if mode is None and position is not None and len(node.args) > position:
            mode = node.args[position]
        if mode is not None and _binary(mode):
            continue
        if "encoding" not in keywords:
            found.append(f"line {node.lineno}: {name}(...) without encoding=")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_text_files_name_their_encoding(path):
    assert encoding_violations(path.read_text(encoding="utf-8")) == []


def test_encoding_detector_flags_bad_snippets():
    bad = [
        "open(p)\n",
        "open(p, 'w')\n",
        "open(p, mode='a')\n",
        "open(p, 'wb' if x else 'w')\n",
        "p.read_text()\n",
        "p.write_text(s)\n",
        "os.fdopen(fd, mode)\n",
        "io.TextIOWrapper(raw)\n",
        "np.loadtxt(p)\n",
        "p.open('w')\n",
    ]
    for source in bad:
        assert encoding_violations(source), source
    good = ("open(p, 'rb')\nopen(p, mode='wb')\nopen(p, 'ab' if x else 'wb')\nopen(p, encoding='utf-8')\n"
            "p.read_text(encoding='utf-8')\nos.fdopen(fd, mode, encoding=None)\nos.open(p, os.O_RDONLY)\n"
            "Image.open(p)\narchive.open(name)\np.open('rb')\np.read_bytes()\n")
    assert encoding_violations(good) == []


def test_unencodable_output_is_escaped_not_a_crash():
    from minicap.cli._output import tolerate_unencodable

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    with pytest.raises(UnicodeEncodeError):
        stream.write("café")
        stream.flush()
    raw.seek(0), raw.truncate()
    tolerate_unencodable(stream)
    # é cannot be encoded: an escape; the surrogates are the undecodable bytes of a
    # path (as Python holds them under LANG=C): written back as they were
    stream.write("café in caf\udcc3\udca9 \u65e5\n")
    stream.flush()
    assert raw.getvalue() == b"caf\\xe9 in caf\xc3\xa9 \\u65e5\n"
    assert codecs.lookup_error("minicap.escape")  # registered on import


# --- the command line under the C locale -----------------------------------------

_CHILD = """\
import sys

import numpy as np

import minicap.encoders


class MeanEncoder:  # stands in for a CNN: tests never download one
    name, out_channels, stride = "fake", 3, 32

    def __call__(self, images):
        return images.astype(np.float32).mean(axis=(2, 3), keepdims=True)


minicap.encoders.load_encoder = lambda name, weights=None: MeanEncoder()
from minicap.cli import main

sys.exit(main())
"""


def _c_locale_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_") and k not in ("PYTHONIOENCODING", "LANGUAGE")}
    env.update(LANG="C", LC_ALL="C", PYTHONUTF8="0", MINICAP_HOME=str(tmp_path / "cache"))
    return env


def _cli(env, *args):
    done = subprocess.run([sys.executable, "-c", _CHILD, *map(str, args)], capture_output=True, env=env, timeout=600)
    # decoded here as UTF-8: the child writes back undecodable path bytes as they were
    return done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")


@pytest.mark.skipif(sys.platform == "win32", reason="LANG and LC_ALL do not choose the encoding on Windows")
def test_command_line_under_the_c_locale_with_accented_words_and_folders(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    from minicap.runs import load_model

    env = _c_locale_env(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import locale, sys; print(locale.getpreferredencoding(False), "
                            "sys.stdout.encoding)"], capture_output=True, text=True, env=env)
    if "utf" in probe.stdout.lower():
        pytest.skip(f"this system's C locale is UTF-8 ({probe.stdout.strip()}): nothing to test")

    data = tmp_path / "données"
    data.mkdir()
    coco_pt = data / "coco.pt"
    shutil.copy(FIXTURES / "accented_coco.pt", coco_pt)
    weights = data / "poids.pth"
    weights.write_bytes(b"the weights that make the features")
    image = data / "photo.png"
    Image.new("RGB", (112, 112), (200, 40, 40)).save(image)
    run = tmp_path / "runs" / "café"

    steps = [
        ["features", coco_pt, "--weights", weights, "--batch-size", "2"],
        ["train", "--dataset", "coco-eecs498", "--data-path", coco_pt, "--cell", "lstm", "--epochs", "30",
         "--hidden-dim", "8", "--wordvec-dim", "8", "--batch-size", "3", "--lr", "0.05", "--quiet", "--out", run],
        ["evaluate", run, "--split", "val"],
        ["caption", image, "--checkpoint", run, "--weights", weights, "--beam-size", "1"],
    ]
    outputs = []
    for step in steps:
        status, out, err = _cli(env, *step)
        assert status == 0 and "Traceback" not in err, (step[0], err)
        outputs.append(out)

    # the vocabulary and the paths came through the run folder unchanged
    model = load_model(run)
    assert model.idx_to_word[4:] == ["café", "crème", "brûlée", "thé"]
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    # a path is bytes on POSIX: under LANG=C Python holds the bytes of "é" as two lone
    # surrogates, and JSON keeps them (escaped), so any locale opens the same file
    assert os.fsencode(config["data_path"]) == os.fsencode(coco_pt)
    assert pathlib.Path(config["data_path"]).is_file()
    assert json.loads((run / "metrics-val.json").read_text(encoding="utf-8"))["images"] == 2
    # every training caption starts with café: so does the one printed, escaped for the ASCII stdout
    assert outputs[-1].startswith(f"{image}: caf\\xe9 "), outputs[-1]
