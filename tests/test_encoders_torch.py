"""The encoders against torchvision's own forward pass (skipped without torch and torchvision).

CI (.ci/run) installs torch 2.14.1 with torchvision 0.29.1, their CUDA builds,
which run on the CPU: PyPI's torchvision does not import beside the CPU-only torch
2.13.0 that CI used before. Without them, tests/test_encoders.py still checks both
encoders against feature maps recorded from torchvision (tests/fixtures).

Random weights and random batch-norm statistics, eval mode, saved with
``torch.save`` and read back by minicap's torch-free reader, so the whole path
from checkpoint file to feature map is compared.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from minicap.encoders import load_encoder  # noqa: E402
from minicap.encoders.regnet import RegNetConfig  # noqa: E402

pytestmark = pytest.mark.torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def randomized(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=generator)
                m.bias.uniform_(-0.3, 0.3, generator=generator)
                m.running_mean.uniform_(-0.3, 0.3, generator=generator)
                m.running_var.uniform_(0.5, 2.0, generator=generator)
    return model.eval()


def torch_features(trunk, images):
    x = torch.from_numpy(images).float() / 255
    x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    with torch.no_grad():
        return trunk(x).numpy()


def compare(name, model, trunk, tmp_path, rng, size=(112, 112), **arch):
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)
    images = rng.integers(0, 256, (2, 3, *size), dtype=np.uint8)
    expected = torch_features(trunk, images)
    out = load_encoder(name, weights=path, **arch)(images)
    assert out.shape == expected.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("width_mult", [1.0, 0.5])
def test_mobilenet_v2_matches_torchvision(tmp_path, rng, width_mult):
    torch.manual_seed(0)
    model = randomized(torchvision.models.mobilenet_v2(width_mult=width_mult), 1)
    compare("mobilenet_v2", model, model.features, tmp_path, rng, width_mult=width_mult)


def test_mobilenet_v2_matches_torchvision_on_odd_sizes(tmp_path, rng):
    torch.manual_seed(0)
    model = randomized(torchvision.models.mobilenet_v2(), 2)
    compare("mobilenet_v2", model, model.features, tmp_path, rng, size=(75, 41))


def test_regnet_x_400mf_matches_torchvision(tmp_path, rng):
    torch.manual_seed(0)
    model = randomized(torchvision.models.regnet_x_400mf(), 3)
    compare("regnet_x_400mf", model, lambda x: model.trunk_output(model.stem(x)), tmp_path, rng)


def test_custom_regnet_matches_torchvision(tmp_path, rng):
    from torchvision.models.regnet import BlockParams, RegNet

    torch.manual_seed(0)
    config = RegNetConfig(stem_width=16, widths=(16, 48, 96), depths=(2, 1, 3), group_width=16)
    params = BlockParams(list(config.depths), list(config.widths), [16] * 3, [1.0] * 3, [2] * 3)
    model = randomized(RegNet(params, stem_width=16), 4)
    compare("regnet_x_400mf", model, lambda x: model.trunk_output(model.stem(x)), tmp_path, rng, size=(64, 80), config=config)
