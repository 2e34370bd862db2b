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
        try:
            from IPython.display import Image, display
        except ImportError:  # not a real kernel (one faked for a test): nothing to show on
            return path
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


# The questions of each part's notebook, answered in a Markdown cell below them.
QUESTIONS = {
    "basics": [
        "`word_embedding_backward` must add the gradients of a word that occurs twice. Write a two-word "
        "example (V = 3, x = [[1, 1]]) where `dW[x] += dout` and `minicap.backend.scatter_add` give "
        "different answers, and say which one is right.",
        "The caption loss divides by N, not by the number of kept words. For two batches with the same "
        "N, one of long captions and one of short ones, which one moves the weights more, and why might a "
        "course choose that?",
    ],
    "rnn": [
        "`dh0` reaches the first step through T products with `Wh` and T tanh derivatives. What happens "
        "to its size as T grows when the largest singular value of `Wh` is below 1, and when it is above "
        "1? Try T = 5, 20, 50 with your `rnn_backward` and print `np.linalg.norm(dh0)`.",
    ],
    "lstm": [
        "In the LSTM step, `dprev_c` is `dc * f`: no product with a weight matrix. Why does that let a "
        "gradient travel back through many more steps than in the vanilla RNN? When does it still vanish?",
    ],
    "attention": [
        "The scores are divided by sqrt(H). With `prev_h` and `A` of unit variance, what is the variance "
        "of an undivided score, and what would the softmax look like for H = 512?",
        "`attention_forward` starts from h0 = c0 = the mean of A over the locations. Where does the first "
        "word's attention look if all scores are equal?",
    ],
    "optim": [
        "Show from the formula that Adam's first step (t = 1, m = v = 0) moves every weight by about "
        "`learning_rate`, whatever the size of its gradient. Why is that useful early in training?",
    ],
    "model": [
        "The overfitting check learns 50 captions by heart. Why is a loss near zero on them no evidence "
        "that the model will caption new images well, and what is it evidence of?",
    ],
}

_TITLES = {"basics": "The layers around the recurrence", "rnn": "A vanilla RNN", "lstm": "An LSTM",
           "attention": "Attention", "optim": "Update rules", "model": "The captioning model"}


def exercise_notebook(part):
    """The notebook of one part: each exercise, what to write, and a cell that checks it."""
    from .exercises import exercises_of

    exercises = exercises_of((part,))
    cells = [("markdown", f"# {_TITLES[part]} (part `{part}`)\n\n"
              "Write the functions below in order, in the files named. Each one's stub says what goes in "
              "and what comes out, with shapes; the cell after it runs the checks of `minicap check` on "
              "that function alone and prints a table: the relative error of each output or gradient, "
              "and whether it passes. Edit the file, save, and run the cell again (it reloads your code)."),
             ("code", "import numpy as np\n\nfrom minicap.teaching import check")]
    for exercise in exercises:
        cells.append(("markdown", f"## `{exercise.name}` ({exercise.path})\n\n{exercise.todo}\n\n"
                      f"The math: {exercise.docs}."))
        cells.append(("code", f"check({exercise.name!r})"))
    questions = QUESTIONS.get(part, [])
    if questions:
        cells.append(("markdown", "## Questions\n\n" + "\n\n".join(
            f"**Question {i}.** {q}" for i, q in enumerate(questions, start=1))))
        cells.append(("markdown", "**Your answers:**\n\n"))
    cells.append(("code", f"check(parts={part!r})  # the whole part, as the grader sees it"))
    return notebook(cells, f"exercise-{part}")


def example_notebook(path):
    """An example script (jupytext percent format) as a notebook."""
    import pathlib

    path = pathlib.Path(path)
    return notebook(percent_to_cells(path.read_text(encoding="utf-8")), f"example-{path.stem}")
