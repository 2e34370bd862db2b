"""The ``minicap`` command. Each subcommand lives in its own module here and
provides ``add_parser(subparsers)`` and ``run(args)``.

User errors (missing files, bad checkpoints, CUDA without a GPU, bad options)
print one line and exit with status 2; ``--debug`` shows the traceback. So do sizes
the machine cannot hold (``MemoryError``): most are refused before anything is allocated
(``minicap.memcheck``).
"""

import argparse
import importlib
import logging
import sys

from .. import __version__
from ._output import tolerate_unencodable

# The subcommand modules import NumPy and the rest of minicap: they are imported inside
# main()'s handler of Ctrl-C, so that Ctrl-C during those first moments exits with 130 too.
_COMMAND_NAMES = ("demo", "data", "features", "train", "evaluate", "caption", "visualize", "assignment", "check")


def _commands():
    """The subcommand modules, in the order of --help."""
    return tuple(importlib.import_module(f"{__name__}.{command}") for command in _COMMAND_NAMES)


def __getattr__(name):  # minicap.cli.COMMANDS, imported on first use
    if name == "COMMANDS":
        return _commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

    def format_help(self):
        # the descriptions are the modules' docstrings, written in reST: ``name`` reads as name
        return super().format_help().replace("``", "")


def _innermost(parser, args):
    """The (sub)parser of the command that ``args`` chose: `minicap data show`'s, say."""
    while True:
        subparsers = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, subparsers.dest, None) if subparsers else None
        if chosen not in getattr(subparsers, "choices", {}):
            return parser
        parser = subparsers.choices[chosen]


def build_parser():
    parser = _Parser(
        prog="minicap", description="Image captioning with RNNs, LSTMs and attention in NumPy/CuPy.")
    parser.add_argument("--version", action="version", version=f"minicap {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _commands():
        module.add_parser(sub)
    return parser


def main(argv=None):
    tolerate_unencodable()  # a caption or path the terminal cannot encode is escaped, not a crash
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:  # also during the imports of the first half second
        message = str(exc) or "interrupted"
        print(f"minicap: {message}", file=sys.stderr)
        return 130


def _main(argv):
    from .. import heap, threads

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the subcommand's parser, so that the hint names its --help
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
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
    # Every command repeats large NumPy allocations (training steps, decoding batches,
    # encoder chunks): keep freed memory for reuse instead of faulting it in again.
    heap.keep_freed_memory()
    try:
        with threads.limit(getattr(args, "threads", None)):
            return args.run(args) or 0
    except MemoryError as exc:  # sizes the machine cannot hold are the user's to change
        if args.debug:
            raise
        from ..memcheck import NotEnoughMemoryError

        message = str(exc) if isinstance(exc, NotEnoughMemoryError) else (
            f"out of memory ({str(exc) or 'an allocation failed'}); use smaller sizes (counts, dimensions, "
            "--batch-size, --beam-size) or free some memory")
        print(f"minicap {args.command}: error: {message}", file=sys.stderr)
        return 2
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"minicap {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
