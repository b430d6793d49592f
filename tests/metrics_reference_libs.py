"""Load the reference IQA libraries (pyiqa, piq, lpips) for the calibration tests without their heavy imports.

pyiqa's and piq's package ``__init__`` pull in torchvision, cv2, timm, transformers... which do not install with the
pinned CPU torch. The metric modules themselves need none of that, so the packages are registered here as bare
namespaces over their installed folders (their ``__init__`` is skipped) and only the modules a test names are
imported. The few torchvision pieces that lpips/pyiqa's LPIPS and DISTS build on (``models.alexnet``, ``vgg16``,
``squeezenet1_1``: layer lists only, random weights) are written out here from the torchvision architecture, so the
reference networks are built independently of litesr's own backbones.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn


def _bare_package(name: str) -> types.ModuleType | None:
    if name in sys.modules:
        return sys.modules[name]
    top = name.split(".")[0]
    if top in sys.modules:
        root = Path(sys.modules[top].__path__[0])
    else:
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.submodule_search_locations:
            return None
        root = Path(list(spec.submodule_search_locations)[0])
    path = root.joinpath(*name.split(".")[1:])
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)]
    mod.__package__ = name
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    mod.__spec__.submodule_search_locations = [str(path)]
    sys.modules[name] = mod
    return mod


def _stub_module(name: str, **attrs) -> None:
    if name not in sys.modules:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        sys.modules[name] = mod


def _no_download(*_args, **_kwargs):
    raise RuntimeError("reference libraries must not download anything in the tests")


def _install_torchvision_models() -> None:
    """torchvision.models with the three feature stacks LPIPS/DISTS use (weights random, never downloaded)."""
    from tests.torchvision_stub import stub_torchvision

    stub_torchvision()
    tv = sys.modules["torchvision"]
    if hasattr(tv, "models"):
        return
    models = types.ModuleType("torchvision.models")

    class _Net(nn.Module):
        def __init__(self, features: nn.Sequential) -> None:
            super().__init__()
            self.features = features

    def alexnet(pretrained: bool = False, weights=None, **_):
        return _Net(nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2)))

    def vgg16(pretrained: bool = False, weights=None, **_):
        layers, c = [], 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(True)]
                c = v
        return _Net(nn.Sequential(*layers))

    class Fire(nn.Module):
        def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
            super().__init__()
            self.squeeze = nn.Conv2d(cin, squeeze, 1)
            self.squeeze_activation = nn.ReLU(True)
            self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
            self.expand1x1_activation = nn.ReLU(True)
            self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)
            self.expand3x3_activation = nn.ReLU(True)

        def forward(self, x):
            x = self.squeeze_activation(self.squeeze(x))
            return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                              self.expand3x3_activation(self.expand3x3(x))], 1)

    def squeezenet1_1(pretrained: bool = False, weights=None, **_):
        return _Net(nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), nn.ReLU(True), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256)))

    models.alexnet, models.vgg16, models.squeezenet1_1 = alexnet, vgg16, squeezenet1_1
    models.vgg19 = vgg16  # piq.perceptual imports it; never called here
    tv.models = models
    sys.modules["torchvision.models"] = models
    tv.transforms.Normalize = _no_download
    tv.transforms.Compose = _no_download


def _prepare_pyiqa() -> bool:
    if importlib.util.find_spec("pyiqa") is None:
        return False
    _install_torchvision_models()
    for name in ("pyiqa", "pyiqa.archs", "pyiqa.utils"):
        _bare_package(name)
    _stub_module("pyiqa.utils.download_util", load_file_from_url=_no_download)
    _stub_module("huggingface_hub", hf_hub_url=lambda *a, **k: "no-download://")  # URLs built at import only
    utils = sys.modules["pyiqa.utils"]
    utils.get_root_logger = lambda *a, **k: None
    return True


def pyiqa_module(name: str) -> types.ModuleType:
    """``pyiqa.archs.<name>`` (e.g. "fsim_arch"), or skip the test when pyiqa is not installed."""
    if not _prepare_pyiqa():
        pytest.skip("pyiqa is not installed (pip install --no-deps pyiqa; scripts/setup.sh test)")
    return importlib.import_module(f"pyiqa.archs.{name}")


def piq_module(name: str) -> types.ModuleType:
    """``piq.<name>`` (e.g. "fsim"), or skip the test when piq is not installed."""
    if importlib.util.find_spec("piq") is None:
        pytest.skip("piq is not installed (pip install --no-deps piq; scripts/setup.sh test)")
    _install_torchvision_models()
    _bare_package("piq")
    return importlib.import_module(f"piq.{name}")


def lpips_package() -> types.ModuleType:
    """The ``lpips`` package (its torchvision import served by the layer lists above), or skip."""
    if importlib.util.find_spec("lpips") is None:
        pytest.skip("lpips is not installed (pip install --no-deps lpips; scripts/setup.sh test)")
    _install_torchvision_models()
    return importlib.import_module("lpips")
