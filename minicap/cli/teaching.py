"""``minicap assignment make DIR`` and ``minicap check``: make a captioning
assignment from the library, and grade the minicap that is importable
(docs/teaching.md). The options and the work are in ``minicap.teaching.command``."""

import sys

from ..teaching.command import CHECK_DESCRIPTION, MAKE_DESCRIPTION, add_check_arguments, add_make_arguments


def add_parser(sub):
    p = sub.add_parser("assignment", help="make a student project from minicap (docs/teaching.md)",
                       description="Make a captioning assignment from minicap.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    add_make_arguments(actions.add_parser("make", help="write the student project to DIR",
                                          description=MAKE_DESCRIPTION))
    p.set_defaults(run=lambda args: _usage(p))
    add_check_arguments(sub.add_parser(
        "check", help="grade the importable minicap: known values, gradient checks, overfitting",
        description=CHECK_DESCRIPTION))


def _usage(parser):
    print(f"{parser.prog}: error: name an action: make (see {parser.prog} --help)", file=sys.stderr)
    return 2
