"""Errors raised by minicap's data loaders.

``DataError`` is a ``ValueError``, so code that already catches bad values
keeps working; its message always names the file and says how to fix it.
``READ_ERRORS`` is what reading a damaged file can raise, for the readers
that turn it into such a message.
"""

import struct
import zipfile
import zlib

# What reading a damaged .npz/.pth can raise: both are zips, so truncation or a flipped
# byte fails inside zipfile/zlib/struct (BadZipFile is none of OSError/ValueError), not NumPy.
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, NotImplementedError, struct.error, zipfile.BadZipFile, zlib.error)


class DataError(ValueError):
    """A data file is missing a key, has the wrong shape or dtype, or is corrupt."""


class UnsafePickleError(DataError):
    """A pickle asked for something outside the short list a tensor file needs.

    Raised before anything it asked for is looked up or called.
    """
