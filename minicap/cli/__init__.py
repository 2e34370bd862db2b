"""The ``minicap`` command. Each subcommand lives in its own module here."""

import argparse
import sys

from .. import __version__


def build_parser():
    parser = argparse.ArgumentParser(prog="minicap", description="Image captioning with RNNs, LSTMs and attention in NumPy/CuPy.")
    parser.add_argument("--version", action="version", version=f"minicap {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
