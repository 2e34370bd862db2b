"""Printing characters that the terminal's encoding cannot show, without crashing.

Captions, vocabulary words and paths may hold any character (the tokeniser keeps
"café" whole). Under ``LANG=C`` stdout is ASCII, and a Windows console has a code
page: printing such a caption would raise UnicodeEncodeError halfway through the
output. The command's streams get an error handler instead that writes

- a character the encoding lacks as an escape (é as ``\\xe9``), and
- a lone surrogate as the byte it stands for: Python decodes a file name (or an
  argument) that the locale could not decode into lone surrogates
  ("surrogateescape"), and writing those bytes back shows the name as it was typed.
"""

import codecs
import sys

HANDLER = "minicap.escape"


def _escape(error):
    if not isinstance(error, UnicodeEncodeError):
        raise error
    char = error.object[error.start]
    if "\udc80" <= char <= "\udcff":
        return bytes([ord(char) - 0xDC00]), error.start + 1
    one = UnicodeEncodeError(error.encoding, error.object, error.start, error.start + 1, error.reason)
    return codecs.backslashreplace_errors(one)


codecs.register_error(HANDLER, _escape)


def tolerate_unencodable(*streams):
    """Give each text stream (default: stdout and stderr) the escaping error handler."""
    for stream in streams or (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # absent on some replaced streams
        if reconfigure is not None:
            reconfigure(errors=HANDLER)
