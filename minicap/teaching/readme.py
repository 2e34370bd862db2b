"""The student project's README: install, what to write in which order, how to check."""

from .exercises import exercises_of

_INSTALL = """\
## Install

```
python3 -m venv .venv && . .venv/bin/activate
pip install -e .
minicap check
```

`pip install -e .` installs this folder as `minicap`, in editable mode: what you write in
`minicap/` is what runs, in the notebooks, in `minicap check`, and when the model trains (it
trains through your functions). The first `minicap check` scores 0: nothing is written yet.
"""

_CHECK = """\
## Check your work

- `minicap check` runs every check and prints a table per function: what was compared, the
  relative error, the tolerance, pass or FAIL, and the points. `minicap check --parts rnn`
  checks one part; the exit status is 0 when everything passes.
- The checks are the courses': the published values of the CS231n and EECS 498 notebooks
  (inputs built with `np.linspace`, outputs to 8 digits), float64 gradient checks of every
  input and parameter of every backward (central differences, relative error
  `max |a - b| / max(1e-8, |a| + |b|)`), and for the model, learning 50 captions by heart.
- A function that still raises `NotImplementedError` scores 0 and the others still run. An
  error in your code is shown as its first line with your file and line.
- A check of a function runs the functions it calls: a wrong `rnn_step_backward` also fails
  `rnn_backward`. The table says so; fix the first failure first.
- In a notebook, `from minicap.teaching import check; check("rnn_step_forward")` does the same
  for one function, reloading your files first.
"""


def student_readme(parts, notebooks):
    lines = ["# The captioning assignment", "",
             "Image captioning with recurrent networks and attention, from scratch in NumPy: you write "
             "the layers, their backward passes and the model's loss of a real library (minicap), and "
             "then train it on the shapes world, which is generated on your machine (no download).", "",
             _INSTALL, "## What to write, in this order", ""]
    for part in parts:
        lines.append(f"**{part}**")
        lines.append("")
        for e in exercises_of((part,)):
            lines.append(f"- `{e.name}` in `{e.path}`")
        lines.append("")
    lines += ["Each stub starts with a `# TODO` comment that says what goes in and what comes out, with "
              "shapes, and which section of `docs/` explains it. The docs give the forward passes; the "
              "backward passes are yours to derive. Keep the lines above each stub (they check the "
              "arguments) and the `return` below it.", "",
              _CHECK, "## Notebooks", "",
              "`notebooks/` has one notebook per part, with a check after each function and a few "
              "questions to answer, then the examples: the data, overfitting a small set, training the "
              "three models, the results and attention maps, gradient checking. Figures show inline. "
              "Run them with `pip install jupyter` and `jupyter notebook notebooks/`.", ""]
    lines += [f"- `notebooks/{name}`" for name in notebooks]
    lines += ["", "## Submit", "",
              "Your instructor says how. What is graded is the files you edit: `minicap/layers/*.py`, "
              "`minicap/model.py` and `minicap/optim.py`, with `minicap check` as you ran it.", ""]
    return "\n".join(lines)
