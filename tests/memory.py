"""Peak memory of a piece of code, measured in a fresh Python process.

``peak_growth(setup, code)`` runs ``setup`` (imports, building inputs), notes the
process's peak resident size (``resource.getrusage``), runs ``code`` and reports by how
many bytes the peak grew, together with what ``code`` raised (its type and message) or
"ok". A subprocess, so that memory the test runner already holds cannot hide a peak.
"""

import json
import subprocess
import sys
import textwrap

_RUNNER = """
import json, resource, sys
{setup}
def _peak():
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
before = _peak()
try:
{code}
    outcome = "ok"
except BaseException as exc:
    outcome = f"{{type(exc).__name__}}: {{exc}}"
print(json.dumps({{"growth": _peak() - before, "outcome": outcome}}))
"""


def peak_growth(setup, code, timeout=300):
    """(bytes the peak resident size grew by while ``code`` ran, "ok" or "ErrorType: message")."""
    script = _RUNNER.format(setup=textwrap.dedent(setup), code=textwrap.indent(textwrap.dedent(code), "    "))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["growth"], result["outcome"]
