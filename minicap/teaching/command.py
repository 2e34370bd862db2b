"""The two commands, ``assignment make`` and ``check``: their options and what they run.

``minicap check`` and ``minicap assignment make`` (``minicap.cli.teaching``)
use these. So does ``python -m minicap.teaching check``, which imports
nothing but the grader: ``minicap``'s own command line imports the model, and
with it every layer file, so a student's syntax error would stop it before
the grader could report it. Gradescope's ``run_autograder`` uses this form,
so that results.json is always written.
"""

import json
import pathlib
import sys

from .exercises import PARTS, parse_parts

CHECK_DESCRIPTION = ("Run every exercise's checks on the minicap that Python imports (a student's copy when it "
                     "is installed) and print a table per function. Exit status 0 when everything passes, 1 "
                     "when something fails, 2 on a usage error.")
MAKE_DESCRIPTION = ("Write the student project to DIR (a new or empty folder): minicap with the solution regions "
                    "of the chosen parts replaced by stubs and without the fast kernels, notebooks, a README.")


def add_make_arguments(p):
    p.add_argument("dir", metavar="DIR", help="where to write it (must not exist, or be empty)")
    p.add_argument("--parts", default="", metavar="P,...",
                   help=f"the parts to hand out, comma-separated, from {', '.join(PARTS)} (default: all)")
    p.set_defaults(run=run_make)


AUTOGRADER_DESCRIPTION = ("Write Gradescope's autograder to DIR: setup.sh, run_autograder and a student project "
                          "of the same parts. Zip the contents of DIR (not the folder) and upload it.")


def add_autograder_arguments(p):
    p.add_argument("dir", metavar="DIR", help="where to write it (must not exist, or be empty)")
    p.add_argument("--parts", default="", metavar="P,...",
                   help=f"the parts handed out, from {', '.join(PARTS)} (default: all)")
    p.set_defaults(run=run_autograder)


def run_autograder(args):
    from .autograder import make_autograder

    made = make_autograder(args.dir, parse_parts(args.parts))
    print(f"wrote Gradescope's autograder to {args.dir} (parts {', '.join(made['parts'])}): "
          f"zip its contents, e.g. cd {args.dir} && zip -r ../autograder.zip .")
    return 0


def add_check_arguments(p):
    p.add_argument("--parts", default="", metavar="P,...",
                   help=f"the parts to check, from {', '.join(PARTS)} (default: a student copy's parts, or all)")
    p.add_argument("--json", metavar="PATH", help="also write Gradescope's results.json layout to PATH")
    p.add_argument("--time-limit", type=float, default=120.0, metavar="S",
                   help="seconds one test may take before it fails (default 120; 0: no limit)")
    p.add_argument("--quiet", action="store_true", help="print only the table, not each test as it finishes")
    p.set_defaults(run=run_check)


def run_make(args):
    from .maker import make_assignment

    made = make_assignment(args.dir, parse_parts(args.parts))
    print(f"wrote the student project to {args.dir}: parts {', '.join(made['parts'])}, "
          f"{len(made['stubbed'])} functions to write, {len(made['notebooks'])} notebooks")
    print(f"students: pip install -e {args.dir} && minicap check   (see {args.dir}/README.md)")
    return 0


def run_check(args):
    from ..atomic import atomic_open
    from .grader import format_report, gradescope_results, grade, print_progress
    from .maker import student_copy_info

    if not args.time_limit >= 0:
        raise ValueError(f"--time-limit must be a number of seconds >= 0, got {args.time_limit:g}")
    if args.json and pathlib.Path(args.json).is_dir():  # found before minutes of checks, not after
        raise ValueError(f"--json {args.json} is a folder: give the path of the file to write")
    copy = student_copy_info()
    parts = parse_parts(args.parts) if args.parts else tuple(copy["parts"] if copy else PARTS)
    progress = None if args.quiet else (lambda test: print_progress(test, sys.stderr))
    tests = grade(parts, time_limit=args.time_limit, progress=progress)
    print(format_report(tests))
    if args.json:
        with atomic_open(args.json, "w") as f:
            f.write(json.dumps(gradescope_results(tests), indent=1) + "\n")
    return 0 if all(t.passed for t in tests) else 1


def main(argv=None):
    """``python -m minicap.teaching check|make|autograder ...``"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m minicap.teaching",
                                     description="Make a captioning assignment, or grade one.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_check_arguments(sub.add_parser("check", help="grade the importable minicap", description=CHECK_DESCRIPTION))
    add_make_arguments(sub.add_parser("make", help="write a student project", description=MAKE_DESCRIPTION))
    add_autograder_arguments(sub.add_parser("autograder", help="write Gradescope's autograder",
                                            description=AUTOGRADER_DESCRIPTION))
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
