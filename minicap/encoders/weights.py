"""Pretrained weights: finding the checkpoint, reading it, checking it, folding batch norm.

The encoders use torchvision's published ImageNet checkpoints as they are. A
checkpoint is a state dict, {name: array}, with torchvision's module names
("features.3.conv.1.0.weight"). Each network describes the convolutions it needs
as ``ConvSpec``s: which conv and batch-norm names feed it and the shapes they
must have. ``check_state_dict`` checks every expected tensor before any is
used, and reports the missing or misshaped ones at once (how many, and the first
few names); ``build_conv`` then folds each conv-BN pair into one conv layer
(``ops.make_conv``), its weights rearranged for channel-last feature maps.

Checkpoints are read by ``minicap.data.torchfile.read_torch_file`` (no PyTorch
needed); ``.npz`` files holding the same names also work. Any failure to read
a weights file (missing, truncated, a damaged zip or pickle) is a ``WeightsError``
naming the file and saying what to do.
"""

import os
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from minicap.data.download import sha256_of
from minicap.data.errors import READ_ERRORS
from minicap.encoders.ops import ACTIVATIONS, fold_batch_norm, make_conv

BN_EPS = 1e-5  # torchvision's BatchNorm2d default, used by both networks

# torchvision's published ImageNet checkpoints. The 8 hex digits in each file
# name are the start of the file's SHA-256, which is checked after a download.
CHECKPOINTS = {
    "mobilenet_v2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    "regnet_x_400mf": "https://download.pytorch.org/models/regnet_x_400mf-adf1edd5.pth",
}
CHECKPOINT_SIZES = {"mobilenet_v2": 14_212_972}  # bytes, where published


class WeightsError(ValueError):
    """A checkpoint that cannot be used: missing, unreadable (truncated, a damaged zip or pickle),
    not torchvision's published file, or not matching the network. The message names the file."""


@dataclass(frozen=True)
class ConvSpec:
    """One conv-BN(-activation) unit of a network and where its tensors live in the state dict.

    ``conv`` and ``bn`` are the state-dict prefixes of the Conv2d (no bias) and the
    BatchNorm2d after it. Weight shape: (out_channels, in_channels // groups, kernel, kernel).
    """

    conv: str
    bn: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    groups: int = 1
    activation: str | None = None

    @classmethod
    def conv_norm_act(cls, prefix, *args, **kwargs):
        """The spec of torchvision's Conv2dNormActivation at ``prefix``: conv "prefix.0", BN "prefix.1"."""
        return cls(f"{prefix}.0", f"{prefix}.1", *args, **kwargs)

    def expected_shapes(self):
        """{state-dict name: shape} of every tensor this unit reads."""
        c, f, k = self.in_channels, self.out_channels, self.kernel
        shapes = {f"{self.conv}.weight": (f, c // self.groups, k, k)}
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{self.bn}.{name}"] = (f,)
        return shapes


def check_state_dict(state, specs, what):
    """Raise ``WeightsError`` naming every tensor of ``specs`` that ``state`` lacks or has misshaped.

    ``what`` names the network and its configuration for the message. Extra
    tensors (a classifier head, ``num_batches_tracked``) are ignored.
    """
    missing, misshaped = [], []
    for spec in specs:
        for name, shape in spec.expected_shapes().items():
            if name not in state:
                missing.append(name)
            elif tuple(state[name].shape) != shape:
                misshaped.append(f"{name}: expected {shape}, got {tuple(state[name].shape)}")
    if missing or misshaped:
        lines = [f"the weights do not fit {what}:"]
        if missing:
            lines.append(f"{len(missing)} tensor(s) missing: " + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
        if misshaped:
            lines.append(f"{len(misshaped)} tensor(s) misshaped: " + "; ".join(misshaped[:8]) + (" ..." if len(misshaped) > 8 else ""))
        lines.append("is this torchvision's checkpoint for this network, with the same width settings?")
        raise WeightsError("\n  ".join(lines))


def build_conv(state, spec):
    """The conv layer for ``spec``: its conv weight with the batch norm after it folded in,
    "same" padding ((kernel - 1) // 2), in the formulation that suits its shape."""
    if spec.activation not in ACTIVATIONS:
        raise ValueError(f"{spec.conv}: unknown activation {spec.activation!r}")
    bn = {name: state[f"{spec.bn}.{name}"] for name in ("weight", "bias", "running_mean", "running_var")}
    w, b = fold_batch_norm(state[f"{spec.conv}.weight"], bn["weight"], bn["bias"], bn["running_mean"], bn["running_var"], BN_EPS)
    return make_conv(w, b, spec.stride, (spec.kernel - 1) // 2, spec.groups, spec.activation)


def read_state_dict(path, encoder=None):
    """{tensor name: NumPy array} from a ``torch.save`` checkpoint (.pth/.pt) or an ``.npz`` file.

    Raises ``WeightsError`` naming the file if it is missing (saying where the published
    checkpoint of ``encoder``, e.g. "mobilenet_v2", is), cannot be read, or holds no state dict.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        where = f", e.g. torchvision's published one from {CHECKPOINTS[encoder]}" if encoder in CHECKPOINTS else ""
        raise WeightsError(f"weights file {path} does not exist; pass the path of a torchvision checkpoint (.pth) or .npz{where}")
    damaged = "it is damaged or not a checkpoint: delete it and fetch it again"
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                return {key: f[key] for key in f.files}
        except READ_ERRORS as err:
            raise WeightsError(f"cannot read the weights file {path} as .npz ({type(err).__name__}: {err}); {damaged}") from None
    from minicap.data.torchfile import read_torch_file

    try:
        state = read_torch_file(path)
    except READ_ERRORS as err:  # DataError (a ValueError) for truncation, UnsafePickleError, zip damage
        detail = str(err).removeprefix(f"{path}: ")  # torchfile's messages already name the file
        raise WeightsError(f"cannot read the weights file {path} ({type(err).__name__}: {detail}); {damaged}") from None
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict of named tensors")
    return {key: np.asarray(value) for key, value in state.items() if hasattr(value, "shape")}


def file_sha256(path):
    """The SHA-256 of a file, as 64 hex digits."""
    return sha256_of(path).hexdigest()


def checkpoint_path(name):
    """Where the published checkpoint for encoder ``name`` is kept in minicap's cache folder."""
    from minicap.data.cache import cache_dir

    return cache_dir() / "encoders" / CHECKPOINTS[name].rsplit("/", 1)[1]


def _sha256_prefix_ok(path):
    expected = path.stem.rsplit("-", 1)[1]
    return file_sha256(path).startswith(expected)


def fetch_checkpoint(name):
    """Path of the published checkpoint for ``name``, downloaded into the cache on first use.

    A file already there (downloaded earlier, or copied by hand) is used without
    the network, once its SHA-256 matches the prefix in its name.
    """
    dest = checkpoint_path(name)
    url = CHECKPOINTS[name]
    if not dest.is_file():
        from minicap.data.download import download

        try:
            download(url, dest, expected_size=CHECKPOINT_SIZES.get(name))
        except (OSError, ValueError) as err:  # offline, refused, cut off, or not the expected bytes
            raise WeightsError(f"could not get the {name} weights: {err}\n  Or pass weights=PATH to use a checkpoint file anywhere.") from None
    if not _sha256_prefix_ok(dest):
        raise WeightsError(
            f"{dest} is not torchvision's {name} checkpoint (its SHA-256 does not start with the digits in its name); "
            f"delete it and run again, or copy the file from {url} there by hand"
        )
    return dest


def resolve_weights(name, weights):
    """The state dict for encoder ``name``: ``weights`` may be None (the published checkpoint), a path, or a dict."""
    if weights is None:
        weights = fetch_checkpoint(name)
    if isinstance(weights, Mapping):
        return {key: np.asarray(value) for key, value in weights.items()}
    if isinstance(weights, (str, os.PathLike)):
        return read_state_dict(weights, encoder=name)
    raise TypeError(f"weights must be None, a file path or a dict of arrays, got {type(weights).__name__}")
