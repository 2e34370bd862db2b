"""Layers must never call NumPy directly on arrays that may live on the GPU.

Two independent detectors, each checked against deliberately bad code:

1. Static: every module of minicap/layers is parsed with ``ast``; any use of the
   ``numpy`` module other than a dtype name, and any import of CuPy (only
   minicap.backend may), is reported with its line.
2. Dynamic: a stand-in for CuPy (``FakeCupy`` / ``DeviceArray``) is installed
   as minicap.backend's CuPy module, so ``get_array_module`` hands it to every
   layer, exactly as it would hand over cupy. A DeviceArray refuses everything
   a real CuPy array refuses and NumPy functions would accept on the host:
   numpy ufuncs and functions called on it (``__array_ufunc__`` /
   ``__array_function__``), conversion by ``np.asarray`` (``__array__``),
   host NumPy arrays mixed into its operations. It also refuses two things
   that CuPy allows but minicap forbids: boolean-mask indexing (a host sync)
   and fancy-index assignment (``a[idx] += v`` loses repeated ids). Every layer
   is then run forward and backward on DeviceArrays; its results must be
   DeviceArrays equal to the plain NumPy results.
"""

import ast
import operator
import pathlib

import numpy as np
import pytest

import minicap.kernels
import minicap.layers
from minicap import backend
from minicap.backend import get_array_module
from test_layers_cases import CASE_IDS, CASES

LAYERS_DIR = pathlib.Path(minicap.layers.__file__).parent
KERNELS_DIR = pathlib.Path(minicap.kernels.__file__).parent
# dtype names are host-side constants that CuPy shares with NumPy.
ALLOWED_NUMPY = {"float16", "float32", "float64", "int32", "int64", "bool_", "dtype"}


# --- 1. the static detector -------------------------------------------------

def numpy_violations(source):
    """Lines of ``source`` that use numpy beyond dtype names, or import cupy."""
    tree = ast.parse(source)
    aliases, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                root = a.name.split(".")[0]
                if root in ("cupy", "cupyx"):
                    found.append(f"line {node.lineno}: import {a.name} (only minicap.backend imports CuPy)")
                elif root == "numpy":
                    if a.name != "numpy":
                        found.append(f"line {node.lineno}: import {a.name}")
                    aliases.add(a.asname or "numpy")
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in ("cupy", "cupyx"):
                found.append(f"line {node.lineno}: from {node.module} import ...")
            elif root == "numpy":
                bad = [a.name for a in node.names if node.module != "numpy" or a.name not in ALLOWED_NUMPY]
                if bad:
                    found.append(f"line {node.lineno}: from {node.module} import {', '.join(bad)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if name in ("__import__", "import_module") and any(
                    isinstance(a, ast.Constant) and str(a.value).split(".")[0] in ("numpy", "cupy", "cupyx")
                    for a in node.args):
                found.append(f"line {node.lineno}: dynamic import of {node.args[0].value}")
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in aliases:
            parent = parents.get(node)
            if isinstance(parent, ast.Attribute):
                if parent.attr not in ALLOWED_NUMPY:
                    found.append(f"line {node.lineno}: {node.id}.{parent.attr}")
            else:
                found.append(f"line {node.lineno}: numpy used as the value {node.id!r}")
    return found


@pytest.mark.parametrize("path", sorted(LAYERS_DIR.glob("*.py")) + sorted(KERNELS_DIR.glob("*.py")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_layer_modules_use_numpy_only_for_dtype_names(path):
    assert numpy_violations(path.read_text()) == []


def test_static_detector_flags_bad_snippets():
    bad = {
        "import numpy as np\ny = np.tanh(x)\n": "np.tanh",
        "import numpy\ny = numpy.sum(x)\n": "numpy.sum",
        "from numpy import exp\n": "from numpy import exp",
        "import numpy.linalg\n": "import numpy.linalg",
        "import numpy as np\nf = np\n": "the value 'np'",
        "import cupy\n": "import cupy",
        "from cupyx import scatter_add\n": "from cupyx",
        "np = __import__('numpy')\n": "dynamic import of numpy",
    }
    for source, expected in bad.items():
        found = numpy_violations(source)
        assert found and expected in " ".join(found), (source, found)
    good = "import numpy as np\nfrom numpy import float32\nxp = get(x)\ny = xp.tanh(x).astype(np.float32)\n"
    assert numpy_violations(good) == []


# --- 2. the dynamic detector ------------------------------------------------

class NumpyOnDevice(AssertionError):
    """A layer did something with a device array that would fail or misbehave on CuPy."""


def _unwrap(obj):
    if isinstance(obj, DeviceArray):
        return obj._data
    if isinstance(obj, np.ndarray):
        raise NumpyOnDevice(f"a host NumPy array {obj.shape} was mixed with device arrays (CuPy raises TypeError)")
    if isinstance(obj, (tuple, list)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj):
    if isinstance(obj, (np.ndarray, np.generic)):
        return DeviceArray(np.asarray(obj))  # CuPy reductions return 0-d arrays, not scalars
    if isinstance(obj, (tuple, list)):
        return type(obj)(_wrap(o) for o in obj)
    return obj


def _device_call(fn):
    def call(*args, **kwargs):
        return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))
    return call


class DeviceArray:
    """Stands in for cupy.ndarray: holds a NumPy array that NumPy itself may not touch."""

    def __init__(self, data):
        self._data = data

    def __array__(self, *args, **kwargs):
        raise NumpyOnDevice("numpy tried to convert a device array (np.asarray / np.array)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        raise NumpyOnDevice(f"numpy.{ufunc.__name__}{'' if method == '__call__' else '.' + method} "
                            "was called on a device array")

    def __array_function__(self, func, types, args, kwargs):
        raise NumpyOnDevice(f"numpy.{func.__name__} was called on a device array")

    def __getattr__(self, name):
        if name.startswith("__"):
            # NumPy also converts through __array_interface__ / __array_struct__;
            # hiding the host array's protocols leaves only __array__, which refuses.
            raise AttributeError(name)
        value = getattr(self._data, name)
        return _device_call(value) if callable(value) else _wrap(value)

    def __getitem__(self, index):
        index = _unwrap(index)
        if any(getattr(i, "dtype", None) == bool for i in (index if isinstance(index, tuple) else (index,))):
            raise NumpyOnDevice("boolean-mask indexing of a device array (a host sync; use xp.where)")
        return _wrap(self._data[index])

    def __setitem__(self, index, value):
        index = _unwrap(index)
        if any(isinstance(i, np.ndarray) for i in (index if isinstance(index, tuple) else (index,))):
            raise NumpyOnDevice("fancy-index assignment into a device array (a[idx] += v loses repeated ids)")
        self._data[index] = _unwrap(value)

    def __float__(self):
        return float(self._data)

    def __int__(self):
        return int(self._data)

    def __bool__(self):
        return bool(self._data)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        return f"DeviceArray({self._data!r})"

    __hash__ = None


def _binary(op):
    return lambda self, other: _wrap(op(self._data, _unwrap(other)))


def _reflected(op):
    return lambda self, other: _wrap(op(_unwrap(other), self._data))


def _inplace(op):
    def method(self, other):
        op(self._data, _unwrap(other))
        return self
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor"):
    _op = getattr(operator, _name + ("_" if _name in ("and", "or") else ""))
    setattr(DeviceArray, f"__{_name}__", _binary(_op))
    setattr(DeviceArray, f"__r{_name}__", _reflected(_op))
    setattr(DeviceArray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(DeviceArray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(DeviceArray, f"__{_name}__", (lambda op: lambda self: _wrap(op(self._data)))(getattr(operator, _name)))


class _UfuncProxy:
    def __init__(self, ufunc):
        self._ufunc = ufunc

    def __call__(self, *args, **kwargs):
        return _device_call(self._ufunc)(*args, **kwargs)

    def __getattr__(self, name):  # .at, .reduce, ...
        return _device_call(getattr(self._ufunc, name))


class FakeCupy:
    """The array module of DeviceArrays: numpy's functions behind an unwrap/wrap boundary."""

    ndarray = DeviceArray

    def __getattr__(self, name):
        value = getattr(np, name)
        if isinstance(value, np.ufunc):
            return _UfuncProxy(value)
        if callable(value) and not isinstance(value, type):
            return _device_call(value)
        return value  # dtypes and constants are shared, as in CuPy


@pytest.fixture
def device(monkeypatch):
    """Install FakeCupy as minicap.backend's CuPy; returns the function that moves an array there."""
    monkeypatch.setattr(backend, "_cupy", FakeCupy())
    return DeviceArray


def test_dynamic_detector_flags_bad_snippets(device):
    x = device(np.arange(6.0).reshape(2, 3))
    idx = device(np.array([0, 0]))

    def fancy_add():
        x[idx] += 1.0

    bad = [
        lambda: np.tanh(x),
        lambda: np.sum(x),
        lambda: np.asarray(x),
        lambda: np.zeros_like(x),
        lambda: np.array(x),
        lambda: np.concatenate([x, x]),
        lambda: x + np.ones(3),
        lambda: np.ones(3) + x,
        lambda: x[x > 2],
        fancy_add,
    ]
    for snippet in bad:
        with pytest.raises(NumpyOnDevice):
            snippet()
    # The same work done through the inputs' module stays on the device.
    xp = get_array_module(x)
    assert xp is not np
    y = xp.tanh(x) + 2.0 * x.sum(axis=0) - xp.ones(3)
    xp.add.at(y, xp.asarray([0, 0]), x[:1])
    assert isinstance(y, DeviceArray)
    expected = np.tanh(x._data) + 2.0 * x._data.sum(axis=0) - 1
    expected[0] += 2 * x._data[0]
    np.testing.assert_allclose(y._data, expected)


def test_a_layer_written_with_numpy_is_caught(device):
    def bad_rnn_step(x, prev_h, Wx, Wh, b):
        return np.tanh(x @ Wx + prev_h @ Wh + b)

    args = [device(np.ones(s)) for s in [(2, 3), (2, 4), (3, 4), (4, 4), (4,)]]
    with pytest.raises(NumpyOnDevice, match="numpy.tanh"):
        bad_rnn_step(*args)
    assert isinstance(minicap.layers.rnn_step_forward(*args)[0], DeviceArray)


def _host_results(tree):
    if isinstance(tree, (tuple, list)):
        return [_host_results(t) for t in tree]
    assert isinstance(tree, DeviceArray), f"a result left the device: {type(tree).__name__}"
    return tree._data


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_layer_runs_on_device_arrays(case, device, rng):
    args = case.inputs(rng)
    outs, cache = case.run(*args)
    douts = tuple(rng.standard_normal(o.shape) for o in outs)
    expected = [outs, case.back(douts, cache)]

    outs_d, cache_d = case.run(*[device(a) for a in args])
    grads_d = case.back(tuple(device(d) for d in douts), cache_d)
    for got, want in zip(_host_results([outs_d, grads_d]), expected):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("temporal_softmax_loss", [minicap.layers.temporal_softmax_loss,
                                                   minicap.kernels.temporal_softmax_loss], ids=["layers", "kernels"])
def test_loss_runs_on_device_arrays(device, rng, temporal_softmax_loss):
    x, y = rng.standard_normal((2, 3, 4)), rng.integers(0, 4, (2, 3))
    mask = rng.random((2, 3)) < 0.5
    loss, dx = temporal_softmax_loss(x, y, mask)
    loss_d, dx_d = temporal_softmax_loss(device(x), device(y), device(mask))
    assert isinstance(loss_d, DeviceArray) and loss_d._data.shape == ()
    np.testing.assert_allclose(loss_d._data, loss, rtol=1e-12)
    np.testing.assert_allclose(_host_results(dx_d), dx, rtol=1e-12)
