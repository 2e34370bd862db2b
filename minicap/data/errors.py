"""Errors raised by minicap's data loaders.

``DataError`` is a ``ValueError``, so code that already catches bad values
keeps working; its message always names the file and says how to fix it.
"""


class DataError(ValueError):
    """A data file is missing a key, has the wrong shape or dtype, or is corrupt."""


class UnsafePickleError(DataError):
    """A pickle asked for something outside the short list a tensor file needs.

    Raised before anything it asked for is looked up or called.
    """
