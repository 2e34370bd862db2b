"""Solution regions: the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION``.

The convention is nbgrader's: a region runs from a line whose code is the
comment ``# BEGIN SOLUTION`` to the next ``# END SOLUTION`` line; both are
comments, so the library runs exactly the same with or without them. Here a
region must sit inside one function, and a nested BEGIN or a missing END is
an error that names the file and line.

``find_regions`` locates them in a source file, ``stub_region`` writes the
student's version of one: a ``# TODO`` comment with the exercise's inputs,
outputs and shapes, then ``raise NotImplementedError``, at the region's
indentation. ``fill_regions`` puts bodies back (the instructor's solutions,
or a deliberately wrong one in the tests).
"""

import ast
import textwrap
from dataclasses import dataclass

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"


class RegionError(ValueError):
    """A malformed region: nested, unclosed, or outside a function."""


@dataclass(frozen=True)
class Region:
    function: str  # qualified name of the enclosing function, "CaptioningRNN.loss"
    begin: int  # 0-based index of the BEGIN line
    end: int  # 0-based index of the END line
    indent: str

    def body(self, lines):
        """The region's lines, markers excluded."""
        return lines[self.begin + 1:self.end]


def _functions(tree):
    """(qualified name, first line, last line) of every function, 1-based lines."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    found.append((name, child.lineno, child.end_lineno))
                visit(child, name + ".")

    visit(tree, "")
    return found


def find_regions(text, filename="<source>"):
    """Every region of ``text`` (a Python source file), in file order."""
    lines = text.splitlines()
    functions = _functions(ast.parse(text, filename))
    regions, open_at = [], None
    for i, line in enumerate(lines):
        code = line.strip()
        if code == BEGIN:
            if open_at is not None:
                raise RegionError(f"{filename}, line {i + 1}: BEGIN SOLUTION inside the region opened "
                                  f"at line {open_at + 1}; close it with {END!r} first")
            open_at = i
        elif code == END:
            if open_at is None:
                raise RegionError(f"{filename}, line {i + 1}: END SOLUTION without a BEGIN SOLUTION")
            # the function holding the BEGIN line (an END after a function's last statement still closes it)
            inside = [name for name, first, last in functions if first <= open_at + 1 <= last]
            if not inside:
                raise RegionError(f"{filename}, line {open_at + 1}: a solution region must be inside a function")
            # the innermost function: the one that starts last
            function = max(inside, key=lambda name: next(f for n, f, _ in functions if n == name))
            indent = lines[open_at][:len(lines[open_at]) - len(lines[open_at].lstrip())]
            regions.append(Region(function, open_at, i, indent))
            open_at = None
    if open_at is not None:
        raise RegionError(f"{filename}, line {open_at + 1}: BEGIN SOLUTION is never closed by {END!r}")
    return regions


def strip_markers(text):
    """``text`` without its marker lines: the library as it would read unmarked."""
    return "".join(line for line in text.splitlines(keepends=True) if line.strip() not in (BEGIN, END))


def stub_lines(exercise, indent):
    """The student's version of a region: what to write, then NotImplementedError."""
    width = 96 - len(indent) - 2
    text = (f"TODO ({exercise.name}): {exercise.todo} Explained in {exercise.docs}. "
            f"Check it with: `minicap check --parts {exercise.part}`")
    lines = [f"{indent}# {line}" for line in _wrap(text, width)]
    lines.append(f"{indent}raise NotImplementedError(\"{exercise.name}: not written yet (see the TODO above)\")")
    return lines


def _wrap(text, width):
    """textwrap.wrap that never breaks inside (...) or `...`, nor before a "(": a name and its
    shape, ``next_h (N, H)``, or a command stays on one line."""
    protected, depth, quoted = [], 0, False
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        quoted ^= ch == "`"
        keep = depth > 0 or quoted or text[i + 1:i + 2] == "("
        protected.append("\0" if ch == " " and keep else ch)
    return [line.replace("\0", " ") for line in textwrap.wrap("".join(protected), width)]


def replace_regions(text, bodies, filename="<source>"):
    """``text`` with the region of each function named in ``bodies`` replaced.

    bodies: {function: callable(region) -> list of lines}. The BEGIN and END
    lines are kept, so the result can be filled again. Raises RegionError if a
    named function has no region.
    """
    lines = text.splitlines()
    regions = find_regions(text, filename)
    missing = set(bodies) - {r.function for r in regions}
    if missing:
        raise RegionError(f"{filename}: no solution region in {', '.join(sorted(missing))}")
    for region in reversed(regions):  # from the end, so earlier line numbers stay valid
        if region.function in bodies:
            lines[region.begin + 1:region.end] = bodies[region.function](region)
    return "\n".join(lines) + "\n"


def solution_bodies(text, filename="<source>"):
    """{function: its region's lines} of a source file, to fill a stubbed copy with."""
    lines = text.splitlines()
    return {r.function: r.body(lines) for r in find_regions(text, filename)}


def fill_regions(text, bodies, filename="<source>"):
    """Put ``bodies`` ({function: lines}, from ``solution_bodies``) back into their regions."""
    return replace_regions(text, {name: (lambda region, b=b: list(b)) for name, b in bodies.items()}, filename)
