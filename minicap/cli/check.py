"""``minicap check``: grade the minicap that is importable, function by function
(docs/teaching.md). The options and the work are in ``minicap.teaching.command``."""

from ..teaching.command import CHECK_DESCRIPTION, add_check_arguments


def add_parser(sub):
    add_check_arguments(sub.add_parser(
        "check", help="grade the importable minicap: known values, gradient checks, overfitting",
        description=CHECK_DESCRIPTION))
