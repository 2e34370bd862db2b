"""The ``minicap`` command. Each subcommand lives in its own module here and
provides ``add_parser(subparsers)`` and ``run(args)``.

User errors (missing files, bad checkpoints, CUDA without a GPU, bad options)
print one line and exit with status 2; ``--debug`` shows the traceback.
"""

import argparse
import logging
import sys

from .. import __version__
from . import assignment, caption, check, data, demo, evaluate, features, train, visualize

COMMANDS = (demo, data, features, train, evaluate, caption, visualize, assignment, check)

# What counts as the user's mistake rather than a bug in minicap: bad values,
# missing or unreadable files, a device that is not there, a run that diverged
# (NonFiniteLossError is a FloatingPointError: lower the learning rate), an
# optional package not installed (the ImportError says what to pip install).
USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError, FloatingPointError, ImportError)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, like every other user error
    (argparse would print the whole usage first); subcommand parsers inherit it."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(
        prog="minicap", description="Image captioning with RNNs, LSTMs and attention in NumPy/CuPy.")
    parser.add_argument("--version", action="version", version=f"minicap {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(message)s")
    if hasattr(args, "quiet"):  # train and demo: show what the solver decides and how training goes
        quiet = logging.WARNING if args.quiet else logging.INFO
        logging.getLogger("minicap.solver").setLevel(logging.DEBUG if args.debug else quiet)
        # the loss every 50 iterations is noise beside the progress bar and the epoch lines
        logging.getLogger("minicap.solver.iterations").setLevel(logging.DEBUG if args.debug else logging.WARNING)
        # a changed learning rate on --resume is reported even with --quiet
        logging.getLogger("minicap.runs").setLevel(logging.DEBUG if args.debug else logging.INFO)
    try:
        return args.run(args) or 0
    except KeyboardInterrupt as exc:
        message = str(exc) or "interrupted"
        print(f"minicap: {message}", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"minicap {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
