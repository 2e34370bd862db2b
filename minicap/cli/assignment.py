"""``minicap assignment make DIR`` and ``minicap assignment autograder DIR``: make
a captioning assignment from the library, and its Gradescope autograder
(docs/teaching.md). The options and the work are in ``minicap.teaching.command``."""

import sys

from ..teaching.command import AUTOGRADER_DESCRIPTION, MAKE_DESCRIPTION, add_autograder_arguments, add_make_arguments


def add_parser(sub):
    p = sub.add_parser("assignment", help="make a student project from minicap, or its autograder",
                       description="Make a captioning assignment from minicap (docs/teaching.md).")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    add_make_arguments(actions.add_parser("make", help="write the student project to DIR",
                                          description=MAKE_DESCRIPTION))
    add_autograder_arguments(actions.add_parser("autograder", help="write Gradescope's autograder to DIR",
                                                description=AUTOGRADER_DESCRIPTION))
    p.set_defaults(run=lambda args: _usage(p))


def _usage(parser):
    print(f"{parser.prog}: error: name an action: make or autograder (see {parser.prog} --help)", file=sys.stderr)
    return 2
