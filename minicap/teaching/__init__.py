"""Teaching with minicap: make a captioning assignment from the library, and grade it.

- ``exercises``  the functions a student writes, by part, in course order
- ``regions``    the ``# BEGIN SOLUTION`` / ``# END SOLUTION`` regions and their stubs
- ``published``  the courses' known-value checks (inputs and expected outputs)
- ``checks``     every exercise's checks: known values, gradient checks, overfitting
- ``grader``     runs the checks, prints the table, writes Gradescope's results.json
- ``maker``      writes a student project (``minicap assignment make DIR``); ``readme``, its README
- ``autograder`` Gradescope's setup.sh and run_autograder, and what they run
- ``notebooks``  jupytext percent scripts to .ipynb; ``show_figure`` for inline figures
- ``command``    the commands' options; ``python -m minicap.teaching check|make|autograder``

The command line: ``minicap assignment make DIR``, ``minicap assignment autograder DIR``
and ``minicap check`` (docs/teaching.md).
"""

from .exercises import EXERCISES, PARTS
from .grader import check
from .notebooks import show_figure

__all__ = ["EXERCISES", "PARTS", "check", "show_figure"]
