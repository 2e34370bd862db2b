"""``import minicap`` must work with only NumPy: no CuPy, no matplotlib, no torch."""

import subprocess
import sys

CHECK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('cupy', 'cupyx', 'torch'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
import minicap, minicap.layers, minicap.model, minicap.solver, minicap.data, minicap.metrics
from minicap import CaptioningRNN, CaptioningSolver, optim
import minicap.backend as b
assert b.gpu_available() is False
heavy = [m for m in ('matplotlib', 'cupy', 'torch', 'h5py') if m in sys.modules]
print('loaded:', heavy)
assert not heavy, heavy
"""


def test_import_needs_only_numpy():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout
