"""Notebooks: jupytext "percent" scripts to .ipynb, and figures shown inline.

The examples are Python scripts in jupytext's percent format (``# %%`` opens a
code cell, ``# %% [markdown]`` a Markdown cell whose lines start with ``# ``).
``percent_to_cells`` reads one into cells and ``notebook`` writes nbformat 4.5
JSON (every cell with an ``id``, as 4.5 requires), without needing nbformat
or jupytext installed.

minicap's figures are written as PNG files (``minicap.figures``), never
through pyplot, so a notebook shows nothing unless it displays the file:
``show_figure(path)`` does that when it runs in a Jupyter kernel, and nothing
in a plain script, so the same example file works both ways.
"""

import hashlib
import json
import sys


def show_figure(path):
    """Show the PNG at ``path`` inline when running in a Jupyter kernel; returns ``path``.

    Outside a kernel (a script, a test) it does nothing: IPython's ``display``
    would only print the object's repr there.
    """
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    return path


def percent_to_cells(text):
    """[(cell_type, source)] of a percent-format script; text before the first ``# %%`` is a code cell."""
    cells, kind, lines = [], "code", []

    def flush():
        source = "\n".join(lines).strip("\n")
        if source:
            cells.append((kind, source))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind == "markdown":
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
        else:
            lines.append(line)
    flush()
    return cells


def notebook(cells, name):
    """An nbformat 4.5 notebook (a dict) from [(cell_type, source)]; ids derive from ``name``
    and the cell's position, so the same input always gives the same file."""
    out = []
    for i, (kind, source) in enumerate(cells):
        cell = {"cell_type": kind, "id": hashlib.sha1(f"{name}/{i}".encode()).hexdigest()[:12],
                "metadata": {}, "source": source.splitlines(keepends=True)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    return {
        "cells": out,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def dumps(nb):
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
